/**
 * A bounded pool of workers draining a `WorkQueue` into a `Reconciler`
 * (controller-runtime's `pkg/internal/controller/controller.go`, simplified):
 * one key at a time per key (the queue guarantees it), at most `workers` keys
 * at once. Thrown errors re-queue the key with per-key backoff; success forgets
 * the key's failures; `{ requeueAfterMs }` forgets and looks again later.
 */
import { randomUUID } from 'node:crypto';
import { describeError } from '../kube/errors.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { Reconciler } from './types.ts';
import type { WorkQueue } from './workqueue.ts';

/** The `result` label values of `controller_runtime_reconcile_total`, all exported from zero. */
export const RECONCILE_RESULTS = ['success', 'error', 'requeue'] as const;
export type ReconcileOutcome = (typeof RECONCILE_RESULTS)[number];

/** The queue to drain, the reconciler to call, how many workers, and where to log and count. */
export interface ControllerOptions {
  /** The `controller` label (CONTROLLER_NAME). */
  name: string;
  queue: WorkQueue;
  reconciler: Reconciler;
  /** Number of concurrent workers (>= 1). */
  workers: number;
  log: Logger;
  metrics?: Metrics;
}

/** The worker pool (see the module comment): `start` runs the workers, `stop` drains them. */
export class Controller {
  readonly #options: ControllerOptions;
  #running: Promise<void> | undefined;

  constructor(options: ControllerOptions) {
    if (!Number.isInteger(options.workers) || options.workers < 1) {
      throw new RangeError('workers must be a positive integer');
    }
    this.#options = options;
    const { metrics, name } = options;
    if (metrics) {
      for (const result of RECONCILE_RESULTS) metrics.reconcileTotal.inc({ controller: name, result }, 0);
      metrics.reconcileErrors.inc({ controller: name }, 0);
    }
  }

  /** Starts the workers; the promise resolves when they have all stopped (after `stop`). */
  start(): Promise<void> {
    if (this.#running === undefined) {
      const workers = Array.from({ length: this.#options.workers }, (_, i) => this.#worker(i));
      this.#running = Promise.all(workers).then(() => undefined);
      this.#options.log.info({ workers: this.#options.workers }, 'starting workers');
    }
    return this.#running;
  }

  /** Stops taking keys and waits for the reconciles in flight to finish. */
  async stop(): Promise<void> {
    await this.#options.queue.shutDownWithDrain();
    await this.#running;
    this.#options.log.info('workers stopped');
  }

  async #worker(_index: number): Promise<void> {
    const { queue } = this.#options;
    for (;;) {
      const item = await queue.get();
      if (item.shutdown) return;
      try {
        await this.processKey(item.key);
      } finally {
        queue.done(item.key);
      }
    }
  }

  /** Reconciles one key and records the outcome (exposed for tests). Never throws. */
  async processKey(key: string): Promise<ReconcileOutcome> {
    const { queue, reconciler, metrics, name } = this.#options;
    const log = this.#options.log.child({ controller: name, key, reconcileID: randomUUID() });
    const started = performance.now();
    let outcome: ReconcileOutcome;
    try {
      const result = await reconciler.reconcile(key, log);
      queue.forget(key);
      if (result && typeof result.requeueAfterMs === 'number' && result.requeueAfterMs >= 0) {
        queue.addAfter(key, result.requeueAfterMs);
        outcome = 'requeue';
      } else {
        outcome = 'success';
      }
    } catch (err) {
      outcome = 'error';
      metrics?.reconcileErrors.inc({ controller: name });
      queue.addRateLimited(key);
      log.error({ error: describeError(err), requeues: queue.numRequeues(key) }, 'reconcile failed');
    }
    metrics?.reconcileTime.observe({ controller: name }, (performance.now() - started) / 1000);
    metrics?.reconcileTotal.inc({ controller: name, result: outcome });
    return outcome;
  }
}
