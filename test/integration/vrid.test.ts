/**
 * VRID allocation against the real API server: two operators with caches of their own race to
 * allocate for 100 new routers; a VRID set by hand that another router holds; the claims of a
 * deleted router released; a segment with no VRID left. The truth is read back from the API
 * server (the claim Leases and the routers' status), not from the operators.
 */
import { randomUUID } from 'node:crypto';
import { CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  GROUP,
  HAROUTER,
  type HARouter,
  type HARouterSpec,
  VERSION,
  VRID_CLAIM_SELECTOR,
  vridLeaseName,
} from '../../src/api/index.ts';
import { adminKubeConfig, createTestNamespace } from '../support/index.ts';
import {
  Cluster,
  conditionOf,
  installCrds,
  startTestOperator,
  type TestOperator,
  waitFor,
} from './reconcile-harness.ts';

const kc = adminKubeConfig();
const leases = kc.makeApiClient(CoordinationV1Api);
let cluster: Cluster;
let namespace = '';
const operators: TestOperator[] = [];

const vrrp = (segment: string, vrid?: number): NonNullable<HARouterSpec['vrrp']> => ({
  segment,
  interface: 'eth0',
  virtualIPs: ['192.0.2.10/24'],
  advertIntervalMs: 1000,
  fenceHoldSeconds: 60,
  failbackDelaySeconds: 30,
  ...(vrid !== undefined ? { vrid } : {}),
});
const spec = (segment: string, vrid?: number): HARouterSpec => ({
  agents: [{ name: 'node-a' }, { name: 'node-b' }],
  vrrp: vrrp(segment, vrid),
});

/** Claims go in the test namespace: `--leader-election-namespace` names the operator's namespace. */
const start = async (...args: string[]) => {
  const operator = await startTestOperator(kc, namespace, 4, [
    `--leader-election-namespace=${namespace}`,
    ...args,
  ]);
  operators.push(operator);
  return operator;
};

async function claims(segment: string): Promise<V1Lease[]> {
  const list = await leases.listNamespacedLease({ namespace, labelSelector: VRID_CLAIM_SELECTOR });
  return list.items.filter((l) => l.metadata?.labels?.['harouter.dev/vrrp-segment'] === segment);
}

async function routers(): Promise<HARouter[]> {
  const list = (await cluster.custom.listNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace,
    plural: HAROUTER.plural,
  })) as { items: HARouter[] };
  return list.items;
}

beforeAll(async () => {
  await installCrds(kc);
  namespace = await createTestNamespace('vrid');
  cluster = new Cluster(kc, namespace);
});

afterAll(async () => {
  await Promise.all(operators.map((o) => o.stop()));
});

describe('VRID allocation', () => {
  it('two operators racing for 100 new routers never give two routers one VRID', async () => {
    await start();
    await start();
    const segment = 'race';
    const ids: string[] = Array.from({ length: 100 }, () => randomUUID());
    await Promise.all(ids.map((id) => cluster.createRouter(id, spec(segment))));
    await waitFor(
      async () => (await routers()).filter((r) => r.status?.vrrp).length === ids.length,
      120_000,
      500,
    );
    // Both operators settle: every claim a router does not record is released.
    await waitFor(async () => (await claims(segment)).length === ids.length, 60_000, 500);

    const recorded = (await routers()).filter((r) => ids.includes(r.metadata.name));
    const vrids = recorded.map((r) => r.status?.vrrp?.vrid);
    expect(new Set(vrids).size).toBe(ids.length);
    expect(recorded.every((r) => r.status?.vrrp?.segment === segment)).toBe(true);
    // The allocation is dense: the lowest free VRIDs, 1 to 100.
    expect([...vrids].sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(ids.map((_, i) => i + 1));
    const byHolder = new Map((await claims(segment)).map((l) => [l.spec?.holderIdentity, l.metadata?.name]));
    for (const router of recorded) {
      expect(byHolder.get(`${namespace}/${router.metadata.name}`)).toBe(
        vridLeaseName(segment, router.status?.vrrp?.vrid ?? 0),
      );
    }
  });

  it('a VRID set by hand that another router holds: the later router gets VRIDConflict and no status.vrrp', async () => {
    if (operators.length === 0) await start();
    const segment = 'hand';
    const first = randomUUID();
    const second = randomUUID();
    await cluster.createRouter(first, spec(segment, 42));
    await waitFor(async () => (await cluster.getRouter(first)).status?.vrrp?.vrid === 42);
    await cluster.createRouter(second, spec(segment, 42));
    await waitFor(
      async () => conditionOf(await cluster.getRouter(second), 'Ready')?.reason === 'VRIDConflict',
    );
    expect((await cluster.getRouter(second)).status?.vrrp).toBeUndefined();

    // When the first router goes, its claim is released and the second one gets the VRID.
    await cluster.custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: HAROUTER.plural,
      name: first,
    });
    await waitFor(async () => (await cluster.getRouter(second)).status?.vrrp?.vrid === 42, 30_000);
    const held = await claims(segment);
    expect(held.map((l) => l.spec?.holderIdentity)).toEqual([`${namespace}/${second}`]);
  });

  it('a router that drops spec.vrrp releases its claim', async () => {
    if (operators.length === 0) await start();
    const segment = 'drop';
    const id = randomUUID();
    await cluster.createRouter(id, spec(segment));
    await waitFor(async () => (await cluster.getRouter(id)).status?.vrrp?.vrid === 1);
    expect(await claims(segment)).toHaveLength(1);
    await cluster.patchRouterSpec(id, { vrrp: null });
    await waitFor(async () => (await claims(segment)).length === 0);
    await waitFor(async () => (await cluster.getRouter(id)).status?.vrrp === undefined);
  });
});

describe('a segment with no VRID left', () => {
  it('gives NoVRIDAvailable, honouring --vrrp-reserved-vrids', async () => {
    await Promise.all(operators.splice(0).map((o) => o.stop()));
    await start('--vrrp-reserved-vrids=1-252');
    const segment = 'full';
    const [a, b, c] = [randomUUID(), randomUUID(), randomUUID()];
    await cluster.createRouter(a, spec(segment));
    await waitFor(async () => (await cluster.getRouter(a)).status?.vrrp?.vrid === 253);
    await cluster.createRouter(b, spec(segment));
    await waitFor(async () => (await cluster.getRouter(b)).status?.vrrp?.vrid === 254);
    await cluster.createRouter(c, spec(segment));
    await waitFor(async () => conditionOf(await cluster.getRouter(c), 'Ready')?.reason === 'NoVRIDAvailable');
    expect((await cluster.getRouter(c)).status?.vrrp).toBeUndefined();
  });
});
