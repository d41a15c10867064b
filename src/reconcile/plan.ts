/**
 * Planning the writes that bring the cluster to a decision (API.md, "Driving the
 * configuration"): the fewest writes that reach the desired state, none when it
 * is already reached. Pure: the caller passes the clock reading.
 */
import {
  API_VERSION,
  type Condition,
  ENDPOINTSLICE_MANAGED_BY,
  HAROUTER,
  type HARouter,
  type HARouterState,
  type HARouterStatus,
  mergeConditions,
} from '../api/index.ts';
import { CONDITION_ACCEPTED, type ReportVerdict, type RouteDecision } from './decide.ts';

/** The contract's EndpointSlice labels and name suffix (`<serviceName>-harouter`). */
export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_MANAGED_BY = 'endpointslice.kubernetes.io/managed-by';
export const SLICE_SUFFIX = '-harouter';

/** The part of an EndpointSlice the operator reads (raw JSON, as a watch delivers it). */
export interface EndpointSliceObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: OwnerReference[];
    deletionTimestamp?: string;
  };
  addressType?: string;
  endpoints?: EndpointObject[] | null;
  ports?: { name?: string | null; port?: number | null; protocol?: string | null }[] | null;
}

/** A `metav1.OwnerReference`, as raw JSON. */
export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

/** One endpoint of an EndpointSlice, as raw JSON. */
export interface EndpointObject {
  addresses: string[];
  conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean };
  nodeName?: string;
}

/** A Kubernetes Event to record about a HARouter (the shell names and timestamps it). */
export interface EventSpec {
  readonly type: 'Normal' | 'Warning';
  readonly reason: 'ActiveAgentChanged' | 'PrimaryLost' | 'SplitBrain';
  readonly action: string;
  readonly note: string;
}

/** One write the reconciler applies; `plan` returns them in the order to apply. */
export type Write =
  | {
      readonly kind: 'routerStatus';
      readonly namespace: string;
      readonly name: string;
      /** Precondition: the status is computed from this version (transitions is a counter). */
      readonly resourceVersion: string | undefined;
      readonly status: HARouterStatus;
      /** JSON merge patch body for the status subresource. */
      readonly patch: Record<string, unknown>;
    }
  | {
      readonly kind: 'applySlice';
      readonly namespace: string;
      readonly name: string;
      readonly slice: EndpointSliceObject;
    }
  | {
      readonly kind: 'deleteSlice';
      readonly namespace: string;
      readonly name: string;
      readonly uid: string | undefined;
    }
  | {
      readonly kind: 'reportStatus';
      readonly namespace: string;
      readonly name: string;
      readonly conditions: Condition[];
      readonly observedGeneration: number | undefined;
    }
  | {
      readonly kind: 'event';
      readonly namespace: string;
      readonly router: { name: string; uid: string | undefined };
      readonly event: EventSpec;
    };

/** What the reconciler observed in its caches for one router. */
export interface Observed {
  readonly router: HARouter;
  /** EndpointSlices in the router's namespace that it owns, plus the one at the desired name if any. */
  readonly slices: readonly EndpointSliceObject[];
  /** The router's reports (for their current `Accepted` condition). */
  readonly reports: readonly HARouterState[];
}

/** Kubernetes' `metav1.Time`: RFC 3339 in whole seconds. */
export function metaTime(now: Date): string {
  return `${now.toISOString().slice(0, 19)}Z`;
}

/** JSON value with object keys sorted and undefined members dropped, for equality checks. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>)
            .filter(([, x]) => x !== undefined)
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}

/** True when two JSON values are equal, ignoring key order and undefined members. */
export function sameJson(a: unknown, b: unknown): boolean {
  return canonical(a) === canonical(b);
}

/** The HARouter status a decision calls for; times move only when what they time changes. */
export function desiredStatus(
  decision: RouteDecision,
  current: HARouterStatus | undefined,
  now: Date,
): HARouterStatus {
  const stamp = metaTime(now);
  const keepSince = !decision.activeChanged && current?.activeSince !== undefined;
  return {
    ...(decision.activeAgent !== undefined
      ? { activeAgent: decision.activeAgent, activeSince: keepSince ? current?.activeSince : stamp }
      : {}),
    agents: decision.agents.map((a) => ({ ...a })),
    liveAgents: decision.liveAgents,
    transitions: decision.transitions,
    ...(decision.activeChanged
      ? { lastTransitionTime: stamp }
      : current?.lastTransitionTime !== undefined
        ? { lastTransitionTime: current.lastTransitionTime }
        : {}),
    ...(decision.generation !== undefined ? { observedGeneration: decision.generation } : {}),
    conditions: mergeConditions(current?.conditions, decision.conditions, stamp, decision.generation),
    ...(decision.vrrp ? { vrrp: { ...decision.vrrp } } : {}),
  };
}

/** A JSON merge patch turning `from` into `to` at the top level (nested values replaced whole). */
export function mergePatch(
  from: Record<string, unknown>,
  to: Record<string, unknown>,
): Record<string, unknown> {
  const patch: Record<string, unknown> = {};
  for (const key of Object.keys(from))
    if (from[key] !== undefined && to[key] === undefined) patch[key] = null;
  for (const [key, value] of Object.entries(to)) {
    if (value !== undefined && !sameJson(from[key], value)) patch[key] = value;
  }
  return patch;
}

/** The name of the EndpointSlice the operator keeps for a Service. */
export function sliceName(serviceName: string): string {
  return `${serviceName}${SLICE_SUFFIX}`;
}

/** The controller ownerReference the operator puts on what it creates for a router. */
export function controllerRef(router: HARouter): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: HAROUTER.kind,
    name: router.metadata.name,
    uid: router.metadata.uid ?? '',
    controller: true,
  };
}

/** The EndpointSlice a decision calls for, or undefined without `spec.endpoint`. */
export function desiredSlice(decision: RouteDecision, router: HARouter): EndpointSliceObject | undefined {
  const endpoint = decision.endpoint;
  if (!endpoint) return undefined;
  const endpoints: EndpointObject[] =
    decision.activeAgent !== undefined && decision.activeAddress !== undefined
      ? [
          {
            addresses: [decision.activeAddress],
            conditions: { ready: true, serving: true, terminating: false },
            nodeName: decision.activeAgent,
          },
        ]
      : [];
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: sliceName(endpoint.serviceName),
      namespace: decision.namespace,
      labels: { [LABEL_SERVICE_NAME]: endpoint.serviceName, [LABEL_MANAGED_BY]: ENDPOINTSLICE_MANAGED_BY },
      ownerReferences: [controllerRef(router)],
    },
    addressType: 'IPv4',
    endpoints,
    ports: endpoint.ports.map((p) => ({ name: p.name ?? '', port: p.port, protocol: p.protocol ?? 'TCP' })),
  };
}

/** The controller owner of an object, if any. */
function controllerOf(slice: EndpointSliceObject): OwnerReference | undefined {
  return slice.metadata.ownerReferences?.find((o) => o.controller === true);
}

/** True when the slice is one the operator manages for this router. */
export function isOwnedSlice(slice: EndpointSliceObject, router: HARouter): boolean {
  const owner = controllerOf(slice);
  return (
    slice.metadata.labels?.[LABEL_MANAGED_BY] === ENDPOINTSLICE_MANAGED_BY &&
    owner !== undefined &&
    owner.kind === HAROUTER.kind &&
    owner.apiVersion.startsWith(`${API_VERSION.split('/')[0]}/`) &&
    owner.name === router.metadata.name &&
    (router.metadata.uid === undefined || owner.uid === router.metadata.uid)
  );
}

/** The facts of a slice the operator sets, normalized (server defaults filled in). */
function sliceFacts(slice: EndpointSliceObject): unknown {
  const owner = controllerOf(slice);
  return {
    serviceName: slice.metadata.labels?.[LABEL_SERVICE_NAME],
    managedBy: slice.metadata.labels?.[LABEL_MANAGED_BY],
    owner: owner ? { kind: owner.kind, name: owner.name, uid: owner.uid } : undefined,
    addressType: slice.addressType,
    endpoints: (slice.endpoints ?? []).map((e) => ({
      addresses: e.addresses,
      nodeName: e.nodeName,
      ready: e.conditions?.ready,
      serving: e.conditions?.serving,
      terminating: e.conditions?.terminating,
    })),
    ports: (slice.ports ?? []).map((p) => ({
      name: p.name ?? '',
      port: p.port,
      protocol: p.protocol ?? 'TCP',
    })),
  };
}

/**
 * True when the slice at the desired name belongs to another controller (another
 * HARouter naming the same Service, or a user's slice): the operator leaves it alone.
 */
export function sliceHeldByOther(existing: EndpointSliceObject | undefined, router: HARouter): boolean {
  if (!existing) return false;
  const owner = controllerOf(existing);
  return owner !== undefined && !(owner.kind === HAROUTER.kind && owner.uid === router.metadata.uid);
}

function conditionChanged(have: Condition | undefined, want: ReportVerdict['accepted']): boolean {
  return !have || have.status !== want.status || have.reason !== want.reason || have.message !== want.message;
}

/** `Accepted` writes for reports whose condition differs from their verdict (only on change). */
export function planReports(
  namespace: string,
  verdicts: readonly ReportVerdict[],
  reports: readonly HARouterState[],
  now: Date,
): Write[] {
  const byName = new Map(reports.map((r) => [r.metadata.name, r]));
  const writes: Write[] = [];
  for (const verdict of verdicts) {
    const report = byName.get(verdict.name);
    if (!report) continue;
    const existing = report.status?.conditions ?? [];
    const have = existing.find((c) => c.type === CONDITION_ACCEPTED);
    if (!conditionChanged(have, verdict.accepted)) continue;
    const merged = mergeConditions(existing, [verdict.accepted], metaTime(now), report.metadata.generation);
    writes.push({
      kind: 'reportStatus',
      namespace,
      name: verdict.name,
      conditions: [...existing.filter((c) => c.type !== CONDITION_ACCEPTED), ...merged],
      observedGeneration: report.metadata.generation,
    });
  }
  return writes;
}

function eventsFor(decision: RouteDecision): EventSpec[] {
  const events: EventSpec[] = [];
  if (decision.splitBrain && !decision.wasSplitBrain) {
    events.push({
      type: 'Warning',
      reason: 'SplitBrain',
      action: 'Decide',
      note: `agents ${decision.primaries.join(', ')} all report Primary; routing to ${decision.activeAgent} only`,
    });
  }
  if (decision.activeChanged) {
    const from = decision.previousActive ?? 'none';
    events.push(
      decision.activeAgent === undefined
        ? {
            type: 'Warning',
            reason: 'PrimaryLost',
            action: 'Withdraw',
            note: `active agent ${from} lost; no live agent reports Primary, traffic withdrawn`,
          }
        : {
            type: 'Normal',
            reason: 'ActiveAgentChanged',
            action: 'Route',
            note: `active agent changed from ${from} to ${decision.activeAgent}`,
          },
    );
  }
  return events;
}

/**
 * The writes that bring the cluster to `decision`, in the order to apply them:
 * routing first (EndpointSlice), then the router's status, then Events (only
 * with a status write, so each change is announced once), then `Accepted`.
 */
export function plan(decision: RouteDecision, observed: Observed, now: Date): Write[] {
  const { router } = observed;
  const namespace = decision.namespace;
  const writes: Write[] = [];

  const want = desiredSlice(decision, router);
  const existing = want ? observed.slices.find((s) => s.metadata.name === want.metadata.name) : undefined;
  if (
    want &&
    !sliceHeldByOther(existing, router) &&
    (!existing || !sameJson(sliceFacts(existing), sliceFacts(want)))
  ) {
    writes.push({ kind: 'applySlice', namespace, name: want.metadata.name, slice: want });
  }
  for (const slice of observed.slices) {
    if (slice.metadata.name === want?.metadata.name || !isOwnedSlice(slice, router)) continue;
    if (slice.metadata.deletionTimestamp !== undefined) continue;
    writes.push({ kind: 'deleteSlice', namespace, name: slice.metadata.name, uid: slice.metadata.uid });
  }

  const current = router.status;
  const status = desiredStatus(decision, current, now);
  if (!current || !sameJson(current, status)) {
    writes.push({
      kind: 'routerStatus',
      namespace,
      name: decision.routerId,
      resourceVersion: router.metadata.resourceVersion,
      status,
      patch: mergePatch((current ?? {}) as Record<string, unknown>, status as Record<string, unknown>),
    });
    for (const event of eventsFor(decision)) {
      writes.push({
        kind: 'event',
        namespace,
        router: { name: decision.routerId, uid: decision.uid },
        event,
      });
    }
  }

  writes.push(...planReports(namespace, decision.reports, observed.reports, now));
  return writes;
}
