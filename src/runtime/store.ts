/**
 * What a cache looks like to its readers and to its listeners: the informer
 * (`src/kube/`) implements it, the controller and the reconciler (`src/controller/`,
 * `src/reconcile/`) read it. It lives below both so that imports only run downward.
 */

/**
 * A read-only view of an informer's cache. Keys follow client-go's
 * `MetaNamespaceKeyFunc`: `namespace/name` for namespaced objects, `name` for
 * cluster-scoped ones (Nodes). Objects are the raw JSON the API server sent
 * (timestamps are strings, never `Date`s). Callers must not mutate them.
 */
export interface Store<T> {
  get(key: string): T | undefined;
  list(): T[];
}

/** A `Store` with named indexes (client-go's `Indexer`): lookups by index value, no scan. */
export interface IndexedStore<T> extends Store<T> {
  /** The objects whose index function `index` returned `value`. */
  byIndex(index: string, value: string): T[];
}

/** Handlers an informer calls. They must be cheap and must not throw (errors are logged and dropped). */
export interface EventHandlers<T> {
  add?(obj: T): void;
  update?(oldObj: T, newObj: T): void;
  delete?(obj: T): void;
}
