/**
 * Level-based reconcile across an operator restart: a burst of failovers on
 * several routers, the operator stopped and a new one started in the middle;
 * the final state must equal the last report of every router, and every change
 * of the active agent must be counted (and announced) exactly once.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, HAROUTER, type HARouter, VERSION } from '../../src/api/index.ts';
import { adminKubeConfig, createTestNamespace } from '../support/index.ts';
import {
  at,
  Cluster,
  conditionOf,
  installCrds,
  mergePatchOptions,
  startTestOperator,
  type TestOperator,
  waitFor,
} from './reconcile-harness.ts';

const ROUTERS = 8;
const STEPS = 10;

let cluster: Cluster;
let ns: string;
let agents: string[];
const ips: string[] = ['198.51.100.41', '198.51.100.42', '198.51.100.43'];
const operators: TestOperator[] = [];

beforeAll(async () => {
  const kc = adminKubeConfig();
  await installCrds(kc);
  ns = await createTestNamespace('failover');
  cluster = new Cluster(kc, ns);
  agents = [`${ns}-a`, `${ns}-b`, `${ns}-c`];
  for (const [i, name] of agents.entries()) await cluster.setNode(name, true, ips[i] as string);
});

afterAll(async () => {
  for (const op of operators) await op.stop().catch(() => undefined);
  for (const name of agents ?? []) await cluster?.deleteNode(name);
});

/** The agent that is Primary for router `r` at burst step `s`. */
const primaryAt = (r: number, s: number) => (s + r) % 3;

describe('operator restart in the middle of a burst of reports', () => {
  it('ends in the state of the last report of every router, each change counted once', async () => {
    const kc = adminKubeConfig();
    const ids = Array.from({ length: ROUTERS }, () => randomUUID());
    for (const [r, id] of ids.entries()) {
      const service = `svc-${r}`;
      await cluster.createService(service);
      await cluster.createRouter(id, {
        agents: agents.map((name) => ({ name })),
        endpoint: { serviceName: service, ports: [{ port: 80 }] },
      });
    }
    operators.push(await startTestOperator(kc, ns));

    const step = async (s: number) => {
      await Promise.all(
        ids.map(async (id, r) => {
          const p = primaryAt(r, s);
          // keepalived's order: the new primary announces itself, then the others step down.
          await cluster.report(id, agents[p] as string, 'Primary', at(100 + s, 1));
          for (const [i, name] of agents.entries()) {
            if (i !== p) await cluster.report(id, name, 'Backup', at(100 + s, 2));
          }
        }),
      );
    };
    let stepsDone = 0;
    const run = async (from: number, to: number, pauseMs: number) => {
      for (let s = from; s < to; s++) {
        await step(s);
        stepsDone++;
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    };
    const half = STEPS / 2;
    await run(0, half, 0);
    // Restart while the burst goes on: the first operator stops (draining what it is doing)
    // while the second half of the burst is written, then a fresh operator starts from its lists.
    const stopping = operators[0]?.stop();
    const rest = run(half, STEPS, 100);
    expect(stepsDone).toBe(half);
    await stopping;
    operators.push(await startTestOperator(kc, ns));
    await rest;

    const last = STEPS - 1;
    for (const [r, id] of ids.entries()) {
      const want = agents[primaryAt(r, last)] as string;
      let got: HARouter | undefined;
      await waitFor(async () => {
        got = await cluster.getRouter(id);
        return (
          got.status?.activeAgent === want &&
          got.status.agents?.every((x) => x.observedAt === at(100 + last, x.name === want ? 1 : 2)) === true
        );
      }, 30_000).catch(() => {
        throw new Error(`router ${r} did not converge: ${JSON.stringify(got?.status)}`);
      });
      expect(got?.status?.agents?.map((x) => x.state)).toEqual(
        agents.map((name) => (name === want ? 'Primary' : 'Backup')),
      );
      expect(conditionOf(got as HARouter, 'Ready')?.status).toBe('True');
      await waitFor(
        async () => (await cluster.sliceAddresses(`svc-${r}`))?.join() === ips[primaryAt(r, last)],
      );
    }

    // Let the new operator settle, then check that counting survived the restart.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const id of ids) {
      const router = await cluster.getRouter(id);
      const announced = (await cluster.eventReasons(id)).filter(
        (x) => x === 'ActiveAgentChanged' || x === 'PrimaryLost',
      );
      expect(router.status?.transitions).toBeGreaterThanOrEqual(1);
      expect(announced).toHaveLength(router.status?.transitions ?? -1);
      for (const name of agents) {
        const report = await cluster.getReport(id, name);
        expect(report.status?.conditions?.find((x) => x.type === 'Accepted')?.status).toBe('True');
      }
    }
  });

  it('the status patch the reconciler sends is refused when computed from a stale resourceVersion', async () => {
    // The reconciler relies on this never to count a transition twice from a lagging cache.
    // A namespace no operator watches, so that only this test writes.
    const occ = new Cluster(adminKubeConfig(), await createTestNamespace('occ'));
    const id = randomUUID();
    await occ.createRouter(id, { agents: [{ name: agents[0] as string }] });
    const created = await occ.getRouter(id);
    const patch = (transitions: number) =>
      occ.custom.patchNamespacedCustomObjectStatus(
        {
          group: GROUP,
          version: VERSION,
          namespace: occ.namespace,
          plural: HAROUTER.plural,
          name: id,
          body: { metadata: { resourceVersion: created.metadata.resourceVersion }, status: { transitions } },
        },
        mergePatchOptions,
      );
    await patch(5);
    await expect(patch(6)).rejects.toMatchObject({ code: 409 });
    expect((await occ.getRouter(id)).status?.transitions).toBe(5);
  });
});
