/**
 * Decisions wait for fresh caches. An informer whose watch failed or expired
 * keeps serving its old objects until its next watch is established or relist
 * lands (`hasSynced` stays true), and that can take seconds: the backoff between
 * attempts while the API server was down, then a relist after 410 Gone. A
 * reconcile in that window would decide on a Node that went NotReady meanwhile
 * (routing traffic to it) or on reports that were overtaken. So each reconcile
 * first waits until every cache it reads is fresh (`Informer.isFresh`); the
 * reconcile itself is unchanged.
 */
import type { Logger } from '../log.ts';
import type { ReconcileResult, Reconciler } from './types.ts';

/** A cache that can say whether it is current (an `Informer`). */
export interface FreshnessSource {
  readonly name: string;
  isFresh(): boolean;
  waitUntilFresh(signal?: AbortSignal): Promise<boolean>;
}

/**
 * `reconciler`, holding each reconcile until every cache is fresh. When `signal`
 * aborts (the operator stops) while waiting, the reconcile is skipped.
 */
export function holdUntilFresh(
  reconciler: Reconciler,
  caches: readonly FreshnessSource[],
  signal: AbortSignal,
  log: Logger,
): Reconciler {
  let holding = false;
  return {
    // biome-ignore lint/suspicious/noConfusingVoidType: the Reconciler signature
    async reconcile(key: string, keyLog: Logger): Promise<void | ReconcileResult> {
      for (;;) {
        const stale = caches.filter((c) => !c.isFresh());
        if (stale.length === 0) break;
        if (!holding) {
          holding = true;
          log.info({ stale: stale.map((c) => c.name) }, 'caches not current: decisions wait for the watches');
        }
        const fresh = await Promise.all(stale.map((c) => c.waitUntilFresh(signal)));
        if (!fresh.every(Boolean) || signal.aborted) return undefined;
      }
      if (holding) {
        holding = false;
        log.info('caches current again: deciding');
      }
      return reconciler.reconcile(key, keyLog);
    },
  };
}
