import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HARouterState, HARouterStatus, ReportedState } from '../../src/api/index.ts';
import {
  type DecideInput,
  decide,
  decideOrphanReports,
  type RouteDecision,
} from '../../src/reconcile/decide.ts';
import { NAMESPACE, nodes, ROUTER_ID, report, router, T0 } from './reconcile-fixtures.ts';

function route(input: Partial<DecideInput> = {}): RouteDecision {
  const decision = decide({
    router: router(),
    reports: [],
    nodes: nodes(),
    ...input,
  });
  if (decision.kind !== 'route') throw new Error('expected a route decision');
  return decision;
}

function condition(decision: RouteDecision, type: string) {
  const found = decision.conditions.find((c) => c.type === type);
  if (!found) throw new Error(`no ${type} condition`);
  return found;
}

const active = (name: string | undefined, transitions = 1): HARouterStatus => ({
  ...(name ? { activeAgent: name } : {}),
  transitions,
});

describe('decide: the contract rules', () => {
  it('one live Primary is active; Ready, not split, redundant', () => {
    const d = route({
      reports: [
        report('node-a', 'Primary', T0),
        report('node-b', 'Backup', T0),
        report('node-c', 'Backup', T0),
      ],
    });
    expect(d.activeAgent).toBe('node-a');
    expect(d.activeAddress).toBe('198.51.100.11');
    expect(d.liveAgents).toBe(3);
    expect(condition(d, 'Ready')).toMatchObject({ status: 'True', reason: 'ActiveAgentElected' });
    expect(condition(d, 'SplitBrain')).toMatchObject({ status: 'False', reason: 'SinglePrimary' });
    expect(condition(d, 'Degraded')).toMatchObject({ status: 'False', reason: 'Redundant' });
    expect(d.agents.map((a) => a.state)).toEqual(['Primary', 'Backup', 'Backup']);
  });

  it('an agent that never reported is Unknown/NoReport, never Backup, and not live', () => {
    const d = route({ reports: [report('node-a', 'Primary', T0)] });
    expect(d.agents[1]).toEqual({ name: 'node-b', state: 'Unknown', reason: 'NoReport' });
    expect(d.liveAgents).toBe(1);
    expect(condition(d, 'Degraded')).toMatchObject({ status: 'True', reason: 'NoRedundancy' });
  });

  it.each([
    ['missing', 'NodeNotFound', nodes({ 'node-b': 'Ready', 'node-c': 'Ready' })],
    ['NotReady', 'NodeNotReady', nodes({ 'node-a': 'NotReady', 'node-b': 'Ready', 'node-c': 'Ready' })],
  ] as const)(
    'a Node %s makes its agent Unknown/%s and its Primary claim does not count',
    (_, reason, nodeMap) => {
      const d = route({
        router: router({ status: active('node-a') }),
        reports: [report('node-a', 'Primary', T0), report('node-b', 'Backup', T0)],
        nodes: nodeMap,
      });
      expect(d.agents[0]).toEqual({ name: 'node-a', state: 'Unknown', reason, observedAt: T0 });
      expect(d.activeAgent).toBeUndefined();
      expect(d.activeChanged).toBe(true);
      expect(d.transitions).toBe(2);
      expect(condition(d, 'Ready')).toMatchObject({ status: 'False', reason: 'NoPrimary' });
    },
  );

  it('dead primary with a live backup claiming Primary: traffic moves to the backup at once', () => {
    const d = route({
      router: router({ status: active('node-a') }),
      reports: [report('node-a', 'Primary', T0), report('node-b', 'Primary', '2026-11-25T12:00:01Z')],
      nodes: nodes({ 'node-a': 'NotReady', 'node-b': 'Ready', 'node-c': 'Ready' }),
    });
    expect(d.activeAgent).toBe('node-b');
    expect(d.splitBrain).toBe(false);
  });

  it('no live Primary: no active agent, Ready=False NoPrimary', () => {
    const d = route({ reports: [report('node-a', 'Backup', T0), report('node-b', 'Fault', T0)] });
    expect(d.activeAgent).toBeUndefined();
    expect(d.activeChanged).toBe(false);
    expect(d.transitions).toBe(0);
    expect(condition(d, 'Ready')).toMatchObject({ status: 'False', reason: 'NoPrimary' });
    expect(condition(d, 'SplitBrain')).toMatchObject({ status: 'False', reason: 'NoPrimary' });
    expect(d.agents.map((a) => a.state)).toEqual(['Backup', 'Fault', 'Unknown']);
  });

  it('Fault and Stopped are not live', () => {
    const d = route({
      reports: [
        report('node-a', 'Primary', T0),
        report('node-b', 'Fault', T0),
        report('node-c', 'Stopped', T0),
      ],
    });
    expect(d.liveAgents).toBe(1);
    expect(d.degraded).toBe(true);
  });

  describe('split brain', () => {
    const claims = [
      report('node-a', 'Primary', '2026-11-25T12:00:00.000000001Z'),
      report('node-b', 'Primary', '2026-11-25T12:00:00.000000002Z'),
      report('node-c', 'Primary', '2026-11-25T12:00:00.000000002Z'),
    ];

    it('the current active agent stays when it is among the claims (sticky)', () => {
      const d = route({ router: router({ status: active('node-a') }), reports: claims });
      expect(d.activeAgent).toBe('node-a');
      expect(d.activeChanged).toBe(false);
      expect(d.splitBrain).toBe(true);
      expect(d.primaries).toEqual(['node-a', 'node-b', 'node-c']);
      expect(condition(d, 'SplitBrain')).toMatchObject({ status: 'True', reason: 'MultiplePrimaries' });
      expect(condition(d, 'Ready').status).toBe('True');
    });

    it('otherwise the newest observedAt wins at nanosecond precision, then the lowest name', () => {
      const d = route({ reports: claims });
      // b and c tie at ...002 (Date would see all three as equal milliseconds); b wins by name.
      expect(d.activeAgent).toBe('node-b');
    });

    it('compares observedAt across offsets at full precision', () => {
      const d = route({
        reports: [
          report('node-a', 'Primary', '2026-11-25T13:00:00.5+01:00'), // 12:00:00.5Z
          report('node-b', 'Primary', '2026-11-25T12:00:00.499999999Z'),
        ],
      });
      expect(d.activeAgent).toBe('node-a');
    });

    it('a current active agent that no longer claims Primary is not kept', () => {
      const d = route({
        router: router({ status: active('node-c') }),
        reports: [...claims.slice(0, 2), report('node-c', 'Backup', T0)],
      });
      expect(d.activeAgent).toBe('node-b');
      expect(d.wasSplitBrain).toBe(false);
    });
  });

  it('only members count: a Primary from a non-member is ignored and marked NotAMember', () => {
    const d = route({
      reports: [report('node-a', 'Backup', T0), report('node-x', 'Primary', T0)],
      nodes: nodes({ 'node-a': 'Ready', 'node-b': 'Ready', 'node-c': 'Ready', 'node-x': 'Ready' }),
    });
    expect(d.activeAgent).toBeUndefined();
    expect(d.agents.map((a) => a.name)).toEqual(['node-a', 'node-b', 'node-c']);
    expect(d.reports).toEqual([
      {
        name: `${ROUTER_ID}.node-a`,
        accepted: expect.objectContaining({ status: 'True', reason: 'Member' }),
      },
      {
        name: `${ROUTER_ID}.node-x`,
        accepted: expect.objectContaining({ status: 'False', reason: 'NotAMember' }),
      },
    ]);
  });

  it('a report named other than <routerId>.<agent> never counts', () => {
    const d = route({ reports: [report('node-a', 'Primary', T0, { name: `${ROUTER_ID}.node-b` })] });
    expect(d.activeAgent).toBeUndefined();
    expect(d.agents[0]?.reason).toBe('NoReport');
  });

  it('reports for another router are not this router’s business', () => {
    const other = '99999999-2222-4333-8444-555555555555';
    const d = route({ reports: [report('node-a', 'Primary', T0, { routerId: other })] });
    expect(d.activeAgent).toBeUndefined();
    expect(d.reports).toEqual([]);
  });

  it('transitions count every change of activeAgent, to and from none: none -> a -> none -> b is 3', () => {
    let status: HARouterStatus | undefined;
    const steps: [ReportedState, ReportedState][] = [
      ['Primary', 'Backup'],
      ['Backup', 'Backup'],
      ['Backup', 'Primary'],
    ];
    let t = 0;
    for (const [a, b] of steps) {
      t++;
      const at = `2026-11-25T12:00:0${t}Z`;
      const d = route({
        router: router({ status }),
        reports: [report('node-a', a, at), report('node-b', b, at)],
      });
      status = { ...(d.activeAgent ? { activeAgent: d.activeAgent } : {}), transitions: d.transitions };
    }
    expect(status).toEqual({ activeAgent: 'node-b', transitions: 3 });
  });

  it.each(['ServiceNotFound', 'ServiceHasSelector', 'ServiceNotOptedIn'] as const)(
    'Ready=False %s, still decided, and no endpoint to route when the Service is refused',
    (reason) => {
      const d = route({
        router: router({ endpoint: { serviceName: 'web', ports: [{ port: 80 }] } }),
        reports: [report('node-a', 'Primary', T0)],
        serviceRefusal: { reason, message: 'refused' },
        sliceHeldByOther: true,
      });
      expect(d.activeAgent).toBe('node-a');
      expect(d.endpoint).toBeUndefined();
      expect(condition(d, 'Ready')).toMatchObject({ status: 'False', reason, message: 'refused' });
    },
  );

  it('Ready=False EndpointSliceConflict when another controller owns the slice at the desired name', () => {
    const d = route({
      router: router({ endpoint: { serviceName: 'web', ports: [{ port: 80 }] } }),
      reports: [report('node-a', 'Primary', T0)],
      sliceHeldByOther: true,
    });
    expect(d.activeAgent).toBe('node-a');
    expect(condition(d, 'Ready')).toMatchObject({ status: 'False', reason: 'EndpointSliceConflict' });
  });

  it('a missing Service is irrelevant without spec.endpoint', () => {
    const d = route({
      reports: [report('node-a', 'Primary', T0)],
      serviceRefusal: { reason: 'ServiceNotFound', message: 'missing' },
    });
    expect(condition(d, 'Ready').status).toBe('True');
  });

  it('Ready=False NodeAddressNotFound when the active Node has no IPv4 InternalIP and an endpoint is set', () => {
    const d = route({
      router: router({ endpoint: { serviceName: 'web', ports: [{ port: 80 }] } }),
      reports: [report('node-a', 'Primary', T0)],
      nodes: new Map([['node-a', { ready: true }]]),
    });
    expect(condition(d, 'Ready')).toMatchObject({ status: 'False', reason: 'NodeAddressNotFound' });
  });

  it('a router being deleted is skipped: nothing is decided, nothing resurrected', () => {
    expect(
      decide({
        router: router({ deleting: true }),
        reports: [report('node-a', 'Primary', T0)],
        nodes: nodes(),
      }),
    ).toEqual({ kind: 'skip', reason: 'Deleting' });
  });

  it('reports of a router that does not exist are Accepted=False UnknownRouter', () => {
    const verdicts = decideOrphanReports([report('node-a', 'Primary', T0)]);
    expect(verdicts).toEqual([
      {
        name: `${ROUTER_ID}.node-a`,
        accepted: expect.objectContaining({ status: 'False', reason: 'UnknownRouter' }),
      },
    ]);
  });

  it('status agents carry the spec priority and the report time', () => {
    const r = router();
    r.spec.agents = [{ name: 'node-a', priority: 200 }];
    const d = route({ router: r, reports: [report('node-a', 'Primary', T0)] });
    expect(d.agents).toEqual([{ name: 'node-a', state: 'Primary', observedAt: T0, priority: 200 }]);
    expect(d.newestObservedAt).toBe(T0);
  });
});

describe("decide: Neutron's lessons", () => {
  it('bug 1402010: out-of-order notifications are ordered by observedAt, not by arrival', () => {
    // The API server keeps only the newest report per agent (stale updates are refused), so what
    // reaches decide is the latest state of each agent whatever order the notify scripts ran in.
    const late = report('node-a', 'Backup', '2026-11-25T12:00:00.000000002Z');
    const d = route({ reports: [late, report('node-b', 'Primary', '2026-11-25T12:00:00.000000001Z')] });
    expect(d.activeAgent).toBe('node-b');
  });

  it('several agents active at once: decided deterministically and flagged SplitBrain', () => {
    const reports = [report('node-c', 'Primary', T0), report('node-a', 'Primary', T0)];
    const d1 = route({ reports });
    const d2 = route({ reports: [...reports].reverse() });
    expect(d1.activeAgent).toBe('node-a');
    expect(d2).toEqual(d1);
    expect(d1.splitBrain).toBe(true);
  });

  it('a dead agent never stays active: node readiness is an input of every decision', () => {
    const d = route({
      router: router({ status: active('node-a') }),
      reports: [report('node-a', 'Primary', T0)],
      nodes: nodes({ 'node-a': 'NotReady' }),
    });
    expect(d.activeAgent).toBeUndefined();
  });

  it('a host the router is not scheduled on cannot claim it', () => {
    const d = route({
      router: router({ agents: ['node-a'] }),
      reports: [report('node-b', 'Primary', '2026-11-25T12:00:09Z'), report('node-a', 'Backup', T0)],
    });
    expect(d.activeAgent).toBeUndefined();
  });
});

describe('decide: properties', () => {
  const agentNames = ['node-a', 'node-b', 'node-c', 'node-d'];
  const arbReport = fc.record({
    agent: fc.constantFrom(...agentNames),
    // Weighted towards Primary and Ready nodes so that split brains are frequent.
    state: fc.constantFrom<ReportedState>('Primary', 'Primary', 'Primary', 'Backup', 'Fault', 'Stopped'),
    nanos: fc.bigInt({ min: 0n, max: 5n }),
  });
  const arbInput = fc.record({
    reports: fc.uniqueArray(arbReport, { selector: (r) => r.agent, maxLength: 4 }),
    readiness: fc.array(fc.constantFrom('Ready', 'Ready', 'Ready', 'NotReady', 'Missing'), {
      minLength: 4,
      maxLength: 4,
    }),
    current: fc.option(fc.constantFrom(...agentNames), { nil: undefined }),
  });

  type Input = typeof arbInput extends fc.Arbitrary<infer T> ? T : never;

  function build(input: Input) {
    const reports: HARouterState[] = input.reports.map((r) =>
      report(r.agent, r.state, `2026-11-25T12:00:00.00000000${r.nanos}Z`),
    );
    const map = nodes({});
    input.readiness.forEach((readiness, i) => {
      const name = agentNames[i] as string;
      if (readiness !== 'Missing')
        map.set(name, { ready: readiness === 'Ready', internalIP: `198.51.100.${i + 1}` });
    });
    return {
      router: router({ status: input.current ? active(input.current) : undefined }),
      reports,
      nodes: map,
      serviceExists: true,
    };
  }

  it('the order of reports never matters', () => {
    fc.assert(
      fc.property(arbInput, fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), (input, keys) => {
        const base = build(input);
        const order = base.reports.map((r, i) => ({ r, k: keys[i] ?? 0 })).sort((x, y) => x.k - y.k);
        const shuffled = { ...base, reports: order.map((x) => x.r) };
        expect(decide(shuffled)).toEqual(decide(base));
      }),
    );
  });

  it('the chosen agent is always a live member on a Ready node claiming Primary, or none', () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const base = build(input);
        const d = decide(base);
        if (d.kind !== 'route') throw new Error('unexpected skip');
        const claimers = input.reports
          .filter((r) => r.state === 'Primary')
          .filter((r) => ['node-a', 'node-b', 'node-c'].includes(r.agent))
          .filter((r) => base.nodes.get(r.agent)?.ready === true)
          .map((r) => r.agent);
        if (claimers.length === 0) expect(d.activeAgent).toBeUndefined();
        else expect(claimers).toContain(d.activeAgent);
        if (input.current && claimers.includes(input.current)) expect(d.activeAgent).toBe(input.current);
        expect(d.splitBrain).toBe(claimers.length > 1);
      }),
      { numRuns: 300 },
    );
  });

  it('deciding again on its own result changes nothing (no transition without a change)', () => {
    fc.assert(
      fc.property(arbInput, (input) => {
        const base = build(input);
        const first = decide(base);
        if (first.kind !== 'route') throw new Error('unexpected skip');
        const again = decide({
          ...base,
          router: router({
            status: {
              ...(first.activeAgent ? { activeAgent: first.activeAgent } : {}),
              transitions: first.transitions,
            },
          }),
        });
        if (again.kind !== 'route') throw new Error('unexpected skip');
        expect(again.activeAgent).toBe(first.activeAgent);
        expect(again.activeChanged).toBe(false);
        expect(again.transitions).toBe(first.transitions);
      }),
    );
  });
});

describe('decide: namespace', () => {
  it('carries the router namespace for the writes', () => {
    expect(route().namespace).toBe(NAMESPACE);
  });
});
