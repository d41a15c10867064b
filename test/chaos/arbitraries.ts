/**
 * Generated HARouterStates and HARouters for the admission fuzzer: fast-check
 * arbitraries derived from the zod schemas of `src/api` (every string check,
 * number bound, enum, optional and list bound the schema carries, plus the
 * values just outside them and values of the wrong type), and targeted
 * mutations of valid objects (field boundaries, UUID and name forms, RFC 3339
 * edge cases, Unicode controls, bidi, CRLF, long strings, extra fields, nulls,
 * metadata within and beyond the limits).
 */
import fc from 'fast-check';
import type { z } from 'zod';
import { harouterSpecSchema } from '../../src/api/harouter.ts';
import { harouterStateSpecSchema } from '../../src/api/harouterstate.ts';
import { API_VERSION, HAROUTER, HAROUTER_STATE } from '../../src/api/index.ts';
import type { StoredReport } from './oracle.ts';

// ---------------------------------------------------------------------------
// Values.

/** Characters the contract refuses in free text: every C0 and C1 control, DEL and the bidi controls. */
const FORBIDDEN = [
  ...Array.from({ length: 0x20 }, (_, i) => String.fromCodePoint(i)),
  ...Array.from({ length: 0x21 }, (_, i) => String.fromCodePoint(0x7f + i)),
  ...[0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069].map((c) =>
    String.fromCodePoint(c),
  ),
];
/** Characters that look dangerous but are printable by the contract's definition (not Cc, not bidi). */
const TRICKY_PRINTABLE = [
  '\u2028',
  '\u2029',
  '\u200b',
  '\u200d',
  '\ufeff',
  '\u00ad',
  '\u0301',
  '\ud800',
  '😀',
  '路',
  'é',
];

const repeatTo = (unit: string, codePoints: number) =>
  Array.from({ length: codePoints }, () => unit).join('');

/** Free text around a code-point limit: lengths, controls, bidi, CRLF, astral characters. */
export function textArb(limit: number): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength: limit + 2, unit: 'grapheme' }),
    fc.string({ maxLength: 40, unit: 'binary' }),
    fc
      .tuple(fc.string({ maxLength: 20 }), fc.constantFrom(...FORBIDDEN), fc.string({ maxLength: 20 }))
      .map(([a, c, b]) => a + c + b),
    fc.tuple(fc.string({ maxLength: 20 }), fc.constantFrom(...TRICKY_PRINTABLE)).map(([a, c]) => a + c),
    fc.constantFrom('ok\r\nlevel=error msg="forged"', 'line\nbreak', '\u001b[31mred', 'abc\u202edef', ''),
    fc
      .tuple(fc.constantFrom('x', '😀', 'é', '\u2028'), fc.integer({ min: limit - 1, max: limit + 1 }))
      .map(([unit, n]) => repeatTo(unit, n)),
    fc.integer({ min: 1000, max: 20_000 }).map((n) => 'y'.repeat(n)),
  );
}

const pad = (n: number, width = 2) => String(n).padStart(width, '0');

/** An RFC 3339 time around `nowMs`, well-formed, for valid reports. */
function isoAround(nowMs: number, offsetMs: number, fraction: string, zone: string): string {
  const base = new Date(nowMs + offsetMs).toISOString().slice(0, 19);
  return `${base}${fraction ? `.${fraction}` : ''}${zone}`;
}

/** observedAt values: valid forms and the edge cases of RFC 3339, including the clock boundary. */
export function observedAtArb(nowMs: number): fc.Arbitrary<string> {
  const fraction = fc
    .array(fc.constantFrom(...'0123456789'), { minLength: 0, maxLength: 10 })
    .map((digits) => digits.join(''));
  const zone = fc.oneof(
    fc.constant('Z'),
    fc
      .tuple(fc.constantFrom('+', '-'), fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 60 }))
      .map(([s, h, m]) => `${s}${pad(h)}:${pad(m)}`),
    fc.constantFrom('z', '+0530', '+05', ' Z', 'UTC', ''),
  );
  const date = fc
    .tuple(
      fc.integer({ min: 998, max: 10_000 }),
      fc.integer({ min: 0, max: 13 }),
      fc.integer({ min: 0, max: 32 }),
      fc.integer({ min: 0, max: 25 }),
      fc.integer({ min: 0, max: 60 }),
      fc.integer({ min: 0, max: 61 }),
    )
    .map(([y, mo, d, h, mi, s]) => `${pad(y, 4)}-${pad(mo)}-${pad(d)}T${pad(h)}:${pad(mi)}:${pad(s)}`);
  return fc.oneof(
    fc.tuple(date, fraction, zone).map(([d, f, z]) => `${d}${f ? `.${f}` : ''}${z}`),
    fc
      .tuple(fc.constantFrom(-60_000, 0, 60_000, 3_600_000), fraction)
      .map(([ahead, f]) => isoAround(nowMs, ahead, f.slice(0, 9), 'Z')),
    // Around the clock: within and well beyond 5 minutes ahead (the run lasts minutes after generation,
    // so values near the edge itself would be judged at a moving distance; the unit tests pin the edge).
    fc
      .tuple(fc.constantFrom(-60_000, 0, 60_000, 3_600_000, 86_400_000), fraction, zone)
      .map(([ahead, f, z]) => isoAround(nowMs, ahead, f.slice(0, 9), z === 'Z' ? 'Z' : '+00:00')),
    fc.constantFrom(
      '2024-02-29T12:00:00Z',
      '2023-02-29T12:00:00Z',
      '2100-02-29T00:00:00Z',
      '2000-02-29T00:00:00Z',
      '2026-04-31T00:00:00Z',
      '2026-12-31T23:59:60Z',
      '2026-01-01T24:00:00Z',
      '2026-01-01t00:00:00z',
      '2026-01-01 00:00:00Z',
      '2026-01-01T00:00:00',
      '2026-01-01',
      '0999-12-31T23:59:59Z',
      '1000-01-01T00:00:00Z',
      '9999-12-31T23:59:59.999999999Z',
      '2026-01-01T00:00:00.Z',
      '2026-01-01T00:00:00,5Z',
      '2026-01-01T00:00:00Z\n',
      '\u0662\u0660\u0662\u0666-01-01T00:00:00Z',
      '２０２６-01-01T00:00:00Z',
      '2026-01-01T00:00:00.5+14:00',
      '2026-01-01T00:00:00.5-23:59',
      'yesterday',
      '',
    ),
  );
}

/** Router id forms: canonical, upper case, braces, no hyphens, wrong lengths, non-hex. */
export function routerIdFormArb(valid: string): fc.Arbitrary<string> {
  return fc.oneof(
    fc.uuid().map((u) => u.toLowerCase()),
    fc.constantFrom(
      valid,
      valid.toUpperCase(),
      `{${valid}}`,
      valid.replaceAll('-', ''),
      valid.slice(0, -1),
      `${valid}0`,
      `${valid.slice(0, -1)}g`,
      `urn:uuid:${valid}`,
      ` ${valid}`,
      '00000000-0000-0000-0000-000000000000',
      '',
    ),
  );
}

/** Node-name forms: valid, at and past 216 characters, upper case, leading hyphen, FQDN, Unicode. */
export function agentFormArb(valid: string): fc.Arbitrary<string> {
  const long = (n: number) => `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(n - 192)}`;
  return fc.oneof(
    fc.stringMatching(/^[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,10}[a-z0-9])?){0,3}$/),
    fc.constantFrom(
      valid,
      long(216),
      long(217),
      valid.toUpperCase(),
      `-${valid}`,
      `${valid}-`,
      `${valid}.`,
      `${valid}.rack1.example.com`,
      `${valid}_1`,
      'nöde-a',
      `${valid}\n`,
      '',
    ),
  );
}

const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant([] as unknown[]),
  fc.constant({} as Record<string, unknown>),
  fc.constant(['Primary']),
  fc.string({ maxLength: 8 }),
);

// ---------------------------------------------------------------------------
// Arbitraries derived from a zod schema.

interface ZodDef {
  type: string;
  checks?: { _zod: { def: Record<string, unknown> } }[];
  shape?: Record<string, z.ZodType>;
  innerType?: z.ZodType;
  element?: z.ZodType;
  entries?: Record<string, string>;
}

const defOf = (schema: z.ZodType) => (schema as unknown as { _zod: { def: ZodDef } })._zod.def;

function checksOf(def: ZodDef) {
  const found: { min?: number; max?: number; pattern?: RegExp; int?: boolean; custom?: boolean } = {};
  for (const c of def.checks ?? []) {
    const d = c._zod.def;
    if (d.check === 'min_length' || (d.check === 'greater_than' && d.inclusive))
      found.min = Number(d.minimum ?? d.value);
    if (d.check === 'max_length' || (d.check === 'less_than' && d.inclusive))
      found.max = Number(d.maximum ?? d.value);
    if (d.check === 'string_format' && d.format === 'regex') found.pattern = d.pattern as RegExp;
    if (d.check === 'number_format') found.int = true;
    if (d.check === 'custom') found.custom = true;
  }
  return found;
}

/** Arbitraries for fields whose rules zod holds in refinements (not introspectable), by field name. */
export type FieldOverrides = Record<string, fc.Arbitrary<unknown>>;

/**
 * An arbitrary for values of `schema`: mostly values the schema's checks
 * accept, often the values just outside its bounds, sometimes a value of
 * another type. Fields named in `overrides` use the given arbitrary instead.
 */
export function arbitraryFromZod(
  schema: z.ZodType,
  overrides: FieldOverrides = {},
  field = '',
): fc.Arbitrary<unknown> {
  const override = overrides[field];
  if (override) return override;
  const def = defOf(schema);
  const c = checksOf(def);
  switch (def.type) {
    case 'optional':
    case 'default':
      return fc.option(arbitraryFromZod(def.innerType as z.ZodType, overrides, field), {
        nil: undefined,
        freq: 3,
      });
    case 'object': {
      const shape = def.shape ?? {};
      const model = Object.fromEntries(
        Object.entries(shape).map(([key, s]) => [key, arbitraryFromZod(s, overrides, key)]),
      );
      return fc.oneof({ weight: 12, arbitrary: fc.record(model) }, { weight: 1, arbitrary: wrongType });
    }
    case 'array': {
      const element = arbitraryFromZod(def.element as z.ZodType, overrides, field);
      const max = c.max ?? 8;
      return fc.oneof(
        { weight: 8, arbitrary: fc.array(element, { minLength: c.min ?? 0, maxLength: Math.min(max, 4) }) },
        { weight: 2, arbitrary: fc.array(element, { minLength: max, maxLength: max + 1 }) },
        { weight: 1, arbitrary: fc.constant([]) },
        { weight: 1, arbitrary: wrongType },
      );
    }
    case 'enum': {
      const values = Object.values(def.entries ?? {});
      return fc.oneof(
        { weight: 8, arbitrary: fc.constantFrom(...values) },
        {
          weight: 2,
          arbitrary: fc
            .constantFrom(...values)
            .chain((v) =>
              fc.constantFrom(v.toLowerCase(), v.toUpperCase(), `${v} `, `${v}\n`, 'Unknown', ''),
            ),
        },
        { weight: 1, arbitrary: wrongType },
      );
    }
    case 'number': {
      const min = c.min ?? -1000;
      const max = c.max ?? 1000;
      return fc.oneof(
        { weight: 6, arbitrary: fc.integer({ min, max }) },
        { weight: 3, arbitrary: fc.constantFrom(min - 1, min, max, max + 1, 2 ** 53, -(2 ** 31)) },
        { weight: 1, arbitrary: fc.double({ min: min - 1, max: max + 1, noNaN: true }) },
        { weight: 1, arbitrary: fc.integer({ min, max }).map(String) },
      );
    }
    case 'string': {
      const max = c.max ?? 64;
      const min = c.min ?? 0;
      const options: fc.WeightedArbitrary<unknown>[] = [
        { weight: 2, arbitrary: fc.string({ minLength: 0, maxLength: max + 2, unit: 'grapheme' }) },
        { weight: 1, arbitrary: wrongType },
      ];
      if (c.pattern) {
        const matching = fc.stringMatching(c.pattern);
        options.push({ weight: 8, arbitrary: matching.filter((s) => s.length <= max) });
        options.push({
          weight: 2,
          arbitrary: fc
            .constantFrom(min - 1, min, max, max + 1)
            .filter((n) => n >= 0)
            .map((n) => 'a'.repeat(n)),
        });
        options.push({ weight: 1, arbitrary: matching.map((s) => s.toUpperCase()) });
      }
      return fc.oneof(...options);
    }
    default:
      return wrongType;
  }
}

// ---------------------------------------------------------------------------
// Metadata within and beyond the reporter limits.

/** labels and annotations around 8 entries of 1 KiB; finalizers; ownerReferences; invalid label syntax. */
export function metadataArb(): fc.Arbitrary<Record<string, unknown>> {
  const labelKey = fc.oneof(
    fc.stringMatching(/^[a-z]([-a-z0-9]{0,10}[a-z0-9])?$/),
    fc.stringMatching(/^[a-z]{1,8}\.example\.com\/[a-z]([-a-z0-9]{0,20}[a-z0-9])?$/),
  );
  const labelValue = fc.oneof(
    { weight: 12, arbitrary: fc.stringMatching(/^[a-z0-9]([-a-z0-9_.]{0,40}[a-z0-9])?$/) },
    { weight: 3, arbitrary: fc.constantFrom('', 'x'.repeat(63)) },
    { weight: 1, arbitrary: fc.constantFrom('x'.repeat(64), 'bad value', 'v\n') },
  );
  const entries = <T>(value: fc.Arbitrary<T>) =>
    fc.oneof(
      fc.dictionary(labelKey, value, { maxKeys: 3 }),
      fc.dictionary(labelKey, value, { minKeys: 7, maxKeys: 9 }),
    );
  const annotationValue = fc.oneof(
    fc.string({ maxLength: 30 }),
    fc.integer({ min: 990, max: 1030 }).map((n) => 'v'.repeat(n)),
    fc.integer({ min: 2000, max: 70_000 }).map((n) => 'w'.repeat(n)),
    fc.constant('é'.repeat(511)),
  );
  return fc.record(
    {
      labels: entries(labelValue),
      annotations: entries(annotationValue),
      finalizers: fc.constantFrom(['example.com/hold'], [], ['harouter.dev/keep', 'example.com/b']),
      ownerReferences: fc.constantFrom(
        [],
        [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: '3f1c2b1e-8d3a-4c5e-9f70-1a2b3c4d5e6f' }],
      ),
    },
    { requiredKeys: [] },
  );
}

// ---------------------------------------------------------------------------
// Cases.

/** The identities that send generated requests (real tokens in the fuzzer). */
export const ACTOR_NAMES = [
  'reporterA',
  'reporterB',
  'unbound',
  'intruder',
  'admin',
  'operator',
  'cleanup',
] as const;
export type ActorName = (typeof ACTOR_NAMES)[number];

/** What the generator needs to know of the fuzz namespaces (identical in every mode). */
export interface FuzzWorld {
  /** Nodes of the pod-bound reporter tokens. */
  nodeA: string;
  nodeB: string;
  /** HARouters listing nodeA and nodeB that have no stored report (CREATE targets). */
  createRouters: readonly string[];
  /** A HARouter that lists neither nodeA nor nodeB. */
  foreignRouter: string;
  /** Stored reports (UPDATE and DELETE targets), never changed by the fuzzer (every write is a dry run). */
  stored: readonly StoredReport[];
  /** The clock when the cases are generated. */
  nowMs: number;
}

export interface StateCase {
  kind: 'state';
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  actor: ActorName;
  /** Index into `FuzzWorld.stored` (UPDATE, DELETE). */
  stored?: number;
  object?: Record<string, unknown>;
  /** How the object was made (for the failure report). */
  how: string;
}

export interface RouterCase {
  kind: 'router';
  object: Record<string, unknown>;
  how: string;
}

export type FuzzCase = StateCase | RouterCase;

type Obj = Record<string, unknown>;

const clone = <T>(v: T): T => structuredClone(v);
const isRecord = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function setPath(obj: Obj, path: string, value: unknown): Obj {
  const out = clone(obj);
  const keys = path.split('.');
  let node: Obj = out;
  for (const key of keys.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Obj;
  }
  const last = keys.at(-1) as string;
  if (value === undefined) delete node[last];
  else node[last] = value;
  return out;
}

/** One targeted mutation of a HARouterState: a path, a value made from the object's own ids, a name. */
interface Mutation {
  path: string;
  value: (routerId: string, agent: string) => unknown;
  how: string;
}

function stateMutationArb(world: FuzzWorld): fc.Arbitrary<Mutation> {
  const SAMPLE_ID = '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d';
  const m = (path: string, arb: fc.Arbitrary<unknown>) =>
    arb.map((value) => ({ path, value: () => value, how: path }));
  /** A form of the object's own id: the generated variant of a sample id, applied to the real one. */
  const idForm = (path: string, arb: fc.Arbitrary<string>, sample: string, pick: 'routerId' | 'agent') =>
    arb.map((form) => ({
      path,
      value: (routerId: string, agent: string) =>
        form.replaceAll(sample, pick === 'routerId' ? routerId : agent),
      how: path,
    }));
  return fc.oneof(
    m('spec.observedAt', observedAtArb(world.nowMs)),
    m('spec.message', textArb(256)),
    m(
      'spec.priority',
      fc.oneof(fc.constantFrom(-1, 0, 1, 254, 255, 256, 1.5, '100', true, null), fc.integer()),
    ),
    m(
      'spec.state',
      fc.constantFrom('Primary', 'Backup', 'Fault', 'Stopped', 'primary', 'Unknown', 'MASTER', '', null, 3),
    ),
    idForm('spec.routerId', routerIdFormArb(SAMPLE_ID), SAMPLE_ID, 'routerId'),
    idForm('spec.agent', agentFormArb('sample-node'), 'sample-node', 'agent'),
    fc
      .constantFrom(
        (r: string, a: string) => `${r}.${a}x`,
        (r: string) => `${r}.${world.nodeB}`,
        (r: string, a: string) => `${r.toUpperCase()}.${a}`,
        (r: string) => r,
      )
      .map((value) => ({ path: 'metadata.name', value, how: 'metadata.name' })),
    m('spec', fc.constantFrom([], 'Primary', null, 7)),
    m('spec.color', fc.constantFrom('red', null, { nested: true })),
    m('status', fc.constant({ conditions: [] })),
    m('metadata.uid', fc.constant('not-a-uid')),
    m('spec.routerId', fc.constantFrom(null, 12, undefined)),
    m('spec.observedAt', fc.constantFrom(null, undefined, 1_700_000_000)),
    m('spec.message', fc.constantFrom(null, { text: 'x' }, ['x'])),
  );
}

/** A mutation of metadata: merges generated labels, annotations, finalizers and ownerReferences. */
function withMetadata(object: Obj, meta: Obj): Obj {
  return { ...object, metadata: { ...(object.metadata as Obj), ...meta } };
}

function reportObject(routerId: string, agent: string, spec: Obj = {}): Obj {
  return {
    apiVersion: API_VERSION,
    kind: HAROUTER_STATE.kind,
    metadata: { name: `${routerId}.${agent}` },
    spec: { routerId, agent, state: 'Backup', observedAt: '2026-01-01T00:00:01.25Z', ...spec },
  };
}

const NODE_OF: Record<ActorName, 'A' | 'B' | undefined> = {
  reporterA: 'A',
  reporterB: 'B',
  unbound: undefined,
  intruder: 'A',
  admin: undefined,
  operator: undefined,
  cleanup: undefined,
};

/** HARouterState cases: CREATE, UPDATE (reports and spec-unchanged writes) and DELETE by every identity. */
export function stateCaseArb(world: FuzzWorld): fc.Arbitrary<StateCase> {
  const actor = fc.constantFrom(...ACTOR_NAMES);
  // Reports come mostly from reporters on their own node, so that every later rule is reached too.
  const reporting = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<ActorName>('reporterA', 'reporterB') },
    { weight: 3, arbitrary: fc.constantFrom<ActorName>('unbound', 'intruder', 'admin', 'operator') },
  );
  const node = (a: ActorName) => (NODE_OF[a] === 'B' ? world.nodeB : world.nodeA);
  const derivedSpec = arbitraryFromZod(harouterStateSpecSchema, {
    observedAt: observedAtArb(world.nowMs),
    message: fc.option(textArb(256), { nil: undefined, freq: 2 }),
  });
  const mutation = stateMutationArb(world);
  const mutations = fc.oneof(
    { weight: 4, arbitrary: fc.constant([] as Mutation[]) },
    { weight: 5, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 1 }) },
    { weight: 2, arbitrary: fc.array(mutation, { minLength: 2, maxLength: 3 }) },
  );
  const anyMetadata = metadataArb();
  const metadata = fc.option(anyMetadata, { nil: undefined, freq: 3 });
  const mutate = (base: Obj, how: string) =>
    fc.tuple(mutations, metadata, fc.boolean()).map(([applied, meta, keepName]) => {
      let object = base;
      for (const mu of applied) {
        const spec = (object.spec ?? {}) as Obj;
        object = setPath(object, mu.path, mu.value(String(spec.routerId), String(spec.agent)));
      }
      // Usually keep the name in step with the mutated ids, so that the other rules get tested too.
      const spec = object.spec as Obj | undefined;
      if (keepName && isRecord(spec) && !applied.some((mu) => mu.path === 'metadata.name'))
        object = setPath(object, 'metadata.name', `${String(spec.routerId)}.${String(spec.agent)}`);
      if (meta) object = withMetadata(object, meta);
      return {
        object,
        how: [how, ...applied.map((mu) => mu.how), ...(meta ? ['metadata'] : [])].join('+'),
      };
    });

  const create = fc
    .tuple(
      reporting,
      fc.oneof(
        { weight: 6, arbitrary: fc.constantFrom(...world.createRouters) },
        { weight: 1, arbitrary: fc.constant(world.foreignRouter) },
        { weight: 1, arbitrary: fc.uuid().map((u) => u.toLowerCase()) },
      ),
      fc.nat(4).map((n) => n > 0),
      fc.nat(9),
    )
    .chain(([a, routerId, ownNode, style]) => {
      const agent = ownNode ? node(a) : a === 'reporterB' ? world.nodeA : world.nodeB;
      if (style === 0) {
        // The spec from the zod-derived arbitrary, named after its ids.
        return derivedSpec.map((spec) => {
          const s = (typeof spec === 'object' && spec !== null && !Array.isArray(spec) ? spec : {}) as Obj;
          return {
            kind: 'state' as const,
            operation: 'CREATE' as const,
            actor: a,
            object: {
              apiVersion: API_VERSION,
              kind: HAROUTER_STATE.kind,
              metadata: { name: `${String(s.routerId)}.${String(s.agent)}` },
              spec,
            },
            how: 'zod',
          };
        });
      }
      return mutate(reportObject(routerId, agent, { state: 'Primary' }), 'create').map(({ object, how }) => ({
        kind: 'state' as const,
        operation: 'CREATE' as const,
        actor: a,
        object,
        how,
      }));
    });

  const update = fc
    .tuple(actor, fc.nat(world.stored.length - 1), fc.boolean())
    .chain(([a, index, specChange]) => {
      const old = world.stored[index] as StoredReport;
      const base = clone({
        apiVersion: API_VERSION,
        kind: HAROUTER_STATE.kind,
        metadata: { name: old.metadata.name },
        spec: specChange
          ? { ...old.spec, state: 'Backup', observedAt: '2026-01-01T00:00:02Z' }
          : { ...old.spec },
      }) as Obj;
      const made = specChange
        ? mutate(base, 'update').map((x) => ({
            ...x,
            object: setPath(x.object, 'metadata.name', old.metadata.name),
          }))
        : anyMetadata.map((meta) => ({ object: withMetadata(base, meta), how: 'unchanged-spec+metadata' }));
      return made.map(({ object, how }) => ({
        kind: 'state' as const,
        operation: 'UPDATE' as const,
        actor: a,
        stored: index,
        object,
        how,
      }));
    });

  const remove = fc.tuple(actor, fc.nat(world.stored.length - 1)).map(([a, index]) => ({
    kind: 'state' as const,
    operation: 'DELETE' as const,
    actor: a,
    stored: index,
    how: 'delete',
  }));

  return fc.oneof(
    { weight: 5, arbitrary: create },
    { weight: 4, arbitrary: update },
    { weight: 1, arbitrary: remove },
  );
}

/** HARouter cases: zod-derived specs and mutations of a valid router, with fresh UUID names. */
export function routerCaseArb(): fc.Arbitrary<RouterCase> {
  const derived = arbitraryFromZod(harouterSpecSchema, {
    displayName: fc.option(textArb(64), { nil: undefined, freq: 2 }),
  });
  const name = fc.oneof(
    { weight: 8, arbitrary: fc.uuid().map((u) => u.toLowerCase()) },
    { weight: 2, arbitrary: fc.uuid().chain((u) => routerIdFormArb(u.toLowerCase())) },
  );
  const agents = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `node-${i}` }));
  const valid = {
    agents: [{ name: 'node-a' }, { name: 'node-b', priority: 100 }],
    endpoint: { serviceName: 'edge', ports: [{ name: 'bgp', port: 179, protocol: 'TCP' }] },
  };
  const mutation = fc.oneof(
    fc.constantFrom(0, 1, 15, 16, 17).map((n) => ['agents', agents(n)] as const),
    fc
      .constantFrom(-1, 0, 1, 254, 255, 2.5, '7')
      .map((p) => ['agents', [{ name: 'node-a', priority: p }]] as const),
    agentFormArb('node-a').map((a) => ['agents', [{ name: a }]] as const),
    fc.constant(['agents', [{ name: 'node-a' }, { name: 'node-a' }]] as const),
    textArb(64).map((t) => ['displayName', t] as const),
    fc
      .constantFrom('edge', 'Edge', '1edge', 'e'.repeat(63), 'e'.repeat(64), 'edge-', '')
      .map((s) => ['endpoint', { serviceName: s, ports: [{ port: 80 }] }] as const),
    fc
      .constantFrom(0, 1, 65535, 65536, -1)
      .map((p) => ['endpoint', { serviceName: 'edge', ports: [{ port: p }] }] as const),
    fc
      .constantFrom('TCP', 'UDP', 'SCTP', 'HTTP', 'tcp')
      .map((p) => ['endpoint', { serviceName: 'edge', ports: [{ port: 80, protocol: p }] }] as const),
    fc
      .constantFrom('bgp', 'BGP', 'bgp_1', 'p'.repeat(63), 'p'.repeat(64), '-bgp')
      .map((n) => ['endpoint', { serviceName: 'edge', ports: [{ name: n, port: 179 }] }] as const),
    fc
      .constantFrom(0, 1, 32, 33)
      .map(
        (n) =>
          [
            'endpoint',
            { serviceName: 'edge', ports: Array.from({ length: n }, (_, i) => ({ port: 1000 + i })) },
          ] as const,
      ),
    fc.constant(['color', 'red'] as const),
    fc.constant(['endpoint', null] as const),
    fc.constant(['agents', null] as const),
  );
  return fc.oneof(
    fc.tuple(name, derived).map(([n, spec]) => ({
      kind: 'router' as const,
      object: { apiVersion: API_VERSION, kind: HAROUTER.kind, metadata: { name: n }, spec },
      how: 'zod',
    })),
    fc.tuple(name, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([n, mutations]) => {
      let spec: Obj = clone(valid);
      for (const [key, value] of mutations) spec = { ...spec, [key]: clone(value) };
      return {
        kind: 'router' as const,
        object: { apiVersion: API_VERSION, kind: HAROUTER.kind, metadata: { name: n }, spec },
        how: mutations.map(([key]) => key).join('+'),
      };
    }),
  );
}

/** `count` cases (about 3 reports to 1 router), reproducible from `seed`. */
export function generateCases(world: FuzzWorld, count: number, seed: number): FuzzCase[] {
  const arb: fc.Arbitrary<FuzzCase> = fc.oneof(
    { weight: 3, arbitrary: stateCaseArb(world) },
    { weight: 1, arbitrary: routerCaseArb() },
  );
  return fc.sample(arb, { numRuns: count, seed });
}
