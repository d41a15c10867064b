import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CoalescingQueue, type DeliveryResult } from '../../src/agent/queue.ts';
import { AGENT_BACKOFF, agentBackoffMs, agentResult } from '../../src/agent/sender.ts';

/** A queue whose deliveries the test completes by hand, and whose timers it fires. */
function harness(concurrency = 2) {
  const calls: Array<{ key: string; value: number; finish: (result: DeliveryResult) => void }> = [];
  const timers: Array<{ callback: () => void; ms: number }> = [];
  const done: Array<[string, number]> = [];
  const queue = new CoalescingQueue<number>({
    concurrency,
    backoffMs: (failures) => failures * 100,
    deliver: (key, value) => new Promise((finish) => calls.push({ key, value, finish })),
    onDone: (key, value) => done.push([key, value]),
    timers: {
      setTimeout: (callback, ms) => timers.push({ callback, ms }),
      clearTimeout: () => undefined,
    },
  });
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve();
  };
  return { queue, calls, timers, done, settle };
}

describe('CoalescingQueue', () => {
  it('keeps one delivery per key in flight; the newest value waiting wins', async () => {
    const { queue, calls, done, settle } = harness();
    queue.offer('a', 1);
    queue.offer('a', 2);
    queue.offer('a', 3);
    expect(calls.map((c) => c.value)).toEqual([1]);
    calls[0]?.finish('done');
    await settle();
    expect(calls.map((c) => c.value)).toEqual([1, 3]);
    calls[1]?.finish('done');
    await settle();
    expect(done).toEqual([
      ['a', 1],
      ['a', 3],
    ]);
    expect(queue.pending).toBe(0);
  });

  it('bounds the keys in flight and serves the rest in order', async () => {
    const { queue, calls, settle } = harness(2);
    for (const key of ['a', 'b', 'c', 'd']) queue.offer(key, 1);
    expect(calls.map((c) => c.key)).toEqual(['a', 'b']);
    calls[1]?.finish('done');
    await settle();
    expect(calls.map((c) => c.key)).toEqual(['a', 'b', 'c']);
    expect(queue.pending).toBe(3);
  });

  it('retries after a backoff that holds no slot, with a newer value if one came', async () => {
    const { queue, calls, timers, done, settle } = harness(1);
    queue.offer('a', 1);
    queue.offer('b', 1);
    calls[0]?.finish('retry');
    await settle();
    expect(timers.map((t) => t.ms)).toEqual([100]);
    expect(calls.map((c) => c.key)).toEqual(['a', 'b']);
    queue.offer('a', 2);
    calls[1]?.finish('done');
    timers[0]?.callback();
    await settle();
    expect(calls.map((c) => [c.key, c.value])).toEqual([
      ['a', 1],
      ['b', 1],
      ['a', 2],
    ]);
    calls[2]?.finish('done');
    await settle();
    expect(done).toEqual([
      ['b', 1],
      ['a', 2],
    ]);
    await queue.whenIdle();
  });

  it('delivers the last value offered for every key, never an older after a newer (property)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.boolean()), { minLength: 1, maxLength: 40 }),
        async (steps) => {
          const delivered = new Map<string, number[]>();
          let counter = 0;
          const queue = new CoalescingQueue<number>({
            concurrency: 2,
            backoffMs: () => 0,
            deliver: async (key, value) => {
              await Promise.resolve();
              if (value % 3 === 0 && Math.random() < 0.5) return 'retry';
              delivered.set(key, [...(delivered.get(key) ?? []), value]);
              return 'done';
            },
          });
          const last = new Map<string, number>();
          for (const [key, pause] of steps) {
            counter++;
            queue.offer(key, counter);
            last.set(key, counter);
            if (pause) await new Promise((resolve) => setImmediate(resolve));
          }
          await queue.whenIdle();
          for (const [key, value] of last) {
            const values = delivered.get(key) ?? [];
            expect(values.at(-1)).toBe(value);
            expect([...values].sort((x, y) => x - y)).toEqual(values);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('agentResult and backoff', () => {
  it('counts stale as delivered, drops only 422, retries 401, 403 and the rest', () => {
    expect(agentResult({ kind: 'applied', status: 200 })).toBe('applied');
    expect(agentResult({ kind: 'stale', status: 422, message: 'stale report' })).toBe('stale');
    expect(agentResult({ kind: 'refused', status: 422, reason: 'Invalid', message: '' })).toBe('refused');
    for (const status of [400, 401, 403, 404, 409]) {
      expect(agentResult({ kind: 'refused', status, reason: 'x', message: '' })).toBe('retried');
    }
    expect(agentResult({ kind: 'transient', reason: 'ECONNREFUSED', message: '' })).toBe('retried');
  });

  it('backs off with jitter up to 30 s and never beyond', () => {
    expect(agentBackoffMs(1, 0)).toBe(AGENT_BACKOFF.initialMs / 2);
    expect(agentBackoffMs(1, 0.999)).toBeLessThanOrEqual(AGENT_BACKOFF.initialMs);
    expect(agentBackoffMs(50, 0.999)).toBeLessThanOrEqual(30_000);
    expect(agentBackoffMs(50, 0)).toBe(15_000);
  });
});
