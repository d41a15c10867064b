import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HARouter, HARouterState, ReportedState } from '../../src/api/index.ts';
import { decide, decideOrphanReports, type RouteDecision } from '../../src/reconcile/decide.ts';
import {
  type EndpointSliceObject,
  mergePatch,
  type Observed,
  plan,
  planReports,
  type Write,
} from '../../src/reconcile/plan.ts';
import { NAMESPACE, nodes, ROUTER_ID, report, router, T0 } from './reconcile-fixtures.ts';

const NOW = new Date('2026-11-25T12:30:00.123Z');
const LATER = new Date('2026-11-25T13:45:00.456Z');
const ENDPOINT = {
  serviceName: 'web',
  ports: [
    { name: 'http', port: 80 },
    { port: 443, protocol: 'TCP' as const },
  ],
};

function decideFor(r: HARouter, reports: readonly HARouterState[], nodeMap = nodes()): RouteDecision {
  const d = decide({ router: r, reports, nodes: nodeMap });
  if (d.kind !== 'route') throw new Error('expected route');
  return d;
}

/** Applies a plan's writes to the observed objects, as the API server would. */
function apply(observed: Observed, writes: Write[]): Observed {
  let { router: r, slices, reports } = observed;
  for (const w of writes) {
    if (w.kind === 'routerStatus') r = { ...r, status: structuredClone(w.status) };
    if (w.kind === 'applySlice')
      slices = [...slices.filter((s) => s.metadata.name !== w.name), structuredClone(w.slice)];
    if (w.kind === 'deleteSlice') slices = slices.filter((s) => s.metadata.name !== w.name);
    if (w.kind === 'reportStatus') {
      reports = reports.map((x) =>
        x.metadata.name === w.name
          ? { ...x, status: { conditions: w.conditions, observedGeneration: w.observedGeneration } }
          : x,
      );
    }
  }
  return { router: r, slices, reports };
}

function converge(r: HARouter, reports: HARouterState[], nodeMap = nodes(), now = NOW) {
  const observed: Observed = { router: r, slices: [], reports };
  const writes = plan(decideFor(r, reports, nodeMap), observed, now);
  return { writes, observed: apply(observed, writes) };
}

const kinds = (writes: Write[]) => writes.map((w) => w.kind);

describe('plan: the fewest writes', () => {
  it('first decision: slice, status, one Event, one Accepted per report', () => {
    const { writes } = converge(router({ endpoint: ENDPOINT }), [
      report('node-a', 'Primary', T0),
      report('node-b', 'Backup', T0),
    ]);
    expect(kinds(writes)).toEqual(['applySlice', 'routerStatus', 'event', 'reportStatus', 'reportStatus']);
    const status = writes.find((w) => w.kind === 'routerStatus');
    expect(status?.kind === 'routerStatus' && status.status).toMatchObject({
      activeAgent: 'node-a',
      activeSince: '2026-11-25T12:30:00Z',
      lastTransitionTime: '2026-11-25T12:30:00Z',
      transitions: 1,
      liveAgents: 2,
      observedGeneration: 1,
    });
    expect(status?.kind === 'routerStatus' && status.resourceVersion).toBe('100');
    const event = writes.find((w) => w.kind === 'event');
    expect(event?.kind === 'event' && event.event).toMatchObject({
      type: 'Normal',
      reason: 'ActiveAgentChanged',
    });
  });

  it('the EndpointSlice: owned, labelled, IPv4, the active Node InternalIP with the ports', () => {
    const { writes } = converge(router({ endpoint: ENDPOINT }), [report('node-b', 'Primary', T0)]);
    const w = writes.find((x) => x.kind === 'applySlice');
    if (w?.kind !== 'applySlice') throw new Error('no slice write');
    expect(w.name).toBe('web-harouter');
    expect(w.slice).toEqual({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        name: 'web-harouter',
        namespace: NAMESPACE,
        labels: {
          'kubernetes.io/service-name': 'web',
          'endpointslice.kubernetes.io/managed-by': 'harouter.dev',
        },
        ownerReferences: [
          {
            apiVersion: 'harouter.dev/v1alpha1',
            kind: 'HARouter',
            name: ROUTER_ID,
            uid: '11111111-2222-3333-4444-555555555555',
            controller: true,
          },
        ],
      },
      addressType: 'IPv4',
      endpoints: [
        {
          addresses: ['198.51.100.12'],
          conditions: { ready: true, serving: true, terminating: false },
          nodeName: 'node-b',
        },
      ],
      ports: [
        { name: 'http', port: 80, protocol: 'TCP' },
        { name: '', port: 443, protocol: 'TCP' },
      ],
    });
  });

  it('planning an already converged state yields no writes, even later (no timestamp churn)', () => {
    const reports = [report('node-a', 'Primary', T0), report('node-b', 'Backup', T0)];
    const { observed } = converge(router({ endpoint: ENDPOINT }), reports);
    const again = plan(decideFor(observed.router, observed.reports), observed, LATER);
    expect(again).toEqual([]);
  });

  it('a failover rewrites slice and status once and records one Event; Accepted is not rewritten', () => {
    const { observed } = converge(router({ endpoint: ENDPOINT }), [
      report('node-a', 'Primary', T0),
      report('node-b', 'Backup', T0),
    ]);
    const reports = [
      report('node-a', 'Backup', '2026-11-25T12:00:05Z'),
      report('node-b', 'Primary', '2026-11-25T12:00:05Z'),
    ];
    const current = {
      ...observed,
      reports: reports.map((r, i) => ({ ...r, status: observed.reports[i]?.status })),
    };
    const writes = plan(decideFor(current.router, current.reports), current, LATER);
    expect(kinds(writes)).toEqual(['applySlice', 'routerStatus', 'event']);
    const status = writes[1];
    expect(status?.kind === 'routerStatus' && status.patch).toMatchObject({
      activeAgent: 'node-b',
      activeSince: '2026-11-25T13:45:00Z',
      transitions: 2,
    });
    expect(status?.kind === 'routerStatus' && status.patch).not.toHaveProperty('liveAgents');
  });

  it('no primary: the slice keeps existing with no endpoints, a PrimaryLost Warning, activeAgent removed by the patch', () => {
    const { observed } = converge(router({ endpoint: ENDPOINT }), [report('node-a', 'Primary', T0)]);
    const reports = [
      { ...report('node-a', 'Fault', '2026-11-25T12:00:05Z'), status: observed.reports[0]?.status },
    ];
    const writes = plan(decideFor(observed.router, reports), { ...observed, reports }, LATER);
    expect(kinds(writes)).toEqual(['applySlice', 'routerStatus', 'event']);
    const [slice, status, event] = writes;
    expect(slice?.kind === 'applySlice' && slice.slice.endpoints).toEqual([]);
    expect(status?.kind === 'routerStatus' && status.patch).toMatchObject({
      activeAgent: null,
      activeSince: null,
    });
    expect(status?.kind === 'routerStatus' && status.status.activeAgent).toBeUndefined();
    expect(event?.kind === 'event' && event.event).toMatchObject({ type: 'Warning', reason: 'PrimaryLost' });
  });

  it('split brain: one endpoint only, one SplitBrain Warning, and nothing more while it lasts', () => {
    const { observed } = converge(router({ endpoint: ENDPOINT }), [report('node-a', 'Primary', T0)]);
    const reports = [
      { ...report('node-a', 'Primary', T0), status: observed.reports[0]?.status },
      report('node-b', 'Primary', '2026-11-25T12:00:09Z'),
    ];
    const writes = plan(decideFor(observed.router, reports), { ...observed, reports }, LATER);
    expect(kinds(writes)).toEqual(['routerStatus', 'event', 'reportStatus']);
    expect(writes[1]?.kind === 'event' && writes[1].event.reason).toBe('SplitBrain');
    const after = apply({ ...observed, reports }, writes);
    expect(after.slices[0]?.endpoints).toHaveLength(1);
    expect(after.slices[0]?.endpoints?.[0]?.nodeName).toBe('node-a');
    expect(plan(decideFor(after.router, after.reports), after, LATER)).toEqual([]);
  });

  it('spec.endpoint removed: the owned slice is deleted, not left to garbage collection', () => {
    const { observed } = converge(router({ endpoint: ENDPOINT }), [report('node-a', 'Primary', T0)]);
    const r = { ...observed.router, spec: { agents: observed.router.spec.agents } };
    const writes = plan(decideFor(r, observed.reports), { ...observed, router: r }, LATER);
    expect(writes).toEqual([
      { kind: 'deleteSlice', namespace: NAMESPACE, name: 'web-harouter', uid: undefined },
    ]);
  });

  it('the Service refused (opt-in removed, selector added): the owned slice is deleted, status says why', () => {
    const { observed } = converge(router({ endpoint: ENDPOINT }), [report('node-a', 'Primary', T0)]);
    const d = decide({
      router: observed.router,
      reports: observed.reports,
      nodes: nodes(),
      serviceRefusal: { reason: 'ServiceNotOptedIn', message: 'not opted in' },
    });
    if (d.kind !== 'route') throw new Error('expected route');
    const writes = plan(d, observed, LATER);
    expect(writes.map((w) => w.kind)).toEqual(['deleteSlice', 'routerStatus']);
    const status = writes.find((w) => w.kind === 'routerStatus');
    expect(status?.kind === 'routerStatus' && status.status.conditions?.[0]).toMatchObject({
      type: 'Ready',
      status: 'False',
      reason: 'ServiceNotOptedIn',
    });
  });

  it('service renamed: the new slice is applied and the old one deleted', () => {
    const { observed } = converge(router({ endpoint: ENDPOINT }), [report('node-a', 'Primary', T0)]);
    const r = {
      ...observed.router,
      spec: { ...observed.router.spec, endpoint: { ...ENDPOINT, serviceName: 'api' } },
    };
    const writes = plan(decideFor(r, observed.reports), { ...observed, router: r }, LATER);
    expect(writes.map((w) => [w.kind, 'name' in w ? w.name : ''])).toEqual([
      ['applySlice', 'api-harouter'],
      ['deleteSlice', 'web-harouter'],
    ]);
  });

  it('never deletes a slice another controller owns, nor takes over one at the desired name', () => {
    const foreign: EndpointSliceObject = {
      metadata: {
        name: 'web-harouter',
        labels: { 'endpointslice.kubernetes.io/managed-by': 'harouter.dev' },
        ownerReferences: [
          {
            apiVersion: 'harouter.dev/v1alpha1',
            kind: 'HARouter',
            name: 'other',
            uid: 'u2',
            controller: true,
          },
        ],
      },
      addressType: 'IPv4',
      endpoints: [],
    };
    const r = router({ endpoint: ENDPOINT });
    const reports = [report('node-a', 'Primary', T0)];
    const writes = plan(decideFor(r, reports), { router: r, slices: [foreign], reports }, NOW);
    expect(kinds(writes)).not.toContain('applySlice');
    const r2 = router();
    expect(
      kinds(plan(decideFor(r2, reports), { router: r2, slices: [foreign], reports }, NOW)),
    ).not.toContain('deleteSlice');
  });

  it('server defaults on a slice (protocol, null endpoints) do not cause a rewrite', () => {
    const r = router({ endpoint: { serviceName: 'web', ports: [{ port: 80 }] } });
    const { observed } = converge(r, []);
    const slice = observed.slices[0];
    if (!slice) throw new Error('no slice');
    const fromServer: EndpointSliceObject = {
      ...slice,
      metadata: {
        ...slice.metadata,
        uid: 'x',
        resourceVersion: '5',
        labels: { ...slice.metadata.labels, extra: 'y' },
      },
      endpoints: null,
      ports: [{ name: '', port: 80, protocol: 'TCP' }],
    };
    const again = plan(decideFor(observed.router, []), { ...observed, slices: [fromServer] }, LATER);
    expect(again).toEqual([]);
  });

  it('Accepted is written only when it changes, not once per report', () => {
    const accepted = {
      conditions: [
        {
          type: 'Accepted',
          status: 'True' as const,
          reason: 'Member',
          message: `agent node-a is a member of HARouter ${ROUTER_ID}`,
          lastTransitionTime: T0,
        },
      ],
    };
    const r = report('node-a', 'Backup', '2026-11-25T12:00:07Z', { status: accepted });
    expect(planReports(NAMESPACE, decideFor(router(), [r]).reports, [r], NOW)).toEqual([]);
    const moved = planReports(NAMESPACE, decideFor(router({ agents: ['node-b'] }), [r]).reports, [r], NOW);
    expect(moved).toEqual([
      {
        kind: 'reportStatus',
        namespace: NAMESPACE,
        name: `${ROUTER_ID}.node-a`,
        observedGeneration: 1,
        conditions: [
          expect.objectContaining({
            status: 'False',
            reason: 'NotAMember',
            lastTransitionTime: '2026-11-25T12:30:00Z',
          }),
        ],
      },
    ]);
  });

  it('a report for a router that does not exist is marked UnknownRouter once', () => {
    const r = report('node-a', 'Primary', T0);
    const writes = planReports(NAMESPACE, decideOrphanReports([r]), [r], NOW);
    expect(writes).toHaveLength(1);
    const after =
      writes[0]?.kind === 'reportStatus' ? { ...r, status: { conditions: writes[0].conditions } } : r;
    expect(planReports(NAMESPACE, decideOrphanReports([after]), [after], LATER)).toEqual([]);
  });

  it('mergePatch sets changed keys, nulls removed ones and leaves equal ones out', () => {
    expect(mergePatch({ a: 1, b: [1], c: 'x' }, { a: 1, b: [2], d: true })).toEqual({
      b: [2],
      c: null,
      d: true,
    });
  });
});

describe('plan: properties', () => {
  const states: ReportedState[] = ['Primary', 'Backup', 'Fault', 'Stopped'];
  const arbStep = fc.record({
    a: fc.constantFrom(...states),
    b: fc.constantFrom(...states),
    c: fc.constantFrom(...states),
    readyA: fc.boolean(),
    endpoint: fc.boolean(),
  });

  it('after applying a plan, planning again yields no writes; transitions count every active change', () => {
    fc.assert(
      fc.property(fc.array(arbStep, { minLength: 1, maxLength: 6 }), (steps) => {
        let observed: Observed = { router: router(), slices: [], reports: [] };
        let changes = 0;
        let previous: string | undefined;
        steps.forEach((step, i) => {
          const at = `2026-11-25T12:00:0${i}Z`;
          const byName = new Map(observed.reports.map((r) => [r.metadata.name, r]));
          const reports = (['a', 'b', 'c'] as const).map((x) => {
            const fresh = report(`node-${x}`, step[x], at);
            return { ...fresh, status: byName.get(fresh.metadata.name)?.status };
          });
          const spec = {
            ...observed.router.spec,
            ...(step.endpoint ? { endpoint: ENDPOINT } : { endpoint: undefined }),
          };
          const r = { ...observed.router, spec };
          const nodeMap = nodes({
            'node-a': step.readyA ? 'Ready' : 'NotReady',
            'node-b': 'Ready',
            'node-c': 'Ready',
          });
          const now = new Date(NOW.getTime() + i * 1000);
          const d = decideFor(r, reports, nodeMap);
          if (d.activeAgent !== previous) changes++;
          previous = d.activeAgent;
          const writes = plan(d, { ...observed, router: r, reports }, now);
          expect(writes.filter((w) => w.kind === 'event' && w.event.reason !== 'SplitBrain')).toHaveLength(
            d.activeChanged ? 1 : 0,
          );
          observed = apply({ ...observed, router: r, reports }, writes);
          expect(plan(decideFor(observed.router, observed.reports, nodeMap), observed, LATER)).toEqual([]);
          const slices = observed.slices;
          expect(slices.length).toBe(step.endpoint ? 1 : 0);
          for (const s of slices) expect((s.endpoints ?? []).length).toBeLessThanOrEqual(1);
        });
        expect(observed.router.status?.transitions ?? 0).toBe(changes);
      }),
    );
  });
});
