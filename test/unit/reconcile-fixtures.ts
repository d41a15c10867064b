/** Builders shared by the decide, plan and reconcile unit tests. */
import type { HARouter, HARouterState, HARouterStatus, ReportedState } from '../../src/api/index.ts';
import type { NodeView } from '../../src/reconcile/decide.ts';

export const ROUTER_ID = '0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9';
export const NAMESPACE = 'tenant';
export const T0 = '2026-11-25T12:00:00Z';

export interface RouterOptions {
  agents?: string[];
  status?: HARouterStatus;
  endpoint?: HARouter['spec']['endpoint'];
  deleting?: boolean;
  generation?: number;
}

export function router(options: RouterOptions = {}): HARouter {
  return {
    apiVersion: 'harouter.dev/v1alpha1',
    kind: 'HARouter',
    metadata: {
      name: ROUTER_ID,
      namespace: NAMESPACE,
      uid: '11111111-2222-3333-4444-555555555555',
      generation: options.generation ?? 1,
      resourceVersion: '100',
      ...(options.deleting ? { deletionTimestamp: T0 } : {}),
    },
    spec: {
      agents: (options.agents ?? ['node-a', 'node-b', 'node-c']).map((name) => ({ name })),
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    },
    ...(options.status ? { status: options.status } : {}),
  };
}

export function report(
  agent: string,
  state: ReportedState,
  observedAt: string,
  extra: { routerId?: string; name?: string; status?: HARouterState['status'] } = {},
): HARouterState {
  const routerId = extra.routerId ?? ROUTER_ID;
  return {
    metadata: { name: extra.name ?? `${routerId}.${agent}`, namespace: NAMESPACE, generation: 1 },
    spec: { routerId, agent, state, observedAt },
    ...(extra.status ? { status: extra.status } : {}),
  };
}

/** Ready nodes with distinct documentation-range addresses. */
export function nodes(
  spec: Record<string, 'Ready' | 'NotReady'> = { 'node-a': 'Ready', 'node-b': 'Ready', 'node-c': 'Ready' },
): Map<string, NodeView> {
  const map = new Map<string, NodeView>();
  let i = 11;
  for (const [name, readiness] of Object.entries(spec)) {
    map.set(name, { ready: readiness === 'Ready', internalIP: `198.51.100.${i++}` });
  }
  return map;
}
