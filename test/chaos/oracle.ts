/**
 * The contract's verdict on a write, written from `API.md` alone (not from the
 * zod schemas, the CRD or the webhook's policy), so that the fuzzer compares the
 * real API server with an independent reading of the contract.
 *
 * It models the API server's order: the request body is decoded and pruned
 * (unknown fields and `null` values of non-nullable fields dropped, as
 * structural schemas do), ObjectMeta is validated, then the CRD schema and its
 * CEL rules, then admission (the webhook, the ValidatingAdmissionPolicy, or
 * both). Where the contract is silent the verdict follows Kubernetes' own
 * validation (label syntax, annotation size) and the project's documented
 * reading (`docs/api.md`: RFC 3339 years 1000-9999, upper-case `T` and `Z`, no
 * leap second).
 */

import { isIPv4, isIPv6 } from 'node:net';

/** Which admission layers are installed in a namespace. */
export type Mode = 'webhook' | 'policy' | 'both';
export const MODES: readonly Mode[] = ['webhook', 'policy', 'both'];

/** Who sends a request, as the API server authenticates it. */
export interface Actor {
  readonly name: string;
  /** reporter: a configured reporter service account; cleanup: a Kubernetes cleanup controller. */
  readonly kind: 'reporter' | 'intruder' | 'admin' | 'operator' | 'cleanup';
  /** The node of a pod-bound token. */
  readonly node?: string;
}

/** One generated request. `old` is the stored object UPDATE and DELETE act on. */
export interface Request {
  readonly operation: 'CREATE' | 'UPDATE' | 'DELETE';
  readonly actor: Actor;
  readonly object?: unknown;
  readonly old?: StoredReport;
}

/** A stored (valid) HARouterState. */
export interface StoredReport {
  readonly metadata: { readonly name: string };
  readonly spec: {
    readonly routerId: string;
    readonly agent: string;
    readonly state: string;
    readonly observedAt: string;
  };
}

/** What admission's membership rule and clock rule read. */
export interface World {
  /** HARouters of the namespace: router id -> agent names. */
  readonly routers: ReadonlyMap<string, readonly string[]>;
  /** The webhook's clock, ms since the epoch. */
  readonly nowMs: number;
}

/**
 * A verdict. A denial names the rule and `mention`: words of which the
 * server's message must contain at least one (the rule's name, or the paths of
 * the fields that break the schema), so that every denial says why.
 */
export type Verdict =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly rule: string; readonly mention: readonly string[] };

const ALLOW: Verdict = { allowed: true };
const deny = (rule: string, ...mention: string[]): Verdict => ({
  allowed: false,
  rule,
  mention: mention.length ? mention : [rule],
});

// ---------------------------------------------------------------------------
// Primitive rules (API.md, "API group and kinds").

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SERVICE_NAME = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

/** Code points, as OpenAPI and CEL count string lengths. */
export function codePoints(s: string): number {
  return [...s].length;
}

/** No Unicode control character (Cc) and no bidirectional control. */
export function printable(s: string): boolean {
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (c <= 0x1f || (c >= 0x7f && c <= 0x9f)) return false;
    if ((c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) return false;
  }
  return true;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

export function isSubdomain(s: string, max = 253): boolean {
  return s.length >= 1 && s.length <= max && SUBDOMAIN.test(s);
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))$/;

/** An RFC 3339 time as nanoseconds since the epoch, or undefined when it is not one. */
export function rfc3339Nanos(s: string): bigint | undefined {
  const m = RFC3339.exec(s);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as number[];
  if (year === undefined || month === undefined || day === undefined) return undefined;
  if (year < 1000 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return undefined;
  if ((hour ?? 99) > 23 || (minute ?? 99) > 59 || (second ?? 99) > 59) return undefined;
  let offsetMin = 0;
  if (m[8] !== 'Z') {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMin = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const epochSeconds =
    BigInt(Date.UTC(year, month - 1, day, hour ?? 0, minute ?? 0, second ?? 0)) / 1000n -
    BigInt(offsetMin * 60);
  return epochSeconds * 1_000_000_000n + BigInt((m[7] ?? '').padEnd(9, '0'));
}

// ---------------------------------------------------------------------------
// Decoding: what the API server keeps of a request body.

/** Drops the `null` members of an object (non-nullable fields are pruned when null). */
function dropNulls(v: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(v).filter(([, x]) => x !== null));
}

const STATE_SPEC_FIELDS = ['routerId', 'agent', 'state', 'observedAt', 'priority', 'message'];

/** A HARouterState's spec as stored: known fields only, nulls dropped. */
export function prunedStateSpec(spec: unknown): Record<string, unknown> | undefined {
  if (!isObject(spec)) return undefined;
  const kept = dropNulls(spec);
  return Object.fromEntries(Object.entries(kept).filter(([k]) => STATE_SPEC_FIELDS.includes(k)));
}

function sameJson(a: unknown, b: unknown): boolean {
  const canon = (v: unknown): unknown =>
    isObject(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, canon(v[k])]),
        )
      : Array.isArray(v)
        ? v.map(canon)
        : v;
  return JSON.stringify(canon(a)) === JSON.stringify(canon(b));
}

// ---------------------------------------------------------------------------
// ObjectMeta, as Kubernetes validates it for every object.

function qualifiedName(key: string): boolean {
  const slash = key.indexOf('/');
  const name = slash === -1 ? key : key.slice(slash + 1);
  if (slash !== -1 && !isSubdomain(key.slice(0, slash))) return false;
  return name.length <= 63 && QUALIFIED_NAME.test(name);
}

/** Kubernetes' own metadata checks: the fields that break them (empty when none). */
export function metadataProblems(meta: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const labels = meta.labels;
  if (labels !== undefined && labels !== null) {
    const ok =
      isObject(labels) &&
      Object.entries(labels).every(
        ([k, v]) =>
          qualifiedName(k) && isString(v) && (v === '' || (v.length <= 63 && QUALIFIED_NAME.test(v))),
      );
    if (!ok) problems.push('metadata.labels');
  }
  const annotations = meta.annotations;
  if (annotations !== undefined && annotations !== null) {
    const ok =
      isObject(annotations) &&
      Object.entries(annotations).every(([k, v]) => qualifiedName(k.toLowerCase()) && isString(v)) &&
      Object.entries(annotations).reduce((n, [k, v]) => n + k.length + String(v).length, 0) <= 256 * 1024;
    if (!ok) problems.push('metadata.annotations');
  }
  const finalizers = meta.finalizers;
  if (finalizers !== undefined && finalizers !== null) {
    const ok = Array.isArray(finalizers) && finalizers.every((f) => isString(f) && qualifiedName(f));
    if (!ok) problems.push('metadata.finalizers');
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Rule 3's metadata limits for reporters (API.md, "Who may report: admission").

/** At most this many labels, and as many annotations, on a reporter's object. */
export const REPORTER_MAX_ENTRIES = 8;
/** Largest label or annotation on a reporter's object: key and value together, in bytes. */
export const REPORTER_MAX_ENTRY_BYTES = 1024;

const entryBytes = (k: string, v: unknown) => Buffer.byteLength(k) + Buffer.byteLength(String(v));

/** True when a reporter's object breaks rule 3's metadata limits (`MetadataNotAllowed`). */
export function reporterMetadataNotAllowed(meta: Record<string, unknown>): boolean {
  const present = (v: unknown) => v !== undefined && v !== null;
  if (present(meta.finalizers) && Array.isArray(meta.finalizers) && meta.finalizers.length > 0) return true;
  if (present(meta.ownerReferences) && Array.isArray(meta.ownerReferences) && meta.ownerReferences.length > 0)
    return true;
  for (const field of ['labels', 'annotations']) {
    const map = meta[field];
    if (!isObject(map)) continue;
    const entries = Object.entries(map);
    if (entries.length > REPORTER_MAX_ENTRIES) return true;
    if (entries.some(([k, v]) => entryBytes(k, v) > REPORTER_MAX_ENTRY_BYTES)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// The CRD schema of HARouterState (structural schema + CEL), as the contract states it.

/** The spec fields (and the name) that break the contract's shape rules; empty when valid. */
export function stateShapeProblems(object: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const spec = prunedStateSpec(object.spec);
  if (!spec) return ['spec'];
  const { routerId, agent, state, observedAt, priority, message } = spec;
  if (!isString(routerId) || !UUID.test(routerId)) problems.push('spec.routerId');
  if (!isString(agent) || !isSubdomain(agent, 216)) problems.push('spec.agent');
  if (!isString(state) || !['Primary', 'Backup', 'Fault', 'Stopped'].includes(state))
    problems.push('spec.state');
  if (!isString(observedAt) || observedAt.length > 35 || rfc3339Nanos(observedAt) === undefined)
    problems.push('spec.observedAt');
  if (priority !== undefined && !(isInt(priority) && priority >= 0 && priority <= 255))
    problems.push('spec.priority');
  if (message !== undefined && !(isString(message) && codePoints(message) <= 256 && printable(message)))
    problems.push('spec.message');
  const meta = isObject(object.metadata) ? object.metadata : {};
  if (isString(routerId) && isString(agent) && meta.name !== `${routerId}.${agent}`)
    problems.push('metadata.name');
  return problems;
}

/** The CRD's transition rules on UPDATE: immutable ids, no backwards observedAt. */
function transitionProblems(spec: Record<string, unknown>, old: StoredReport): string[] {
  const problems: string[] = [];
  if (spec.routerId !== old.spec.routerId) problems.push('spec.routerId');
  if (spec.agent !== old.spec.agent) problems.push('spec.agent');
  const now = rfc3339Nanos(String(spec.observedAt));
  const was = rfc3339Nanos(old.spec.observedAt);
  if (now !== undefined && was !== undefined && now < was) problems.push('stale report');
  return problems;
}

// ---------------------------------------------------------------------------
// The verdict.

const CLOCK_SKEW_NS = 5n * 60n * 1_000_000_000n;

/** Rule 3's reporter metadata limits: the message names the reason or the rule's words. */
const denyMetadata = () => deny('MetadataNotAllowed', 'MetadataNotAllowed', 'metadata rule');

/**
 * The contract's verdict on one HARouterState request in one admission mode.
 * Every actor has RBAC for the verbs it uses (the fuzzer binds it), except the
 * cleanup controller, which Kubernetes' bootstrap roles allow no `create`.
 */
export function stateVerdict(mode: Mode, req: Request, world: World): Verdict {
  const { actor } = req;
  const webhook = mode !== 'policy';

  if (req.operation === 'DELETE') {
    const old = req.old;
    if (!old) throw new Error('DELETE needs the stored object');
    if (actor.kind !== 'reporter') return ALLOW;
    return actor.node === old.spec.agent ? ALLOW : deny('Delete', 'Delete:');
  }
  if (req.operation === 'CREATE' && actor.kind === 'cleanup') return deny('RBAC', 'forbidden');

  const object = isObject(req.object) ? req.object : {};
  const meta = isObject(object.metadata) ? object.metadata : {};
  // An update naming another object's uid fails its storage precondition (409) before any validation.
  if (req.operation === 'UPDATE' && typeof meta.uid === 'string' && meta.uid !== '')
    return deny('Precondition', 'UID');
  // ObjectMeta, the schema and its CEL rules run before admission, for every identity, in one pass.
  const problems = [...metadataProblems(meta), ...stateShapeProblems(object)];
  const spec = prunedStateSpec(object.spec) ?? {};
  if (req.operation === 'UPDATE') {
    if (!req.old) throw new Error('UPDATE needs the stored object');
    if (problems.length === 0) problems.push(...transitionProblems(spec, req.old));
  }
  if (problems.length > 0) return deny('Shape', ...problems);
  // A write that leaves spec unchanged is not a report: RBAC alone, except that a reporter's keeps
  // node binding and the metadata limits.
  if (req.operation === 'UPDATE' && sameJson(spec, req.old?.spec)) {
    if (actor.kind !== 'reporter') return ALLOW;
    if (actor.node === undefined || actor.node !== spec.agent) return deny('NodeBinding', 'NodeBinding:');
    if (reporterMetadataNotAllowed(meta)) return denyMetadata();
    return ALLOW;
  }

  // 1. Identity.
  if (actor.kind !== 'reporter') return deny('Identity', 'Identity:');
  // 2. Node binding (node binding is required: the fuzzer's configuration keeps the default).
  if (actor.node === undefined) return deny('NodeBinding', 'NodeBinding:');
  if (actor.node !== spec.agent) return deny('NodeBinding', 'NodeBinding:');
  // 3. Shape: the metadata limits (the rest the schema checked).
  if (reporterMetadataNotAllowed(meta)) return denyMetadata();
  if (!webhook) return ALLOW;
  // 4. Clock (the webhook's alone).
  const observed = rfc3339Nanos(String(spec.observedAt)) ?? 0n;
  if (observed > BigInt(world.nowMs) * 1_000_000n + CLOCK_SKEW_NS) return deny('Clock', 'Clock:');
  // 5. Membership, on CREATE (the webhook's alone).
  if (req.operation === 'CREATE') {
    const agents = world.routers.get(String(spec.routerId));
    if (!agents) return deny('UnknownRouter', 'UnknownRouter', 'Membership:');
    if (!agents.includes(String(spec.agent))) return deny('NotAMember', 'NotAMember', 'Membership:');
  }
  return ALLOW;
}

const ROUTER_SPEC_FIELDS = ['displayName', 'agents', 'endpoint', 'vrrp', 'preferredAgent'];
const INTERFACE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$/;

/**
 * A virtual IP as `address/prefix`, read with Node's own address parser and WHATWG URL (not the
 * project's parser): the canonical address, or undefined. No zone, no IPv4-mapped IPv6 address,
 * a decimal prefix without leading zeros within the family's width.
 */
function canonicalVirtualIP(value: unknown): { family: 4 | 6; address: string } | undefined {
  if (!isString(value) || value.length > 49) return undefined;
  const [address, prefix, extra] = value.split('/');
  if (extra !== undefined || address === undefined || prefix === undefined || !/^(0|[1-9]\d*)$/.test(prefix))
    return undefined;
  if (isIPv4(address)) return Number(prefix) <= 32 ? { family: 4, address } : undefined;
  if (!isIPv6(address) || address.includes('%') || Number(prefix) > 128) return undefined;
  const canonical = new URL(`http://[${address}]/`).hostname;
  if (/^\[::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}\]$/.test(canonical)) return undefined;
  return { family: 6, address: canonical };
}

/** Problems of `spec.vrrp` and `spec.preferredAgent` (API.md, "Driving keepalived"; docs/api.md's refinements). */
function vrrpProblems(vrrp: unknown, preferredAgent: unknown, agents: unknown): string[] {
  const problems: string[] = [];
  const list = Array.isArray(agents) ? agents.map((a) => (isObject(a) ? dropNulls(a) : {})) : [];
  if (preferredAgent !== undefined) {
    if (vrrp === undefined || !isString(preferredAgent) || !list.some((a) => a.name === preferredAgent))
      problems.push('preferred agent rule');
  }
  if (vrrp === undefined) return problems;
  const v = isObject(vrrp) ? dropNulls(vrrp) : undefined;
  if (!v) return [...problems, 'spec.vrrp'];
  const intIn = (x: unknown, min: number, max: number) => isInt(x) && x >= min && x <= max;
  const segment = v.segment ?? 'default';
  if (!isString(segment) || segment.length > 63 || !LABEL.test(segment)) problems.push('segment rule');
  if (v.vrid !== undefined && !intIn(v.vrid, 1, 254)) problems.push('spec.vrrp.vrid');
  if (!isString(v.interface) || !INTERFACE.test(v.interface)) problems.push('spec.vrrp.interface');
  const advert = v.advertIntervalMs ?? 1000;
  if (!intIn(advert, 100, 40950) || (advert as number) % 10 !== 0)
    problems.push('spec.vrrp.advertIntervalMs');
  if (!intIn(v.fenceHoldSeconds ?? 60, 1, 900)) problems.push('spec.vrrp.fenceHoldSeconds');
  if (!intIn(v.failbackDelaySeconds ?? 30, 0, 3600)) problems.push('spec.vrrp.failbackDelaySeconds');
  const vips = v.virtualIPs;
  if (!Array.isArray(vips) || vips.length < 1 || vips.length > 16) {
    problems.push('spec.vrrp.virtualIPs');
  } else {
    const parsed = vips.map(canonicalVirtualIP);
    if (parsed.some((x) => x === undefined)) problems.push('virtual IP rule');
    const valid = parsed.filter((x) => x !== undefined);
    if (parsed[0] && valid.some((x) => x.family !== parsed[0]?.family))
      problems.push('virtual IP family rule');
    if (new Set(valid.map((x) => x.address)).size !== valid.length) problems.push('unique virtual IPs rule');
  }
  const priorities = list.map((a, i) => (a.priority === undefined ? 200 - 10 * i : a.priority));
  if (new Set(priorities).size !== priorities.length) problems.push('distinct priorities rule');
  return problems;
}

/** The contract's verdict on creating a HARouter (no admission guards HARouters: the schema decides). */
export function routerVerdict(object: unknown): Verdict {
  const obj = isObject(object) ? object : {};
  const meta = isObject(obj.metadata) ? obj.metadata : {};
  const problems = metadataProblems(meta);
  if (!isString(meta.name) || !UUID.test(meta.name)) problems.push('metadata.name');
  if (!isObject(obj.spec)) return deny('Shape', 'spec', ...problems);
  const spec = Object.fromEntries(
    Object.entries(dropNulls(obj.spec)).filter(([k]) => ROUTER_SPEC_FIELDS.includes(k)),
  );
  const { displayName, agents, endpoint, vrrp, preferredAgent } = spec;
  if (
    displayName !== undefined &&
    !(isString(displayName) && codePoints(displayName) <= 64 && printable(displayName))
  )
    problems.push('spec.displayName');
  if (!Array.isArray(agents) || agents.length < 1 || agents.length > 16) {
    problems.push('spec.agents');
  } else {
    const names = new Set<string>();
    for (const agent of agents) {
      const a = isObject(agent) ? dropNulls(agent) : undefined;
      const ok =
        a !== undefined &&
        isString(a.name) &&
        isSubdomain(a.name, 216) &&
        (a.priority === undefined || (isInt(a.priority) && a.priority >= 1 && a.priority <= 254));
      if (!ok || names.has(String(a?.name))) problems.push('spec.agents');
      if (a && isString(a.name)) names.add(a.name);
    }
  }
  if (endpoint !== undefined) {
    const e = isObject(endpoint) ? dropNulls(endpoint) : undefined;
    const ok =
      e !== undefined &&
      isString(e.serviceName) &&
      e.serviceName.length <= 63 &&
      SERVICE_NAME.test(e.serviceName) &&
      Array.isArray(e.ports) &&
      e.ports.length >= 1 &&
      e.ports.length <= 32 &&
      e.ports.every((p) => {
        const q = isObject(p) ? dropNulls(p) : undefined;
        return (
          q !== undefined &&
          isInt(q.port) &&
          q.port >= 1 &&
          q.port <= 65535 &&
          (q.name === undefined || (isString(q.name) && q.name.length <= 63 && LABEL.test(q.name))) &&
          (q.protocol === undefined || ['TCP', 'UDP', 'SCTP'].includes(String(q.protocol)))
        );
      });
    if (!ok) problems.push('spec.endpoint');
  }
  if (preferredAgent !== undefined && !(isString(preferredAgent) && isSubdomain(preferredAgent, 216)))
    problems.push('spec.preferredAgent');
  problems.push(...vrrpProblems(vrrp, preferredAgent, agents));
  return problems.length > 0 ? deny('Shape', ...new Set(problems)) : ALLOW;
}

/** True when a denial message names the verdict's rule: it contains one of `mention`. */
export function namesRule(verdict: Verdict, message: string): boolean {
  return verdict.allowed || verdict.mention.some((m) => message.includes(m));
}
