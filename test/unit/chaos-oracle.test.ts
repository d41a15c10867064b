/**
 * The chaos run's contract oracle (test/chaos/oracle.ts), written from API.md
 * alone, checked against the shared corpus (which the CRD and the zod schemas
 * classify alike) and against the contract's admission rules case by case.
 */
import { evaluate } from '@marcbachmann/cel-js';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ADMISSION_CONFIG } from '../../src/webhook/config.ts';
import {
  admissionParamsConfigMap,
  EXCLUDE_CLEANUP_CONDITION,
  validatingAdmissionPolicy,
} from '../../src/webhook/manifests.ts';
import { admit } from '../../src/webhook/policy.ts';
import type { AdmissionRequest, UserInfo } from '../../src/webhook/review.ts';
import { type ActorName, type FuzzWorld, generateCases } from '../chaos/arbitraries.ts';
import {
  type Actor,
  MODES,
  type Mode,
  prunedStateSpec,
  rfc3339Nanos,
  routerVerdict,
  type StoredReport,
  stateShapeProblems,
  stateVerdict,
  type World,
} from '../chaos/oracle.ts';
import { ROUTER_CORPUS, STATE_CORPUS } from '../support/admission-cases.ts';

const API = 'harouter.dev/v1alpha1';
const ROUTER = '6f1c2b1e-8d3a-4c5e-9f70-1a2b3c4d5e6f';
const OTHER = '0e0e0e0e-0000-4000-8000-000000000001';
const world: World = {
  routers: new Map([
    [ROUTER, ['node-a', 'node-b']],
    [OTHER, ['node-c']],
  ]),
  nowMs: Date.UTC(2026, 0, 1),
};
const reporterA: Actor = { name: 'reporter-a', kind: 'reporter', node: 'node-a' };
const reporterB: Actor = { name: 'reporter-b', kind: 'reporter', node: 'node-b' };
const admin: Actor = { name: 'admin', kind: 'admin' };
const intruder: Actor = { name: 'intruder', kind: 'intruder', node: 'node-a' };
const cleanup: Actor = { name: 'gc', kind: 'cleanup' };

function state(spec: Record<string, unknown> = {}, metadata: Record<string, unknown> = {}) {
  const s = {
    routerId: ROUTER,
    agent: 'node-a',
    state: 'Primary',
    observedAt: '2026-01-01T00:00:00.5Z',
    ...spec,
  };
  return {
    apiVersion: 'harouter.dev/v1alpha1',
    kind: 'HARouterState',
    metadata: { name: `${s.routerId}.${s.agent}`, ...metadata },
    spec: s,
  };
}
const stored: StoredReport = state() as unknown as StoredReport;

describe('the oracle agrees with the shared corpus', () => {
  it.each(STATE_CORPUS.map((c) => [c.name, c] as const))('HARouterState: %s', (_name, c) => {
    expect(stateShapeProblems(c.object(ROUTER)).length === 0).toBe(c.valid);
  });
  it.each(ROUTER_CORPUS.map((c) => [c.name, c] as const))('HARouter: %s', (_name, c) => {
    expect(routerVerdict(c.object(ROUTER)).allowed).toBe(c.valid);
  });
});

describe('verdicts follow API.md', () => {
  const verdict = (
    mode: Mode,
    ...args: Parameters<typeof stateVerdict> extends [Mode, ...infer R] ? R : never
  ) => stateVerdict(mode, ...args);

  it('a reporter on its node creating a report for a router that lists it is allowed in every mode', () => {
    for (const mode of ['webhook', 'policy', 'both'] as const)
      expect(verdict(mode, { operation: 'CREATE', actor: reporterA, object: state() }, world)).toEqual({
        allowed: true,
      });
  });

  it('membership and clock are the webhook alone', () => {
    const unknown = state({ routerId: '11111111-2222-4333-8444-555555555555' });
    expect(
      verdict('webhook', { operation: 'CREATE', actor: reporterA, object: unknown }, world),
    ).toMatchObject({
      rule: 'UnknownRouter',
    });
    expect(verdict('policy', { operation: 'CREATE', actor: reporterA, object: unknown }, world).allowed).toBe(
      true,
    );
    const notMember = state({ routerId: OTHER });
    expect(
      verdict('both', { operation: 'CREATE', actor: reporterA, object: notMember }, world),
    ).toMatchObject({
      rule: 'NotAMember',
    });
    const future = state({ observedAt: '2026-01-01T00:05:00.000000001Z' });
    expect(
      verdict('webhook', { operation: 'CREATE', actor: reporterA, object: future }, world),
    ).toMatchObject({
      rule: 'Clock',
    });
    expect(verdict('policy', { operation: 'CREATE', actor: reporterA, object: future }, world).allowed).toBe(
      true,
    );
    const edge = state({ observedAt: '2026-01-01T00:05:00Z' });
    expect(verdict('webhook', { operation: 'CREATE', actor: reporterA, object: edge }, world).allowed).toBe(
      true,
    );
  });

  it('the schema refuses before admission, whoever sends it', () => {
    const bad = state({ state: 'Master' });
    expect(verdict('webhook', { operation: 'CREATE', actor: admin, object: bad }, world)).toMatchObject({
      rule: 'Shape',
      mention: ['spec.state'],
    });
  });

  it('identity, then node binding, then metadata limits', () => {
    expect(verdict('policy', { operation: 'CREATE', actor: intruder, object: state() }, world)).toMatchObject(
      {
        rule: 'Identity',
      },
    );
    expect(
      verdict('policy', { operation: 'CREATE', actor: reporterB, object: state() }, world),
    ).toMatchObject({
      rule: 'NodeBinding',
    });
    const nine = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`k${i}`, 'v']));
    expect(
      verdict(
        'policy',
        { operation: 'CREATE', actor: reporterA, object: state({}, { labels: nine }) },
        world,
      ),
    ).toMatchObject({ rule: 'MetadataNotAllowed' });
    expect(
      verdict(
        'policy',
        { operation: 'CREATE', actor: reporterA, object: state({}, { finalizers: ['example.com/x'] }) },
        world,
      ),
    ).toMatchObject({ rule: 'MetadataNotAllowed' });
  });

  it('writes that leave spec unchanged are left to RBAC, with node binding and the metadata limits for reporters', () => {
    const labelled = state({}, { labels: { team: 'net' } });
    for (const actor of [admin, intruder, cleanup, reporterA])
      expect(
        verdict('both', { operation: 'UPDATE', actor, object: labelled, old: stored }, world).allowed,
      ).toBe(true);
    // Another node's reporter may not touch node-a's report at all.
    expect(
      verdict('both', { operation: 'UPDATE', actor: reporterB, object: labelled, old: stored }, world),
    ).toMatchObject({ allowed: false, rule: 'NodeBinding' });
    const many = state(
      {},
      { annotations: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`a${i}`, ''])) },
    );
    expect(
      verdict('both', { operation: 'UPDATE', actor: reporterA, object: many, old: stored }, world),
    ).toMatchObject({
      rule: 'MetadataNotAllowed',
    });
    expect(
      verdict('both', { operation: 'UPDATE', actor: admin, object: many, old: stored }, world).allowed,
    ).toBe(true);
    // An unknown field is pruned: the spec is unchanged.
    const extra = state({ color: 'red' });
    expect(
      verdict('webhook', { operation: 'UPDATE', actor: admin, object: extra, old: stored }, world).allowed,
    ).toBe(true);
    // A cleanup identity changing spec is judged like anyone else.
    const changed = state({ state: 'Backup', observedAt: '2026-01-01T00:00:01Z' });
    expect(
      verdict('webhook', { operation: 'UPDATE', actor: cleanup, object: changed, old: stored }, world),
    ).toMatchObject({ rule: 'Identity' });
  });

  it('updates: immutable ids and no backwards observedAt, at full precision', () => {
    const older = state({ observedAt: '2026-01-01T00:00:00.499999999Z' });
    expect(
      verdict('webhook', { operation: 'UPDATE', actor: reporterA, object: older, old: stored }, world),
    ).toMatchObject({
      rule: 'Shape',
      mention: ['stale report'],
    });
    const sameInstant = state({ state: 'Backup', observedAt: '2026-01-01T01:00:00.5+01:00' });
    expect(
      verdict('webhook', { operation: 'UPDATE', actor: reporterA, object: sameInstant, old: stored }, world)
        .allowed,
    ).toBe(true);
  });

  it('DELETE: the bound reporter of oldObject.spec.agent, and every identity that is not a reporter', () => {
    for (const actor of [reporterA, admin, intruder, cleanup, { name: 'op', kind: 'operator' } as Actor])
      expect(verdict('webhook', { operation: 'DELETE', actor, old: stored }, world).allowed).toBe(true);
    expect(verdict('policy', { operation: 'DELETE', actor: reporterB, old: stored }, world)).toMatchObject({
      rule: 'Delete',
    });
    const unbound: Actor = { name: 'unbound', kind: 'reporter' };
    expect(verdict('policy', { operation: 'DELETE', actor: unbound, old: stored }, world).allowed).toBe(
      false,
    );
  });

  it('RFC 3339 at full precision, with offsets, leap days and no leap seconds', () => {
    expect(rfc3339Nanos('1970-01-01T00:00:00.000000001Z')).toBe(1n);
    expect(rfc3339Nanos('1970-01-01T01:00:00+01:00')).toBe(0n);
    expect(rfc3339Nanos('2024-02-29T00:00:00Z')).toBeDefined();
    expect(rfc3339Nanos('2100-02-29T00:00:00Z')).toBeUndefined();
    expect(rfc3339Nanos('2026-06-30T23:59:60Z')).toBeUndefined();
    expect(rfc3339Nanos('2026-01-01T00:00:00+24:00')).toBeUndefined();
  });
});

/**
 * The oracle against the product's own admission layers, offline: for generated requests that
 * pass the API server's stages before admission (the oracle's reading of them), the webhook's
 * pure policy (`admit`) and the ValidatingAdmissionPolicy's CEL (evaluated with cel-js) must give
 * the oracle's verdict in each mode. What is left for the real server to show is its own stages.
 */
describe('the oracle agrees with the webhook policy and the CEL policy on generated requests', () => {
  const SA = (ns: string, name: string) => `system:serviceaccount:${ns}:${name}`;
  const bound = (node: string) => ({ 'authentication.kubernetes.io/node-name': [node] });
  const users: Record<ActorName, { actor: Actor; user: UserInfo }> = {
    reporterA: {
      actor: reporterA,
      user: { username: SA('harouter-system', 'harouter-reporter'), extra: bound('node-a') },
    },
    reporterB: {
      actor: reporterB,
      user: { username: SA('harouter-system', 'harouter-reporter'), extra: bound('node-b') },
    },
    unbound: {
      actor: { name: 'unbound', kind: 'reporter' },
      user: { username: SA('harouter-system', 'harouter-reporter') },
    },
    intruder: {
      actor: intruder,
      user: { username: SA('harouter-system', 'intruder'), extra: bound('node-a') },
    },
    admin: { actor: admin, user: { username: 'kubernetes-admin', groups: ['system:masters'] } },
    operator: {
      actor: { name: 'operator', kind: 'operator' },
      user: { username: SA('harouter-system', 'harouter-operator') },
    },
    cleanup: { actor: cleanup, user: { username: SA('kube-system', 'generic-garbage-collector') } },
  };
  const id = (i: number, kind: number) => `0f0f0f0f-0000-4000-8${kind}00-${String(i).padStart(12, '0')}`;
  const createRouters = Array.from({ length: 4 }, (_, i) => id(i, 1));
  const storedReports: StoredReport[] = Array.from({ length: 4 }, (_, i) => id(i, 2)).flatMap((routerId) =>
    ['node-a', 'node-b'].map((agent) => ({
      metadata: { name: `${routerId}.${agent}` },
      spec: { routerId, agent, state: 'Primary', observedAt: '2026-01-01T00:00:00.5Z' },
    })),
  );
  const nowMs = Date.now();
  const fuzzWorld: FuzzWorld = {
    nodeA: 'node-a',
    nodeB: 'node-b',
    createRouters,
    foreignRouter: id(0, 3),
    stored: storedReports,
    nowMs,
  };
  const routers = new Map<string, readonly string[]>([
    ...createRouters.map((r) => [r, ['node-a', 'node-b', 'node-c']] as const),
    ...storedReports.map((s) => [s.spec.routerId, ['node-a', 'node-b']] as const),
    [id(0, 3), ['node-c']],
  ]);
  const policy = validatingAdmissionPolicy();
  const params = admissionParamsConfigMap(DEFAULT_ADMISSION_CONFIG);
  // cel-js has neither RE2's `\x{...}` escapes nor Kubernetes' `replace`: those two variables are
  // computed here from the same configuration, and the escapes rewritten for JavaScript.
  const computed: Record<string, unknown> = {
    reporters: DEFAULT_ADMISSION_CONFIG.reporterServiceAccounts.map((r) =>
      SA(...(r.split('/') as [string, string])),
    ),
    operator: SA(...(DEFAULT_ADMISSION_CONFIG.operatorServiceAccount.split('/') as [string, string])),
  };
  const cel = (expression: string, context: Record<string, unknown>) =>
    evaluate(expression.replace(/\\x\{([0-9A-Fa-f]{4})\}/g, '\\u$1'), context as never);
  const policyAllows = (context: Record<string, unknown>): boolean => {
    if (cel(EXCLUDE_CLEANUP_CONDITION.expression, context) !== true) return true;
    const variables: Record<string, unknown> = {};
    const withVariables = { ...context, params, variables };
    for (const v of policy.spec.variables)
      variables[v.name] = computed[v.name] ?? cel(v.expression, withVariables);
    return policy.spec.validations.every((v) => cel(v.expression, withVariables) === true);
  };
  const isRecord = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);

  it('in every mode, for 1,500 generated cases', () => {
    const disagreements: string[] = [];
    let compared = 0;
    for (const c of generateCases(fuzzWorld, 1500, 14)) {
      if (c.kind !== 'state') continue;
      const { actor, user } = users[c.actor];
      const old = c.stored === undefined ? undefined : storedReports[c.stored];
      const raw = c.object ?? {};
      // The object as the API server hands it to admission: pruned spec, system metadata filled in.
      const meta = isRecord(raw.metadata)
        ? Object.fromEntries(Object.entries(raw.metadata).filter(([, v]) => v !== null))
        : {};
      const name = c.operation === 'CREATE' ? meta.name : old?.metadata.name;
      const object =
        c.operation === 'DELETE'
          ? null
          : {
              apiVersion: API,
              kind: 'HARouterState',
              metadata: { ...meta, name, namespace: 'fuzz', uid: 'u' },
              spec: prunedStateSpec(raw.spec),
            };
      const oldObject = old
        ? {
            apiVersion: API,
            kind: 'HARouterState',
            metadata: { ...old.metadata, namespace: 'fuzz', uid: 'u' },
            spec: old.spec,
          }
        : null;
      const request = {
        uid: 'x',
        resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
        operation: c.operation,
        userInfo: user,
        namespace: 'fuzz',
        name: String(name),
        object,
        oldObject,
      };
      for (const mode of MODES) {
        const expected = stateVerdict(
          mode,
          { operation: c.operation, actor, object: c.object, ...(old ? { old } : {}) },
          { routers, nowMs: Date.now() },
        );
        // The stages before admission are the real server's to show (the chaos run).
        if (!expected.allowed && ['Shape', 'Precondition', 'RBAC'].includes(expected.rule)) continue;
        compared++;
        const context = { request, object, oldObject };
        const excluded = cel(EXCLUDE_CLEANUP_CONDITION.expression, context) !== true;
        const webhook =
          excluded ||
          admit(request as AdmissionRequest, DEFAULT_ADMISSION_CONFIG, Date.now(), (_ns, r) => routers.get(r))
            .allowed;
        const allowed = (mode === 'policy' || webhook) && (mode === 'webhook' || policyAllows(context));
        if (allowed !== expected.allowed)
          disagreements.push(
            `${mode} ${c.operation} by ${c.actor} (${c.how}): oracle ${JSON.stringify(expected)}, layers ${allowed}`,
          );
      }
    }
    expect(compared).toBeGreaterThan(1500);
    expect(disagreements.slice(0, 5)).toEqual([]);
  });
});
