/**
 * The reconcile loop against a real kube-apiserver: the contract's scenarios
 * (API.md, "Deciding the active agent" and "Driving the configuration").
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, HAROUTER, type HARouter, ROUTER_LABEL, VERSION } from '../../src/api/index.ts';
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

let cluster: Cluster;
let operator: TestOperator;
let ns: string;
const ip: Record<string, string> = {};
let a: string;
let b: string;
let c: string;

async function routerWhere(
  id: string,
  check: (r: HARouter) => boolean,
  timeoutMs = 20_000,
): Promise<HARouter> {
  let last: HARouter | undefined;
  await waitFor(async () => {
    last = await cluster.getRouter(id);
    return check(last);
  }, timeoutMs).catch(() => {
    throw new Error(`router ${id} did not converge; last status: ${JSON.stringify(last?.status)}`);
  });
  return last as HARouter;
}

/** Waits until the operator has made no API write for `quietMs`. */
async function quiescent(quietMs = 700): Promise<number> {
  let last = await operator.writes();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await operator.writes();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return now;
  }
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  await installCrds(kc);
  ns = await createTestNamespace('reconcile');
  cluster = new Cluster(kc, ns);
  [a, b, c] = [`${ns}-a`, `${ns}-b`, `${ns}-c`];
  let i = 21;
  for (const n of [a, b, c]) {
    ip[n] = `198.51.100.${i++}`;
    await cluster.setNode(n, true, ip[n] as string);
  }
  operator = await startTestOperator(kc, ns);
});

afterAll(async () => {
  await operator?.stop();
  for (const n of [a, b, c]) await cluster?.deleteNode(n);
});

describe('reconcile on a real API server', () => {
  it('single failover: the EndpointSlice and status follow, one Event per change, transitions count', async () => {
    const id = randomUUID();
    await cluster.createService('web1', 80, false, id);
    await cluster.createRouter(id, {
      agents: [{ name: a }, { name: b, priority: 100 }, { name: c }],
      endpoint: { serviceName: 'web1', ports: [{ name: 'http', port: 80 }] },
    });
    await cluster.report(id, a, 'Primary', at(1));
    await cluster.report(id, b, 'Backup', at(1));
    await cluster.report(id, c, 'Backup', at(1));
    let r = await routerWhere(id, (x) => x.status?.activeAgent === a && x.status.liveAgents === 3);
    expect(r.status?.transitions).toBe(1);
    expect(conditionOf(r, 'Ready')).toEqual({ status: 'True', reason: 'ActiveAgentElected' });
    expect(conditionOf(r, 'Degraded')?.status).toBe('False');
    expect(r.status?.agents).toEqual([
      { name: a, state: 'Primary', observedAt: at(1) },
      { name: b, state: 'Backup', observedAt: at(1), priority: 100 },
      { name: c, state: 'Backup', observedAt: at(1) },
    ]);
    await waitFor(async () => (await cluster.sliceAddresses('web1'))?.[0] === ip[a]);

    const [slice] = (await cluster.slices()).filter((s) => s.metadata?.name === 'web1-harouter');
    expect(slice?.metadata?.labels).toMatchObject({
      'kubernetes.io/service-name': 'web1',
      'endpointslice.kubernetes.io/managed-by': 'harouter.dev',
    });
    expect(slice?.metadata?.ownerReferences).toEqual([
      expect.objectContaining({ kind: 'HARouter', name: id, uid: r.metadata.uid, controller: true }),
    ]);
    expect(slice?.addressType).toBe('IPv4');
    expect(slice?.ports).toEqual([expect.objectContaining({ name: 'http', port: 80, protocol: 'TCP' })]);
    expect(slice?.endpoints).toHaveLength(1);

    // keepalived on b takes over and then a steps down: never routed to none in between.
    await cluster.report(id, b, 'Primary', at(2));
    await cluster.report(id, a, 'Backup', at(3));
    r = await routerWhere(
      id,
      (x) => x.status?.activeAgent === b && conditionOf(x, 'SplitBrain')?.status === 'False',
    );
    expect(r.status?.transitions).toBe(2);
    await waitFor(async () => (await cluster.sliceAddresses('web1'))?.join() === ip[b]);
    await quiescent();
    const reasons = (await cluster.eventReasons(id)).filter((x) => x !== 'SplitBrain');
    expect(reasons).toEqual(['ActiveAgentChanged', 'ActiveAgentChanged']);
    const accepted = await cluster.getReport(id, a);
    expect(accepted.status?.conditions).toEqual([
      expect.objectContaining({ type: 'Accepted', status: 'True', reason: 'Member' }),
    ]);
  });

  it('split brain: SplitBrain=True, one endpoint only, and the current active agent stays', async () => {
    const id = randomUUID();
    await cluster.createService('web2', 80, false, id);
    await cluster.createRouter(id, {
      agents: [{ name: a }, { name: b }],
      endpoint: { serviceName: 'web2', ports: [{ port: 8080 }] },
    });
    await cluster.report(id, b, 'Primary', at(10));
    await routerWhere(id, (x) => x.status?.activeAgent === b);
    // a claims Primary with a newer observedAt: sticky, b stays.
    await cluster.report(id, a, 'Primary', at(11));
    const r = await routerWhere(id, (x) => conditionOf(x, 'SplitBrain')?.status === 'True');
    expect(r.status?.activeAgent).toBe(b);
    expect(conditionOf(r, 'SplitBrain')?.reason).toBe('MultiplePrimaries');
    await cluster.report(id, b, 'Primary', at(12));
    await quiescent();
    expect((await cluster.getRouter(id)).status?.activeAgent).toBe(b);
    expect(await cluster.sliceAddresses('web2')).toEqual([ip[b]]);
    expect((await cluster.eventReasons(id)).filter((x) => x === 'SplitBrain')).toHaveLength(1);
  });

  it('no primary: endpoints emptied, Ready=False NoPrimary, a PrimaryLost Warning', async () => {
    const id = randomUUID();
    await cluster.createService('web3', 80, false, id);
    await cluster.createRouter(id, {
      agents: [{ name: a }, { name: b }],
      endpoint: { serviceName: 'web3', ports: [{ port: 80 }] },
    });
    await cluster.report(id, a, 'Primary', at(20));
    await cluster.report(id, b, 'Backup', at(20));
    await routerWhere(id, (x) => x.status?.activeAgent === a);
    await cluster.report(id, a, 'Fault', at(21));
    const r = await routerWhere(
      id,
      (x) => x.status !== undefined && x.status.activeAgent === undefined && x.status.transitions === 2,
    );
    expect(conditionOf(r, 'Ready')).toEqual({ status: 'False', reason: 'NoPrimary' });
    expect(conditionOf(r, 'Degraded')).toEqual({ status: 'True', reason: 'NoRedundancy' });
    expect(r.status?.activeSince).toBeUndefined();
    await waitFor(async () => (await cluster.sliceAddresses('web3'))?.length === 0);
    await quiescent();
    expect(await cluster.eventReasons(id)).toEqual(['ActiveAgentChanged', 'PrimaryLost']);
  });

  it('node NotReady while primary: traffic moves to the live backup once it claims Primary; none before', async () => {
    const x = `${ns}-x`;
    const y = `${ns}-y`;
    await cluster.setNode(x, true, '198.51.100.31');
    await cluster.setNode(y, true, '198.51.100.32');
    try {
      const id = randomUUID();
      await cluster.createService('web4', 80, false, id);
      await cluster.createRouter(id, {
        agents: [{ name: x }, { name: y }],
        endpoint: { serviceName: 'web4', ports: [{ port: 80 }] },
      });
      await cluster.report(id, x, 'Primary', at(30));
      await cluster.report(id, y, 'Backup', at(30));
      await routerWhere(id, (r) => r.status?.activeAgent === x);

      await cluster.setNode(x, false, '198.51.100.31');
      let r = await routerWhere(
        id,
        (s) => s.status?.activeAgent === undefined && s.status?.transitions === 2,
      );
      expect(r.status?.agents?.[0]).toEqual({
        name: x,
        state: 'Unknown',
        reason: 'NodeNotReady',
        observedAt: at(30),
      });
      await waitFor(async () => (await cluster.sliceAddresses('web4'))?.length === 0);

      await cluster.report(id, y, 'Primary', at(31));
      r = await routerWhere(id, (s) => s.status?.activeAgent === y);
      await waitFor(async () => (await cluster.sliceAddresses('web4'))?.join() === '198.51.100.32');

      // x comes back still claiming Primary: split brain, and y (the active one) stays.
      await cluster.setNode(x, true, '198.51.100.31');
      r = await routerWhere(id, (s) => conditionOf(s, 'SplitBrain')?.status === 'True');
      expect(r.status?.activeAgent).toBe(y);

      // Node deleted: Unknown/NodeNotFound.
      await cluster.deleteNode(x);
      r = await routerWhere(id, (s) => s.status?.agents?.[0]?.reason === 'NodeNotFound');
      expect(r.status?.activeAgent).toBe(y);
    } finally {
      await cluster.deleteNode(x);
      await cluster.deleteNode(y);
    }
  });

  it('a report for a router created later is re-evaluated when the router appears', async () => {
    const id = randomUUID();
    await cluster.report(id, a, 'Primary', at(40));
    await waitFor(async () => {
      const rep = await cluster.getReport(id, a);
      return (
        rep.status?.conditions?.some((x) => x.type === 'Accepted' && x.reason === 'UnknownRouter') ?? false
      );
    });
    await cluster.createRouter(id, { agents: [{ name: a }, { name: b }] });
    await routerWhere(id, (r) => r.status?.activeAgent === a);
    await waitFor(async () => {
      const rep = await cluster.getReport(id, a);
      return rep.status?.conditions?.some((x) => x.type === 'Accepted' && x.status === 'True') ?? false;
    });
  });

  it('a non-member report never counts; it is NotAMember until the router lists it', async () => {
    const id = randomUUID();
    await cluster.createRouter(id, { agents: [{ name: a }, { name: b }] });
    await cluster.report(id, c, 'Primary', at(50));
    await cluster.report(id, a, 'Backup', at(50));
    await waitFor(async () => {
      const rep = await cluster.getReport(id, c);
      return rep.status?.conditions?.some((x) => x.type === 'Accepted' && x.reason === 'NotAMember') ?? false;
    });
    const r = await routerWhere(id, (s) => s.status?.agents !== undefined);
    expect(r.status?.activeAgent).toBeUndefined();
    expect(r.status?.agents?.map((x) => x.name)).toEqual([a, b]);
    expect(r.status?.agents?.[1]).toEqual({ name: b, state: 'Unknown', reason: 'NoReport' });

    await cluster.patchRouterSpec(id, { agents: [{ name: a }, { name: b }, { name: c }] });
    await routerWhere(id, (s) => s.status?.activeAgent === c);
    await waitFor(async () => {
      const rep = await cluster.getReport(id, c);
      return rep.status?.conditions?.some((x) => x.type === 'Accepted' && x.status === 'True') ?? false;
    });
  });

  it('ServiceNotFound until the Service appears; renaming the Service deletes the old slice', async () => {
    const id = randomUUID();
    await cluster.createRouter(id, {
      agents: [{ name: a }],
      endpoint: { serviceName: 'web6', ports: [{ port: 80 }] },
    });
    await cluster.report(id, a, 'Primary', at(60));
    await routerWhere(id, (r) => conditionOf(r, 'Ready')?.reason === 'ServiceNotFound');
    await cluster.createService('web6', 80, false, id);
    await routerWhere(id, (r) => conditionOf(r, 'Ready')?.status === 'True');
    await cluster.createService('web7', 80, false, id);
    await cluster.patchRouterSpec(id, { endpoint: { serviceName: 'web7', ports: [{ port: 80 }] } });
    await waitFor(async () => (await cluster.sliceAddresses('web7'))?.join() === ip[a]);
    await waitFor(async () => (await cluster.sliceAddresses('web6')) === undefined);
    await cluster.patchRouterSpec(id, { endpoint: null });
    await waitFor(async () => (await cluster.sliceAddresses('web7')) === undefined);
  });

  it('the Service must opt in: one with a selector gets no slice; removing the opt-in deletes the slice', async () => {
    const id = randomUUID();
    await cluster.core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'selected', labels: { [ROUTER_LABEL]: id } },
        spec: { selector: { app: 'someone-elses' }, ports: [{ port: 80 }] },
      },
    });
    await cluster.createRouter(id, {
      agents: [{ name: a }],
      endpoint: { serviceName: 'selected', ports: [{ port: 80 }] },
    });
    await cluster.report(id, a, 'Primary', at(100));
    // Still decided and shown: the active agent, with Ready=False and the reason.
    await routerWhere(
      id,
      (x) => x.status?.activeAgent === a && conditionOf(x, 'Ready')?.reason === 'ServiceHasSelector',
    );
    await quiescent();
    expect(await cluster.sliceAddresses('selected')).toBeUndefined();

    await cluster.createService('opted', 80, false, id);
    await cluster.patchRouterSpec(id, { endpoint: { serviceName: 'opted', ports: [{ port: 80 }] } });
    await waitFor(async () => (await cluster.sliceAddresses('opted'))?.join() === ip[a]);
    await cluster.core.patchNamespacedService(
      { name: 'opted', namespace: ns, body: { metadata: { labels: { [ROUTER_LABEL]: null } } } },
      mergePatchOptions,
    );
    await routerWhere(id, (x) => conditionOf(x, 'Ready')?.reason === 'ServiceNotOptedIn');
    await waitFor(async () => (await cluster.sliceAddresses('opted')) === undefined);
    expect((await cluster.getRouter(id)).status?.activeAgent).toBe(a);

    // Opting in again brings the slice back, without a new report.
    await cluster.core.patchNamespacedService(
      { name: 'opted', namespace: ns, body: { metadata: { labels: { [ROUTER_LABEL]: id } } } },
      mergePatchOptions,
    );
    await waitFor(async () => (await cluster.sliceAddresses('opted'))?.join() === ip[a]);
  });

  it('two routers naming the same Service: the one it did not opt in to never takes the slice over and is not Ready', async () => {
    const first = randomUUID();
    const second = randomUUID();
    await cluster.createService('shared', 80, false, first);
    await cluster.createRouter(first, {
      agents: [{ name: a }],
      endpoint: { serviceName: 'shared', ports: [{ port: 80 }] },
    });
    await cluster.report(first, a, 'Primary', at(90));
    await waitFor(async () => (await cluster.sliceAddresses('shared'))?.join() === ip[a]);
    await cluster.createRouter(second, {
      agents: [{ name: b }],
      endpoint: { serviceName: 'shared', ports: [{ port: 80 }] },
    });
    await cluster.report(second, b, 'Primary', at(90));
    const r = await routerWhere(second, (x) => x.status?.activeAgent === b);
    // The Service opted in to the first router only.
    expect(conditionOf(r, 'Ready')).toEqual({ status: 'False', reason: 'ServiceNotOptedIn' });
    await quiescent();
    expect(await cluster.sliceAddresses('shared')).toEqual([ip[a]]);
    expect(conditionOf(await cluster.getRouter(first), 'Ready')?.status).toBe('True');
  });

  it('a router being deleted is left alone and never resurrected; its reports then become UnknownRouter', async () => {
    const id = randomUUID();
    const ref = { group: GROUP, version: VERSION, namespace: ns, plural: HAROUTER.plural, name: id };
    await cluster.custom.createNamespacedCustomObject({
      ...ref,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: HAROUTER.kind,
        metadata: { name: id, finalizers: ['test.harouter.dev/hold'] },
        spec: { agents: [{ name: a }, { name: b }] },
      },
    });
    await cluster.report(id, a, 'Primary', at(80));
    await routerWhere(id, (r) => r.status?.activeAgent === a);
    await cluster.custom.deleteNamespacedCustomObject(ref);
    const deleting = await routerWhere(id, (r) => r.metadata.deletionTimestamp !== undefined);
    await cluster.report(id, b, 'Primary', at(81));
    await cluster.report(id, a, 'Backup', at(82));
    await quiescent();
    const still = await cluster.getRouter(id);
    expect(still.metadata.resourceVersion).toBe(deleting.metadata.resourceVersion);
    expect(still.status?.activeAgent).toBe(a);

    await cluster.custom.patchNamespacedCustomObject(
      { ...ref, body: { metadata: { finalizers: null } } },
      mergePatchOptions,
    );
    await waitFor(async () => {
      const rep = await cluster.getReport(id, b);
      return (
        rep.status?.conditions?.some((x) => x.type === 'Accepted' && x.reason === 'UnknownRouter') ?? false
      );
    });
    await expect(cluster.getRouter(id)).rejects.toMatchObject({ code: 404 });
  });

  it('a failover costs the minimum of API writes: the slice, the status and one Event', async () => {
    const id = randomUUID();
    await cluster.createService('web8', 80, false, id);
    await cluster.createRouter(id, {
      agents: [{ name: a }, { name: b }],
      endpoint: { serviceName: 'web8', ports: [{ port: 80 }] },
    });
    await cluster.report(id, a, 'Primary', at(70));
    await routerWhere(id, (r) => r.status?.activeAgent === a);
    await cluster.report(id, b, 'Primary', at(71));
    await routerWhere(id, (r) => conditionOf(r, 'SplitBrain')?.status === 'True');
    const before = await quiescent();
    // One change (a steps down) moves the traffic to b.
    await cluster.report(id, a, 'Backup', at(72));
    await routerWhere(id, (r) => r.status?.activeAgent === b);
    await waitFor(async () => (await cluster.sliceAddresses('web8'))?.join() === ip[b]);
    const after = await quiescent();
    expect(after - before).toBe(3);
  });
});
