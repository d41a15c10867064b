import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LogLimit } from '../../src/runtime/log-limit.ts';
import { escapeForLog, LOG_FIELD_MAX_CHARS } from '../../src/runtime/log-text.ts';

describe('escapeForLog', () => {
  it('writes control, bidi and backslash characters as \\u{..} and clips', () => {
    expect(escapeForLog('a\u001b[31mb\u202ec\\d\n')).toBe('a\\u{1B}[31mb\\u{202E}c\\u{5C}d\\u{A}');
    expect(escapeForLog('x'.repeat(300), 10)).toBe(`${'x'.repeat(10)}...`);
    expect(escapeForLog('x'.repeat(10), 10)).toBe('x'.repeat(10));
  });

  it('keeps 253 code points by default, whatever the input size', () => {
    const huge = 'n'.repeat(900 * 1024);
    expect(escapeForLog(huge)).toBe(`${'n'.repeat(LOG_FIELD_MAX_CHARS)}...`);
    expect(LOG_FIELD_MAX_CHARS).toBe(253);
  });

  it('never yields a control character, and at most 253 code points of input', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 600 }), (text) => {
        const out = escapeForLog(text);
        expect(out).not.toMatch(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u);
        const kept = out.endsWith('...') && [...text].length > LOG_FIELD_MAX_CHARS;
        // Each input code point becomes one character or one \u{..} escape of at most 10.
        expect([...out].length).toBeLessThanOrEqual(LOG_FIELD_MAX_CHARS * 10 + (kept ? 3 : 0));
      }),
    );
  });
});

describe('LogLimit', () => {
  it('writes a few lines per window and says how many it left out', () => {
    let now = 0;
    const limit = new LogLimit(2, 1000, () => now);
    expect([limit.take(), limit.take(), limit.take(), limit.take()].map((t) => t.write)).toEqual([
      true,
      true,
      false,
      false,
    ]);
    now = 1000;
    expect(limit.take()).toEqual({ write: true, suppressed: 2 });
  });
});
