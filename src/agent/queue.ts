/**
 * The per-router coalescing queue: one delivery in flight per key, the newest
 * value wins, a bounded number of keys in flight at once, and retries after a
 * backoff that hold no slot. Knows nothing of HTTP: `deliver` says whether a
 * value is done or must be tried again.
 */

/** What a delivery came to: done (stored, stale or dropped for good) or to be retried. */
export type DeliveryResult = 'done' | 'retry';

/** Timers, injectable for tests. */
export interface QueueTimers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

interface Slot<V> {
  value: V;
  /** A newer value that arrived while `value` was in flight. */
  next: V | undefined;
  phase: 'ready' | 'sending' | 'waiting';
  /** Failed attempts in a row. */
  failures: number;
  timer?: unknown;
}

/** Options of a {@link CoalescingQueue}. */
export interface QueueOptions<V> {
  /** Most keys in flight at once. */
  concurrency: number;
  /** Delivers one value; must not reject (a rejection counts as `retry`). */
  deliver(key: string, value: V, failures: number): Promise<DeliveryResult>;
  /** The wait before retry number `failures` (1 for the first retry). */
  backoffMs(failures: number): number;
  /** Heard after a value is done (not after one replaced before it was sent). */
  onDone?(key: string, value: V): void;
  timers?: QueueTimers;
}

/**
 * Holds at most one pending value per key. Invariants: a key is never
 * delivered twice at once; a value offered later for a key replaces any value
 * not yet sent, and is sent after the one in flight completes; keys are served
 * in the order they became ready.
 */
export class CoalescingQueue<V> {
  private readonly slots = new Map<string, Slot<V>>();
  /** Keys ready to send, in order (a Set keeps insertion order). */
  private readonly ready = new Set<string>();
  private inFlight = 0;
  private stopped = false;
  private readonly options: QueueOptions<V>;
  private readonly timers: QueueTimers;
  private idleWaiters: Array<() => void> = [];

  constructor(options: QueueOptions<V>) {
    this.options = options;
    this.timers = options.timers ?? {
      setTimeout: (callback, ms) => setTimeout(callback, ms),
      clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
    };
  }

  /** Keys with a value not yet done (ready, in flight or waiting to retry). */
  get pending(): number {
    return this.slots.size;
  }

  /** Offers the newest value for `key`. */
  offer(key: string, value: V): void {
    if (this.stopped) return;
    const slot = this.slots.get(key);
    if (!slot) {
      this.slots.set(key, { value, next: undefined, phase: 'ready', failures: 0 });
      this.ready.add(key);
      this.pump();
      return;
    }
    if (slot.phase === 'sending') slot.next = value;
    else slot.value = value;
  }

  /** Resolves when nothing is pending. */
  whenIdle(): Promise<void> {
    if (this.slots.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Stops sending and cancels the retry timers; values in flight finish unheard. */
  stop(): void {
    this.stopped = true;
    for (const slot of this.slots.values()) {
      if (slot.timer !== undefined) this.timers.clearTimeout(slot.timer);
    }
    this.ready.clear();
  }

  private pump(): void {
    while (!this.stopped && this.inFlight < this.options.concurrency && this.ready.size > 0) {
      const key = this.ready.values().next().value as string;
      this.ready.delete(key);
      const slot = this.slots.get(key);
      if (!slot) continue;
      slot.phase = 'sending';
      this.inFlight++;
      const value = slot.value;
      this.options
        .deliver(key, value, slot.failures)
        .catch((): DeliveryResult => 'retry')
        .then((result) => this.settle(key, slot, value, result));
    }
  }

  private settle(key: string, slot: Slot<V>, sent: V, result: DeliveryResult): void {
    this.inFlight--;
    if (this.stopped) return;
    if (result === 'done') {
      this.options.onDone?.(key, sent);
      slot.failures = 0;
      if (slot.next === undefined) {
        this.slots.delete(key);
        this.notifyIdle();
      } else {
        slot.value = slot.next;
        slot.next = undefined;
        slot.phase = 'ready';
        this.ready.add(key);
      }
    } else {
      if (slot.next !== undefined) {
        slot.value = slot.next;
        slot.next = undefined;
      }
      slot.failures++;
      slot.phase = 'waiting';
      slot.timer = this.timers.setTimeout(() => {
        slot.timer = undefined;
        if (this.stopped) return;
        slot.phase = 'ready';
        this.ready.add(key);
        this.pump();
      }, this.options.backoffMs(slot.failures));
    }
    this.pump();
  }

  private notifyIdle(): void {
    if (this.slots.size > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
