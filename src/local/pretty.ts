/**
 * Readable operator logs for local mode: one pino JSON line becomes
 * `12:05:01.123 INFO  message  key=value ...`. Anything that is not a JSON
 * object is printed as it came. Pure.
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

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object') {
    const error = v as { message?: unknown; type?: unknown };
    if (typeof error.message === 'string') return JSON.stringify(error.message);
    return JSON.stringify(v);
  }
  return String(v);
}

/** Formats one log line (without its newline). */
export function formatLogLine(line: string): string {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return line;
  }
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) return line;
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
  const message = typeof record.msg === 'string' ? record.msg : '';
  return [time, level, message, ...fields].filter((part) => part !== '').join(' ');
}
