/**
 * Property test of the pure policy: thousands of generated requests. Each
 * generated field carries its own verdict (built valid or built broken, by
 * construction, not by asking the code under test), so the expected decision is
 * known independently: `admit` never throws and allows exactly the valid requests
 * (reporter metadata limits, HARouter membership on CREATE and spec-unchanged
 * updates included).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { admit, type RouterAgents } from '../../src/webhook/policy.ts';
import { type AdmissionRequest, admissionRequestSchema, NODE_NAME_EXTRA } from '../../src/webhook/review.ts';
import { testAdmissionConfig } from '../support/admission-cases.ts';

const NS = 'prop';
const config = testAdmissionConfig(NS);
const NOW_MS = Date.UTC(2026, 5, 1, 12, 0, 0);
const NOW_NS = BigInt(NOW_MS) * 1_000_000n;
const LIMIT_NS = NOW_NS + 300_000_000_000n;

/** A value and whether it is valid. */
type V<T> = { value: T; ok: boolean };
const good = <T>(arb: fc.Arbitrary<T>) => arb.map((value) => ({ value, ok: true }) as V<T>);
const bad = <T>(arb: fc.Arbitrary<T>) => arb.map((value) => ({ value, ok: false }) as V<T>);

const hex = (n: number) =>
  fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
const uuid = fc.tuple(hex(8), hex(4), hex(4), hex(4), hex(12)).map((p) => p.join('-'));
const routerId: fc.Arbitrary<V<string>> = fc.oneof(
  { weight: 30, arbitrary: good(uuid) },
  bad(uuid.map((u) => `${u.slice(0, 35)}G`)),
  bad(uuid.map((u) => u.replaceAll('-', ''))),
  bad(uuid.map((u) => `${u}0`)),
  bad(fc.constant('')),
);

const labelChars = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789');
const label = fc
  .tuple(labelChars, fc.string({ unit: fc.constantFrom(...'abcz09-'), maxLength: 10 }), labelChars)
  .map(([a, mid, b]) => `${a}${mid}${b}`);
const dnsName = fc.array(label, { minLength: 1, maxLength: 4 }).map((ls) => ls.join('.'));
const agent: fc.Arbitrary<V<string>> = fc.oneof(
  { weight: 30, arbitrary: good(fc.constantFrom('node-a', 'node-b')) },
  { weight: 10, arbitrary: good(dnsName) },
  bad(dnsName.map((n) => n.toUpperCase()).filter((n) => /[A-Z]/.test(n))),
  bad(dnsName.map((n) => `-${n}`)),
  bad(dnsName.map((n) => `${n}_x`)),
  bad(fc.constant('')),
  bad(fc.constant(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(25)}`)),
);

const state: fc.Arbitrary<V<unknown>> = fc.oneof(
  { weight: 20, arbitrary: good(fc.constantFrom('Primary', 'Backup', 'Fault', 'Stopped')) },
  bad(fc.constantFrom('Unknown', 'primary', 'MASTER', '', 1, null)),
);

/** observedAt built from an instant (ns) and a rendering: digits, offset. */
interface Time {
  text: string;
  ns: bigint;
}
const pad = (n: number, w = 2) => String(n).padStart(w, '0');
interface Instant {
  seconds: number;
  fraction: string;
  offsetMinutes: number | undefined;
}
const instant: fc.Arbitrary<Instant> = fc.record({
  seconds: fc.integer({ min: Date.UTC(1990, 0, 1) / 1000, max: Date.UTC(2027, 0, 1) / 1000 }),
  fraction: fc.string({ unit: fc.constantFrom(...'0123456789'), maxLength: 9 }),
  offsetMinutes: fc.oneof(fc.constant(undefined), fc.integer({ min: -(23 * 60 + 59), max: 23 * 60 + 59 })),
});
const render = ({ seconds, fraction, offsetMinutes }: Instant, sep = 'T'): Time => {
  const local = new Date((seconds + (offsetMinutes ?? 0) * 60) * 1000).toISOString().slice(0, 19);
  const zone =
    offsetMinutes === undefined
      ? 'Z'
      : `${offsetMinutes < 0 ? '-' : '+'}${pad(Math.trunc(Math.abs(offsetMinutes) / 60))}:${pad(Math.abs(offsetMinutes) % 60)}`;
  return {
    text: `${local.replace('T', sep)}${fraction ? `.${fraction}` : ''}${zone}`,
    ns: BigInt(seconds) * 1_000_000_000n + BigInt(fraction.padEnd(9, '0') || '0'),
  };
};
const observedAt: fc.Arbitrary<V<Time>> = fc.oneof(
  { weight: 30, arbitrary: good(instant.map((i) => render(i))) },
  bad(instant.map((i) => render(i, ' '))),
  bad(instant.map((i) => ({ ...render(i), text: render(i).text.replace(/(Z|[+-]\d\d:\d\d)$/, '') }))),
  bad(
    instant.map((i) => ({
      ...render(i),
      text: render(i).text.replace(/(Z|[+-]\d\d:\d\d)$/, '.1234567891Z'),
    })),
  ),
  bad(
    fc
      .constantFrom('2023-02-29T00:00:00Z', '2026-04-31T00:00:00Z', '2026-01-01T00:00:60Z', 'now')
      .map((text) => ({ text, ns: 0n })),
  ),
);

const forbidden = fc.constantFrom(
  '\u0000',
  '\r',
  '\n',
  '\t',
  '\u001b',
  '\u007f',
  '\u0085',
  '\u009f',
  '\u202a',
  '\u202e',
  '\u2066',
  '\u2069',
);
const printableChar = fc.oneof(
  fc.constantFrom(...'abc XYZ 019 -_.:;!?"\'<>{}()[]'),
  fc.constantFrom('é', 'ß', '路', '😀', '\u2028', '\u00a0', '\u200b'),
);
const printable = (min: number, max: number) =>
  fc.array(printableChar, { minLength: min, maxLength: max }).map((cs) => cs.join(''));
const message: fc.Arbitrary<V<string | undefined>> = fc.oneof(
  { weight: 10, arbitrary: good(fc.constant(undefined)) },
  { weight: 10, arbitrary: good(printable(0, 256)) },
  bad(fc.tuple(printable(0, 40), forbidden, printable(0, 40)).map(([a, f, b]) => `${a}${f}${b}`)),
  bad(printable(257, 300)),
);
const priority: fc.Arbitrary<V<unknown>> = fc.oneof(
  { weight: 10, arbitrary: good(fc.constant(undefined)) },
  { weight: 10, arbitrary: good(fc.integer({ min: 0, max: 255 })) },
  bad(fc.constantFrom(-1, 256, 1.5, '100', null)),
);

/** Reporter metadata: none, within the limits, or one way past them. */
const metadata: fc.Arbitrary<V<Record<string, unknown>>> = fc.oneof(
  { weight: 20, arbitrary: good(fc.constant({})) },
  {
    weight: 5,
    arbitrary: good(
      fc.record({
        labels: fc.dictionary(label, label, { maxKeys: 8 }),
        annotations: fc.dictionary(label, fc.string({ maxLength: 900 }), { maxKeys: 8 }),
      }),
    ),
  },
  bad(fc.constant({ finalizers: ['example.com/keep'] })),
  bad(fc.constant({ ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'x', uid: 'u' }] })),
  bad(
    fc
      .uniqueArray(label, { minLength: 9, maxLength: 12 })
      .map((ks) => ({ labels: Object.fromEntries(ks.map((k) => [k, 'v'])) })),
  ),
  bad(fc.integer({ min: 1025, max: 4096 }).map((n) => ({ annotations: { a: 'x'.repeat(n - 1) } }))),
);

/** What the webhook's HARouter cache says of the report's router (read on CREATE only). */
const membership = fc.oneof(
  { weight: 15, arbitrary: fc.constant('member' as const) },
  fc.constantFrom('absent' as const, 'notListed' as const),
);

const rarely = fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, fc.constant(true));
const ACTORS = ['bound', 'boundElsewhere', 'unbound', 'intruder', 'admin'] as const;
const scenario = fc.record({
  routerId,
  agent,
  state,
  observedAt,
  message,
  priority,
  nameOk: fc.oneof({ weight: 15, arbitrary: fc.constant(true) }, fc.constant(false)),
  actor: fc.oneof({ weight: 12, arbitrary: fc.constant('bound' as const) }, fc.constantFrom(...ACTORS)),
  metadata,
  membership,
  update: fc.option(
    fc.record({ previous: instant, agentChanged: rarely, routerChanged: rarely, specUnchanged: rarely }),
    { nil: undefined },
  ),
});

type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

function userFor(actor: (typeof ACTORS)[number], agentName: string) {
  const sa = (name: string, node?: string) => ({
    username: `system:serviceaccount:${NS}:${name}`,
    groups: ['system:serviceaccounts', 'system:authenticated'],
    ...(node !== undefined ? { extra: { 'authentication.kubernetes.io/node-name': [node] } } : {}),
  });
  switch (actor) {
    case 'bound':
      return sa('harouter-reporter', agentName);
    case 'boundElsewhere':
      return sa('harouter-reporter', `${agentName}-other`);
    case 'unbound':
      return sa('harouter-reporter');
    case 'intruder':
      return sa('intruder', agentName);
    case 'admin':
      return { username: 'harouter-admin', groups: ['system:masters'] };
  }
}

function build(s: Scenario): { request: AdmissionRequest; expected: boolean } {
  const spec: Record<string, unknown> = {
    routerId: s.routerId.value,
    agent: s.agent.value,
    state: s.state.value,
    observedAt: s.observedAt.value.text,
  };
  if (s.message.value !== undefined) spec.message = s.message.value;
  if (s.priority.value !== undefined) spec.priority = s.priority.value;
  const name = s.nameOk ? `${s.routerId.value}.${s.agent.value}` : `${s.routerId.value}.elsewhere`;
  const object = {
    apiVersion: 'harouter.dev/v1alpha1',
    kind: 'HARouterState',
    metadata: { name, ...s.metadata.value },
    spec,
  };
  let oldObject: unknown;
  let updateOk = true;
  const isReporter = s.actor === 'bound' || s.actor === 'boundElsewhere' || s.actor === 'unbound';
  if (s.update?.specUnchanged) {
    // Not a report: RBAC decides, except that a reporter's write keeps node binding and the metadata limits.
    const request: AdmissionRequest = {
      uid: 'u',
      resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
      namespace: NS,
      operation: 'UPDATE',
      userInfo: userFor(s.actor, s.agent.value),
      object,
      oldObject: { ...object, metadata: { name }, spec: structuredClone(spec) },
    };
    return { request, expected: !isReporter || (s.actor === 'bound' && s.metadata.ok) };
  }
  if (s.update) {
    const previous = render(s.update.previous);
    const oldSpec: Record<string, unknown> = {
      ...spec,
      routerId: s.update.routerChanged ? '00000000-0000-4000-8000-000000000000' : s.routerId.value,
      agent: s.update.agentChanged ? 'old-node' : s.agent.value,
      state: 'Primary',
      observedAt: previous.text,
    };
    delete oldSpec.message;
    delete oldSpec.priority;
    oldObject = { ...object, metadata: { name: `${oldSpec.routerId}.${oldSpec.agent}` }, spec: oldSpec };
    // An invalid new routerId/agent differs from the (valid) old one as well; checked by the field verdicts.
    const routerSame = !s.update.routerChanged || s.routerId.value === oldSpec.routerId;
    const agentSame = !s.update.agentChanged || s.agent.value === oldSpec.agent;
    const notStale = !s.observedAt.ok || s.observedAt.value.ns >= previous.ns;
    updateOk = routerSame && agentSame && notStale;
  }
  const fieldsOk =
    s.routerId.ok && s.agent.ok && s.state.ok && s.observedAt.ok && s.message.ok && s.priority.ok && s.nameOk;
  const identityOk = s.actor === 'bound';
  const clockOk = !s.observedAt.ok || s.observedAt.value.ns <= LIMIT_NS;
  const memberOk = s.update !== undefined || s.membership === 'member';
  const request: AdmissionRequest = {
    uid: 'u',
    resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
    namespace: NS,
    operation: s.update ? 'UPDATE' : 'CREATE',
    userInfo: userFor(s.actor, s.agent.value),
    object,
    ...(oldObject ? { oldObject } : {}),
  };
  return { request, expected: identityOk && s.metadata.ok && fieldsOk && updateOk && clockOk && memberOk };
}

/** The webhook's HARouter cache for a scenario: the router lists the agent, lists others, or is absent. */
function routersOf(s: Scenario): RouterAgents {
  return (namespace, id) => {
    if (namespace !== NS || id !== s.routerId.value || s.membership === 'absent') return undefined;
    return s.membership === 'member' ? [s.agent.value, 'node-z'] : ['node-z'];
  };
}

/** A cache that knows every router, listing node-a and node-b. */
const anyRouter: RouterAgents = () => ['node-a', 'node-b'];

describe('admit (property)', () => {
  it('never throws and allows exactly the valid requests', () => {
    fc.assert(
      fc.property(scenario, (s) => {
        const { request, expected } = build(s);
        const decision = admit(request, config, NOW_MS, routersOf(s));
        expect(decision.allowed, `${decision.message}`).toBe(expected);
      }),
      { numRuns: 5000 },
    );
  }, 60_000);

  it('a good share of the generated requests is valid (the generator is not vacuous)', () => {
    const samples = fc.sample(scenario, 2000).map((s) => build(s).expected);
    expect(samples.filter(Boolean).length).toBeGreaterThan(200);
  });

  it('never throws on arbitrary objects and userInfo, and the objects reach the shape rule', () => {
    // Arbitrary user names are almost never a reporter, so those requests stop at the
    // identity rule; the bound (or, with binding off, unbound) reporter carries the
    // arbitrary objects past identity and node binding into the rules that parse them.
    const field = <T>(valid: fc.Arbitrary<T>) => fc.oneof({ weight: 8, arbitrary: valid }, fc.anything());
    const nearReport = fc.tuple(uuid, fc.constantFrom('node-a', 'node-b')).chain(([routerId, agent]) =>
      fc.record({
        apiVersion: field(fc.constant('harouter.dev/v1alpha1')),
        kind: field(fc.constant('HARouterState')),
        metadata: field(fc.record({ name: field(fc.constant(`${routerId}.${agent}`)) })),
        spec: field(
          fc.record(
            {
              routerId: field(fc.constant(routerId)),
              agent: field(fc.constant(agent)),
              state: field(fc.constantFrom('Primary', 'Backup')),
              observedAt: field(instant.map((i) => render(i).text)),
              message: field(printable(0, 20)),
              priority: field(fc.integer({ min: 0, max: 255 })),
            },
            { requiredKeys: ['routerId', 'agent', 'state', 'observedAt'] },
          ),
        ),
      }),
    );
    const object = fc.oneof(fc.anything(), nearReport);
    const arbitraryUser = fc.record({
      username: fc.option(fc.string(), { nil: undefined }),
      groups: fc.option(fc.array(fc.string()), { nil: undefined }),
      extra: fc.option(fc.dictionary(fc.string(), fc.array(fc.string())), { nil: undefined }),
    });
    const sender = fc.oneof(
      arbitraryUser.map((userInfo) => ({ kind: 'arbitrary' as const, userInfo })),
      fc.constant({ kind: 'bound' as const }),
      fc.constant({ kind: 'unbound' as const }),
    );
    const rawAgent = (o: unknown): string => {
      const spec = typeof o === 'object' && o !== null ? (o as { spec?: unknown }).spec : undefined;
      const agent =
        typeof spec === 'object' && spec !== null ? (spec as { agent?: unknown }).agent : undefined;
      return typeof agent === 'string' ? agent : 'node-a';
    };
    const reporter = `system:serviceaccount:${NS}:harouter-reporter`;
    const outcomes: Array<{ sender: string; operation: string; rule: string }> = [];
    const numRuns = 3000;
    fc.assert(
      fc.property(
        object,
        object,
        fc.constantFrom('CREATE', 'UPDATE', 'DELETE', 'CONNECT'),
        sender,
        (object, oldObject, operation, from) => {
          const sent = operation === 'DELETE' ? oldObject : object;
          const userInfo =
            from.kind === 'arbitrary'
              ? from.userInfo
              : {
                  username: reporter,
                  ...(from.kind === 'bound' ? { extra: { [NODE_NAME_EXTRA]: [rawAgent(sent)] } } : {}),
                };
          const parsed = admissionRequestSchema.safeParse({
            uid: 'u',
            resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
            operation,
            userInfo,
            object,
            oldObject,
          });
          if (!parsed.success) return;
          const decision = admit(
            parsed.data,
            { ...config, requireNodeBinding: from.kind !== 'unbound' },
            NOW_MS,
            anyRouter,
          );
          expect(typeof decision.allowed).toBe('boolean');
          const rule = decision.allowed ? `allowed:${decision.reason}` : decision.rule;
          outcomes.push({ sender: from.kind, operation, rule });
        },
      ),
      { numRuns },
    );
    // The reporter's objects were parsed: many stopped at the shape rule, and some
    // passed it (on to the clock rule, or allowed).
    const byReporter = outcomes.filter((o) => o.sender !== 'arbitrary');
    const tally: Record<string, number> = {};
    for (const { sender, operation, rule } of outcomes) {
      const key = `${sender} ${operation} ${rule}`;
      tally[key] = (tally[key] ?? 0) + 1;
    }
    const seen = JSON.stringify(tally);
    expect(byReporter.filter((o) => o.rule === 'Shape').length, seen).toBeGreaterThan(numRuns / 10);
    const pastShape = byReporter.filter(
      (o) => o.operation === 'CREATE' && !['Identity', 'NodeBinding', 'Shape'].includes(o.rule),
    );
    expect(pastShape.length, seen).toBeGreaterThanOrEqual(10);
  }, 60_000);
});
