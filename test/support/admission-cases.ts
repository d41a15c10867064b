/**
 * One table of admission cases for every admission layer: the pure policy
 * (`admit`, unit tier), the webhook served in-process and the
 * ValidatingAdmissionPolicy (both on the real API server, integration tier), and
 * the CRD alone. Plus one corpus of valid and invalid objects that the zod
 * schemas and the CRD schemas must classify the same way.
 *
 * In the cluster the CRD schema runs before admission, so a malformed object is
 * refused by the schema in every mode; the expected `message` patterns accept
 * both the schema's and the policy's wording of the same rule.
 */
import { randomUUID } from 'node:crypto';
import { request as httpsRequest } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import {
  API_VERSION,
  GROUP,
  HAROUTER,
  HAROUTER_STATE,
  type HARouter,
  STALE_REPORT_MESSAGE,
  VERSION,
} from '../../src/api/index.ts';
import type { AdmissionConfig } from '../../src/webhook/config.ts';
import type { RouterAgents } from '../../src/webhook/policy.ts';
import type { AdmissionRequest, UserInfo } from '../../src/webhook/review.ts';

export const NODE_A = 'node-a';
export const NODE_B = 'node-b';
/** The observedAt of stored reports; updates move it by one nanosecond either way. */
export const T0 = '2026-01-01T00:00:00.5Z';

/** Who sends a request. `garbageCollector` is one of Kubernetes' cleanup identities. */
export const ACTORS = [
  'reporterA',
  'reporterB',
  'unboundReporter',
  'intruder',
  'admin',
  'operator',
  'garbageCollector',
] as const;
export type Actor = (typeof ACTORS)[number];

/** Service account names used by the fixtures (in the test's namespace). */
export const SA = {
  reporter: 'harouter-reporter',
  intruder: 'intruder',
  operator: 'harouter-operator',
} as const;

/** The admission configuration of a test namespace. */
export function testAdmissionConfig(namespace: string): AdmissionConfig {
  return {
    reporterServiceAccounts: [`${namespace}/${SA.reporter}`],
    allowedUsers: [],
    allowedGroups: [],
    operatorServiceAccount: `${namespace}/${SA.operator}`,
    requireNodeBinding: true,
  };
}

export interface ReportObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; resourceVersion?: string } & Record<string, unknown>;
  spec: Record<string, unknown>;
}

/** The finalizer the table's administrator sets (and the cluster runner clears after each case). */
export const TEST_FINALIZER = 'example.com/keep';

/** `object` with extra metadata (labels, annotations, finalizers, ownerReferences). */
export function withMetadata(object: ReportObject, metadata: Record<string, unknown>): ReportObject {
  return { ...object, metadata: { ...object.metadata, ...metadata } };
}

/** `n` labels or annotations, each (key and value together) exactly `bytes` long. */
export function entries(n: number, bytes = 16): Record<string, string> {
  return Object.fromEntries(
    Array.from({ length: n }, (_, i) => {
      const key = `example.com/k${i}`;
      return [key, 'v'.repeat(bytes - key.length)];
    }),
  );
}

/** A valid report of `agent` about `routerId`. */
export function report(routerId: string, agent: string, spec: Record<string, unknown> = {}): ReportObject {
  return {
    apiVersion: API_VERSION,
    kind: HAROUTER_STATE.kind,
    metadata: { name: `${routerId}.${agent}` },
    spec: { routerId, agent, state: 'Primary', observedAt: T0, ...spec },
  };
}

export interface CaseContext {
  routerId: string;
  /** The clock of the run, in ms. */
  nowMs: number;
}

export interface AdmissionCase {
  name: string;
  actor: Actor;
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  /** A report stored (by the reporter of that node) before the request; UPDATE and DELETE act on it. */
  existing?: typeof NODE_A | typeof NODE_B;
  /** The object sent by CREATE or UPDATE. */
  object?: (ctx: CaseContext) => unknown;
  /** Expected answer; `message` must match the denial in every layer that refuses it. */
  expect: { allowed: boolean; message?: RegExp };
  /**
   * The answer of the policy mode when it differs: only for the webhook's own rules, the clock
   * (CEL has no clock) and membership (CEL cannot look up HARouters).
   */
  policyExpect?: { allowed: boolean; why: string };
  /**
   * The HARouter `ctx.routerId` before the request: its agents (default node-a and node-b), or
   * `absent`. The membership rule reads it.
   */
  router?: 'absent' | readonly string[];
  /** The existing report carries the administrator's finalizer. */
  existingFinalizer?: boolean;
  /** Refused by the CRD schema itself (so also with no admission at all). */
  schema?: boolean;
}

const NODE_MISMATCH = /NodeBinding: spec\.agent must be the node/;
const SIZE = /Shape: a reporter's write may not leave a HARouterState larger than 64 KiB .*\(size rule\)/;

/**
 * One `metadata.managedFields` entry of an Apply by `manager`, listing `fields` made-up spec
 * fields: the API server stores what a client sends there, whether the fields exist or not (it
 * folds Update entries beyond ten into one, but keeps every Apply entry).
 */
export function managedFieldsEntry(manager: string, fields = 1): Record<string, unknown> {
  const spec = Object.fromEntries(
    Array.from({ length: fields }, (_, i) => [`f:field${String(i).padStart(5, '0')}`, {}]),
  );
  return {
    manager,
    operation: 'Apply',
    apiVersion: API_VERSION,
    time: '2026-01-01T00:00:00Z',
    fieldsType: 'FieldsV1',
    fieldsV1: { 'f:spec': spec },
  };
}

/** `n` managedFields entries of about 200 bytes each, each from a manager of its own. */
export function managedFieldsBulk(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) =>
    managedFieldsEntry(`bulk-${String(i).padStart(4, '0')}-${'m'.repeat(64)}`),
  );
}

const SPEC_MESSAGE = (message: string) => (ctx: CaseContext) => report(ctx.routerId, NODE_A, { message });
const PRINTABLE = /printable rule/;
const METADATA = /Shape: a reporter's HARouterState may carry no metadata\.finalizers .*\(metadata rule\)/;
const MEMBERSHIP_WEBHOOK_ONLY = {
  allowed: true,
  why: "CEL cannot look up HARouters: the membership rule is the webhook's alone (policy mode: reporter.quota)",
};
/** The object of an UPDATE that leaves spec as stored and sets `metadata`. */
const sameSpec = (metadata: Record<string, unknown>) => (ctx: CaseContext) =>
  withMetadata(report(ctx.routerId, NODE_A), metadata);

/** The cases of issue 3, in both modes. */
export const ADMISSION_CASES: AdmissionCase[] = [
  {
    name: 'authorized reporter on its own node is allowed',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => report(ctx.routerId, NODE_A),
    expect: { allowed: true },
  },
  {
    name: 'full-precision observedAt with a numeric offset is allowed',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) =>
      report(ctx.routerId, NODE_A, {
        observedAt: '2026-01-01T01:00:00.123456789+01:00',
        message: 'VRRP → MASTER',
      }),
    expect: { allowed: true },
  },
  {
    name: 'same reporter speaking for another node is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => report(ctx.routerId, NODE_B),
    expect: { allowed: false, message: /NodeBinding: spec\.agent must be the node/ },
  },
  {
    name: 'service account not on the reporter list is denied',
    actor: 'intruder',
    operation: 'CREATE',
    object: (ctx) => report(ctx.routerId, NODE_A),
    expect: { allowed: false, message: /Identity: only the configured reporter service accounts/ },
  },
  {
    name: 'cluster admin is denied (not configured as a reporter)',
    actor: 'admin',
    operation: 'CREATE',
    object: (ctx) => report(ctx.routerId, NODE_A),
    expect: { allowed: false, message: /Identity: only the configured reporter service accounts/ },
  },
  {
    name: 'reporter token not bound to a pod is denied when node binding is required',
    actor: 'unboundReporter',
    operation: 'CREATE',
    object: (ctx) => report(ctx.routerId, NODE_A),
    expect: { allowed: false, message: /NodeBinding: the reporter's token is not bound to a node/ },
  },
  {
    name: 'name that is not <routerId>.<agent> is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => ({ ...report(ctx.routerId, NODE_A), metadata: { name: `${ctx.routerId}.node-x` } }),
    expect: { allowed: false, message: /name rule: metadata\.name must be <spec\.routerId>\.<spec\.agent>/ },
    schema: true,
  },
  {
    name: 'routerId that is not a canonical lower-case UUID is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    // Still a valid object name (lower case), so that only the UUID rule refuses it.
    object: (ctx) => report(`${ctx.routerId.slice(0, -1)}g`, NODE_A),
    expect: { allowed: false, message: /router id rule: routerId must be a lower-case canonical UUID/ },
    schema: true,
  },
  {
    name: 'unknown state is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => report(ctx.routerId, NODE_A, { state: 'Master' }),
    expect: { allowed: false, message: /spec\.state: (Unsupported value|state rule)/ },
    schema: true,
  },
  {
    name: 'message with CR/LF (log forging) is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: SPEC_MESSAGE('ok\r\nlevel=error msg="forged"'),
    expect: { allowed: false, message: PRINTABLE },
    schema: true,
  },
  {
    name: 'message with an ANSI escape is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: SPEC_MESSAGE('\u001b[31mred\u001b[0m'),
    expect: { allowed: false, message: PRINTABLE },
    schema: true,
  },
  {
    name: 'message with NUL is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: SPEC_MESSAGE('a\u0000b'),
    expect: { allowed: false, message: PRINTABLE },
    schema: true,
  },
  {
    name: 'message with a bidirectional override is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: SPEC_MESSAGE('abc\u202Edef'),
    expect: { allowed: false, message: PRINTABLE },
    schema: true,
  },
  {
    name: 'message of 10 KB is denied',
    actor: 'reporterA',
    operation: 'CREATE',
    object: SPEC_MESSAGE('x'.repeat(10 * 1024)),
    expect: { allowed: false, message: /spec\.message: (Too long|length rule)/ },
    schema: true,
  },
  {
    name: 'a newer report from the same reporter is allowed',
    actor: 'reporterA',
    operation: 'UPDATE',
    existing: NODE_A,
    object: (ctx) =>
      report(ctx.routerId, NODE_A, { state: 'Backup', observedAt: '2026-01-01T00:00:00.500000001Z' }),
    expect: { allowed: true },
  },
  {
    name: 'observedAt moving backwards by one nanosecond is denied as stale',
    actor: 'reporterA',
    operation: 'UPDATE',
    existing: NODE_A,
    object: (ctx) =>
      report(ctx.routerId, NODE_A, { state: 'Backup', observedAt: '2026-01-01T00:00:00.499999999Z' }),
    expect: { allowed: false, message: new RegExp(escapeRegExp(STALE_REPORT_MESSAGE)) },
    schema: true,
  },
  {
    name: 'changing the agent on update is denied',
    actor: 'reporterB',
    operation: 'UPDATE',
    existing: NODE_A,
    object: (ctx) => ({
      ...report(ctx.routerId, NODE_B),
      metadata: { name: `${ctx.routerId}.${NODE_A}` },
    }),
    expect: { allowed: false, message: /agent cannot change/ },
    schema: true,
  },
  {
    name: 'observedAt more than 5 minutes in the future is denied (clock rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) =>
      report(ctx.routerId, NODE_A, { observedAt: new Date(ctx.nowMs + 3_600_000).toISOString() }),
    expect: { allowed: false, message: /Clock: spec\.observedAt is more than 5 minutes ahead/ },
    policyExpect: { allowed: true, why: 'CEL has no clock: the policy mode cannot express the clock rule' },
  },
  {
    name: 'delete by the reporter of the node in spec.agent is allowed',
    actor: 'reporterA',
    operation: 'DELETE',
    existing: NODE_A,
    expect: { allowed: true },
  },
  {
    name: "delete by another node's reporter is denied",
    actor: 'reporterB',
    operation: 'DELETE',
    existing: NODE_A,
    expect: {
      allowed: false,
      message: /Delete: a reporter may delete only the reports of the node its token is bound to/,
    },
  },
  {
    name: 'delete by a service account that is not a reporter is left to RBAC (allowed here)',
    actor: 'intruder',
    operation: 'DELETE',
    existing: NODE_A,
    expect: { allowed: true },
  },
  {
    name: 'delete by the cluster administrator is allowed (a decommissioned node)',
    actor: 'admin',
    operation: 'DELETE',
    existing: NODE_A,
    expect: { allowed: true },
  },
  {
    name: 'delete by the garbage collector is allowed',
    actor: 'garbageCollector',
    operation: 'DELETE',
    existing: NODE_A,
    expect: { allowed: true },
  },
  {
    name: 'report for a router that does not exist is denied (membership rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    router: 'absent',
    object: (ctx) => report(ctx.routerId, NODE_A),
    expect: { allowed: false, message: /Membership: no HARouter of this spec\.routerId exists/ },
    policyExpect: MEMBERSHIP_WEBHOOK_ONLY,
  },
  {
    name: 'report for a router that does not list the node is denied (membership rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    router: [NODE_B],
    object: (ctx) => report(ctx.routerId, NODE_A),
    expect: { allowed: false, message: /Membership: the HARouter named by spec\.routerId does not list/ },
    policyExpect: MEMBERSHIP_WEBHOOK_ONLY,
  },
  {
    name: 'report carrying a finalizer is denied (metadata rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => withMetadata(report(ctx.routerId, NODE_A), { finalizers: [TEST_FINALIZER] }),
    expect: { allowed: false, message: METADATA },
  },
  {
    name: 'report carrying an ownerReference is denied (metadata rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) =>
      withMetadata(report(ctx.routerId, NODE_A), {
        ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'anchor', uid: randomUUID() }],
      }),
    expect: { allowed: false, message: METADATA },
  },
  {
    name: 'report with 8 labels and 8 annotations of 1 KiB each is allowed',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) =>
      withMetadata(report(ctx.routerId, NODE_A), { labels: entries(8, 30), annotations: entries(8, 1024) }),
    expect: { allowed: true },
  },
  {
    name: 'report with 9 labels is denied (metadata rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => withMetadata(report(ctx.routerId, NODE_A), { labels: entries(9) }),
    expect: { allowed: false, message: METADATA },
  },
  {
    name: 'report with 9 annotations is denied (metadata rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => withMetadata(report(ctx.routerId, NODE_A), { annotations: entries(9) }),
    expect: { allowed: false, message: METADATA },
  },
  {
    name: 'report with an annotation of 1 KiB and one byte is denied (metadata rule)',
    actor: 'reporterA',
    operation: 'CREATE',
    object: (ctx) => withMetadata(report(ctx.routerId, NODE_A), { annotations: entries(1, 1025) }),
    expect: { allowed: false, message: METADATA },
  },
  {
    name: 'reporter adding a finalizer to its own report (spec unchanged) is denied (metadata rule)',
    actor: 'reporterA',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ finalizers: [TEST_FINALIZER] }),
    expect: { allowed: false, message: METADATA },
  },
  {
    name: 'reporter adding a label to its own report (spec unchanged) is allowed',
    actor: 'reporterA',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ labels: entries(1) }),
    expect: { allowed: true },
  },
  {
    name: "another node's reporter adding a label to a report (spec unchanged) is denied (node binding)",
    actor: 'reporterB',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ labels: entries(1) }),
    expect: { allowed: false, message: NODE_MISMATCH },
  },
  {
    name: "another node's reporter adding annotations to a report (spec unchanged) is denied (node binding)",
    actor: 'reporterB',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ annotations: entries(8, 1024) }),
    expect: { allowed: false, message: NODE_MISMATCH },
  },
  {
    name: "another node's reporter adding managedFields bulk to a report (spec unchanged) is denied (node binding)",
    actor: 'reporterB',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ managedFields: managedFieldsBulk(400) }),
    expect: { allowed: false, message: NODE_MISMATCH },
  },
  {
    name: 'a reporter token not bound to a node labelling a report (spec unchanged) is denied (node binding)',
    actor: 'unboundReporter',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ labels: entries(1) }),
    expect: { allowed: false, message: /NodeBinding: the reporter's token is not bound to a node/ },
  },
  {
    name: 'reporter adding managedFields bulk to its own report (spec unchanged) is denied (size rule)',
    actor: 'reporterA',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ managedFields: managedFieldsBulk(400) }),
    expect: { allowed: false, message: SIZE },
  },
  {
    name: 'reporter writing one managedFields entry of 70 KiB into its own report is denied (size rule)',
    actor: 'reporterA',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ managedFields: [managedFieldsEntry('bloat', 8000)] }),
    expect: { allowed: false, message: SIZE },
    policyExpect: {
      allowed: true,
      why: "CEL cannot measure an object's bytes: the policy bounds managedFields by its entries (16), the webhook by the object's size",
    },
  },
  {
    name: "reporter's report with a few managedFields entries is allowed",
    actor: 'reporterA',
    operation: 'UPDATE',
    existing: NODE_A,
    object: (ctx) =>
      withMetadata(report(ctx.routerId, NODE_A, { state: 'Backup', observedAt: '2026-01-01T00:00:01Z' }), {
        managedFields: managedFieldsBulk(3),
      }),
    expect: { allowed: true },
  },
  {
    name: 'administrator adding a finalizer (spec unchanged) is allowed: RBAC decides',
    actor: 'admin',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ finalizers: [TEST_FINALIZER] }),
    expect: { allowed: true },
  },
  {
    name: 'administrator clearing a finalizer (spec unchanged) is allowed',
    actor: 'admin',
    operation: 'UPDATE',
    existing: NODE_A,
    existingFinalizer: true,
    object: sameSpec({}),
    expect: { allowed: true },
  },
  {
    name: "administrator's labels (spec unchanged) are not held to the reporter limits",
    actor: 'admin',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ labels: entries(9) }),
    expect: { allowed: true },
  },
  {
    name: 'administrator changing the spec is denied (not a reporter)',
    actor: 'admin',
    operation: 'UPDATE',
    existing: NODE_A,
    object: (ctx) => report(ctx.routerId, NODE_A, { state: 'Fault', observedAt: '2026-01-01T00:00:01Z' }),
    expect: { allowed: false, message: /Identity: only the configured reporter service accounts/ },
  },
  {
    name: 'garbage collector updating metadata only is allowed (cleanup)',
    actor: 'garbageCollector',
    operation: 'UPDATE',
    existing: NODE_A,
    object: sameSpec({ labels: entries(1) }),
    expect: { allowed: true },
  },
  {
    name: "garbage collector changing a report's spec is judged like anyone else's (denied)",
    actor: 'garbageCollector',
    operation: 'UPDATE',
    existing: NODE_A,
    object: (ctx) => report(ctx.routerId, NODE_A, { state: 'Fault', observedAt: '2026-01-01T00:00:01Z' }),
    expect: { allowed: false, message: /Identity: only the configured reporter service accounts/ },
  },
  {
    name: "delete by the operator's service account is allowed",
    actor: 'operator',
    operation: 'DELETE',
    existing: NODE_A,
    expect: { allowed: true },
  },
];

export function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------
// The pure policy side: the AdmissionRequest the API server would send.

/** The userInfo the API server gives each actor's real credentials. */
export function userInfoFor(actor: Actor, namespace: string): UserInfo {
  const sa = (name: string, node?: string): UserInfo => ({
    username: `system:serviceaccount:${namespace}:${name}`,
    uid: randomUUID(),
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
    ...(node
      ? {
          extra: {
            'authentication.kubernetes.io/node-name': [node],
            'authentication.kubernetes.io/pod-name': [`${name}-${node}`],
            'authentication.kubernetes.io/pod-uid': [randomUUID()],
          },
        }
      : {}),
  });
  switch (actor) {
    case 'reporterA':
      return sa(SA.reporter, NODE_A);
    case 'reporterB':
      return sa(SA.reporter, NODE_B);
    case 'unboundReporter':
      return sa(SA.reporter);
    case 'intruder':
      return sa(SA.intruder, NODE_A);
    case 'operator':
      return sa(SA.operator);
    case 'admin':
      return { username: 'harouter-admin', groups: ['system:masters', 'system:authenticated'] };
    case 'garbageCollector':
      return {
        username: GARBAGE_COLLECTOR,
        uid: randomUUID(),
        groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'],
      };
  }
}

/** The garbage collector's identity (one of the cleanup identities of `CLEANUP_USERNAMES`). */
const GARBAGE_COLLECTOR = 'system:serviceaccount:kube-system:generic-garbage-collector';

/** The agents of the case's HARouter (undefined: absent). */
function caseRouterAgents(c: AdmissionCase): readonly string[] | undefined {
  return c.router === 'absent' ? undefined : (c.router ?? [NODE_A, NODE_B]);
}

/** The webhook's view of the HARouters for a case: only `ctx.routerId`, in `namespace`. */
export function routersFor(c: AdmissionCase, namespace: string, ctx: CaseContext): RouterAgents {
  const agents = caseRouterAgents(c);
  return (ns, routerId) => (ns === namespace && routerId === ctx.routerId ? agents : undefined);
}

/** The AdmissionRequest of a case, as the API server would send it to the webhook. */
export function admissionRequestFor(c: AdmissionCase, namespace: string, ctx: CaseContext): AdmissionRequest {
  const stored = c.existing ? report(ctx.routerId, c.existing) : undefined;
  if (stored) stored.metadata.namespace = namespace;
  if (stored && c.existingFinalizer) stored.metadata.finalizers = [TEST_FINALIZER];
  const object = toJson(c.object?.(ctx));
  const name = (object as ReportObject | undefined)?.metadata?.name ?? stored?.metadata.name ?? ctx.routerId;
  return {
    uid: randomUUID(),
    kind: { group: 'harouter.dev', version: 'v1alpha1', kind: HAROUTER_STATE.kind },
    resource: { group: 'harouter.dev', version: 'v1alpha1', resource: HAROUTER_STATE.plural },
    name,
    namespace,
    operation: c.operation,
    userInfo: userInfoFor(c.actor, namespace),
    ...(c.operation !== 'DELETE' ? { object } : {}),
    ...(c.operation !== 'CREATE' ? { oldObject: stored } : {}),
  };
}

// ---------------------------------------------------------------------------
// The corpus: objects the zod schemas and the CRD schemas must classify alike.

export interface CorpusEntry {
  name: string;
  valid: boolean;
  /** Builds the object for a router id (so that every run can create it afresh). */
  object: (routerId: string) => Record<string, unknown>;
}

const stateWith = (name: string, valid: boolean, spec: Record<string, unknown>): CorpusEntry => ({
  name,
  valid,
  object: (routerId) => {
    const base = report(routerId, NODE_A);
    return { ...base, spec: { ...base.spec, ...spec } };
  },
});

const observedAt = (value: string, valid: boolean) =>
  stateWith(`observedAt ${JSON.stringify(value)}`, valid, { observedAt: value });
const message = (label: string, value: string, valid: boolean) =>
  stateWith(`message ${label}`, valid, { message: value });

/** HARouterState objects (created as the admin, so only the schema decides). */
export const STATE_CORPUS: CorpusEntry[] = [
  stateWith('minimal valid report', true, {}),
  stateWith('state Backup', true, { state: 'Backup' }),
  stateWith('state Fault', true, { state: 'Fault' }),
  stateWith('state Stopped', true, { state: 'Stopped' }),
  stateWith('state lower-case', false, { state: 'primary' }),
  stateWith('state Unknown (not reportable)', false, { state: 'Unknown' }),
  stateWith('priority 0', true, { priority: 0 }),
  stateWith('priority 255', true, { priority: 255 }),
  stateWith('priority 256', false, { priority: 256 }),
  stateWith('priority -1', false, { priority: -1 }),
  stateWith('priority 1.5', false, { priority: 1.5 }),
  stateWith('priority as a string', false, { priority: '100' }),
  observedAt('2026-01-01T00:00:00Z', true),
  observedAt('2026-01-01T00:00:00.1Z', true),
  observedAt('2026-01-01T00:00:00.123456789Z', true),
  observedAt('2026-01-01T00:00:00.1234567891Z', false),
  observedAt('2026-01-01T00:00:00+05:30', true),
  observedAt('2026-01-01T00:00:00.5-08:00', true),
  observedAt('2024-02-29T12:00:00Z', true),
  observedAt('2023-02-29T12:00:00Z', false),
  observedAt('2026-04-31T12:00:00Z', false),
  observedAt('2026-01-01T24:00:00Z', false),
  observedAt('2026-12-31T23:59:60Z', false),
  observedAt('2026-01-01t00:00:00z', false),
  observedAt('2026-01-01 00:00:00Z', false),
  observedAt('2026-01-01T00:00:00', false),
  observedAt('2026-01-01T00:00:00+0530', false),
  observedAt('2026-01-01', false),
  observedAt('0999-01-01T00:00:00Z', false),
  observedAt('1000-01-01T00:00:00Z', true),
  observedAt('yesterday', false),
  stateWith('observedAt missing', false, { observedAt: undefined }),
  message('of 256 ASCII characters', 'x'.repeat(256), true),
  message('of 257 ASCII characters', 'x'.repeat(257), false),
  message('of 256 astral code points (512 UTF-16 units)', '😀'.repeat(256), true),
  message('of 257 astral code points', '😀'.repeat(257), false),
  message('with a tab', 'a\tb', false),
  message('with DEL', 'a\u007fb', false),
  message('with a C1 control (NEL)', 'a\u0085b', false),
  message('with U+2066 (LRI)', 'a\u2066b', false),
  message('with U+2028 (line separator, not Cc)', 'a\u2028b', true),
  message('with Unicode text', 'Grüße, 路由器 ✓', true),
  message('empty', '', true),
  {
    name: 'agent of 216 characters',
    valid: true,
    object: (routerId) => {
      const agent = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(24)}`;
      return report(routerId, agent) as unknown as Record<string, unknown>;
    },
  },
  {
    name: 'agent of 217 characters',
    valid: false,
    object: (routerId) => {
      const agent = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(25)}`;
      return report(routerId, agent) as unknown as Record<string, unknown>;
    },
  },
  {
    name: 'agent with upper case',
    valid: false,
    object: (routerId) => report(routerId, 'Node-A') as unknown as Record<string, unknown>,
  },
  {
    name: 'agent with a leading hyphen',
    valid: false,
    object: (routerId) => report(routerId, '-node') as unknown as Record<string, unknown>,
  },
  {
    name: 'agent with an FQDN',
    valid: true,
    object: (routerId) => report(routerId, 'node-a.rack1.example.com') as unknown as Record<string, unknown>,
  },
  {
    name: 'routerId with braces',
    valid: false,
    object: (routerId) => report(`{${routerId}}`.slice(0, 36), NODE_A) as unknown as Record<string, unknown>,
  },
  {
    name: 'routerId without hyphens',
    valid: false,
    object: (routerId) =>
      report(routerId.replaceAll('-', '').padEnd(36, '0'), NODE_A) as unknown as Record<string, unknown>,
  },
  {
    name: 'name mismatch',
    valid: false,
    object: (routerId) => ({ ...report(routerId, NODE_A), metadata: { name: `${routerId}.${NODE_B}` } }),
  },
  {
    name: 'spec missing',
    valid: false,
    object: (routerId) => ({
      apiVersion: API_VERSION,
      kind: HAROUTER_STATE.kind,
      metadata: { name: `${routerId}.${NODE_A}` },
    }),
  },
  stateWith('routerId missing', false, { routerId: undefined }),
  stateWith('state missing', false, { state: undefined }),
];

const routerWith = (
  name: string,
  valid: boolean,
  spec: Record<string, unknown>,
  routerName?: string,
): CorpusEntry => ({
  name,
  valid,
  object: (routerId) => ({
    apiVersion: API_VERSION,
    kind: 'HARouter',
    metadata: { name: routerName ?? routerId },
    spec: { agents: [{ name: NODE_A }, { name: NODE_B, priority: 100 }], ...spec },
  }),
});

/** HARouter objects. */
export const ROUTER_CORPUS: CorpusEntry[] = [
  routerWith('two agents', true, {}),
  routerWith('name not a UUID', false, {}, 'router-1'),
  routerWith('upper-case UUID name', false, {}, 'AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE'),
  routerWith('no agents', false, { agents: [] }),
  routerWith('16 agents', true, { agents: Array.from({ length: 16 }, (_, i) => ({ name: `node-${i}` })) }),
  routerWith('17 agents', false, { agents: Array.from({ length: 17 }, (_, i) => ({ name: `node-${i}` })) }),
  routerWith('duplicate agents', false, { agents: [{ name: NODE_A }, { name: NODE_A, priority: 5 }] }),
  routerWith('agent priority 0', false, { agents: [{ name: NODE_A, priority: 0 }] }),
  routerWith('agent priority 254', true, { agents: [{ name: NODE_A, priority: 254 }] }),
  routerWith('agent priority 255', false, { agents: [{ name: NODE_A, priority: 255 }] }),
  routerWith('agent name upper case', false, { agents: [{ name: 'Node-A' }] }),
  routerWith('displayName of 64 characters', true, { displayName: 'é'.repeat(64) }),
  routerWith('displayName of 65 characters', false, { displayName: 'é'.repeat(65) }),
  routerWith('displayName with LF', false, { displayName: 'edge\nrouter' }),
  routerWith('endpoint', true, {
    endpoint: { serviceName: 'edge-vip', ports: [{ name: 'bgp', port: 179, protocol: 'TCP' }, { port: 53 }] },
  }),
  routerWith('endpoint port name upper case', false, {
    endpoint: { serviceName: 'edge-vip', ports: [{ name: 'BGP', port: 179 }] },
  }),
  routerWith('endpoint port name with an underscore', false, {
    endpoint: { serviceName: 'edge-vip', ports: [{ name: 'bgp_1', port: 179 }] },
  }),
  routerWith('endpoint without ports', false, { endpoint: { serviceName: 'edge-vip', ports: [] } }),
  routerWith('endpoint port 0', false, { endpoint: { serviceName: 'edge-vip', ports: [{ port: 0 }] } }),
  routerWith('endpoint protocol HTTP', false, {
    endpoint: { serviceName: 'edge-vip', ports: [{ port: 80, protocol: 'HTTP' }] },
  }),
  routerWith('endpoint service name upper case', false, {
    endpoint: { serviceName: 'Edge', ports: [{ port: 80 }] },
  }),
  routerWith('agents missing', false, { agents: undefined }),
  ...VRRP_CORPUS(),
];

/** `spec.vrrp` and `spec.preferredAgent`: bounds, CIDR forms, and the rules across fields. */
function VRRP_CORPUS(): CorpusEntry[] {
  const base = { interface: 'eth0', virtualIPs: ['192.0.2.10/24'] };
  const vrrp = (
    name: string,
    valid: boolean,
    fields: Record<string, unknown>,
    spec: Record<string, unknown> = {},
  ) => routerWith(`vrrp ${name}`, valid, { vrrp: { ...base, ...fields }, ...spec });
  const vips = (name: string, valid: boolean, virtualIPs: string[]) => vrrp(name, valid, { virtualIPs });
  const agents = (...priorities: (number | undefined)[]) =>
    priorities.map((priority, i) => ({ name: `node-${i}`, ...(priority !== undefined ? { priority } : {}) }));
  return [
    vrrp('minimal', true, {}),
    vrrp('every field at its bound', true, {
      segment: 's'.repeat(63),
      vrid: 254,
      advertIntervalMs: 40950,
      fenceHoldSeconds: 900,
      failbackDelaySeconds: 0,
      virtualIPs: Array.from({ length: 16 }, (_, i) => `192.0.2.${i + 1}/24`),
    }),
    vrrp('vrid 1', true, { vrid: 1 }),
    vrrp('vrid 0', false, { vrid: 0 }),
    vrrp('vrid 255', false, { vrid: 255 }),
    vrrp('segment edge-1', true, { segment: 'edge-1' }),
    vrrp('segment upper case', false, { segment: 'Edge' }),
    vrrp('segment of 64 characters', false, { segment: 's'.repeat(64) }),
    vrrp('segment with a dot', false, { segment: 'edge.1' }),
    vrrp('interface missing', false, { interface: undefined }),
    vrrp('interface empty', false, { interface: '' }),
    vrrp('interface eth0.100', true, { interface: 'eth0.100' }),
    vrrp('interface of 15 characters', true, { interface: 'e'.repeat(15) }),
    vrrp('interface of 16 characters', false, { interface: 'e'.repeat(16) }),
    vrrp('interface with a space', false, { interface: 'eth 0' }),
    vrrp('interface with a brace', false, { interface: 'eth0}' }),
    vrrp('virtualIPs missing', false, { virtualIPs: undefined }),
    vips('virtualIPs empty', false, []),
    vips(
      '17 virtualIPs',
      false,
      Array.from({ length: 17 }, (_, i) => `192.0.2.${i + 1}/24`),
    ),
    vips('virtual IP without prefix', false, ['192.0.2.10']),
    vips('virtual IP octet 300', false, ['192.0.2.300/24']),
    vips('virtual IP prefix 33', false, ['192.0.2.10/33']),
    vips('virtual IP prefix 32', true, ['192.0.2.10/32']),
    vips('virtual IP prefix 0', true, ['192.0.2.10/0']),
    vips('virtual IP leading zero octet', false, ['192.0.2.010/24']),
    vips('virtual IP leading zero prefix', false, ['192.0.2.10/024']),
    vips('virtual IP with spaces', false, [' 192.0.2.10/24']),
    vips('IPv6 virtual IPs', true, ['2001:db8::10/64', '2001:DB8:0:0:0:0:0:11/128']),
    vips('IPv6 with embedded IPv4', true, ['64:ff9b::192.0.2.1/96']),
    vips('IPv6 full form', true, ['fe80:0:0:0:0:0:0:1/64']),
    vips('IPv6 prefix 129', false, ['2001:db8::10/129']),
    vips('IPv4-mapped IPv6', false, ['::ffff:192.0.2.1/96']),
    vips('IPv4-mapped IPv6 in hex', false, ['::ffff:c000:201/96']),
    vips('IPv6 with a zone', false, ['fe80::1%eth0/64']),
    vips('IPv6 with two ::', false, ['2001::db8::1/64']),
    vips('IPv6 with 9 groups', false, ['1:2:3:4:5:6:7:8:9/64']),
    vips('IPv6 group of 5 digits', false, ['2001:db8::12345/64']),
    vips('mixed families', false, ['192.0.2.10/24', '2001:db8::10/64']),
    vips('same address twice', false, ['192.0.2.10/24', '192.0.2.10/32']),
    vips('same IPv6 address in two spellings', false, ['2001:db8::1/64', '2001:DB8:0::1/128']),
    vrrp('advertIntervalMs 100', true, { advertIntervalMs: 100 }),
    vrrp('advertIntervalMs 90', false, { advertIntervalMs: 90 }),
    vrrp('advertIntervalMs 105', false, { advertIntervalMs: 105 }),
    vrrp('advertIntervalMs 40960', false, { advertIntervalMs: 40960 }),
    vrrp('fenceHoldSeconds 0', false, { fenceHoldSeconds: 0 }),
    vrrp('fenceHoldSeconds 901', false, { fenceHoldSeconds: 901 }),
    vrrp('failbackDelaySeconds -1', false, { failbackDelaySeconds: -1 }),
    vrrp('failbackDelaySeconds 3601', false, { failbackDelaySeconds: 3601 }),
    vrrp('preferredAgent a member', true, {}, { preferredAgent: NODE_B }),
    vrrp('preferredAgent not a member', false, {}, { preferredAgent: 'node-z' }),
    routerWith('preferredAgent without vrrp', false, { preferredAgent: NODE_A }),
    vrrp('equal explicit priorities', false, {}, { agents: agents(150, 150) }),
    routerWith('equal priorities without vrrp', true, { agents: agents(150, 150) }),
    vrrp('a priority equal to a default one', false, {}, { agents: agents(undefined, 200) }),
    vrrp('a default priority equal to a set one', false, {}, { agents: agents(190, undefined) }),
    vrrp('16 agents with default priorities', true, {}, { agents: agents(...new Array(16).fill(undefined)) }),
  ];
}

/** JSON without `undefined` members (what an API request carries). */
export function toJson(value: unknown): unknown {
  return value === undefined ? undefined : JSON.parse(JSON.stringify(value));
}

// ---------------------------------------------------------------------------
// The cluster side: raw requests with a KubeConfig's credentials.

export interface KubeResponse {
  status: number;
  body: { message?: string; reason?: string; code?: number; [key: string]: unknown };
}

/** One HTTP request to the API server with a KubeConfig's credentials; never throws on an HTTP status. */
export async function kubeRequest(
  kc: KubeConfig,
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
  path: string,
  body?: unknown,
  contentType = 'application/json',
): Promise<KubeResponse> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no cluster');
  const url = new URL(path, cluster.server);
  const options: import('node:https').RequestOptions = {
    method,
    hostname: url.hostname,
    port: url.port,
    path: url.pathname + url.search,
    headers: {},
  };
  await kc.applyToHTTPSOptions(options);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        ...options,
        headers: {
          ...options.headers,
          Accept: 'application/json',
          ...(payload !== undefined ? { 'Content-Type': contentType } : {}),
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: KubeResponse['body'] = {};
          try {
            parsed = text ? JSON.parse(text) : {};
          } catch {
            parsed = { message: text };
          }
          resolve({ status: res.statusCode ?? 0, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request timed out: ${method} ${path}`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/** The collection path of HARouterStates (or HARouters) in a namespace. */
export function collectionPath(namespace: string, plural: string = HAROUTER_STATE.plural): string {
  return `/apis/${API_VERSION}/namespaces/${namespace}/${plural}`;
}

/** Polls `check` until it returns a value other than undefined, or throws after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Server-side applies an object as `harouter-test` (idempotent, safe when test files race). */
export async function applyObject(kc: KubeConfig, path: string, object: unknown): Promise<KubeResponse> {
  const res = await kubeRequest(
    kc,
    'PATCH',
    `${path}?fieldManager=harouter-test&force=true`,
    object,
    'application/apply-patch+yaml',
  );
  if (res.status >= 300) throw new Error(`apply ${path} failed: ${res.status} ${res.body.message}`);
  return res;
}

/** Installs both CRDs (from the same definitions as crds/*.yaml) and waits until they are served. */
export async function installCrds(kc: KubeConfig): Promise<void> {
  const { allCrds } = await import('../../src/api/crds.ts');
  for (const { crd } of allCrds()) {
    const path = `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`;
    await applyObject(kc, path, crd);
    await waitFor(`CRD ${crd.metadata.name} established`, async () => {
      const res = await kubeRequest(kc, 'GET', path);
      const conditions = (res.body.status as { conditions?: { type: string; status: string }[] } | undefined)
        ?.conditions;
      return conditions?.some((c) => c.type === 'Established' && c.status === 'True') ? true : undefined;
    });
  }
  await waitFor('harouter.dev/v1alpha1 discovery', async () => {
    const res = await kubeRequest(kc, 'GET', `/apis/${API_VERSION}`);
    const names = ((res.body.resources as { name: string }[] | undefined) ?? []).map((r) => r.name);
    return names.includes('harouters') && names.includes('harouterstates') ? true : undefined;
  });
}

// ---------------------------------------------------------------------------
// The admission table on the real API server (integration tier).

/** A namespace with the reporter, intruder and operator identities, each with real tokens. */
export interface ClusterFixture {
  namespace: string;
  config: AdmissionConfig;
  admin: KubeConfig;
  clients: Record<Actor, KubeConfig>;
  /** A HARouter listing node-a and node-b that never gets a report: dry-run probes report for it. */
  probeRouterId: string;
}

/**
 * Installs the CRDs, creates a namespace, RBAC that lets every test identity write
 * HARouterStates there (so that only admission decides), and real TokenRequest
 * tokens: the reporter pod-bound on node-a and on node-b, the reporter unbound, an
 * intruder pod-bound on node-a, the operator, and the garbage collector (a cleanup
 * identity, whose own ClusterRole lets it update and delete anything); and a
 * HARouter for the probes.
 */
export async function setUpAdmissionCluster(prefix: string): Promise<ClusterFixture> {
  const support = await import('./index.ts');
  const admin = support.adminKubeConfig();
  await installCrds(admin);
  await keepConfigMapParamInformer(admin);
  const namespace = await support.createTestNamespace(prefix);
  const rbac = `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}`;
  await applyObject(admin, `${rbac}/roles/harouterstate-writer`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'harouterstate-writer', namespace },
    rules: [
      {
        apiGroups: ['harouter.dev'],
        resources: ['harouterstates'],
        verbs: ['get', 'list', 'create', 'update', 'patch', 'delete'],
      },
    ],
  });
  await applyObject(admin, `${rbac}/rolebindings/harouterstate-writer`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'harouterstate-writer', namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'harouterstate-writer' },
    subjects: Object.values(SA).map((name) => ({ kind: 'ServiceAccount', name, namespace })),
  });
  const mint = async (serviceAccount: string, pod?: { name: string; nodeName: string }) =>
    support.kubeConfigForToken(
      await support.mintServiceAccountToken({ namespace, serviceAccount, ...(pod ? { pod } : {}) }),
      namespace,
    );
  const clients: Record<Actor, KubeConfig> = {
    reporterA: await mint(SA.reporter, { name: 'reporter-a', nodeName: NODE_A }),
    reporterB: await mint(SA.reporter, { name: 'reporter-b', nodeName: NODE_B }),
    unboundReporter: await mint(SA.reporter),
    intruder: await mint(SA.intruder, { name: 'intruder-a', nodeName: NODE_A }),
    operator: await mint(SA.operator),
    garbageCollector: support.kubeConfigForToken(
      await support.mintServiceAccountToken({
        namespace: 'kube-system',
        serviceAccount: 'generic-garbage-collector',
      }),
      namespace,
    ),
    admin,
  };
  const probeRouterId = randomUUID();
  await createRouter(admin, namespace, probeRouterId, [NODE_A, NODE_B]);
  return { namespace, config: testAdmissionConfig(namespace), admin, clients, probeRouterId };
}

/** Creates the HARouter `routerId` listing `agents` (as the administrator). */
export async function createRouter(
  admin: KubeConfig,
  namespace: string,
  routerId: string,
  agents: readonly string[],
): Promise<void> {
  const res = await kubeRequest(admin, 'POST', collectionPath(namespace, 'harouters'), {
    apiVersion: API_VERSION,
    kind: 'HARouter',
    metadata: { name: routerId },
    spec: { agents: agents.map((name) => ({ name })) },
  });
  if (res.status !== 201) throw new Error(`setup: creating HARouter ${routerId}: ${res.body.message}`);
}

/** A label selector for exactly these namespaces (admission objects in tests never reach other files). */
export function onlyNamespaces(...namespaces: string[]) {
  return { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: namespaces }] };
}

/**
 * Waits until admission intercepts writes in the fixture's namespace: a dry-run
 * create by the cluster admin (not a reporter) is refused by the Identity rule
 * (with a message matching `source`, to tell the policy from the webhook), and a
 * dry-run create by the reporter on its node is allowed (a policy whose parameters
 * are not loaded yet denies everything). Three rounds in a row, since the API
 * server loads admission configuration asynchronously.
 */
export async function waitUntilIntercepting(
  fx: ClusterFixture,
  options: { source?: RegExp; timeoutMs?: number } = {},
): Promise<void> {
  const path = `${collectionPath(fx.namespace)}?dryRun=All`;
  let streak = 0;
  let seen = '';
  await waitFor(
    'admission to intercept HARouterState writes',
    async () => {
      const denied = await kubeRequest(fx.admin, 'POST', path, report(fx.probeRouterId, NODE_A));
      const allowed = await kubeRequest(fx.clients.reporterA, 'POST', path, report(fx.probeRouterId, NODE_A));
      seen = `admin: ${denied.status} ${denied.body.message}; reporter: ${allowed.status} ${allowed.body.message}`;
      const ok =
        denied.status === 403 &&
        /Identity:/.test(denied.body.message ?? '') &&
        (options.source ?? /./).test(denied.body.message ?? '') &&
        allowed.status === 201;
      streak = ok ? streak + 1 : 0;
      return streak >= 3 ? true : undefined;
    },
    options.timeoutMs ?? 60_000,
  ).catch((err: Error) => {
    throw new Error(`${err.message} (last seen: ${seen})`);
  });
}

export interface ClusterOutcome {
  allowed: boolean;
  status: number;
  message: string;
}

/** Runs one case of the table against the API server and reports what it answered. */
export async function runClusterCase(fx: ClusterFixture, c: AdmissionCase): Promise<ClusterOutcome> {
  const ctx: CaseContext = { routerId: randomUUID(), nowMs: Date.now() };
  const path = collectionPath(fx.namespace);
  const agents = caseRouterAgents(c);
  if (agents) {
    await createRouter(fx.admin, fx.namespace, ctx.routerId, agents);
    // The webhook reads HARouters from its informer cache: wait until a member's report passes.
    const member = agents[0] === NODE_A ? fx.clients.reporterA : fx.clients.reporterB;
    await waitFor('the HARouter to reach the webhook cache', async () => {
      const probe = report(ctx.routerId, agents[0] as string);
      const res = await kubeRequest(member, 'POST', `${path}?dryRun=All`, probe);
      return res.status === 201 ? true : undefined;
    });
  }
  if (c.existing) {
    const owner = c.existing === NODE_A ? fx.clients.reporterA : fx.clients.reporterB;
    const created = await kubeRequest(owner, 'POST', path, report(ctx.routerId, c.existing));
    if (created.status !== 201)
      throw new Error(`setup: creating the existing report: ${created.body.message}`);
    if (c.existingFinalizer) {
      await setFinalizers(fx, `${path}/${ctx.routerId}.${c.existing}`, [TEST_FINALIZER]);
    }
  }
  try {
    return await sendCase(fx, c, ctx);
  } finally {
    // A finalizer left behind would hold the namespace in Terminating.
    const name = `${ctx.routerId}.${c.existing ?? NODE_A}`;
    const left = await kubeRequest(fx.admin, 'GET', `${path}/${name}`);
    if ((left.body.metadata as { finalizers?: string[] } | undefined)?.finalizers?.length) {
      await setFinalizers(fx, `${path}/${name}`, null);
    }
  }
}

/** Sets (or with null clears) a report's finalizers as the administrator, by merge patch. */
async function setFinalizers(fx: ClusterFixture, objectPath: string, finalizers: string[] | null) {
  const res = await kubeRequest(
    fx.admin,
    'PATCH',
    objectPath,
    { metadata: { finalizers } },
    'application/merge-patch+json',
  );
  if (res.status !== 200) throw new Error(`setting finalizers on ${objectPath}: ${res.body.message}`);
}

async function sendCase(fx: ClusterFixture, c: AdmissionCase, ctx: CaseContext): Promise<ClusterOutcome> {
  const path = collectionPath(fx.namespace);
  const client = fx.clients[c.actor];
  let res: KubeResponse;
  if (c.operation === 'CREATE') {
    res = await kubeRequest(client, 'POST', path, toJson(c.object?.(ctx)));
  } else {
    const name = `${ctx.routerId}.${c.existing}`;
    if (c.operation === 'DELETE') {
      res = await kubeRequest(client, 'DELETE', `${path}/${name}`);
    } else {
      const current = await kubeRequest(fx.admin, 'GET', `${path}/${name}`);
      const next = toJson(c.object?.(ctx)) as ReportObject;
      next.metadata.resourceVersion = (current.body.metadata as { resourceVersion: string }).resourceVersion;
      res = await kubeRequest(client, 'PUT', `${path}/${name}`, next);
    }
  }
  return { allowed: res.status < 300, status: res.status, message: res.body.message ?? '' };
}

/** A create by the intruder (a service account not on the reporter list): what a denial reads like. */
export function intruderCreate(fx: ClusterFixture): Promise<KubeResponse> {
  return kubeRequest(fx.clients.intruder, 'POST', collectionPath(fx.namespace), report(randomUUID(), NODE_A));
}

const ADMISSION_API = '/apis/admissionregistration.k8s.io/v1';

/** The operator's webhook served in-process for a fixture, registered for the given namespaces. */
export interface TestWebhook {
  server: import('../../src/webhook/server.ts').WebhookServer;
  metrics: import('../../src/metrics.ts').Metrics;
  /** Stops the server (the configuration stays: the webhook is then down). */
  stop(): Promise<void>;
  /** Deletes the configuration, stops the server and removes the certificate. */
  uninstall(): Promise<void>;
}

/**
 * Serves the webhook in-process over TLS (certificate from the run's CA, for
 * 127.0.0.1; callers must present the API server's webhook client certificate)
 * and registers it with `clientConfig.url`, through the same
 * `webhookConfiguration()` the local mode uses, scoped to `namespaces`.
 */
export async function installTestWebhook(
  fx: ClusterFixture,
  namespaces: string[] = [fx.namespace],
  config: AdmissionConfig = fx.config,
): Promise<TestWebhook> {
  const [{ mkdtemp, rm }, { tmpdir }, { join }] = await Promise.all([
    import('node:fs/promises'),
    import('node:os'),
    import('node:path'),
  ]);
  const support = await import('./index.ts');
  const { base64File } = await import('../../src/local/controlplane/index.ts');
  const { createLogger } = await import('../../src/log.ts');
  const { createMetrics } = await import('../../src/metrics.ts');
  const { webhookConfiguration } = await import('../../src/webhook/manifests.ts');
  const { startWebhookServer } = await import('../../src/webhook/server.ts');
  const { Informer, collectionPath: informerPath } = await import('../../src/kube/informer.ts');
  const { createKubeClients } = await import('../../src/kube/client.ts');
  const { kubeConfigConnection } = await import('../../src/kube/kubeconfig.ts');
  const { routerAgents } = await import('../../src/webhook/policy.ts');
  const dir = await mkdtemp(join(tmpdir(), 'admission-webhook-'));
  const info = support.controlPlaneInfo();
  await support.issueServingCert({
    ca: { certPath: info.caCertPath, keyPath: info.caKeyPath },
    dir,
    name: 'tls',
  });
  const metrics = createMetrics({ processMetrics: false });
  const logger = createLogger('silent');
  // As in the operator: the membership rule reads a HARouter informer's cache, synced before serving.
  const clients = createKubeClients(kubeConfigConnection(fx.admin));
  const routers = new Informer<HARouter>({
    name: 'harouters',
    raw: clients.raw,
    watch: clients.watch,
    path: informerPath({ group: GROUP, version: VERSION, plural: HAROUTER.plural }),
    log: logger,
  });
  routers.start();
  await routers.waitForSync();
  const server = await startWebhookServer({
    bindAddress: '127.0.0.1:0',
    certDir: dir,
    // As in local mode: only the API server (its client certificate for webhooks) gets past TLS.
    clientCaFile: info.webhookClientCaPath,
    config,
    routers: (namespace, routerId) => routerAgents(routers.get(`${namespace}/${routerId}`)),
    logger,
    metrics,
  });
  const name = `harouter-test-${fx.namespace}`;
  const path = `${ADMISSION_API}/validatingwebhookconfigurations/${name}`;
  await applyObject(
    fx.admin,
    path,
    webhookConfiguration({
      name,
      url: `https://127.0.0.1:${server.port}/validate`,
      caBundle: await base64File(info.caCertPath),
      namespaceSelector: onlyNamespaces(...namespaces),
    }),
  );
  let stopped = false;
  const stop = async () => {
    if (!stopped) await Promise.all([server.close(), routers.stop().then(() => clients.close())]);
    stopped = true;
  };
  return {
    server,
    metrics,
    stop,
    uninstall: async () => {
      await kubeRequest(fx.admin, 'DELETE', path);
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Kubernetes 1.36 stops the API server's informer for a built-in `paramKind`
 * (here ConfigMap) for good once no ValidatingAdmissionPolicyBinding uses it for
 * a moment; later policies then deny everything with "no params found" until the
 * API server restarts (kubernetes/kubernetes#133827, fix in #134423, backport
 * #142150). A test run shares one API server, so this keeper binding (matching
 * no real request, never deleted) holds the informer alive for the whole run.
 * Idempotent; call it before any policy with ConfigMap parameters is installed.
 */
export async function keepConfigMapParamInformer(admin: KubeConfig): Promise<void> {
  const name = 'harouter-test-configmap-param-keeper';
  await applyObject(admin, `${ADMISSION_API}/validatingadmissionpolicies/${name}`, {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name },
    spec: {
      failurePolicy: 'Ignore',
      paramKind: { apiVersion: 'v1', kind: 'ConfigMap' },
      matchConstraints: {
        resourceRules: [
          {
            apiGroups: ['harouter.dev'],
            apiVersions: ['*'],
            resources: ['never-served'],
            operations: ['CREATE'],
          },
        ],
      },
      validations: [{ expression: 'true' }],
    },
  });
  await applyObject(admin, `${ADMISSION_API}/validatingadmissionpolicybindings/${name}`, {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name },
    spec: {
      policyName: name,
      validationActions: ['Deny'],
      paramRef: { name, namespace: 'kube-system', parameterNotFoundAction: 'Allow' },
    },
  });
}

/**
 * Installs the ValidatingAdmissionPolicy, its binding (scoped to the fixture's
 * namespace) and the parameter ConfigMap (in the fixture's namespace). Returns
 * a function that sets the parameters and one that removes the policy from the
 * fixture's namespace. The binding itself stays (see {@link keepConfigMapParamInformer}).
 */
export async function installTestPolicy(fx: ClusterFixture) {
  const manifests = await import('../../src/webhook/manifests.ts');
  await keepConfigMapParamInformer(fx.admin);
  const name = `harouter-admission-${fx.namespace}`;
  const setParams = (config: AdmissionConfig) =>
    applyObject(
      fx.admin,
      `/api/v1/namespaces/${fx.namespace}/configmaps/${manifests.POLICY_PARAMS_NAME}`,
      manifests.admissionParamsConfigMap(config, fx.namespace),
    );
  await setParams(fx.config);
  await applyObject(
    fx.admin,
    `${ADMISSION_API}/validatingadmissionpolicies/${name}`,
    manifests.validatingAdmissionPolicy(name),
  );
  await applyObject(
    fx.admin,
    `${ADMISSION_API}/validatingadmissionpolicybindings/${name}`,
    manifests.validatingAdmissionPolicyBinding({
      name,
      policyName: name,
      paramsNamespace: fx.namespace,
      namespaceSelector: onlyNamespaces(fx.namespace),
    }),
  );
  return {
    setParams,
    // Deleting the binding could stop the ConfigMap informer for every later test
    // (see keepConfigMapParamInformer): the policy stays, scoped to this fixture's
    // namespace, whose objects no other test touches.
    uninstall: async () => {},
  };
}
