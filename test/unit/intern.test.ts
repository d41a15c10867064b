import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { internString, internStrings } from '../../src/runtime/intern.ts';

describe('internStrings', () => {
  it('keeps every value of any JSON document, whatever its strings (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const parsed = JSON.parse(JSON.stringify(value));
        expect(internStrings(parsed)).toEqual(JSON.parse(JSON.stringify(value)));
      }),
    );
  });

  it('keeps keys that are special or numeric, and strings longer than the bound', () => {
    const long = 'x'.repeat(300);
    const parsed = JSON.parse(
      JSON.stringify({
        a: ['__proto__', '123', 'constructor', '', long],
        b: { '0': 'toString', c: null, d: 7 },
      }),
    );
    expect(internStrings(parsed)).toEqual({
      a: ['__proto__', '123', 'constructor', '', long],
      b: { '0': 'toString', c: null, d: 7 },
    });
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    for (const text of ['__proto__', '123', 'hasOwnProperty', 'ünïcode ✓', ''])
      expect(internString(text)).toBe(text);
  });

  it('interns in place and returns the same value', () => {
    const parsed = JSON.parse('{"metadata":{"namespace":"routers"},"spec":{"agents":[{"name":"node-a"}]}}');
    const spec = parsed.spec;
    expect(internStrings(parsed)).toBe(parsed);
    expect(parsed.spec).toBe(spec);
  });
});
