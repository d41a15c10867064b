import { formatObservedAt } from '../api/observed-at.ts';

/** A source of `observedAt` values: RFC 3339 UTC with nine fractional digits. */
export interface ObservedAtClock {
  /** Integer nanoseconds since the epoch; strictly increasing within one clock. */
  nowNanos(): bigint;
  /** The same instant formatted for `spec.observedAt`. */
  now(): string;
}

/**
 * Builds a clock from a wall-clock origin and a monotonic reading, both in
 * (fractional) milliseconds, as `performance.timeOrigin` and `performance.now()`
 * give them: the origin is the wall clock at process start with microsecond
 * resolution, the monotonic part adds sub-microsecond steps, so two processes
 * started a few microseconds apart stamp in the order they started, and one
 * process never goes backwards even if the wall clock is stepped. Every reading
 * is strictly greater than the previous one (ties get one more nanosecond).
 */
export function createObservedAtClock(originMs: number, elapsedMs: () => number): ObservedAtClock {
  const originNanos = BigInt(Math.round(originMs * 1000)) * 1000n;
  let last = -1n;
  const nowNanos = (): bigint => {
    let value = originNanos + BigInt(Math.round(elapsedMs() * 1_000_000));
    if (value <= last) value = last + 1n;
    last = value;
    return value;
  };
  return { nowNanos, now: () => formatObservedAt(nowNanos()) };
}

/** The process's clock: `performance.timeOrigin` plus `performance.now()`. */
export function processClock(): ObservedAtClock {
  return createObservedAtClock(performance.timeOrigin, () => performance.now());
}
