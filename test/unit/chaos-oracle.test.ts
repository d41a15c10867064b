/**
 * The chaos run's contract oracle (test/chaos/oracle.ts), written from API.md
 * alone, checked against the shared corpus (which the CRD and the zod schemas
 * classify alike) and against the contract's admission rules case by case.
 */
import { describe, expect, it } from 'vitest';
import {
  type Actor,
  type Mode,
  rfc3339Nanos,
  routerVerdict,
  type StoredReport,
  stateShapeProblems,
  stateVerdict,
  type World,
} from '../chaos/oracle.ts';
import { ROUTER_CORPUS, STATE_CORPUS } from '../support/admission-cases.ts';

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

  it('writes that leave spec unchanged are left to RBAC, with the metadata limits for reporters', () => {
    const labelled = state({}, { labels: { team: 'net' } });
    for (const actor of [admin, intruder, cleanup, reporterB])
      expect(
        verdict('both', { operation: 'UPDATE', actor, object: labelled, old: stored }, world).allowed,
      ).toBe(true);
    const many = state(
      {},
      { annotations: Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`a${i}`, ''])) },
    );
    expect(
      verdict('both', { operation: 'UPDATE', actor: reporterB, object: many, old: stored }, world),
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
