/**
 * Untrusted text as a log field: whatever a client sends (a name of 900 KiB, an
 * ANSI escape, a newline) costs a bounded, inert field, never a log line a
 * terminal or a log viewer acts on, and never a copy of the whole input.
 */

/** The longest untrusted text a log field keeps, in code points: a DNS subdomain's maximum. */
export const LOG_FIELD_MAX_CHARS = 253;

const NOT_SAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\\]/u;

/**
 * `text` made safe for a log field: at most `max` code points (then `...`), and
 * every control, format (bidirectional marks included) or separator character,
 * and the backslash, written as `\u{XXXX}`, so a log line shows what arrived
 * without acting on it. Reads at most `max + 1` code points of `text`.
 */
export function escapeForLog(text: string, max = LOG_FIELD_MAX_CHARS): string {
  let out = '';
  let count = 0;
  for (const ch of text) {
    if (count === max) return `${out}...`;
    out += NOT_SAFE.test(ch) ? `\\u{${(ch.codePointAt(0) ?? 0).toString(16).toUpperCase()}}` : ch;
    count++;
  }
  return out;
}
