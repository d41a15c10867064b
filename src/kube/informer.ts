/**
 * An informer over the transport's watch (`ApiTransport.watch`; not client-node's
 * `makeInformer`/`ListWatch`, which stop for good on most errors and never ask
 * for bookmarks):
 *
 * - list (paginated, raw JSON), then watch from the list's resourceVersion with
 *   `allowWatchBookmarks=true` and a server `timeoutSeconds` under 30 s (the
 *   transport ends a watch that has been silent for 30 s, as client-node did);
 * - resume each new watch from the last resourceVersion seen (events and bookmarks);
 * - relist on 410 Gone (the resourceVersion is too old), diffing the new list
 *   against the store so that changes and deletions missed meanwhile are
 *   delivered as update/delete events: no event is lost, only collapsed;
 * - retry forever with jittered exponential backoff; periodic full relist;
 * - an in-memory store keyed `namespace/name` (`name` when cluster-scoped);
 * - an optional parser per kind: an object that fails it is logged and skipped
 *   (and an older cached version of it removed), never stopping the stream;
 * - handlers are called after the store is updated; a throwing handler is
 *   logged and never breaks the watch loop;
 * - an optional transform trims each object before it is stored (client-go's
 *   `TransformFunc`: `managedFields` and fields no reader needs cost memory at
 *   every cached object), and optional indexes (client-go's `Indexers`) answer
 *   "the objects whose index value is X" without scanning the store.
 */
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { Backoff, type BackoffOptions, retryAfterDelay, sleep } from '../runtime/backoff.ts';
import type { EventHandlers, IndexedStore } from '../runtime/store.ts';
import { apiErrorFacts, describeError } from './errors.ts';
import type { RawRequester, WatchFn } from './transport.ts';

export type { WatchFn } from './transport.ts';

/** The fields of an object the informer relies on. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; resourceVersion?: string };
}

/** A zod-compatible schema (`safeParse`). */
export interface SafeParser<T> {
  safeParse(value: unknown):
    | { success: true; data: T }
    | {
        success: false;
        error: { issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; code: string }> };
      };
}

/** What an informer lists and watches, and how it validates, retries and counts. */
export interface InformerOptions<T extends KubeObject> {
  /** Name used in logs (e.g. `harouters`). */
  name: string;
  raw: RawRequester;
  /** The watch (`ApiTransport.watch`; tests pass their own to interfere with watches). */
  watch: WatchFn;
  /** The API server's `host:port`, the `host` label of counted watches. */
  host?: string;
  /** Collection path, e.g. `/api/v1/nodes` or `/apis/harouter.dev/v1alpha1/namespaces/ns/harouters`. */
  path: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Schema every object must pass (bad objects are logged and skipped). */
  schema?: SafeParser<T>;
  log: Logger;
  /** Server-side watch timeout, jittered down by up to 20% (default 25 s, must be < 30). */
  watchTimeoutSeconds?: number;
  /** Full relist period (default 10 min; 0 disables). */
  resyncPeriodMs?: number;
  /** Backoff of failed lists and watches (default 250 ms doubling to 30 s, 20% jitter). */
  backoff?: BackoffOptions;
  /** Page size of lists (default 500). */
  pageSize?: number;
  /**
   * Counts each watch in `rest_client_requests_total` (method GET): code 200 once it
   * streamed or closed cleanly, the HTTP status when refused, `<error>` otherwise.
   * (Lists are counted by the requester.)
   */
  metrics?: Metrics;
  /**
   * Trims an object (already parsed) before it is stored and handed to handlers.
   * Must return a new object or the same one; must not throw.
   */
  transform?: (obj: T) => T;
  /** Named index functions: each returns the index values of an object (client-go's `Indexers`). */
  indexers?: Record<string, (obj: T) => readonly string[]>;
  /** Called each time the cache becomes fresh again (see {@link Informer.isFresh}). Must not throw. */
  onFresh?: () => void;
}

/**
 * How long an established watch must stay up, with nothing received, before the cache counts as
 * fresh again: a watch resumed after a gap receives what it missed at once, and a watch the
 * server refuses (410 Gone) says so at once.
 */
export const FRESH_AFTER_CONNECT_MS = 250;

/** Retry delays of failed lists and watches: 250 ms doubling to 30 s, 20% jitter. */
export const DEFAULT_INFORMER_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 30_000, jitter: 0.2 };

/** Counters of what the informer did (for tests and debugging). */
export interface InformerStats {
  lists: number;
  watches: number;
  gone: number;
  errors: number;
  skipped: number;
}

/** `namespace/name`, or `name` for cluster-scoped objects (client-go's MetaNamespaceKeyFunc). */
export function objectKey(obj: KubeObject): string | undefined {
  const name = obj.metadata?.name;
  if (!name) return undefined;
  const namespace = obj.metadata?.namespace;
  return namespace ? `${namespace}/${name}` : name;
}

/** The collection path of a resource, optionally limited to one namespace. */
export function collectionPath(resource: {
  group?: string;
  version: string;
  plural: string;
  namespace?: string;
}): string {
  const base = resource.group ? `/apis/${resource.group}/${resource.version}` : `/api/${resource.version}`;
  return resource.namespace
    ? `${base}/namespaces/${encodeURIComponent(resource.namespace)}/${resource.plural}`
    : `${base}/${resource.plural}`;
}

type WatchOutcome = { kind: 'closed'; events: number } | { kind: 'gone' } | { kind: 'error'; err: unknown };

/** One kind's cache, kept current by list and watch (see the module comment); a `Store` for the reconciler. */
export class Informer<T extends KubeObject> implements IndexedStore<T> {
  readonly name: string;
  readonly stats: InformerStats = { lists: 0, watches: 0, gone: 0, errors: 0, skipped: 0 };
  readonly #options: InformerOptions<T>;
  readonly #log: Logger;
  readonly #watch: WatchFn;
  readonly #backoff: Backoff;
  readonly #backoffOptions: BackoffOptions;
  readonly #handlers: EventHandlers<T>[] = [];
  #store = new Map<string, T>();
  /** index name -> index value -> keys of the objects with that value. */
  readonly #indexes = new Map<string, Map<string, Set<string>>>();
  #resourceVersion = '';
  #synced = false;
  #syncWaiters: Array<() => void> = [];
  #fresh = false;
  #freshWaiters: Array<() => void> = [];
  /** Aborted by `retryNow` to cut short the backoff pause in progress. */
  #wake = new AbortController();
  #nextRelistAt = 0;
  #needList = true;
  #stopped = false;
  readonly #stop = new AbortController();
  #currentWatch: AbortController | undefined;
  #running: Promise<void> | undefined;

  constructor(options: InformerOptions<T>) {
    if ((options.watchTimeoutSeconds ?? 25) >= 30 || (options.watchTimeoutSeconds ?? 25) < 1) {
      throw new RangeError('watchTimeoutSeconds must be between 1 and 29');
    }
    this.name = options.name;
    this.#options = options;
    this.#log = options.log.child({ informer: options.name });
    this.#backoffOptions = options.backoff ?? DEFAULT_INFORMER_BACKOFF;
    this.#backoff = new Backoff(this.#backoffOptions);
    this.#watch = options.watch;
  }

  get(key: string): T | undefined {
    return this.#store.get(key);
  }

  /** The cached objects whose `index` function returned `value` (empty for an unknown index). */
  byIndex(index: string, value: string): T[] {
    const keys = this.#indexes.get(index)?.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const key of keys) {
      const obj = this.#store.get(key);
      if (obj !== undefined) out.push(obj);
    }
    return out;
  }

  list(): T[] {
    return [...this.#store.values()];
  }

  keys(): string[] {
    return [...this.#store.keys()];
  }

  /** True once the first list has been stored and its events delivered. */
  hasSynced(): boolean {
    return this.#synced;
  }

  /** The last resourceVersion seen (list, event or bookmark). */
  lastResourceVersion(): string {
    return this.#resourceVersion;
  }

  /** Resolves true when synced, false if stopped or `signal` aborts first. */
  waitForSync(signal?: AbortSignal): Promise<boolean> {
    return this.#when(this.#synced, this.#syncWaiters, signal);
  }

  /** Resolves true at once when `now`, else when one of `waiters` is called; false if stopped or aborted first. */
  #when(now: boolean, waiters: Array<() => void>, signal?: AbortSignal): Promise<boolean> {
    if (now) return Promise.resolve(true);
    if (this.#stopped || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const onAbort = () => resolve(false);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#stop.signal.addEventListener('abort', onAbort, { once: true });
      waiters.push(() => {
        signal?.removeEventListener('abort', onAbort);
        this.#stop.signal.removeEventListener('abort', onAbort);
        resolve(true);
      });
    });
  }

  /**
   * True when the cache shows what the server holds, to within the delivery of a watch event: it
   * has synced and a watch is established (or a list has just landed). False from a failed or
   * expired watch, or a failed list, until the next list lands or watch is established: the
   * cache then keeps serving its old objects (`hasSynced` stays true) and may miss any change
   * made meanwhile (a Node gone NotReady while the watch waited out its backoff). Decisions
   * should wait for it ({@link waitUntilFresh}).
   */
  isFresh(): boolean {
    return this.#synced && this.#fresh;
  }

  /** Resolves true once fresh, false if stopped or `signal` aborts first. */
  waitUntilFresh(signal?: AbortSignal): Promise<boolean> {
    return this.#when(this.isFresh(), this.#freshWaiters, signal);
  }

  /**
   * Cuts short the backoff pause in progress, if any: the next list or watch is tried now (another
   * informer just reached the API server, so it is likely back).
   */
  retryNow(): void {
    this.#wake.abort();
  }

  #setFresh(fresh: boolean): void {
    if (fresh === this.#fresh) return;
    this.#fresh = fresh;
    if (!fresh || !this.#synced) return;
    const waiters = this.#freshWaiters;
    this.#freshWaiters = [];
    for (const resolve of waiters) resolve();
    try {
      this.#options.onFresh?.();
    } catch (err) {
      this.#log.error({ error: describeError(err) }, 'onFresh failed');
    }
  }

  /** A backoff pause, ended early by `stop` or `retryNow`. */
  #pause(ms: number): Promise<void> {
    this.#wake = new AbortController();
    return sleep(ms, AbortSignal.any([this.#stop.signal, this.#wake.signal]));
  }

  /**
   * Registers handlers. When the informer has already synced, the handler first
   * receives an `add` for every cached object (as client-go does).
   */
  addEventHandler(handlers: EventHandlers<T>): void {
    this.#handlers.push(handlers);
    if (this.#synced) for (const obj of this.#store.values()) this.#call(handlers, 'add', obj);
  }

  /** Starts the list/watch loop (idempotent). */
  start(): void {
    if (this.#running || this.#stopped) return;
    this.#running = this.#run().catch((err) => {
      this.#log.error({ error: describeError(err) }, 'informer loop crashed');
    });
  }

  /** Stops the loop and the current watch; resolves when the loop has exited. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stop.abort();
    this.#currentWatch?.abort();
    await this.#running;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        if (this.#needList || this.#relistDue()) {
          await this.#list();
          this.#needList = false;
        }
        if (this.#stopped) return;
        const started = performance.now();
        const outcome = await this.#watchOnce();
        if (this.#stopped) return;
        if (outcome.kind !== 'closed') this.#setFresh(false);
        if (outcome.kind === 'gone') {
          this.stats.gone++;
          this.#log.info({ resourceVersion: this.#resourceVersion }, 'watch expired, relisting');
          this.#needList = true;
          // Relist at once, unless the watch expired right away again (no spinning).
          if (performance.now() - started < 1000) await this.#pause(this.#backoff.next());
          continue;
        }
        if (outcome.kind === 'closed') {
          // A clean close (server timeout) resumes at once; a close that came
          // immediately with nothing in it is treated like an error, so a server
          // that keeps closing cannot make us spin.
          if (outcome.events > 0 || performance.now() - started >= 1000) {
            this.#backoff.reset();
            continue;
          }
          this.#setFresh(false);
          await this.#pause(this.#backoff.next());
          continue;
        }
        this.stats.errors++;
        const delay = this.#retryDelay(outcome.err);
        this.#log.warn({ error: describeError(outcome.err), retryInMs: delay }, 'watch failed, retrying');
        await this.#pause(delay);
      } catch (err) {
        if (this.#stopped) return;
        this.stats.errors++;
        this.#setFresh(false);
        // Only the list throws here, and a failed list leaves `#needList` or the relist deadline as
        // they were: the next round lists again (a 410 on an expired continue token included).
        const delay = this.#retryDelay(err);
        this.#log.warn({ error: describeError(err), retryInMs: delay }, 'list failed, retrying');
        await this.#pause(delay);
      }
    }
  }

  /**
   * How long to wait after a failed list or watch: what the server asked for when it
   * sent a `Retry-After` (after a restart it answers 429 "storage is (re)initializing"
   * with 1 s while the backoff has grown through the outage), the backoff otherwise.
   */
  #retryDelay(err: unknown): number {
    const seconds = apiErrorFacts(err).retryAfterSeconds;
    return seconds === undefined ? this.#backoff.next() : retryAfterDelay(seconds, this.#backoffOptions);
  }

  #relistDue(): boolean {
    const period = this.#options.resyncPeriodMs ?? 600_000;
    return period > 0 && Date.now() >= this.#nextRelistAt;
  }

  async #list(): Promise<void> {
    const { raw, path, labelSelector, fieldSelector } = this.#options;
    const items: unknown[] = [];
    let cont: string | undefined;
    let resourceVersion = '';
    let listApiVersion: string | undefined;
    let listKind: string | undefined;
    do {
      const page = (await raw({
        path,
        query: { limit: this.#options.pageSize ?? 500, continue: cont, labelSelector, fieldSelector },
        signal: this.#stop.signal,
      })) as {
        apiVersion?: string;
        kind?: string;
        metadata?: { resourceVersion?: string; continue?: string };
        items?: unknown[];
      };
      this.stats.lists++;
      listApiVersion = page.apiVersion;
      listKind = page.kind?.replace(/List$/, '');
      for (const item of page.items ?? []) items.push(item);
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      cont = page.metadata?.continue || undefined;
    } while (cont && !this.#stopped);
    if (this.#stopped) return;

    const next = new Map<string, T>();
    for (const item of items) {
      const rawObj = item as KubeObject;
      // List items carry neither apiVersion nor kind: stamp them from the list.
      const stamped = { apiVersion: listApiVersion, kind: listKind, ...rawObj } as KubeObject;
      const obj = this.#parse(stamped);
      if (!obj) continue;
      const key = objectKey(obj);
      if (key) next.set(key, obj);
    }
    const previous = this.#store;
    this.#store = next;
    this.#reindex();
    this.#resourceVersion = resourceVersion;
    const period = this.#options.resyncPeriodMs ?? 600_000;
    this.#nextRelistAt = Date.now() + period * (0.9 + 0.2 * Math.random());
    this.#log.debug({ items: next.size, resourceVersion }, 'listed');

    for (const [key, obj] of next) {
      const old = previous.get(key);
      if (old === undefined) this.#emit('add', obj);
      else this.#emit('update', obj, old);
    }
    for (const [key, old] of previous) if (!next.has(key)) this.#emit('delete', old);

    if (!this.#synced) {
      this.#synced = true;
      const waiters = this.#syncWaiters;
      this.#syncWaiters = [];
      for (const resolve of waiters) resolve();
      this.#log.info({ items: next.size }, 'cache synced');
    }
    this.#setFresh(true);
  }

  #watchOnce(): Promise<WatchOutcome> {
    const timeout = this.#options.watchTimeoutSeconds ?? 25;
    const query = {
      resourceVersion: this.#resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: Math.max(1, Math.floor(timeout * (0.8 + 0.2 * Math.random()))),
      labelSelector: this.#options.labelSelector,
      fieldSelector: this.#options.fieldSelector,
    };
    this.stats.watches++;
    return new Promise<WatchOutcome>((resolve) => {
      let gone = false;
      let events = 0;
      let settled = false;
      let controller: AbortController | undefined;
      let freshTimer: NodeJS.Timeout | undefined;
      const onStop = () => finish({ kind: 'closed', events });
      const finish = (outcome: WatchOutcome) => {
        if (settled) return;
        settled = true;
        clearTimeout(freshTimer);
        this.#stop.signal.removeEventListener('abort', onStop);
        this.#currentWatch = undefined;
        controller?.abort();
        resolve(outcome);
      };
      const onEvent = (type: string, obj: unknown) => {
        if (settled) return;
        events++;
        try {
          const end = this.#onWatchEvent(type, obj);
          if (end?.kind === 'gone') gone = true;
          if (end) finish(end);
          // The stream delivers (what it missed first): the cache is current again.
          else this.#setFresh(true);
        } catch (err) {
          this.#log.error({ error: describeError(err) }, 'watch event handling failed');
        }
      };
      const onDone = (err: unknown) => {
        this.#countWatch(err, events);
        if (gone) return finish({ kind: 'gone' });
        if (!err) return finish({ kind: 'closed', events });
        if (apiErrorFacts(err).status === 410) return finish({ kind: 'gone' });
        finish({ kind: 'error', err });
      };
      if (this.#stop.signal.aborted) return finish({ kind: 'closed', events });
      this.#stop.signal.addEventListener('abort', onStop, { once: true });
      // Established (HTTP 200): fresh once it has stayed up a moment (see FRESH_AFTER_CONNECT_MS).
      const onConnected = () => {
        if (settled) return;
        freshTimer = setTimeout(() => {
          if (!settled) this.#setFresh(true);
        }, FRESH_AFTER_CONNECT_MS);
      };
      this.#watch(this.#options.path, query, onEvent, onDone, onConnected).then(
        (ctrl) => {
          controller = ctrl;
          if (settled || this.#stopped) ctrl.abort();
          else this.#currentWatch = ctrl;
        },
        (err) => finish({ kind: 'error', err }),
      );
    });
  }

  #countWatch(err: unknown, events: number): void {
    const metrics = this.#options.metrics;
    if (!metrics) return;
    const status = err ? apiErrorFacts(err).status : 0;
    const code = !err || events > 0 ? '200' : status > 0 ? String(status) : '<error>';
    metrics.restClientRequests.inc({ code, method: 'GET', host: this.#options.host ?? '' });
  }

  /** Applies one watch event to the store; returns an outcome when this watch must end. */
  #onWatchEvent(type: string, rawObj: unknown): WatchOutcome | undefined {
    const obj = rawObj as KubeObject & { code?: number; reason?: string; message?: string };
    if (type === 'ERROR') {
      const code = typeof obj?.code === 'number' ? obj.code : 0;
      if (code === 410) return { kind: 'gone' };
      // Any other error: end this watch and resume after backoff.
      return { kind: 'error', err: new WatchErrorEvent(code) };
    }
    const rv = obj?.metadata?.resourceVersion;
    if (type === 'BOOKMARK') {
      if (rv) this.#resourceVersion = rv;
      return undefined;
    }
    if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return undefined;
    const key = objectKey(obj);
    if (!key) return undefined;
    if (rv) this.#resourceVersion = rv;
    const old = this.#store.get(key);
    if (type === 'DELETED') {
      this.#store.delete(key);
      if (old !== undefined) this.#unindex(key, old);
      this.#emit('delete', (old ?? obj) as T);
      return undefined;
    }
    const parsed = this.#parse(obj);
    if (!parsed) {
      if (old !== undefined) {
        this.#store.delete(key);
        this.#unindex(key, old);
        this.#emit('delete', old);
      }
      return undefined;
    }
    this.#store.set(key, parsed);
    if (old !== undefined) this.#unindex(key, old);
    this.#index(key, parsed);
    if (old === undefined) this.#emit('add', parsed);
    else this.#emit('update', parsed, old);
    return undefined;
  }

  #index(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.#options.indexers ?? {})) {
      let byValue = this.#indexes.get(name);
      if (!byValue) {
        byValue = new Map();
        this.#indexes.set(name, byValue);
      }
      for (const value of indexValues(fn, obj)) {
        const keys = byValue.get(value);
        if (keys) keys.add(key);
        else byValue.set(value, new Set([key]));
      }
    }
  }

  #unindex(key: string, obj: T): void {
    for (const [name, fn] of Object.entries(this.#options.indexers ?? {})) {
      const byValue = this.#indexes.get(name);
      if (!byValue) continue;
      for (const value of indexValues(fn, obj)) {
        const keys = byValue.get(value);
        keys?.delete(key);
        if (keys?.size === 0) byValue.delete(value);
      }
    }
  }

  #reindex(): void {
    this.#indexes.clear();
    for (const [key, obj] of this.#store) this.#index(key, obj);
  }

  #parse(obj: KubeObject): T | undefined {
    const parsed = this.#validate(obj);
    if (parsed === undefined || !this.#options.transform) return parsed;
    return this.#options.transform(parsed);
  }

  #validate(obj: KubeObject): T | undefined {
    const schema = this.#options.schema;
    if (!schema) return obj as T;
    const result = schema.safeParse(obj);
    if (result.success) return result.data;
    this.stats.skipped++;
    this.#log.warn(
      {
        object: objectKey(obj),
        issues: result.error.issues.slice(0, 10).map((i) => `${i.path.map(String).join('.')}: ${i.code}`),
      },
      'object failed validation, skipped',
    );
    return undefined;
  }

  #emit(type: 'add' | 'update' | 'delete', obj: T, old?: T): void {
    for (const handlers of this.#handlers) this.#call(handlers, type, obj, old);
  }

  #call(handlers: EventHandlers<T>, type: 'add' | 'update' | 'delete', obj: T, old?: T): void {
    try {
      if (type === 'add') handlers.add?.(obj);
      else if (type === 'update') handlers.update?.(old as T, obj);
      else handlers.delete?.(obj);
    } catch (err) {
      this.#log.error(
        { error: describeError(err), event: type, object: objectKey(obj) },
        'event handler failed',
      );
    }
  }
}

/** An index function's values; one that throws indexes nothing (index functions run on untrusted objects). */
function indexValues<T>(fn: (obj: T) => readonly string[], obj: T): readonly string[] {
  try {
    return fn(obj);
  } catch {
    return [];
  }
}

class WatchErrorEvent extends Error {
  readonly statusCode: number;
  constructor(code: number) {
    super('watch error event');
    this.name = 'WatchErrorEvent';
    this.statusCode = code;
  }
}
