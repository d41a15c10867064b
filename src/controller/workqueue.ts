/**
 * A work queue with client-go semantics (`util/workqueue`): a rate-limited,
 * delaying, deduplicating FIFO of string keys.
 *
 * - `add` of a key already waiting is a no-op (N events collapse into one
 *   reconcile).
 * - A key handed to a worker by `get` is "processing" until `done`; adding it
 *   meanwhile marks it dirty and it is queued again on `done`. So a key is never
 *   processed by two workers at once, and no event is lost while it is processed.
 * - `addUrgent` puts a key ahead of every key that is not urgent (a waiting
 *   key moves up; a key being processed goes ahead once `done`): routers whose
 *   traffic must leave a node that is no longer Ready, while a storm keeps
 *   hundreds of other keys waiting.
 * - `addAfter` delays an add (the earliest pending time wins);
 *   `addRateLimited` delays by the key's exponential backoff with jitter;
 *   `forget` clears the key's failure count.
 * - `shutDown` stops accepting adds and wakes idle workers; `get` then returns
 *   `{ shutdown: true }` (keys still waiting are dropped: the loop is level-based
 *   and the next run or leader relists everything). `shutDownWithDrain` also
 *   waits until every key being processed is `done`.
 */
import type { Metrics } from '../metrics.ts';
import { type BackoffOptions, KeyedBackoff } from '../runtime/backoff.ts';
import type { KeyQueue } from './types.ts';

/** The queue's metric name, per-key backoff and clock. */
export interface WorkQueueOptions {
  /** The `name` label of the workqueue_* metrics. */
  name: string;
  metrics?: Metrics;
  /** Per-key failure backoff (default 5 ms doubling up to 5 min, 20% jitter). */
  backoff?: BackoffOptions;
  /** Clock in milliseconds (default performance.now); injectable for tests. */
  now?: () => number;
}

/** A key to process, or the signal that the queue is shut down and the worker should return. */
export type GetResult = { key: string; shutdown: false } | { key: undefined; shutdown: true };

/** Per-key retry delays: 5 ms doubling to 5 min, 20% jitter (client-go's default limiter, jittered). */
export const DEFAULT_QUEUE_BACKOFF: BackoffOptions = { baseMs: 5, maxMs: 300_000, jitter: 0.2 };

/** The reconcile queue (see the module comment): each key at most once waiting and once processing. */
export class WorkQueue implements KeyQueue {
  readonly name: string;
  readonly #metrics: Metrics | undefined;
  readonly #now: () => number;
  readonly #limiter: KeyedBackoff;
  readonly #queue: string[] = [];
  /** Waiting urgent keys, handed out before `#queue`. */
  readonly #urgent: string[] = [];
  /** Keys to put in `#urgent` when they are next queued (or already there). */
  readonly #urgentKeys = new Set<string>();
  /**
   * Copies left in `#queue` by keys that moved to `#urgent`, skipped when they come
   * up: moving a key never searches the queue (at 10,000 waiting keys, searching
   * for the 2,500 routers of a node took 150 ms of the event loop).
   */
  readonly #left = new Map<string, number>();
  #leftCount = 0;
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  /** When each waiting key was added (for queue duration). */
  readonly #addedAt = new Map<string, number>();
  /** When each processing key was handed out (for work duration). */
  readonly #startedAt = new Map<string, number>();
  readonly #delayed = new Map<string, { readyAt: number; timer: NodeJS.Timeout }>();
  #waiters: Array<(result: GetResult) => void> = [];
  #drainWaiters: Array<() => void> = [];
  #shuttingDown = false;

  constructor(options: WorkQueueOptions) {
    this.name = options.name;
    this.#metrics = options.metrics;
    this.#now = options.now ?? (() => performance.now());
    this.#limiter = new KeyedBackoff(options.backoff ?? DEFAULT_QUEUE_BACKOFF);
    this.#metrics?.workqueueDepth.set({ name: this.name }, 0);
    this.#metrics?.workqueueAdds.inc({ name: this.name }, 0);
    this.#metrics?.workqueueRetries.inc({ name: this.name }, 0);
  }

  /** Keys waiting to be handed out (not those being processed). */
  len(): number {
    return this.#urgent.length + this.#queue.length - this.#leftCount;
  }

  /** Keys currently handed out and not yet `done`. */
  processingCount(): number {
    return this.#processing.size;
  }

  add(key: string): void {
    if (this.#shuttingDown) return;
    if (this.#dirty.has(key)) return;
    this.#metrics?.workqueueAdds.inc({ name: this.name });
    this.#dirty.add(key);
    this.#addedAt.set(key, this.#now());
    if (this.#processing.has(key)) return;
    this.#push(key);
  }

  /** Like `add`, ahead of every key that is not urgent (see the module comment). */
  addUrgent(key: string): void {
    if (this.#shuttingDown || this.#urgentKeys.has(key)) return;
    this.#urgentKeys.add(key);
    if (!this.#dirty.has(key) || this.#processing.has(key)) {
      this.add(key);
      return;
    }
    this.#left.set(key, (this.#left.get(key) ?? 0) + 1);
    this.#leftCount++;
    this.#urgent.push(key);
  }

  addAfter(key: string, delayMs: number): void {
    if (this.#shuttingDown) return;
    if (delayMs <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.#now() + delayMs;
    const pending = this.#delayed.get(key);
    if (pending !== undefined) {
      if (pending.readyAt <= readyAt) return;
      clearTimeout(pending.timer);
    }
    const timer = setTimeout(() => {
      this.#delayed.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref?.();
    this.#delayed.set(key, { readyAt, timer });
  }

  /** Re-queues `key` after its next per-key backoff delay (a failed attempt). */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.#metrics?.workqueueRetries.inc({ name: this.name });
    this.addAfter(key, this.#limiter.when(key));
  }

  /** Clears the failure count of `key` (a successful attempt). */
  forget(key: string): void {
    this.#limiter.forget(key);
  }

  numRequeues(key: string): number {
    return this.#limiter.numRequeues(key);
  }

  /** Waits for the next key; `{ shutdown: true }` once the queue is shut down. */
  get(): Promise<GetResult> {
    if (this.#shuttingDown) return Promise.resolve({ key: undefined, shutdown: true });
    const key = this.#urgent.shift() ?? this.#nextNotUrgent();
    if (key !== undefined) return Promise.resolve(this.#handOut(key));
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Marks `key` as processed; if it was added meanwhile, it is queued again. */
  done(key: string): void {
    if (!this.#processing.delete(key)) return;
    const startedAt = this.#startedAt.get(key);
    this.#startedAt.delete(key);
    if (startedAt !== undefined) {
      this.#metrics?.workqueueWorkDuration.observe({ name: this.name }, (this.#now() - startedAt) / 1000);
    }
    if (this.#dirty.has(key) && !this.#shuttingDown) this.#push(key);
    if (this.#processing.size === 0) {
      const drained = this.#drainWaiters;
      this.#drainWaiters = [];
      for (const resolve of drained) resolve();
    }
  }

  shutDown(): void {
    if (this.#shuttingDown) return;
    this.#shuttingDown = true;
    for (const { timer } of this.#delayed.values()) clearTimeout(timer);
    this.#delayed.clear();
    this.#queue.length = 0;
    this.#urgent.length = 0;
    this.#urgentKeys.clear();
    this.#left.clear();
    this.#leftCount = 0;
    this.#dirty.clear();
    this.#addedAt.clear();
    this.#metrics?.workqueueDepth.set({ name: this.name }, 0);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const resolve of waiters) resolve({ key: undefined, shutdown: true });
  }

  /** Shuts down, then resolves once every key handed out has been marked `done`. */
  shutDownWithDrain(): Promise<void> {
    this.shutDown();
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainWaiters.push(resolve));
  }

  #push(key: string): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter(this.#handOut(key));
      return;
    }
    if (this.#urgentKeys.has(key)) this.#urgent.push(key);
    else this.#queue.push(key);
    this.#metrics?.workqueueDepth.set({ name: this.name }, this.len());
  }

  /** The next key of the ordinary lane, past the copies left by keys that moved to `#urgent`. */
  #nextNotUrgent(): string | undefined {
    for (let key = this.#queue.shift(); key !== undefined; key = this.#queue.shift()) {
      const left = this.#left.get(key);
      if (left === undefined) return key;
      if (left === 1) this.#left.delete(key);
      else this.#left.set(key, left - 1);
      this.#leftCount--;
    }
    return undefined;
  }

  #handOut(key: string): GetResult {
    this.#processing.add(key);
    this.#dirty.delete(key);
    this.#urgentKeys.delete(key);
    const now = this.#now();
    const addedAt = this.#addedAt.get(key);
    this.#addedAt.delete(key);
    if (addedAt !== undefined) {
      this.#metrics?.workqueueQueueDuration.observe({ name: this.name }, (now - addedAt) / 1000);
    }
    this.#startedAt.set(key, now);
    this.#metrics?.workqueueDepth.set({ name: this.name }, this.len());
    return { key, shutdown: false };
  }
}
