/**
 * Exponential backoff with jitter, shared by the work queue (per-key retries),
 * the informers (watch and list retries) and leader election.
 */

/** Shape of an exponential backoff: first delay, cap, growth and jitter. */
export interface BackoffOptions {
  /** Delay of the first retry, before jitter. */
  baseMs: number;
  /** Upper bound of any delay, jitter included. */
  maxMs: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /**
   * Relative jitter in [0, 1] (default 0.2): the delay is multiplied by a
   * uniform factor in [1 - jitter, 1 + jitter], so that many clients that failed
   * together do not retry together.
   */
  jitter?: number;
  /** Source of randomness in [0, 1) (default Math.random); injectable for tests. */
  random?: () => number;
}

/** The options' jitter clamped to [0, 1] and one draw of their randomness. */
function jitterDraw(options: BackoffOptions): { jitter: number; draw: number } {
  return { jitter: Math.min(Math.max(options.jitter ?? 0.2, 0), 1), draw: (options.random ?? Math.random)() };
}

/** The delay before retry number `attempt` (0 for the first retry). */
export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const factor = options.factor ?? 2;
  const { jitter, draw } = jitterDraw(options);
  const exponent = Math.max(0, Math.floor(attempt));
  // Cap before multiplying out to keep the arithmetic finite for large attempt counts.
  const raw = Math.min(options.baseMs * factor ** Math.min(exponent, 1024), options.maxMs);
  const jittered = raw * (1 - jitter + 2 * jitter * draw);
  return Math.max(0, Math.min(Math.round(jittered), options.maxMs));
}

/**
 * The delay before retrying when the server said how long to wait (`Retry-After`):
 * that long, plus up to `jitter` more so that clients told the same thing do not
 * come back together, never above `maxMs`. It replaces the grown backoff: a server
 * that answers is reachable, and it knows when it will be ready (client-go's REST
 * client waits the same way).
 */
export function retryAfterDelay(seconds: number, options: BackoffOptions): number {
  const { jitter, draw } = jitterDraw(options);
  return Math.min(Math.round(seconds * 1000 * (1 + jitter * draw)), options.maxMs);
}

/** A single sequence of retries: `next()` grows the delay, `reset()` starts over after a success. */
export class Backoff {
  readonly #options: BackoffOptions;
  #attempt = 0;

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  /** Number of delays handed out since the last reset. */
  get attempts(): number {
    return this.#attempt;
  }

  next(): number {
    const delay = backoffDelay(this.#attempt, this.#options);
    this.#attempt += 1;
    return delay;
  }

  reset(): void {
    this.#attempt = 0;
  }
}

/**
 * Per-key exponential failure backoff (client-go's ItemExponentialFailureRateLimiter,
 * with jitter): `when(key)` returns the next delay for that key and counts a
 * failure; `forget(key)` clears the count after a success.
 */
export class KeyedBackoff {
  readonly #options: BackoffOptions;
  readonly #failures = new Map<string, number>();

  constructor(options: BackoffOptions) {
    this.#options = options;
  }

  when(key: string): number {
    const failures = this.#failures.get(key) ?? 0;
    this.#failures.set(key, failures + 1);
    return backoffDelay(failures, this.#options);
  }

  numRequeues(key: string): number {
    return this.#failures.get(key) ?? 0;
  }

  forget(key: string): void {
    this.#failures.delete(key);
  }
}

/** Sleeps `ms`, resolving early (without throwing) when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
