import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  harouterSchema,
  harouterStateObjectSchema,
  parseObservedAt,
  RFC3339_PATTERN,
} from '../../src/api/index.ts';
import { ROUTER_CORPUS, STATE_CORPUS, toJson } from '../support/admission-cases.ts';

/** The zod side of the shared corpus; test/integration/crd-schema.test.ts runs the same corpus through the CRDs. */
describe('zod schemas classify the shared corpus', () => {
  const routerId = randomUUID();
  it.each(STATE_CORPUS)('HARouterState: $name (valid: $valid)', ({ object, valid }) => {
    expect(harouterStateObjectSchema.safeParse(toJson(object(routerId))).success).toBe(valid);
  });
  it.each(ROUTER_CORPUS)('HARouter: $name (valid: $valid)', ({ object, valid }) => {
    expect(harouterSchema.safeParse(toJson(object(routerId))).success).toBe(valid);
  });
});

describe('observedAt', () => {
  it('orders at full precision, offsets included', () => {
    const a = parseObservedAt('2026-01-01T00:00:00.499999999Z');
    const b = parseObservedAt('2026-01-01T00:00:00.5Z');
    const c = parseObservedAt('2026-01-01T01:00:00.5+01:00');
    expect(a !== undefined && b !== undefined && a < b).toBe(true);
    expect(b).toBe(c);
  });
  it('the pattern has no leap second and no year below 1000 (CEL timestamp() and the date-time format refuse them)', () => {
    const re = new RegExp(RFC3339_PATTERN);
    expect(re.test('2026-06-30T23:59:60Z')).toBe(false);
    expect(re.test('0999-01-01T00:00:00Z')).toBe(false);
    expect(re.test('9999-12-31T23:59:59.999999999Z')).toBe(true);
  });
});
