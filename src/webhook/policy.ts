import { isDeepStrictEqual } from 'node:util';
import type { z } from 'zod';
import {
  GROUP,
  HAROUTER_STATE,
  type HARouter,
  harouterStateObjectSchema,
  harouterStateSchema,
  parseObservedAt,
  STALE_REPORT_MESSAGE,
} from '../api/index.ts';
import { type AdmissionConfig, CLEANUP_USERNAMES, serviceAccountUsername } from './config.ts';
import { metadataAllowed, objectSizeAllowed } from './metadata-limits.ts';
import { type AdmissionRequest, NODE_NAME_EXTRA } from './review.ts';

/** The rules of the contract, in the order they apply to CREATE and UPDATE; `Delete` for DELETE. */
export const ADMISSION_RULES = ['Identity', 'NodeBinding', 'Shape', 'Clock', 'Membership', 'Delete'] as const;
export type AdmissionRule = (typeof ADMISSION_RULES)[number];

/** Why a request was allowed (bounded: the `reason` label of `harouter_admission_decisions_total`). */
export const ALLOWED_REASONS = [
  'Reporter',
  'AllowedIdentity',
  'Operator',
  'Cleanup',
  'NotGuarded',
  /** A write that leaves `spec` unchanged, or a DELETE, by an identity that is not a reporter: RBAC decides. */
  'NotAReport',
] as const;
/** Why a request was denied (bounded, as above). `MalformedRequest` is the server's: a body that is not an AdmissionReview. */
export const DENIED_REASONS = [
  'NotAReporter',
  'NodeBindingRequired',
  'NodeMismatch',
  'MetadataNotAllowed',
  'ObjectTooLarge',
  'InvalidObject',
  'NameMismatch',
  'ImmutableField',
  'StaleReport',
  'ClockSkew',
  'UnknownRouter',
  'NotAMember',
  'DeleteForbidden',
  'MalformedRequest',
] as const;
export type AllowedReason = (typeof ALLOWED_REASONS)[number];
export type DeniedReason = (typeof DENIED_REASONS)[number];
export type AdmissionReason = AllowedReason | DeniedReason;

/** A decision of the policy. `message` is constant text plus token-derived values only, never request content. */
export type AdmissionDecision =
  | { allowed: true; reason: AllowedReason; message: string }
  | {
      allowed: false;
      reason: DeniedReason;
      rule: AdmissionRule;
      code: 403 | 422;
      message: string;
    };

/**
 * The agents (`spec.agents[].name`) of the HARouter `routerId` in `namespace`, or
 * undefined when there is none: the webhook reads them from its HARouter informer
 * cache (the membership rule, API.md "Who may report", rule 5).
 */
export type RouterAgents = (namespace: string, routerId: string) => readonly string[] | undefined;

/** The agent names of a cached HARouter, undefined without one (for a {@link RouterAgents}). */
export function routerAgents(router: Pick<HARouter, 'spec'> | undefined): string[] | undefined {
  const agents = router?.spec?.agents;
  return Array.isArray(agents) ? agents.map((a) => a.name) : undefined;
}

/** How far ahead of the webhook's clock an `observedAt` may be. */
export const CLOCK_SKEW_LIMIT_MS = 5 * 60 * 1000;

/**
 * The denial messages, shared with the ValidatingAdmissionPolicy so that both modes answer in the
 * same words. Each begins with its rule's name; none carries request content.
 */
export const MESSAGES = {
  identity:
    'Identity: only the configured reporter service accounts (and allowed users or groups) may create or update ' +
    'HARouterStates. To let this identity report, add its service account to --reporter-service-accounts ' +
    '(Helm value reporter.extraServiceAccounts).',
  nodeBindingRequired:
    "NodeBinding: the reporter's token is not bound to a node. Report with a pod-bound service-account token " +
    "(the projected token of a Pod on the agent's node), or turn node binding off (--require-node-binding=false).",
  nodeMismatch: (node: string) =>
    `NodeBinding: spec.agent must be the node the reporter's token is bound to (${JSON.stringify(node)}); ` +
    'a reporter may only report for its own node.',
  immutable: (field: string) =>
    `Shape: spec.${field} cannot change (immutable rule); delete this HARouterState and create the one named ` +
    '<routerId>.<agent> instead.',
  metadata:
    "Shape: a reporter's HARouterState may carry no metadata.finalizers and no metadata.ownerReferences, and at " +
    'most 8 labels and 8 annotations of at most 1 KiB each (metadata rule).',
  size:
    "Shape: a reporter's write may not leave a HARouterState larger than 64 KiB in all, metadata.managedFields " +
    'included (size rule).',
  clock:
    "Clock: spec.observedAt is more than 5 minutes ahead of the webhook's clock; a future time would make every " +
    "later report stale. Fix the agent's clock (NTP) and report again.",
  unknownRouter:
    'Membership: no HARouter of this spec.routerId exists in this namespace; a reporter may create reports only ' +
    'for routers that list its node in spec.agents.',
  notAMember:
    'Membership: the HARouter named by spec.routerId does not list spec.agent in spec.agents; a reporter may ' +
    'create reports only for routers that list its node.',
  delete:
    'Delete: a reporter may delete only the reports of the node its token is bound to (spec.agent); ' +
    'other identities delete as RBAC allows.',
  notGuarded: 'not a HARouterState write: not guarded',
} as const;

const SAFE_PATH_SEGMENT = /^[A-Za-z][A-Za-z0-9]{0,63}$/;

/** Formats zod issues without echoing request content: paths keep schema field names only. */
function shapeMessage(error: z.ZodError): string {
  const parts = error.issues.slice(0, 5).map((issue) => {
    const path = issue.path
      .map((p) =>
        typeof p === 'number' ? `[${p}]` : SAFE_PATH_SEGMENT.test(String(p)) ? `.${String(p)}` : '.*',
      )
      .join('')
      .replace(/^\./, '');
    return `${path || '(object)'}: ${issue.message}`;
  });
  return `Shape: ${parts.join('; ')}`;
}

/** The identity classes a request's user falls into. */
interface Identity {
  reporter: boolean;
  allowedUser: boolean;
  allowedGroup: boolean;
  operator: boolean;
  cleanup: boolean;
  /** The node of a pod-bound token, when there is one. */
  node: string | undefined;
}

/** `serviceAccountUsername`, but undefined instead of throwing (admit never throws). */
function usernameOf(ref: string): string | undefined {
  try {
    return serviceAccountUsername(ref);
  } catch {
    return undefined;
  }
}

function classify(user: AdmissionRequest['userInfo'], config: AdmissionConfig): Identity {
  const username = user.username ?? '';
  const nodes = user.extra?.[NODE_NAME_EXTRA];
  return {
    reporter: username !== '' && config.reporterServiceAccounts.some((ref) => usernameOf(ref) === username),
    allowedUser: username !== '' && config.allowedUsers.includes(username),
    allowedGroup: (user.groups ?? []).some((g) => config.allowedGroups.includes(g)),
    operator: username !== '' && usernameOf(config.operatorServiceAccount) === username,
    cleanup: (CLEANUP_USERNAMES as readonly string[]).includes(username),
    // A claim that is present but not exactly one value is treated as a (non-matching) binding.
    node: nodes === undefined ? undefined : nodes.length === 1 ? nodes[0] : '',
  };
}

/** A string field of a raw object's `spec`, when it is a string. */
function rawSpecField(object: unknown, field: 'routerId' | 'agent' | 'observedAt'): string | undefined {
  if (typeof object !== 'object' || object === null) return undefined;
  const spec = (object as { spec?: unknown }).spec;
  if (typeof spec !== 'object' || spec === null) return undefined;
  const value = (spec as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : undefined;
}

const deny = (
  rule: AdmissionRule,
  reason: DeniedReason,
  message: string,
  code: 403 | 422 = rule === 'Shape' || rule === 'Clock' ? 422 : 403,
): AdmissionDecision => ({ allowed: false, rule, reason, code, message });

/**
 * Node binding, shared by writes and deletes: a token bound to a node may only
 * speak for that node; without a binding, `requireNodeBinding` denies every
 * identity except the explicitly allowed users and groups (trusted people and
 * tools, which never hold pod-bound tokens). Returns undefined when it passes.
 */
function nodeBinding(
  id: Identity,
  agent: string | undefined,
  config: AdmissionConfig,
): DeniedReason | undefined {
  if (id.node !== undefined) return agent === id.node ? undefined : 'NodeMismatch';
  if (config.requireNodeBinding && !id.allowedUser && !id.allowedGroup) return 'NodeBindingRequired';
  return undefined;
}

/** True when the request is an UPDATE whose object and old object have the same (present) `spec`. */
function specUnchanged(request: AdmissionRequest): boolean {
  if (request.operation !== 'UPDATE') return false;
  const spec = (o: unknown) =>
    typeof o === 'object' && o !== null ? (o as { spec?: unknown }).spec : undefined;
  const now = spec(request.object);
  return typeof now === 'object' && now !== null && isDeepStrictEqual(now, spec(request.oldObject));
}

/**
 * The admission policy for HARouterStates, as a pure function of the request,
 * the configuration, a clock reading (milliseconds since the epoch) and the
 * HARouters the webhook knows. Never throws for any input the AdmissionReview
 * schema accepts. A CREATE or an UPDATE that changes `spec` is a report: it goes
 * through Identity, NodeBinding, Shape (reporter metadata limits included), Clock
 * and, on CREATE, Membership, in that order; the first failing rule denies. An
 * UPDATE that leaves `spec` unchanged, and a DELETE, by an identity that is not a
 * reporter are left to RBAC; a reporter's spec-unchanged update gets node binding,
 * the metadata limits and the size limit, and a reporter may delete only its own
 * node's reports. No reporter write may leave the object larger than 64 KiB.
 */
export function admit(
  request: AdmissionRequest,
  config: AdmissionConfig,
  nowMs: number,
  routers: RouterAgents,
): AdmissionDecision {
  if (
    request.resource.group !== GROUP ||
    request.resource.resource !== HAROUTER_STATE.plural ||
    (request.subResource ?? '') !== '' ||
    request.operation === 'CONNECT'
  ) {
    return { allowed: true, reason: 'NotGuarded', message: MESSAGES.notGuarded };
  }
  const id = classify(request.userInfo, config);
  const reporter = id.reporter || id.allowedUser || id.allowedGroup;

  if (request.operation === 'DELETE') {
    if (id.cleanup) return { allowed: true, reason: 'Cleanup', message: 'cleanup controller' };
    if (id.operator) return { allowed: true, reason: 'Operator', message: 'operator' };
    if (!reporter) return { allowed: true, reason: 'NotAReport', message: 'not a reporter: RBAC decides' };
    if (nodeBinding(id, rawSpecField(request.oldObject, 'agent'), config) !== undefined) {
      return deny('Delete', 'DeleteForbidden', MESSAGES.delete);
    }
    return { allowed: true, reason: id.reporter ? 'Reporter' : 'AllowedIdentity', message: 'reporter' };
  }

  const unchanged = specUnchanged(request);
  if (unchanged && !reporter)
    return { allowed: true, reason: 'NotAReport', message: 'spec unchanged: RBAC decides' };

  // 1. Identity (a write that leaves spec unchanged is not a report: only a reporter's gets the rules below).
  if (!reporter) return deny('Identity', 'NotAReporter', MESSAGES.identity);

  // 2. Node binding: a reporter touches only its own node's reports, spec changed or not.
  const binding = nodeBinding(id, rawSpecField(request.object, 'agent'), config);
  if (binding === 'NodeMismatch') return deny('NodeBinding', binding, MESSAGES.nodeMismatch(id.node ?? ''));
  if (binding === 'NodeBindingRequired') return deny('NodeBinding', binding, MESSAGES.nodeBindingRequired);

  // 3. Shape: the reporter metadata limits and the object's size, then (for a report) the CRD's
  // rules again and the update rules.
  if (!metadataAllowed(request.object)) return deny('Shape', 'MetadataNotAllowed', MESSAGES.metadata);
  if (!objectSizeAllowed(request.object)) return deny('Shape', 'ObjectTooLarge', MESSAGES.size);
  if (unchanged) return { allowed: true, reason: 'NotAReport', message: 'spec unchanged, within the limits' };
  const parsed = harouterStateSchema.safeParse(request.object);
  if (!parsed.success) return deny('Shape', 'InvalidObject', shapeMessage(parsed.error));
  const spec = parsed.data.spec;
  if (request.operation === 'UPDATE') {
    // The stored object's fields are read raw, not through the schema: an old object
    // the schema no longer accepts must not switch these rules off (fail closed).
    const old = request.oldObject;
    if (rawSpecField(old, 'routerId') !== spec.routerId)
      return deny('Shape', 'ImmutableField', MESSAGES.immutable('routerId'));
    if (rawSpecField(old, 'agent') !== spec.agent)
      return deny('Shape', 'ImmutableField', MESSAGES.immutable('agent'));
    const was = parseObservedAt(rawSpecField(old, 'observedAt') ?? '');
    const now = parseObservedAt(spec.observedAt);
    if (was !== undefined && now !== undefined && now < was)
      return deny('Shape', 'StaleReport', STALE_REPORT_MESSAGE);
  }
  const named = harouterStateObjectSchema.safeParse(parsed.data);
  if (!named.success) return deny('Shape', 'NameMismatch', shapeMessage(named.error));

  // 4. Clock.
  // A clock reading that is not a number cannot bound anything: the rule fails closed.
  const observed = parseObservedAt(spec.observedAt);
  if (!Number.isFinite(nowMs)) return deny('Clock', 'ClockSkew', MESSAGES.clock);
  const limitNs = BigInt(Math.trunc(nowMs) + CLOCK_SKEW_LIMIT_MS) * 1_000_000n;
  if (observed !== undefined && observed > limitNs) return deny('Clock', 'ClockSkew', MESSAGES.clock);

  // 5. Membership, on CREATE: at most one report per router the node serves.
  if (request.operation === 'CREATE') {
    const agents = routers(request.namespace ?? '', spec.routerId);
    if (agents === undefined) return deny('Membership', 'UnknownRouter', MESSAGES.unknownRouter);
    if (!agents.includes(spec.agent)) return deny('Membership', 'NotAMember', MESSAGES.notAMember);
  }

  return id.reporter
    ? { allowed: true, reason: 'Reporter', message: 'reporter on its node' }
    : { allowed: true, reason: 'AllowedIdentity', message: 'allowed user or group' };
}
