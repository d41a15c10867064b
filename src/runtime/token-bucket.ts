/**
 * client-go's token-bucket rate limiter (`flowcontrol.NewTokenBucketRateLimiter`):
 * `qps` tokens a second, at most `burst` saved up. `reserve()` takes a token and
 * says how long to wait for it, so callers queue in arrival order without polling.
 * A `qps` of 0 turns the limit off.
 */

/** The rate, the burst, and the clock (tests). */
export interface TokenBucketOptions {
  /** Sustained requests per second; 0 means unlimited. */
  qps: number;
  /** Requests allowed at once after a quiet period (>= 1). */
  burst: number;
  /** Milliseconds clock (default `performance.now`). */
  now?: () => number;
}

/** A token bucket (see the module comment). */
export class TokenBucket {
  readonly #qps: number;
  readonly #burst: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  constructor(options: TokenBucketOptions) {
    if (!(options.qps >= 0) || !Number.isFinite(options.qps)) throw new RangeError('qps must be >= 0');
    if (!(options.burst >= 1) || !Number.isInteger(options.burst)) {
      throw new RangeError('burst must be an integer >= 1');
    }
    this.#qps = options.qps;
    this.#burst = options.burst;
    this.#now = options.now ?? (() => performance.now());
    this.#tokens = options.burst;
    this.#last = this.#now();
  }

  /**
   * Takes one token, possibly ahead of time: returns how many milliseconds the
   * caller must wait before using it (0 when one was available).
   */
  reserve(): number {
    if (this.#qps === 0) return 0;
    this.#refill();
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : (-this.#tokens * 1000) / this.#qps;
  }

  /** Takes one token only when one is available now (a caller refused instead of queued). */
  tryTake(): boolean {
    if (this.#qps === 0) return true;
    this.#refill();
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#last) * this.#qps) / 1000);
    this.#last = now;
  }
}
