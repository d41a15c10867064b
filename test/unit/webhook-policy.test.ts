import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isPrintable, STALE_REPORT_MESSAGE } from '../../src/api/index.ts';
import { type AdmissionConfig, CLEANUP_USERNAMES, serviceAccountUsername } from '../../src/webhook/config.ts';
import { admit, CLOCK_SKEW_LIMIT_MS } from '../../src/webhook/policy.ts';
import type { AdmissionRequest } from '../../src/webhook/review.ts';
import {
  ADMISSION_CASES,
  admissionRequestFor,
  NODE_A,
  report,
  SA,
  testAdmissionConfig,
  userInfoFor,
} from '../support/admission-cases.ts';

const NS = 'team-a';
const config = testAdmissionConfig(NS);
const NOW = Date.parse('2026-06-01T12:00:00Z');

describe('the shared admission table through the pure policy', () => {
  it.each(ADMISSION_CASES)('$name', (c) => {
    const ctx = { routerId: randomUUID(), nowMs: NOW };
    const decision = admit(admissionRequestFor(c, NS, ctx), config, NOW);
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
    const asIntruder = admit(write(bad, userInfoFor('intruder', NS)), config, NOW);
    expect(asIntruder).toMatchObject({ allowed: false, rule: 'Identity', reason: 'NotAReporter', code: 403 });
    const asReporter = admit(write(bad), config, NOW);
    expect(asReporter).toMatchObject({ allowed: false, rule: 'NodeBinding', reason: 'NodeMismatch' });
    expect(asReporter.message).toContain('"node-a"');
    const onItsNode = admit(write({ ...valid, metadata: { name: 'wrong' } }), config, NOW);
    expect(onItsNode).toMatchObject({ allowed: false, rule: 'Shape', reason: 'NameMismatch', code: 422 });
  });

  it('allows the cluster admin only when configured as a user or group', () => {
    const admin = userInfoFor('admin', NS);
    expect(admit(write(valid, admin), config, NOW).allowed).toBe(false);
    expect(admit(write(valid, admin), { ...config, allowedUsers: ['harouter-admin'] }, NOW)).toMatchObject({
      allowed: true,
      reason: 'AllowedIdentity',
    });
    expect(admit(write(valid, admin), { ...config, allowedGroups: ['system:masters'] }, NOW).allowed).toBe(
      true,
    );
  });

  it('an allowed user that carries a node binding is still bound to it', () => {
    const cfg: AdmissionConfig = { ...config, allowedGroups: [`system:serviceaccounts:${NS}`] };
    const intruderOnA = userInfoFor('intruder', NS);
    expect(admit(write(valid, intruderOnA), cfg, NOW).allowed).toBe(true);
    expect(admit(write(report(routerId, 'node-b'), intruderOnA), cfg, NOW)).toMatchObject({
      reason: 'NodeMismatch',
    });
  });

  it('without requireNodeBinding, an unbound reporter may report for any node', () => {
    const cfg = { ...config, requireNodeBinding: false };
    const unbound = userInfoFor('unboundReporter', NS);
    expect(admit(write(valid, unbound), cfg, NOW).allowed).toBe(true);
    expect(admit(write(valid, unbound), config, NOW)).toMatchObject({ reason: 'NodeBindingRequired' });
  });

  it('refuses a node claim with several values', () => {
    const user = {
      ...userInfoFor('reporterA', NS),
      extra: { 'authentication.kubernetes.io/node-name': [NODE_A, NODE_A] },
    };
    expect(admit(write(valid, user), config, NOW)).toMatchObject({ allowed: false, reason: 'NodeMismatch' });
  });

  it('compares observedAt at full precision on update', () => {
    const old = report(routerId, NODE_A, { observedAt: '2026-01-01T00:00:00.123456789Z' });
    const older = report(routerId, NODE_A, { observedAt: '2026-01-01T01:00:00.123456788+01:00' });
    const same = report(routerId, NODE_A, { observedAt: '2026-01-01T00:00:00.123456789Z' });
    expect(admit(write(older, undefined, old), config, NOW)).toMatchObject({
      allowed: false,
      reason: 'StaleReport',
      message: STALE_REPORT_MESSAGE,
    });
    expect(admit(write(same, undefined, old), config, NOW).allowed).toBe(true);
  });

  it('keeps the update rules when the stored object no longer passes the schema', () => {
    // An old object the schema refuses (here: a control character in its message) must not switch off
    // the immutable and stale rules: they read the stored fields as they are.
    const old = { ...report(routerId, NODE_A), spec: { ...valid.spec, message: 'old\u0007' } };
    const moved = report(routerId, 'node-b');
    const cfg = { ...config, requireNodeBinding: false };
    const unbound = userInfoFor('unboundReporter', NS);
    expect(admit(write(moved, unbound, old), cfg, NOW)).toMatchObject({ reason: 'ImmutableField' });
    const older = report(routerId, NODE_A, { observedAt: '2000-01-01T00:00:00Z' });
    expect(admit(write(older, undefined, old), config, NOW)).toMatchObject({ reason: 'StaleReport' });
    expect(admit(write(valid, undefined, old), config, NOW).allowed).toBe(true);
  });

  it('the clock rule allows up to 5 minutes ahead, to the nanosecond', () => {
    const at = (ms: number, extra = '') =>
      report(routerId, NODE_A, { observedAt: new Date(ms).toISOString().replace('Z', `${extra}Z`) });
    expect(admit(write(at(NOW + CLOCK_SKEW_LIMIT_MS)), config, NOW).allowed).toBe(true);
    expect(admit(write(at(NOW + CLOCK_SKEW_LIMIT_MS, '000001')), config, NOW)).toMatchObject({
      reason: 'ClockSkew',
    });
  });

  it('the clock rule fails closed when the clock reading is not a number', () => {
    expect(admit(write(valid), config, Number.NaN)).toMatchObject({ allowed: false, reason: 'ClockSkew' });
  });

  it('lets cleanup identities and the operator delete', () => {
    const del = (username: string): AdmissionRequest => ({
      ...write(undefined, { username }),
      operation: 'DELETE',
      oldObject: valid,
    });
    for (const username of CLEANUP_USERNAMES)
      expect(admit(del(username), config, NOW).reason).toBe('Cleanup');
    expect(admit(del(serviceAccountUsername(`${NS}/${SA.operator}`)), config, NOW).reason).toBe('Operator');
    expect(admit(del('harouter-admin'), config, NOW)).toMatchObject({
      allowed: false,
      reason: 'DeleteForbidden',
    });
  });

  it('does not guard other resources, subresources or CONNECT', () => {
    const status = { ...write(valid, userInfoFor('admin', NS)), subResource: 'status' };
    expect(admit(status, config, NOW)).toMatchObject({ allowed: true, reason: 'NotGuarded' });
    const other = {
      ...write(valid, userInfoFor('admin', NS)),
      resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouters' },
    };
    expect(admit(other, config, NOW)).toMatchObject({ allowed: true, reason: 'NotGuarded' });
  });

  it('never echoes request content in its messages', () => {
    const evil = report(routerId, NODE_A, { message: '\u001b]0;pwned\u0007', state: 'X\r\nforged' });
    const decision = admit(write(evil), config, NOW);
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
    expect(admit(write(valid), broken, NOW).allowed).toBe(false);
  });
});
