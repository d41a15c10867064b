/**
 * Deciding a HARouter's active agent (API.md, "Deciding the active agent").
 *
 * Pure: no I/O and no clock. The same inputs always give the same decision,
 * whatever the order of the reports, so the reconcile loop is level-based.
 */
import {
  type AgentStatus,
  type ConditionFacts,
  compareObservedAt,
  effectivePriority,
  type HARouter,
  type HARouterEndpoint,
  type HARouterState,
  stateObjectName,
} from '../api/index.ts';
import type { ServiceRefusal } from './service-opt-in.ts';
import { type VRIDOutcome, vridRefusal } from './vrid.ts';

/** What the operator knows of an agent's Node. */
export interface NodeView {
  /** The Node's `Ready` condition is `True`. */
  readonly ready: boolean;
  /** The Node's first IPv4 `InternalIP`, when it has one. */
  readonly internalIP?: string | undefined;
}

/** Everything `decide` needs, read from the caches by the reconciler. */
export interface DecideInput {
  /** The HARouter, spec and current status (the status gives the sticky active agent and transitions). */
  readonly router: HARouter;
  /** Reports in the router's namespace whose `spec.routerId` is the router's name. */
  readonly reports: readonly HARouterState[];
  /** Nodes by name (only the router's agents are looked up). */
  readonly nodes: ReadonlyMap<string, NodeView>;
  /**
   * Why the Service named by `spec.endpoint` may not be driven (missing, has a selector,
   * not opted in: see `service-opt-in.ts`); undefined when it may, or without an endpoint.
   */
  readonly serviceRefusal?: ServiceRefusal | undefined;
  /**
   * The EndpointSlice `<serviceName>-harouter` exists and another controller owns it (another
   * HARouter naming the same Service, say): the operator will not take it over.
   */
  readonly sliceHeldByOther?: boolean;
  /** The router's VRID (`vrid-allocator.ts`), for a router with `spec.vrrp`; undefined without. */
  readonly vrid?: VRIDOutcome | undefined;
}

/** The verdict on one report: its desired `Accepted` condition. */
export interface ReportVerdict {
  readonly name: string;
  readonly accepted: ConditionFacts;
}

/** A router that is being deleted: nothing is written, nothing is resurrected. */
export interface SkipDecision {
  readonly kind: 'skip';
  readonly reason: 'Deleting';
}

/** A router's decided state: active agent, agents' states, conditions and report verdicts. */
export interface RouteDecision {
  readonly kind: 'route';
  readonly namespace: string;
  readonly routerId: string;
  readonly uid: string | undefined;
  readonly generation: number | undefined;
  /** `status.activeAgent` before this decision. */
  readonly previousActive: string | undefined;
  readonly activeAgent: string | undefined;
  readonly activeChanged: boolean;
  /** The active agent's Node InternalIP (undefined when none or when the Node has none). */
  readonly activeAddress: string | undefined;
  /** The newest observedAt among the counted reports (for `harouter_report_to_route_seconds`). */
  readonly newestObservedAt: string | undefined;
  readonly agents: readonly AgentStatus[];
  readonly liveAgents: number;
  readonly transitions: number;
  /** Live members claiming `Primary`, sorted by name. */
  readonly primaries: readonly string[];
  readonly splitBrain: boolean;
  /** SplitBrain was already True in the current status. */
  readonly wasSplitBrain: boolean;
  readonly degraded: boolean;
  readonly conditions: readonly ConditionFacts[];
  /** The endpoint to route: `spec.endpoint` when its Service may be driven, else undefined (no slice). */
  readonly endpoint: HARouterEndpoint | undefined;
  readonly reports: readonly ReportVerdict[];
  /** `status.vrrp`: the router's recorded VRID; undefined without one (not rendered). */
  readonly vrrp: { readonly vrid: number; readonly segment: string } | undefined;
}

/** What `decide` returns: a router to drive, or one to leave alone. */
export type Decision = SkipDecision | RouteDecision;

/** Condition types of the contract: `Ready`, `SplitBrain`, `Degraded` on HARouter, `Accepted` on HARouterState. */
export const CONDITION_READY = 'Ready';
export const CONDITION_SPLIT_BRAIN = 'SplitBrain';
export const CONDITION_DEGRADED = 'Degraded';
export const CONDITION_ACCEPTED = 'Accepted';

/** Condition reasons written by the operator (documented in docs/decisions.md). */
export const REASONS = {
  active: 'ActiveAgentElected',
  noPrimary: 'NoPrimary',
  serviceNotFound: 'ServiceNotFound',
  serviceHasSelector: 'ServiceHasSelector',
  serviceNotOptedIn: 'ServiceNotOptedIn',
  noNodeAddress: 'NodeAddressNotFound',
  sliceConflict: 'EndpointSliceConflict',
  multiplePrimaries: 'MultiplePrimaries',
  singlePrimary: 'SinglePrimary',
  noRedundancy: 'NoRedundancy',
  redundant: 'Redundant',
  member: 'Member',
  notAMember: 'NotAMember',
  unknownRouter: 'UnknownRouter',
} as const;

/** True when the object carries a deletionTimestamp. */
export function isDeleting(obj: { metadata: { deletionTimestamp?: string | undefined } }): boolean {
  return obj.metadata.deletionTimestamp !== undefined;
}

/**
 * The report that counts for each agent: the one named `<routerId>.<agent>` (the
 * API server allows no other name; anything else is ignored), not being deleted.
 */
function countedReports(routerId: string, reports: readonly HARouterState[]): Map<string, HARouterState> {
  const byAgent = new Map<string, HARouterState>();
  for (const report of reports) {
    if (report.spec.routerId !== routerId || isDeleting(report)) continue;
    if (report.metadata.name !== stateObjectName(routerId, report.spec.agent)) continue;
    byAgent.set(report.spec.agent, report);
  }
  return byAgent;
}

/** Picks the active agent among live Primary claims: sticky, then newest observedAt, then lowest name. */
function chooseActive(
  claims: readonly { agent: string; observedAt: string }[],
  current: string | undefined,
): string | undefined {
  if (claims.length === 0) return undefined;
  if (current !== undefined && claims.some((c) => c.agent === current)) return current;
  const sorted = [...claims].sort(
    (x, y) =>
      compareObservedAt(y.observedAt, x.observedAt) || (x.agent < y.agent ? -1 : x.agent > y.agent ? 1 : 0),
  );
  return sorted[0]?.agent;
}

function acceptedVerdict(report: HARouterState, members: ReadonlySet<string>): ReportVerdict {
  const { routerId, agent } = report.spec;
  return {
    name: report.metadata.name,
    accepted: members.has(agent)
      ? {
          type: CONDITION_ACCEPTED,
          status: 'True',
          reason: REASONS.member,
          message: `agent ${agent} is a member of HARouter ${routerId}`,
        }
      : {
          type: CONDITION_ACCEPTED,
          status: 'False',
          reason: REASONS.notAMember,
          message: `agent ${agent} is not listed in spec.agents of HARouter ${routerId}`,
        },
  };
}

/** Verdicts for reports whose HARouter does not exist: `Accepted=False`, reason `UnknownRouter`. */
export function decideOrphanReports(reports: readonly HARouterState[]): ReportVerdict[] {
  return reports
    .filter((r) => !isDeleting(r))
    .map((r) => ({
      name: r.metadata.name,
      accepted: {
        type: CONDITION_ACCEPTED,
        status: 'False',
        reason: REASONS.unknownRouter,
        message: `no HARouter ${r.spec.routerId} in this namespace`,
      },
    }));
}

function readyCondition(
  active: string | undefined,
  address: string | undefined,
  endpoint: HARouterEndpoint | undefined,
  input: DecideInput,
): ConditionFacts {
  const base = { type: CONDITION_READY } as const;
  if (endpoint && input.serviceRefusal) {
    return { ...base, status: 'False', ...input.serviceRefusal };
  }
  if (endpoint && input.sliceHeldByOther) {
    return {
      ...base,
      status: 'False',
      reason: REASONS.sliceConflict,
      message: `EndpointSlice ${endpoint.serviceName}-harouter is owned by another controller`,
    };
  }
  if (active === undefined) {
    return { ...base, status: 'False', reason: REASONS.noPrimary, message: 'no live agent reports Primary' };
  }
  if (endpoint && address === undefined) {
    return {
      ...base,
      status: 'False',
      reason: REASONS.noNodeAddress,
      message: `Node ${active} has no IPv4 InternalIP`,
    };
  }
  return { ...base, status: 'True', reason: REASONS.active, message: `agent ${active} is active` };
}

/** Decides a router's state from its reports and its agents' nodes. */
export function decide(input: DecideInput): Decision {
  const { router, nodes } = input;
  if (isDeleting(router)) return { kind: 'skip', reason: 'Deleting' };
  const routerId = router.metadata.name;
  const status = router.status ?? {};
  const reports = countedReports(routerId, input.reports);
  const members = new Set(router.spec.agents.map((a) => a.name));

  const agents: AgentStatus[] = [];
  const claims: { agent: string; observedAt: string }[] = [];
  let liveAgents = 0;
  let newestObservedAt: string | undefined;
  for (const member of router.spec.agents) {
    const report = reports.get(member.name);
    const node = nodes.get(member.name);
    const priority = router.spec.vrrp ? effectivePriority(router.spec.agents, member.name) : member.priority;
    const base: AgentStatus = {
      name: member.name,
      state: 'Unknown',
      ...(report ? { observedAt: report.spec.observedAt } : {}),
      ...(priority !== undefined ? { priority } : {}),
    };
    if (
      report &&
      (newestObservedAt === undefined || compareObservedAt(report.spec.observedAt, newestObservedAt) > 0)
    ) {
      newestObservedAt = report.spec.observedAt;
    }
    if (!node) {
      agents.push({ ...base, reason: 'NodeNotFound' });
    } else if (!node.ready) {
      agents.push({ ...base, reason: 'NodeNotReady' });
    } else if (!report) {
      agents.push({ ...base, reason: 'NoReport' });
    } else {
      agents.push({ ...base, state: report.spec.state });
      if (report.spec.state === 'Primary' || report.spec.state === 'Backup') liveAgents++;
      if (report.spec.state === 'Primary')
        claims.push({ agent: member.name, observedAt: report.spec.observedAt });
    }
  }

  const previousActive = status.activeAgent;
  const activeAgent = chooseActive(claims, previousActive);
  const activeChanged = activeAgent !== previousActive;
  const transitions = (status.transitions ?? 0) + (activeChanged ? 1 : 0);
  const primaries = claims.map((c) => c.agent).sort();
  const splitBrain = primaries.length > 1;
  const degraded = liveAgents < 2;
  const activeAddress = activeAgent === undefined ? undefined : nodes.get(activeAgent)?.internalIP;
  const endpoint = router.spec.endpoint;

  const vridRefused = vridRefusal(input.vrid);
  const conditions: ConditionFacts[] = [
    vridRefused
      ? { type: CONDITION_READY, status: 'False', ...vridRefused }
      : readyCondition(activeAgent, activeAddress, endpoint, input),
    splitBrain
      ? {
          type: CONDITION_SPLIT_BRAIN,
          status: 'True',
          reason: REASONS.multiplePrimaries,
          message: `agents ${primaries.join(', ')} all report Primary; routing to ${activeAgent} only`,
        }
      : primaries.length === 1
        ? {
            type: CONDITION_SPLIT_BRAIN,
            status: 'False',
            reason: REASONS.singlePrimary,
            message: 'one agent reports Primary',
          }
        : {
            type: CONDITION_SPLIT_BRAIN,
            status: 'False',
            reason: REASONS.noPrimary,
            message: 'no live agent reports Primary',
          },
    degraded
      ? {
          type: CONDITION_DEGRADED,
          status: 'True',
          reason: REASONS.noRedundancy,
          message: `${liveAgents} live agent(s) in Primary or Backup; at least 2 are needed for redundancy`,
        }
      : {
          type: CONDITION_DEGRADED,
          status: 'False',
          reason: REASONS.redundant,
          message: `${liveAgents} live agents in Primary or Backup`,
        },
  ];

  const verdicts = input.reports
    .filter((r) => r.spec.routerId === routerId && !isDeleting(r))
    .map((r) => acceptedVerdict(r, members))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  return {
    kind: 'route',
    namespace: router.metadata.namespace ?? '',
    routerId,
    uid: router.metadata.uid,
    generation: router.metadata.generation,
    previousActive,
    activeAgent,
    activeChanged,
    activeAddress,
    newestObservedAt,
    agents,
    liveAgents,
    transitions,
    primaries,
    splitBrain,
    wasSplitBrain:
      status.conditions?.some((c) => c.type === CONDITION_SPLIT_BRAIN && c.status === 'True') ?? false,
    degraded,
    conditions,
    endpoint: input.serviceRefusal ? undefined : endpoint,
    reports: verdicts,
    vrrp:
      input.vrid?.kind === 'recorded' && router.spec.vrrp
        ? { vrid: input.vrid.vrid, segment: input.vrid.segment }
        : undefined,
  };
}
