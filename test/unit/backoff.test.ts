import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay, KeyedBackoff, retryAfterDelay, sleep } from '../../src/runtime/backoff.ts';

describe('backoffDelay', () => {
  it('doubles from the base and caps at the maximum without jitter', () => {
    const opts = { baseMs: 5, maxMs: 100, jitter: 0 };
    expect([0, 1, 2, 3, 4, 5, 6, 50, 5000].map((a) => backoffDelay(a, opts))).toEqual([
      5, 10, 20, 40, 80, 100, 100, 100, 100,
    ]);
  });

  it('applies jitter within [1-j, 1+j] and never exceeds the maximum', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 200 }),
        fc.double({ min: 0, max: 0.999999, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (attempt, r, jitter) => {
          const opts = { baseMs: 10, maxMs: 30_000, jitter, random: () => r };
          const raw = Math.min(10 * 2 ** attempt, 30_000);
          const d = backoffDelay(attempt, opts);
          expect(d).toBeGreaterThanOrEqual(Math.floor(raw * (1 - jitter)));
          expect(d).toBeLessThanOrEqual(Math.min(Math.ceil(raw * (1 + jitter)), 30_000));
          expect(d).toBeLessThanOrEqual(30_000);
        },
      ),
    );
  });

  it('spreads delays of clients that failed together', () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const delays = new Set(
      Array.from({ length: 20 }, () => backoffDelay(3, { baseMs: 100, maxMs: 10_000, random })),
    );
    expect(delays.size).toBeGreaterThan(10);
  });
});

describe('Backoff', () => {
  it('grows with each next() and starts over after reset()', () => {
    const b = new Backoff({ baseMs: 1, maxMs: 1000, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([1, 2, 4]);
    expect(b.attempts).toBe(3);
    b.reset();
    expect(b.next()).toBe(1);
  });
});

describe('retryAfterDelay', () => {
  it('waits what the server asked, plus at most the jitter, never above the cap', () => {
    expect(retryAfterDelay(1, { baseMs: 250, maxMs: 30_000, jitter: 0.2, random: () => 0 })).toBe(1000);
    expect(retryAfterDelay(1, { baseMs: 250, maxMs: 30_000, jitter: 0.2, random: () => 0.999 })).toBe(1200);
    expect(retryAfterDelay(60, { baseMs: 250, maxMs: 30_000 })).toBe(30_000);
  });
});

describe('KeyedBackoff', () => {
  it('counts failures per key and forgets them', () => {
    const k = new KeyedBackoff({ baseMs: 5, maxMs: 1000, jitter: 0 });
    expect([k.when('a'), k.when('a'), k.when('b'), k.when('a')]).toEqual([5, 10, 5, 20]);
    expect(k.numRequeues('a')).toBe(3);
    k.forget('a');
    expect(k.numRequeues('a')).toBe(0);
    expect(k.when('a')).toBe(5);
    expect(k.when('b')).toBe(10);
  });
});

describe('sleep', () => {
  it('resolves early when aborted', async () => {
    const ac = new AbortController();
    const started = performance.now();
    const p = sleep(10_000, ac.signal);
    ac.abort();
    await p;
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
