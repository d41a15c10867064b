/**
 * The reconciler shell against in-memory caches and a recording API stub: which
 * requests it makes, in what order, how it survives a lagging cache and a
 * conflict, and the domain metrics. Behaviour against the real API server is
 * covered by test/integration/reconcile*.test.ts.
 */
import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { type HARouter, type HARouterState, type LeaseObject, ROUTER_LABEL } from '../../src/api/index.ts';
import {
  REPORTS_BY_ROUTER,
  reportRouterIndex,
  SLICES_BY_ROUTER,
  sliceRouterIndex,
} from '../../src/controller/indexes.ts';
import type { ServiceFacts } from '../../src/controller/transforms.ts';
import type { Caches } from '../../src/controller/types.ts';
import type { RawRequest } from '../../src/kube/client.ts';
import { KubeRequestError } from '../../src/kube/errors.ts';
import { createMetrics } from '../../src/metrics.ts';
import { createReconciler, SPLIT_BRAIN_GRACE_MS } from '../../src/reconcile/reconciler.ts';
import type { IndexedStore } from '../../src/runtime/store.ts';
import { NAMESPACE, ROUTER_ID, report, router, T0 } from './reconcile-fixtures.ts';

const log = pino({ level: 'silent' });
const KEY = `${NAMESPACE}/${ROUTER_ID}`;

class MapStore<T extends { metadata?: { name?: string; namespace?: string } }> implements IndexedStore<T> {
  readonly items = new Map<string, T>();
  readonly #indexers: Record<string, (obj: T) => readonly string[]>;
  constructor(indexers: Record<string, (obj: T) => readonly string[]> = {}) {
    this.#indexers = indexers;
  }
  put(obj: T): void {
    const m = obj.metadata ?? {};
    this.items.set(m.namespace ? `${m.namespace}/${m.name}` : (m.name ?? ''), obj);
  }
  get(key: string): T | undefined {
    return this.items.get(key);
  }
  list(): T[] {
    return [...this.items.values()];
  }
  byIndex(index: string, value: string): T[] {
    const fn = this.#indexers[index];
    return fn ? this.list().filter((obj) => fn(obj).includes(value)) : [];
  }
}

function node(name: string, ready: boolean, ip: string): V1Node {
  return {
    metadata: { name },
    status: {
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
      addresses: [{ type: 'InternalIP', address: ip }],
    },
  };
}

function setup() {
  const stores = {
    harouters: new MapStore<HARouter>(),
    harouterStates: new MapStore<HARouterState>({ [REPORTS_BY_ROUTER]: reportRouterIndex }),
    nodes: new MapStore<V1Node>(),
    endpointSlices: new MapStore<V1EndpointSlice>({ [SLICES_BY_ROUTER]: sliceRouterIndex }),
    services: new MapStore<ServiceFacts>(),
    vridClaims: new MapStore<LeaseObject>(),
  };
  stores.nodes.put(node('node-a', true, '198.51.100.11'));
  stores.nodes.put(node('node-b', true, '198.51.100.12'));
  stores.services.put({
    metadata: { name: 'web', namespace: NAMESPACE, labels: { [ROUTER_LABEL]: ROUTER_ID } },
    hasSelector: false,
  });
  const requests: RawRequest[] = [];
  let rv = 200;
  const failures: ((r: RawRequest) => Error | undefined)[] = [];
  const server: { router?: HARouter } = {};
  const raw = async (request: RawRequest): Promise<unknown> => {
    requests.push(request);
    for (const f of failures) {
      const err = f(request);
      if (err) throw err;
    }
    const body = request.body as Record<string, unknown>;
    if (
      request.method === 'PATCH' &&
      request.path.endsWith('/status') &&
      request.path.includes('/harouters/')
    ) {
      const current = stores.harouters.get(KEY) as HARouter;
      return {
        ...current,
        metadata: { ...current.metadata, resourceVersion: String(++rv) },
        status: mergeStatus(current, body),
      };
    }
    if (request.method === 'PATCH' && request.path.includes('/harouterstates/')) {
      const name = request.path.split('/').at(-2) ?? '';
      const current = stores.harouterStates.get(`${NAMESPACE}/${name}`) as HARouterState;
      return {
        ...current,
        metadata: { ...current.metadata, resourceVersion: String(++rv) },
        status: body.status,
      };
    }
    if ((request.method ?? 'GET') === 'GET') return server.router ?? stores.harouters.get(KEY);
    return { ...body, metadata: { ...(body?.metadata as object), resourceVersion: String(++rv) } };
  };
  const metrics = createMetrics({ processMetrics: false });
  let clock = new Date('2026-11-25T12:00:03Z');
  const reconciler = createReconciler({
    caches: stores as unknown as Caches,
    raw,
    metrics,
    identity: 'test',
    now: () => clock,
  });
  return {
    stores,
    requests,
    failures,
    server,
    metrics,
    reconciler,
    setClock: (d: Date) => {
      clock = d;
    },
    writes: () =>
      requests
        .filter((r) => r.method !== 'GET')
        .map((r) => `${r.method} ${r.path.split('/').slice(-2).join('/')}`),
  };
}

function mergeStatus(current: HARouter, body: Record<string, unknown>) {
  const patch = body.status as Record<string, unknown>;
  const status: Record<string, unknown> = { ...(current.status ?? {}) };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete status[k];
    else status[k] = v;
  }
  return status;
}

/** A failure that answers 409 Conflict to a PATCH carrying `resourceVersion` (a status computed from it). */
function conflictOnVersion(resourceVersion: string) {
  return (r: RawRequest): Error | undefined =>
    r.method === 'PATCH' &&
    (r.body as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion === resourceVersion
      ? new KubeRequestError(409, { kind: 'Status', code: 409, reason: 'Conflict', message: 'conflict' })
      : undefined;
}

/** `harouter_report_to_route_seconds_<part>`. */
async function reportToRoute(metrics: ReturnType<typeof createMetrics>, part: 'sum' | 'count') {
  const hist = await metric(metrics, 'harouter_report_to_route_seconds');
  const name = `harouter_report_to_route_seconds_${part}`;
  return hist.find((v) => (v as { metricName?: string }).metricName === name)?.value;
}

async function metric(metrics: ReturnType<typeof createMetrics>, name: string) {
  const m = (await metrics.registry.getMetricsAsJSON()).find((x) => x.name === name);
  return m?.values ?? [];
}

describe('HARouterReconciler', () => {
  it('a new split brain that changes no routing is recorded only once it outlasts the grace', async () => {
    const t = setup();
    t.stores.harouters.put(
      router({ agents: ['node-a', 'node-b'], endpoint: { serviceName: 'web', ports: [{ port: 80 }] } }),
    );
    t.stores.harouterStates.put(report('node-a', 'Primary', T0));
    await t.reconciler.reconcile(KEY, log);
    const routed = t.writes().length;

    // keepalived's failover: b claims Primary a moment before a steps down. Nothing is written meanwhile.
    t.stores.harouterStates.put(report('node-b', 'Primary', '2026-11-25T12:00:01Z'));
    expect(await t.reconciler.reconcile(KEY, log)).toEqual({ requeueAfterMs: SPLIT_BRAIN_GRACE_MS });
    t.setClock(new Date(Date.parse('2026-11-25T12:00:03Z') + 400));
    expect(await t.reconciler.reconcile(KEY, log)).toEqual({ requeueAfterMs: SPLIT_BRAIN_GRACE_MS - 400 });
    expect(t.writes()).toHaveLength(routed);
    const stepDown = report('node-a', 'Backup', '2026-11-25T12:00:02Z');
    t.stores.harouterStates.put({ ...stepDown, metadata: { ...stepDown.metadata, resourceVersion: '900' } });
    expect(await t.reconciler.reconcile(KEY, log)).toBeUndefined();
    const failover = t.writes().slice(routed);
    expect(failover.slice(0, 3)).toEqual([
      'PATCH endpointslices/web-harouter',
      `PATCH ${ROUTER_ID}/status`,
      'POST tenant/events',
    ]);
    expect(t.requests.filter((r) => (r.body as { reason?: string })?.reason === 'SplitBrain')).toEqual([]);

    // A split brain that lasts is recorded once the grace is over.
    const before = t.writes().length;
    const comeback = report('node-a', 'Primary', '2026-11-25T12:00:04Z');
    t.stores.harouterStates.put({ ...comeback, metadata: { ...comeback.metadata, resourceVersion: '901' } });
    expect(await t.reconciler.reconcile(KEY, log)).toEqual({ requeueAfterMs: SPLIT_BRAIN_GRACE_MS });
    t.setClock(new Date(Date.parse('2026-11-25T12:00:03Z') + 400 + SPLIT_BRAIN_GRACE_MS));
    expect(await t.reconciler.reconcile(KEY, log)).toBeUndefined();
    expect(t.writes().length).toBeGreaterThan(before);
    expect(t.requests.filter((r) => (r.body as { reason?: string })?.reason === 'SplitBrain')).toHaveLength(
      1,
    );
  });

  it('first reconcile: SSA the slice, merge-patch status with the resourceVersion, an Event, Accepted', async () => {
    const t = setup();
    t.stores.harouters.put(
      router({ agents: ['node-a', 'node-b'], endpoint: { serviceName: 'web', ports: [{ port: 80 }] } }),
    );
    t.stores.harouterStates.put(report('node-a', 'Primary', T0));
    await t.reconciler.reconcile(KEY, log);
    expect(t.writes()).toEqual([
      'PATCH endpointslices/web-harouter',
      `PATCH ${ROUTER_ID}/status`,
      'POST tenant/events',
      `PATCH ${ROUTER_ID}.node-a/status`,
    ]);
    const [slice, status, event] = t.requests;
    expect(slice?.contentType).toBe('application/apply-patch+yaml');
    expect(slice?.query).toEqual({ fieldManager: 'harouter-operator', force: true });
    expect(status?.contentType).toBe('application/merge-patch+json');
    expect(status?.body).toMatchObject({
      metadata: { resourceVersion: '100' },
      status: { activeAgent: 'node-a', transitions: 1 },
    });
    expect(event?.body).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      reason: 'ActiveAgentChanged',
      type: 'Normal',
      reportingController: 'harouter.dev/harouter-operator',
      reportingInstance: 'test',
      eventTime: '2026-11-25T12:00:03.000000Z',
      regarding: { kind: 'HARouter', name: ROUTER_ID, namespace: NAMESPACE },
    });
  });

  it('a lagging cache never causes a second write or a second transition', async () => {
    const t = setup();
    t.stores.harouters.put(
      router({ agents: ['node-a', 'node-b'], endpoint: { serviceName: 'web', ports: [{ port: 80 }] } }),
    );
    t.stores.harouterStates.put(report('node-a', 'Primary', T0));
    await t.reconciler.reconcile(KEY, log);
    const first = t.requests.length;
    // The informers have not delivered any of the writes yet: the caches still show the old objects.
    await t.reconciler.reconcile(KEY, log);
    await t.reconciler.reconcile(KEY, log);
    expect(t.requests.length).toBe(first);
    expect(await metric(t.metrics, 'harouter_active_changes_total')).toEqual([
      expect.objectContaining({ value: 1 }),
    ]);
  });

  it('a status conflict re-reads the router and decides again from the fresh status', async () => {
    const t = setup();
    const stale = router({ agents: ['node-a', 'node-b'] });
    t.stores.harouters.put(stale);
    t.stores.harouterStates.put(report('node-a', 'Primary', T0));
    // Another replica already wrote the decision: the server has it, the cache does not.
    t.server.router = {
      ...stale,
      metadata: { ...stale.metadata, resourceVersion: '150' },
      status: { activeAgent: 'node-a', transitions: 1 },
    };
    t.failures.push(conflictOnVersion('100'));
    await t.reconciler.reconcile(KEY, log);
    const statusPatches = t.requests.filter((r) => r.path.endsWith(`${ROUTER_ID}/status`));
    expect(
      statusPatches.map(
        (r) => (r.body as { metadata: { resourceVersion: string } }).metadata.resourceVersion,
      ),
    ).toEqual(['100', '150']);
    // Decided again on the fresh status: same active agent, so no second transition and no Event.
    expect(statusPatches[1]?.body).toMatchObject({ status: { conditions: expect.any(Array) } });
    expect(statusPatches[1]?.body).not.toHaveProperty('status.transitions');
    expect(t.requests.some((r) => r.path.includes('/events'))).toBe(false);
    expect(await metric(t.metrics, 'harouter_active_changes_total')).toEqual([
      expect.objectContaining({ value: 0 }),
    ]);
  });

  it('a status conflict after the slice was applied observes report-to-route once', async () => {
    const t = setup();
    const stale = router({
      agents: ['node-a', 'node-b'],
      endpoint: { serviceName: 'web', ports: [{ port: 80 }] },
    });
    t.stores.harouters.put(stale);
    t.stores.harouterStates.put(report('node-a', 'Primary', '2026-11-25T12:00:01Z'));
    // The status moved on the server (same decision inputs), so the first status patch conflicts.
    t.server.router = { ...stale, metadata: { ...stale.metadata, resourceVersion: '150' } };
    t.failures.push(conflictOnVersion('100'));
    await t.reconciler.reconcile(KEY, log);
    expect(t.writes().filter((w) => w.endsWith(`${ROUTER_ID}/status`))).toHaveLength(2);
    expect(t.writes().filter((w) => w.includes('endpointslices/'))).toHaveLength(1);
    expect(await metric(t.metrics, 'harouter_active_changes_total')).toEqual([
      expect.objectContaining({ value: 1 }),
    ]);
    expect(await reportToRoute(t.metrics, 'count')).toBe(1);
  });

  it('a malformed report is ignored; it never stops the router from being decided', async () => {
    const t = setup();
    t.stores.harouters.put(router({ agents: ['node-a', 'node-b'] }));
    t.stores.harouterStates.put(report('node-b', 'Primary', T0));
    const bad = report('node-a', 'Primary', T0);
    (bad.spec as { state: string }).state = 'Master';
    t.stores.harouterStates.put(bad);
    await t.reconciler.reconcile(KEY, log);
    const status = t.requests.find((r) => r.path.endsWith(`${ROUTER_ID}/status`));
    expect(status?.body).toMatchObject({ status: { activeAgent: 'node-b' } });
  });

  it('reports of a router that does not exist get Accepted=False UnknownRouter, once', async () => {
    const t = setup();
    t.stores.harouterStates.put(report('node-a', 'Primary', T0));
    await t.reconciler.reconcile(KEY, log);
    expect(t.requests).toHaveLength(1);
    expect(t.requests[0]?.body).toMatchObject({
      status: { conditions: [{ type: 'Accepted', status: 'False', reason: 'UnknownRouter' }] },
    });
    await t.reconciler.reconcile(KEY, log);
    expect(t.requests).toHaveLength(1);
  });

  it('a router being deleted is left alone', async () => {
    const t = setup();
    t.stores.harouters.put(router({ deleting: true }));
    t.stores.harouterStates.put(report('node-a', 'Primary', T0));
    await t.reconciler.reconcile(KEY, log);
    expect(t.requests).toEqual([]);
  });

  it('domain metrics: reports, info, transitions, routers by condition, report-to-route; series removed when the router goes', async () => {
    const t = setup();
    t.stores.harouters.put(
      router({ agents: ['node-a', 'node-b'], endpoint: { serviceName: 'web', ports: [{ port: 80 }] } }),
    );
    t.stores.harouterStates.put(report('node-a', 'Primary', '2026-11-25T12:00:01Z'));
    t.stores.harouterStates.put(report('node-b', 'Backup', '2026-11-25T12:00:00Z'));
    await t.reconciler.reconcile(KEY, log);
    const reports = await metric(t.metrics, 'harouter_reports_total');
    expect(reports).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ labels: { state: 'Primary' }, value: 1 }),
        expect.objectContaining({ labels: { state: 'Backup' }, value: 1 }),
      ]),
    );
    expect(await metric(t.metrics, 'harouter_router_info')).toEqual([
      expect.objectContaining({
        labels: { namespace: NAMESPACE, router: ROUTER_ID, active_agent: 'node-a' },
        value: 1,
      }),
    ]);
    expect(await metric(t.metrics, 'harouter_router_transitions_total')).toEqual([
      expect.objectContaining({ labels: { namespace: NAMESPACE, router: ROUTER_ID }, value: 1 }),
    ]);
    const routers = await metric(t.metrics, 'harouter_routers');
    expect(Object.fromEntries(routers.map((v) => [v.labels.condition, v.value]))).toEqual({
      ready: 1,
      split_brain: 0,
      degraded: 0,
      no_primary: 0,
    });
    expect(await reportToRoute(t.metrics, 'sum')).toBe(2);
    expect(await reportToRoute(t.metrics, 'count')).toBe(1);

    // The same reports seen again are not counted again.
    await t.reconciler.reconcile(KEY, log);
    expect(
      (await metric(t.metrics, 'harouter_reports_total')).find((v) => v.labels.state === 'Primary')?.value,
    ).toBe(1);

    t.stores.harouters.items.clear();
    t.stores.harouterStates.items.clear();
    await t.reconciler.reconcile(KEY, log);
    expect(await metric(t.metrics, 'harouter_router_info')).toEqual([]);
    expect(await metric(t.metrics, 'harouter_router_transitions_total')).toEqual([]);
    expect((await metric(t.metrics, 'harouter_routers')).every((v) => v.value === 0)).toBe(true);
  });

  it('report-to-route is clamped at 0 when the agent clock is ahead', async () => {
    const t = setup();
    t.stores.harouters.put(router({ agents: ['node-a'] }));
    t.stores.harouterStates.put(report('node-a', 'Primary', '2026-11-25T12:01:00Z'));
    await t.reconciler.reconcile(KEY, log);
    expect(await reportToRoute(t.metrics, 'sum')).toBe(0);
    expect(await reportToRoute(t.metrics, 'count')).toBe(1);
  });

  it('an Event that cannot be recorded does not fail the reconcile; an Accepted failure does, after routing', async () => {
    const t = setup();
    t.stores.harouters.put(router({ agents: ['node-a'] }));
    t.stores.harouterStates.put(report('node-a', 'Primary', T0));
    t.failures.push((r) =>
      r.path.includes('/events') || r.path.includes('harouterstates')
        ? new KubeRequestError(500, { code: 500, reason: 'InternalError', message: 'x' })
        : undefined,
    );
    await expect(t.reconciler.reconcile(KEY, log)).rejects.toThrow();
    expect(t.writes()[0]).toBe(`PATCH ${ROUTER_ID}/status`);
  });
});
