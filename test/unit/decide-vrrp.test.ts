import { describe, expect, it } from 'vitest';
import { decide, type RouteDecision } from '../../src/reconcile/decide.ts';
import { nodes, report, router, T0 } from './reconcile-fixtures.ts';

const VRRP = {
  segment: 'default',
  interface: 'eth0',
  virtualIPs: ['192.0.2.10/24'],
  advertIntervalMs: 1000,
  fenceHoldSeconds: 60,
  failbackDelaySeconds: 30,
};

function routeOf(r: ReturnType<typeof router>): RouteDecision {
  const decision = decide({ router: r, reports: [report('node-a', 'Primary', T0)], nodes: nodes() });
  if (decision.kind !== 'route') throw new Error('expected a route decision');
  return decision;
}

describe('status.agents[].priority', () => {
  it('with spec.vrrp is the rendered priority (own, else 200 minus 10 per position)', () => {
    const r = router();
    r.spec.agents = [{ name: 'node-a' }, { name: 'node-b', priority: 120 }, { name: 'node-c' }];
    r.spec.vrrp = VRRP;
    expect(routeOf(r).agents.map((a) => a.priority)).toEqual([200, 120, 180]);
  });

  it('without spec.vrrp is spec.agents[].priority, absent when unset (as before)', () => {
    const r = router();
    r.spec.agents = [{ name: 'node-a' }, { name: 'node-b', priority: 120 }, { name: 'node-c' }];
    expect(routeOf(r).agents.map((a) => a.priority)).toEqual([undefined, 120, undefined]);
  });
});
