/**
 * At most one keepalived reload per interval, however many changes ask for one:
 * frequent SIGHUPs in quick succession made masters flap (Neutron bugs 1647432,
 * 1731595). A request made while a reload is waiting joins it; a request made
 * soon after a reload waits until the interval since that reload has passed.
 */

/** The clock and timer the throttle runs on (tests pass their own). */
export interface ThrottleTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const REAL_TIMERS: ThrottleTimers = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Coalesces reload requests; see the module comment. */
export class ReloadThrottle {
  readonly #intervalMs: number;
  readonly #reload: () => void;
  readonly #timers: ThrottleTimers;
  #last: number | undefined;
  #pending: unknown;
  #stopped = false;

  /** `reload` runs at most once per `intervalMs`; a throwing `reload` is the caller's to catch. */
  constructor(intervalMs: number, reload: () => void, timers: ThrottleTimers = REAL_TIMERS) {
    this.#intervalMs = intervalMs;
    this.#reload = reload;
    this.#timers = timers;
  }

  /** True while a reload is waiting to run. */
  get pending(): boolean {
    return this.#pending !== undefined;
  }

  /**
   * Asks for a reload: it runs on a timer (never inside the caller, so that the
   * changes made in the same turn share it), at once when none ran within the
   * interval, else when the interval since the last one has passed.
   */
  request(): void {
    if (this.#stopped || this.#pending !== undefined) return;
    const wait =
      this.#last === undefined ? 0 : Math.max(0, this.#last + this.#intervalMs - this.#timers.now());
    this.#pending = this.#timers.setTimeout(() => {
      this.#pending = undefined;
      this.#last = this.#timers.now();
      this.#reload();
    }, wait);
  }

  /** Cancels a waiting reload; later requests are ignored. */
  stop(): void {
    this.#stopped = true;
    if (this.#pending !== undefined) this.#timers.clearTimeout(this.#pending);
    this.#pending = undefined;
  }
}
