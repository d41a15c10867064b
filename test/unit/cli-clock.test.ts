import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareObservedAt, parseObservedAt, RFC3339_PATTERN } from '../../src/api/index.ts';
import { createObservedAtClock, processClock } from '../../src/report/clock.ts';

describe('createObservedAtClock', () => {
  it('adds the monotonic reading to the wall-clock origin at nanosecond resolution', () => {
    const clock = createObservedAtClock(1_764_072_000_123.456, () => 0.000789);
    expect(clock.now()).toBe('2025-11-25T12:00:00.123456789Z');
  });

  it('always prints nine fractional digits in the contract format', () => {
    const clock = createObservedAtClock(1_764_072_000_000, () => 0);
    const value = clock.now();
    expect(value).toMatch(new RegExp(RFC3339_PATTERN));
    expect(value).toMatch(/\.[0-9]{9}Z$/);
  });

  it('is strictly increasing even when the reading stalls or steps back', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 2, maxLength: 50 }),
        (readings) => {
          let i = 0;
          const clock = createObservedAtClock(
            1_764_072_000_000.5,
            () => readings[i++ % readings.length] ?? 0,
          );
          const values = readings.map(() => clock.now());
          for (let k = 1; k < values.length; k++) {
            expect(compareObservedAt(values[k - 1] ?? '', values[k] ?? '')).toBe(-1);
          }
        },
      ),
    );
  });

  it('orders readings of two clocks started at different wall times below a millisecond', () => {
    const early = createObservedAtClock(1_764_072_000_000.25, () => 0.1);
    const late = createObservedAtClock(1_764_072_000_000.5, () => 0.1);
    expect(compareObservedAt(early.now(), late.now())).toBe(-1);
  });
});

describe('processClock', () => {
  it('reads close to Date.now() and keeps sub-millisecond digits', () => {
    const clock = processClock();
    const nanos = parseObservedAt(clock.now()) ?? 0n;
    expect(Number(nanos / 1_000_000n)).toBeGreaterThan(Date.now() - 1000);
    expect(Number(nanos / 1_000_000n)).toBeLessThanOrEqual(Date.now() + 5);
    const a = clock.nowNanos();
    const b = clock.nowNanos();
    expect(b > a).toBe(true);
  });
});
