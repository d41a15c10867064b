import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isPrintable, STALE_REPORT_MESSAGE } from '../../src/api/index.ts';
import { type AdmissionConfig, CLEANUP_USERNAMES, serviceAccountUsername } from '../../src/webhook/config.ts';
import { admit, CLOCK_SKEW_LIMIT_MS, type RouterAgents } from '../../src/webhook/policy.ts';
import type { AdmissionRequest } from '../../src/webhook/review.ts';
import {
  ADMISSION_CASES,
  admissionRequestFor,
  entries,
  NODE_A,
  NODE_B,
  report,
  routersFor,
  SA,
  testAdmissionConfig,
  userInfoFor,
} from '../support/admission-cases.ts';

const NS = 'team-a';
const config = testAdmissionConfig(NS);
const NOW = Date.parse('2026-06-01T12:00:00Z');
/** The webhook's HARouter cache: every router lists node-a and node-b. */
const ROUTERS: RouterAgents = () => [NODE_A, NODE_B];

describe('the shared admission table through the pure policy', () => {
  it.each(ADMISSION_CASES)('$name', (c) => {
    const ctx = { routerId: randomUUID(), nowMs: NOW };
    const decision = admit(admissionRequestFor(c, NS, ctx), config, NOW, routersFor(c, NS, ctx));
    expect(decision.allowed, decision.message).toBe(c.expect.allowed);
    if (c.expect.message) expect(decision.message).toMatch(c.expect.message);
  });
});

function write(object: unknown, user = userInfoFor('reporterA', NS), oldObject?: unknown): AdmissionRequest {
  return {
    uid: randomUUID(),
    resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
    namespace: NS,
    operation: oldObject ? 'UPDATE' : 'CREATE',
    userInfo: user,
    object,
    ...(oldObject ? { oldObject } : {}),
  };
}

describe('admit', () => {
  const routerId = randomUUID();
  const valid = report(routerId, NODE_A);

  it('applies the rules in order: Identity before NodeBinding before Shape', () => {
    const bad = { ...report(routerId, 'node-b'), metadata: { name: 'wrong' } };
    const asIntruder = admit(write(bad, userInfoFor('intruder', NS)), config, NOW, ROUTERS);
    expect(asIntruder).toMatchObject({ allowed: false, rule: 'Identity', reason: 'NotAReporter', code: 403 });
    const asReporter = admit(write(bad), config, NOW, ROUTERS);
    expect(asReporter).toMatchObject({ allowed: false, rule: 'NodeBinding', reason: 'NodeMismatch' });
    expect(asReporter.message).toContain('"node-a"');
    const onItsNode = admit(write({ ...valid, metadata: { name: 'wrong' } }), config, NOW, ROUTERS);
    expect(onItsNode).toMatchObject({ allowed: false, rule: 'Shape', reason: 'NameMismatch', code: 422 });
  });

  it('allows the cluster admin only when configured as a user or group', () => {
    const admin = userInfoFor('admin', NS);
    expect(admit(write(valid, admin), config, NOW, ROUTERS).allowed).toBe(false);
    expect(
      admit(write(valid, admin), { ...config, allowedUsers: ['harouter-admin'] }, NOW, ROUTERS),
    ).toMatchObject({
      allowed: true,
      reason: 'AllowedIdentity',
    });
    expect(
      admit(write(valid, admin), { ...config, allowedGroups: ['system:masters'] }, NOW, ROUTERS).allowed,
    ).toBe(true);
  });

  it('an allowed user that carries a node binding is still bound to it', () => {
    const cfg: AdmissionConfig = { ...config, allowedGroups: [`system:serviceaccounts:${NS}`] };
    const intruderOnA = userInfoFor('intruder', NS);
    expect(admit(write(valid, intruderOnA), cfg, NOW, ROUTERS).allowed).toBe(true);
    expect(admit(write(report(routerId, 'node-b'), intruderOnA), cfg, NOW, ROUTERS)).toMatchObject({
      reason: 'NodeMismatch',
    });
  });

  it('without requireNodeBinding, an unbound reporter may report for any node', () => {
    const cfg = { ...config, requireNodeBinding: false };
    const unbound = userInfoFor('unboundReporter', NS);
    expect(admit(write(valid, unbound), cfg, NOW, ROUTERS).allowed).toBe(true);
    expect(admit(write(valid, unbound), config, NOW, ROUTERS)).toMatchObject({
      reason: 'NodeBindingRequired',
    });
  });

  it('refuses a node claim with several values', () => {
    const user = {
      ...userInfoFor('reporterA', NS),
      extra: { 'authentication.kubernetes.io/node-name': [NODE_A, NODE_A] },
    };
    expect(admit(write(valid, user), config, NOW, ROUTERS)).toMatchObject({
      allowed: false,
      reason: 'NodeMismatch',
    });
  });

  it('compares observedAt at full precision on update', () => {
    const old = report(routerId, NODE_A, { observedAt: '2026-01-01T00:00:00.123456789Z' });
    const older = report(routerId, NODE_A, { observedAt: '2026-01-01T01:00:00.123456788+01:00' });
    const same = report(routerId, NODE_A, { observedAt: '2026-01-01T00:00:00.123456789Z' });
    expect(admit(write(older, undefined, old), config, NOW, ROUTERS)).toMatchObject({
      allowed: false,
      reason: 'StaleReport',
      message: STALE_REPORT_MESSAGE,
    });
    expect(admit(write(same, undefined, old), config, NOW, ROUTERS).allowed).toBe(true);
  });

  it('keeps the update rules when the stored object no longer passes the schema', () => {
    // An old object the schema refuses (here: a control character in its message) must not switch off
    // the immutable and stale rules: they read the stored fields as they are.
    const old = { ...report(routerId, NODE_A), spec: { ...valid.spec, message: 'old\u0007' } };
    const moved = report(routerId, 'node-b');
    const cfg = { ...config, requireNodeBinding: false };
    const unbound = userInfoFor('unboundReporter', NS);
    expect(admit(write(moved, unbound, old), cfg, NOW, ROUTERS)).toMatchObject({ reason: 'ImmutableField' });
    const older = report(routerId, NODE_A, { observedAt: '2000-01-01T00:00:00Z' });
    expect(admit(write(older, undefined, old), config, NOW, ROUTERS)).toMatchObject({
      reason: 'StaleReport',
    });
    expect(admit(write(valid, undefined, old), config, NOW, ROUTERS).allowed).toBe(true);
  });

  it('the clock rule allows up to 5 minutes ahead, to the nanosecond', () => {
    const at = (ms: number, extra = '') =>
      report(routerId, NODE_A, { observedAt: new Date(ms).toISOString().replace('Z', `${extra}Z`) });
    expect(admit(write(at(NOW + CLOCK_SKEW_LIMIT_MS)), config, NOW, ROUTERS).allowed).toBe(true);
    expect(admit(write(at(NOW + CLOCK_SKEW_LIMIT_MS, '000001')), config, NOW, ROUTERS)).toMatchObject({
      reason: 'ClockSkew',
    });
  });

  it('the clock rule fails closed when the clock reading is not a number', () => {
    expect(admit(write(valid), config, Number.NaN, ROUTERS)).toMatchObject({
      allowed: false,
      reason: 'ClockSkew',
    });
  });

  it('lets cleanup identities and the operator delete; other non-reporters are left to RBAC', () => {
    const del = (username: string): AdmissionRequest => ({
      ...write(undefined, { username }),
      operation: 'DELETE',
      oldObject: valid,
    });
    for (const username of CLEANUP_USERNAMES)
      expect(admit(del(username), config, NOW, ROUTERS).reason).toBe('Cleanup');
    expect(admit(del(serviceAccountUsername(`${NS}/${SA.operator}`)), config, NOW, ROUTERS).reason).toBe(
      'Operator',
    );
    expect(admit(del('harouter-admin'), config, NOW, ROUTERS)).toMatchObject({
      allowed: true,
      reason: 'NotAReport',
    });
  });

  it('a cleanup identity changing spec is judged like anyone else (not a reporter)', () => {
    for (const username of CLEANUP_USERNAMES) {
      const changed = report(routerId, NODE_A, { state: 'Fault', observedAt: '2026-01-01T00:00:01Z' });
      expect(admit(write(changed, { username }, valid), config, NOW, ROUTERS)).toMatchObject({
        allowed: false,
        reason: 'NotAReporter',
      });
      expect(admit(write(valid, { username }, valid), config, NOW, ROUTERS)).toMatchObject({
        allowed: true,
        reason: 'NotAReport',
      });
    }
  });

  it('membership on CREATE only: an unknown router, or one that does not list the agent, is denied', () => {
    const none: RouterAgents = () => undefined;
    const onlyB: RouterAgents = () => [NODE_B];
    expect(admit(write(valid), config, NOW, none)).toMatchObject({
      allowed: false,
      rule: 'Membership',
      reason: 'UnknownRouter',
      code: 403,
    });
    expect(admit(write(valid), config, NOW, onlyB)).toMatchObject({ allowed: false, reason: 'NotAMember' });
    // The lookup is by the request's namespace and the report's router id.
    const seen: string[] = [];
    admit(write(valid), config, NOW, (ns, id) => {
      seen.push(`${ns}/${id}`);
      return [NODE_A];
    });
    expect(seen).toEqual([`${NS}/${routerId}`]);
    // An update of an existing report is not held to membership (the router may have changed since).
    const newer = report(routerId, NODE_A, { observedAt: '2026-01-01T00:00:01Z' });
    expect(admit(write(newer, undefined, valid), config, NOW, none).allowed).toBe(true);
  });

  it('reporter metadata limits: no finalizers or ownerReferences, 8 labels and annotations of 1 KiB', () => {
    const meta = (m: Record<string, unknown>) => ({ ...valid, metadata: { ...valid.metadata, ...m } });
    const denied = (m: Record<string, unknown>) =>
      expect(admit(write(meta(m)), config, NOW, ROUTERS)).toMatchObject({
        allowed: false,
        rule: 'Shape',
        reason: 'MetadataNotAllowed',
        code: 422,
      });
    const allowed = (m: Record<string, unknown>) =>
      expect(admit(write(meta(m)), config, NOW, ROUTERS).allowed).toBe(true);
    denied({ finalizers: ['example.com/keep'] });
    denied({ ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'p', uid: 'u' }] });
    denied({ labels: entries(9) });
    denied({ annotations: entries(9) });
    denied({ annotations: entries(1, 1025) });
    // 1 KiB counts bytes of UTF-8: 512 two-byte characters and a key are over it.
    denied({ annotations: { k: 'é'.repeat(512) } });
    denied({ labels: 'not a map' });
    allowed({ finalizers: [], ownerReferences: null, labels: entries(8), annotations: entries(8, 1024) });
  });

  it('does not guard other resources, subresources or CONNECT', () => {
    const status = { ...write(valid, userInfoFor('admin', NS)), subResource: 'status' };
    expect(admit(status, config, NOW, ROUTERS)).toMatchObject({ allowed: true, reason: 'NotGuarded' });
    const other = {
      ...write(valid, userInfoFor('admin', NS)),
      resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouters' },
    };
    expect(admit(other, config, NOW, ROUTERS)).toMatchObject({ allowed: true, reason: 'NotGuarded' });
  });

  it('never echoes request content in its messages', () => {
    const evil = report(routerId, NODE_A, { message: '\u001b]0;pwned\u0007', state: 'X\r\nforged' });
    const decision = admit(write(evil), config, NOW, ROUTERS);
    expect(decision.allowed).toBe(false);
    expect(decision.message).not.toMatch(/pwned|forged/);
    expect(isPrintable(decision.message)).toBe(true);
  });

  it('does not throw on a malformed configuration (it denies)', () => {
    const broken = {
      ...config,
      reporterServiceAccounts: ['not a service account'],
      operatorServiceAccount: '',
    };
    expect(admit(write(valid), broken, NOW, ROUTERS).allowed).toBe(false);
  });
});
