import { RFC3339_PATTERN } from './validation.ts';

const rfc3339 = new RegExp(RFC3339_PATTERN);
const NANOS_PER_SECOND = 1_000_000_000n;

/**
 * An RFC 3339 instant as integer nanoseconds since the Unix epoch, so that two
 * reports are ordered at full precision. JavaScript's `Date` keeps milliseconds
 * only: never order reports with it. Returns undefined for a malformed or
 * impossible value (February 30th, for instance).
 */
export function parseObservedAt(value: string): bigint | undefined {
  if (!rfc3339.test(value)) return undefined;
  const year = Number(value.slice(0, 4));
  const month = Number(value.slice(5, 7));
  const day = Number(value.slice(8, 10));
  const hour = Number(value.slice(11, 13));
  const minute = Number(value.slice(14, 16));
  const second = Math.min(Number(value.slice(17, 19)), 59);
  const date = new Date(Date.UTC(year, month - 1, day));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month - 1 || date.getUTCDate() !== day) {
    return undefined;
  }
  const rest = value.slice(19);
  const fraction = rest.startsWith('.') ? (/^\.([0-9]+)/.exec(rest)?.[1] ?? '') : '';
  const zone = rest.slice(fraction.length ? fraction.length + 1 : 0);
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    offsetMinutes = sign * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(4, 6)));
  }
  const seconds = BigInt(Date.UTC(year, month - 1, day, hour, minute, second) / 1000 - offsetMinutes * 60);
  const nanos = BigInt(fraction.padEnd(9, '0') || '0');
  return seconds * NANOS_PER_SECOND + nanos;
}

/** Orders two valid observedAt values: negative, zero or positive, like a comparator. */
export function compareObservedAt(a: string, b: string): number {
  const x = parseObservedAt(a);
  const y = parseObservedAt(b);
  if (x === undefined || y === undefined) throw new RangeError('observedAt is not an RFC 3339 time');
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Formats nanoseconds since the epoch as RFC 3339 UTC with nine fractional digits. */
export function formatObservedAt(nanos: bigint): string {
  const seconds = nanos / NANOS_PER_SECOND;
  const fraction = (nanos % NANOS_PER_SECOND).toString().padStart(9, '0');
  return `${new Date(Number(seconds) * 1000).toISOString().slice(0, 19)}.${fraction}Z`;
}

/** Seconds (as a float, for metrics) from an observedAt to a millisecond clock reading. */
export function secondsSince(observedAt: string, nowMs: number): number | undefined {
  const nanos = parseObservedAt(observedAt);
  if (nanos === undefined) return undefined;
  return (nowMs * 1e6 - Number(nanos)) / 1e9;
}
