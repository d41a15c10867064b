/**
 * Readable operator logs for local mode: one pino JSON line becomes
 * `12:05:01.123 INFO  message  key=value ...`. Anything that is not a JSON
 * object is printed as it came. Control characters
 * (terminal escapes) never reach the terminal raw: they are written `\uXXXX`. Pure.
 */

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO ',
  40: 'WARN ',
  50: 'ERROR',
  60: 'FATAL',
};
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'v']);

/** Printable ASCII without space, `"` and `=`: shown as it is; anything else is quoted. */
const PLAIN = /^[!#-<>-~]+$/;
/** What a terminal may act on: C0 controls (ESC...), DEL, C1 controls (CSI...), bidirectional controls. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is this rule's purpose.
const TERMINAL_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Text with every terminal-unsafe character written as `\uXXXX`. */
function escapeUnsafe(text: string): string {
  return text.replace(TERMINAL_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** JSON text, with what JSON leaves raw but a terminal acts on (C1, bidi) escaped too. */
function quote(v: unknown): string {
  return escapeUnsafe(JSON.stringify(v) ?? String(v));
}

/** A field value, safe to print on a terminal (log fields carry untrusted text). */
function value(v: unknown): string {
  if (typeof v === 'string') return PLAIN.test(v) ? v : quote(v);
  if (v !== null && typeof v === 'object') {
    const error = v as { message?: unknown; type?: unknown };
    return quote(typeof error.message === 'string' ? error.message : v);
  }
  return String(v);
}

/** Formats one log line (without its newline). */
export function formatLogLine(line: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return escapeUnsafe(line);
  }
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return escapeUnsafe(line);
  const record = entry as Record<string, unknown>;
  const time =
    typeof record.time === 'string'
      ? record.time.slice(11, 23)
      : typeof record.time === 'number'
        ? new Date(record.time).toISOString().slice(11, 23)
        : '';
  const level =
    typeof record.level === 'number'
      ? (LEVELS[record.level] ?? String(record.level))
      : String(record.level ?? '');
  const fields = Object.entries(record)
    .filter(([key]) => !HIDDEN.has(key))
    .map(([key, v]) => `${key}=${value(v)}`);
  const message = typeof record.msg === 'string' ? escapeUnsafe(record.msg) : '';
  return [time, level, message, ...fields].filter((part) => part !== '').join(' ');
}
