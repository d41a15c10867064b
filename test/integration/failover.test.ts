/**
 * Level-based reconcile across an operator restart: a burst of failovers on
 * several routers, the operator stopped and a new one started in the middle
 * (two routers get no reports from then on); the final state must equal the
 * last report of every router, and every change of the active agent must be
 * counted (and announced) exactly once: the test watches the HARouters itself
 * and compares `status.transitions` with the changes of `activeAgent` it saw.
 */
import { randomUUID } from 'node:crypto';
import { Watch } from '@kubernetes/client-node';
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
/** The last routers get no reports from the restart on: the restart itself must count nothing. */
const QUIET = 2;
const STEPS = 10;
const HALF = STEPS / 2;

let cluster: Cluster;
let ns: string;
let agents: string[];
const ips: string[] = ['198.51.100.41', '198.51.100.42', '198.51.100.43'];
const operators: TestOperator[] = [];
const watches: AbortController[] = [];

beforeAll(async () => {
  const kc = adminKubeConfig();
  await installCrds(kc);
  ns = await createTestNamespace('failover');
  cluster = new Cluster(kc, ns);
  agents = [`${ns}-a`, `${ns}-b`, `${ns}-c`];
  for (const [i, name] of agents.entries()) await cluster.setNode(name, true, ips[i] as string);
});

afterAll(async () => {
  for (const watch of watches) watch.abort();
  for (const op of operators) await op.stop().catch(() => undefined);
  for (const name of agents ?? []) await cluster?.deleteNode(name);
});

/**
 * What the test itself sees of every HARouter in the namespace, from a watch of its own: each
 * status write's `activeAgent`, the changes of that value so far (to and from none included, as
 * the contract counts them), and every write whose `status.transitions` disagreed with them.
 */
async function observeActiveAgents({ kc, namespace, custom }: Cluster) {
  const routers = new Map<string, { active?: string; changes: number; resourceVersion?: string }>();
  const disagreements: string[] = [];
  let ended: string | undefined;
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${HAROUTER.plural}`;
  // Right after the CRD is installed the API server may still answer 429 (storage initializing).
  let list: { metadata: { resourceVersion: string } } | undefined;
  await waitFor(async () => {
    list = (await custom
      .listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: HAROUTER.plural })
      .catch((err: { code?: number }) => {
        if (err.code === 429) return undefined;
        throw err;
      })) as typeof list;
    return list !== undefined;
  }, 30_000);
  const controller = await new Watch(kc).watch(
    path,
    { resourceVersion: list?.metadata.resourceVersion },
    (type: string, object: HARouter) => {
      if (type !== 'ADDED' && type !== 'MODIFIED') return;
      const name = object.metadata.name as string;
      const seen = routers.get(name) ?? { changes: 0 };
      const active = object.status?.activeAgent;
      if (active !== seen.active) seen.changes++;
      seen.active = active;
      seen.resourceVersion = object.metadata.resourceVersion;
      routers.set(name, seen);
      const counted = object.status?.transitions ?? 0;
      if (counted !== seen.changes) {
        disagreements.push(
          `${name}@${seen.resourceVersion}: transitions ${counted}, ${seen.changes} changes seen`,
        );
      }
    },
    (err: unknown) => {
      ended = String(err ?? 'closed by the server');
    },
  );
  watches.push(controller);
  return {
    routers,
    disagreements,
    /** Stops the watch; fails if it ended before, since changes could have been missed. */
    stop() {
      if (ended !== undefined) throw new Error(`the test's own watch ended early (${ended})`);
      controller.abort();
    },
  };
}

/** The agent that is Primary for router `r` at burst step `s`. */
const primaryAt = (r: number, s: number) => (s + r) % 3;
/** The last step that reports about router `r`. */
const lastStepOf = (r: number) => (r >= ROUTERS - QUIET ? HALF - 1 : STEPS - 1);

describe('operator restart in the middle of a burst of reports', () => {
  it('ends in the state of the last report of every router, each change counted once', async () => {
    const kc = adminKubeConfig();
    const observed = await observeActiveAgents(cluster);
    const ids = Array.from({ length: ROUTERS }, () => randomUUID());
    for (const [r, id] of ids.entries()) {
      const service = `svc-${r}`;
      await cluster.createService(service, 80, false, id);
      await cluster.createRouter(id, {
        agents: agents.map((name) => ({ name })),
        endpoint: { serviceName: service, ports: [{ port: 80 }] },
      });
    }
    operators.push(await startTestOperator(kc, ns));

    const step = async (s: number) => {
      await Promise.all(
        ids.map(async (id, r) => {
          if (s > lastStepOf(r)) return;
          const p = primaryAt(r, s);
          // keepalived's order: the new primary announces itself, then the others step down.
          await cluster.report(id, agents[p] as string, 'Primary', at(100 + s, 1));
          for (const [i, name] of agents.entries()) {
            if (i !== p) await cluster.report(id, name, 'Backup', at(100 + s, 2));
          }
        }),
      );
    };
    const run = async (from: number, to: number, pauseMs: number) => {
      for (let s = from; s < to; s++) {
        await step(s);
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    };
    await run(0, HALF, 0);
    // Restart while the burst goes on: the first operator stops (draining what it is doing)
    // while two steps are written, one step is written with no operator running, and a fresh
    // operator starts from its lists while the last steps are written.
    await Promise.all([operators[0]?.stop(), run(HALF, HALF + 2, 100)]);
    await run(HALF + 2, HALF + 3, 0);
    await Promise.all([
      startTestOperator(kc, ns).then((op) => operators.push(op)),
      run(HALF + 3, STEPS, 100),
    ]);

    for (const [r, id] of ids.entries()) {
      const last = lastStepOf(r);
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

    // Let the new operator settle, then check that counting survived the restart: every status
    // write's transitions equals the activeAgent changes the test's own watch saw up to it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const id of ids) {
      const router = await cluster.getRouter(id);
      await waitFor(
        async () => observed.routers.get(id)?.resourceVersion === router.metadata.resourceVersion,
      );
      const changes = observed.routers.get(id)?.changes;
      const announced = (await cluster.eventReasons(id)).filter(
        (x) => x === 'ActiveAgentChanged' || x === 'PrimaryLost',
      );
      expect(changes).toBeGreaterThanOrEqual(1);
      expect(router.status?.transitions).toBe(changes);
      expect(announced).toHaveLength(router.status?.transitions ?? -1);
      for (const name of agents) {
        const report = await cluster.getReport(id, name);
        expect(report.status?.conditions?.find((x) => x.type === 'Accepted')?.status).toBe('True');
      }
    }
    observed.stop();
    expect(observed.disagreements).toEqual([]);
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
