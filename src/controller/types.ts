/**
 * The seams between the runtime (informers, work queue, worker pool, leader
 * election, wiring) and the reconcile logic (`src/reconcile/`, `event-keys.ts`).
 * Runtime owner: see docs/operator.md. These types are a contract: change them
 * additively.
 */
import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import type { HARouter, HARouterState, LeaseObject } from '../api/index.ts';
import type { Logger } from '../log.ts';
import type { IndexedStore, Store } from '../runtime/store.ts';
import type { ServiceFacts } from './transforms.ts';

/**
 * What `reconcile` may return: nothing (done; the key is forgotten by the rate
 * limiter) or a request to look again after a delay (also forgets the failure
 * count). Throwing means failure: the key is retried with per-key exponential
 * backoff (`addRateLimited`).
 */
export type ReconcileResult = undefined | { requeueAfterMs: number };

/**
 * Level-based reconciler. Called with a key `namespace/routerId`; never called
 * concurrently for the same key. Must read the whole current state from the
 * caches, never the event that queued it. `log` is a child logger carrying
 * `controller`, `key` and `reconcileID`.
 */
export interface Reconciler {
  // biome-ignore lint/suspicious/noConfusingVoidType: an async function that returns nothing is allowed
  reconcile(key: string, log: Logger): Promise<void | ReconcileResult>;
}

/** The caches the reconciler reads. Every store is synced before the first reconcile. */
export interface Caches {
  /** Indexed by `ROUTERS_BY_AGENT`, `ROUTERS_BY_SERVICE` and `ROUTERS_BY_SEGMENT` (indexes.ts). */
  harouters: IndexedStore<HARouter>;
  /** Indexed by `REPORTS_BY_ROUTER` (indexes.ts). */
  harouterStates: IndexedStore<HARouterState>;
  nodes: Store<V1Node>;
  /** Only slices labelled `endpointslice.kubernetes.io/managed-by=harouter.dev`; indexed by `SLICES_BY_ROUTER`. */
  endpointSlices: IndexedStore<V1EndpointSlice>;
  /**
   * Only Services labelled `harouter.dev/router` (any value), as `ServiceFacts`
   * (for the opt-in rule); read-only, the operator never writes them.
   */
  services: Store<ServiceFacts>;
  /**
   * The VRID claim Leases (label `harouter.dev/vrid-claim=true`) in the operator's namespace;
   * indexed by `CLAIMS_BY_HOLDER` and `CLAIMS_BY_SEGMENT`.
   */
  vridClaims: IndexedStore<LeaseObject>;
}

/** The informer kinds, as the names used in `Caches`. */
export type CacheName = keyof Caches;

/**
 * An informer event delivered to `event-keys.ts`. For `update`, `oldObj` is
 * the previous cached object. For `delete`, `obj` is the last known state.
 * After a relist the informer delivers `update` for objects that changed (or
 * not: a resync delivers `update` with identical objects) and `delete` for those
 * that disappeared while the watch was down.
 */
export type InformerEvent<T> =
  | { type: 'add'; obj: T }
  | { type: 'update'; obj: T; oldObj: T }
  | { type: 'delete'; obj: T };

/** The subset of the work queue that event handlers and reconcilers may use. */
export interface KeyQueue {
  /** Queue `key` now (deduplicated). */
  add(key: string): void;
  /** Queue `key` now, ahead of the keys that are not urgent (deduplicated). */
  addUrgent(key: string): void;
  /** Queue `key` after `delayMs` (deduplicated on delivery). */
  addAfter(key: string, delayMs: number): void;
}

/** The element type of a cache. */
export type CacheObject<K extends CacheName> = Caches[K] extends Store<infer T> ? T : never;

/**
 * The mapping `event-keys.ts` is expected to provide (owned by the reconcile
 * side): which reconcile keys (`namespace/routerId`) an informer event affects.
 * The runtime calls it from every informer's handlers and adds the keys to the
 * queue. It may read the caches (e.g. Node -> every router listing it).
 */
export type KeysForEvent = <K extends CacheName>(
  cache: K,
  event: InformerEvent<CacheObject<K>>,
  caches: Caches,
) => Iterable<string>;
