import { API_VERSION, HAROUTER_STATE } from '../api/group.ts';
import type { HARouterState, ReportedState } from '../api/index.ts';
import { stateObjectName } from '../api/validation.ts';

/** What one report says: which router, which agent, the state and its details. */
export interface ReportFields {
  router: string;
  agent: string;
  state: ReportedState;
  priority?: number;
  message?: string;
}

/**
 * The HARouterState object for one report, named `<routerId>.<agent>` in
 * `namespace`. Builds only; the caller checks what it did not build itself
 * (`harouterctl report` runs the contract's zod schema over it).
 */
export function reportObject(fields: ReportFields, namespace: string, observedAt: string): HARouterState {
  return {
    apiVersion: API_VERSION,
    kind: HAROUTER_STATE.kind,
    metadata: { name: stateObjectName(fields.router, fields.agent), namespace },
    spec: {
      routerId: fields.router,
      agent: fields.agent,
      state: fields.state,
      observedAt,
      ...(fields.priority !== undefined ? { priority: fields.priority } : {}),
      ...(fields.message !== undefined ? { message: fields.message } : {}),
    },
  } as HARouterState;
}
