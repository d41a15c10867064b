/**
 * The reconciler shell: for a key `namespace/routerId`, read the caches, decide
 * (pure), plan (pure), apply the planned writes, and keep the domain metrics.
 *
 * Level-based: it reads the whole current state, never the event that queued
 * the key, so it reaches the same result from any starting point. The status
 * patch carries the resourceVersion it was computed from (`status.transitions`
 * is a counter: a decision made on a stale cache must not count twice); a
 * conflict re-reads the router and decides again. Its own recent writes are
 * remembered until the informers catch up, so a lagging cache never causes a
 * second write.
 */
import { randomBytes } from 'node:crypto';
import {
  API_VERSION,
  formatMicroTime,
  GROUP,
  HAROUTER,
  HAROUTER_STATE,
  type HARouter,
  type HARouterState,
  OPERATOR_FIELD_MANAGER,
  parseObservedAt,
  REPORTED_STATES,
  secondsSince,
  VERSION,
} from '../api/index.ts';
import { nodeFacts } from '../controller/event-keys.ts';
import { REPORTS_BY_ROUTER, SLICES_BY_ROUTER } from '../controller/indexes.ts';
import { parseRouterKey, routerKey } from '../controller/router-key.ts';
import {
  type ServiceFacts,
  serviceFactsSchema,
  trimRouterObject,
  trimSlice,
} from '../controller/transforms.ts';
import type { Caches, ReconcileResult, Reconciler } from '../controller/types.ts';
import type { RawRequester } from '../kube/client.ts';
import { describeError, isConflict, isNotFound } from '../kube/errors.ts';
import type { Logger } from '../log.ts';
import { type Metrics, ROUTER_CONDITIONS } from '../metrics.ts';
import { decide, decideOrphanReports, isDeleting, type NodeView, type RouteDecision } from './decide.ts';
import {
  type EndpointSliceObject,
  isOwnedSlice,
  plan,
  planReports,
  sliceHeldByOther,
  sliceName,
  type Write,
} from './plan.ts';
import { serviceRefusal } from './service-opt-in.ts';
import { VRIDAllocator } from './vrid-allocator.ts';

/** `reportingController` of the Events the operator records. */
export const REPORTING_CONTROLLER = 'harouter.dev/harouter-operator';
/** How many times a reconcile re-reads the router after a status conflict before giving up (retry later). */
const CONFLICT_ATTEMPTS = 3;
/**
 * How long a new split brain that changes no routing must last before it is
 * recorded (status, Event, metrics). keepalived's own failover passes through
 * one: the new primary reports `Primary` a few milliseconds before the old one
 * reports `Backup`. Recording that moment costs two writes per failover and
 * announces a split brain that never was; routing is not delayed at all (the
 * active agent stays), and a real split brain is recorded after this grace.
 */
export const SPLIT_BRAIN_GRACE_MS = 1000;

/** The caches to read, the requester to write with, the metrics to keep. */
export interface ReconcilerOptions {
  caches: Caches;
  /** Raw JSON requests (authentication, timeout and `rest_client_requests_total` included). */
  raw: RawRequester;
  metrics: Metrics;
  /** This replica's identity (`reportingInstance` of Events). */
  identity: string;
  /** Clock (tests). */
  now?: () => Date;
  /** VRID allocation for routers with `spec.vrrp` (default: claims in `harouter-system`, nothing reserved). */
  vrrp?: VRRPOptions;
}

/** Where VRID claims live and what the operator may allocate. */
export interface VRRPOptions {
  /** The operator's namespace, which holds the claim Leases. */
  claimNamespace: string;
  /** `--vrrp-reserved-vrids`. */
  reservedVRIDs: readonly number[];
  /**
   * The namespace whose HARouters this operator watches (undefined: all). Claims held by routers
   * of other namespaces belong to another operator and are never released by this one.
   */
  watchedNamespace?: string | undefined;
}

interface Versioned {
  metadata: { resourceVersion?: string };
}

/**
 * What the reconciler wrote and the cache may not show yet. An entry is used
 * while the cached object is still at a version the write superseded; it is
 * dropped as soon as the cache shows anything else. The server's answer is kept
 * as the cache would keep it (`transforms.ts`): in a storm the echoes lag and
 * every router holds entries at once, and an untrimmed answer (managedFields
 * included) is about twice the cached object (at 10,000 routers the untrimmed
 * entries took the operator past a 256 MiB heap).
 */
class RecentWrites<T extends Versioned> {
  readonly #entries = new Map<string, { stale: Set<string>; obj: T | undefined }>();
  readonly #trim: (obj: T) => T;

  /** `trim`: the cache's transform of this kind. */
  constructor(trim: (obj: T) => T) {
    this.#trim = trim;
  }

  /** The freshest known object: the remembered write while the cache lags, else the cache. */
  read(key: string, cached: T | undefined): T | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return cached;
    if (entry.stale.has(versionOf(cached))) return entry.obj;
    this.#entries.delete(key);
    return cached;
  }

  /** Records that `basedOn` (the version read) was replaced by `result` (undefined: deleted). */
  wrote(key: string, basedOn: T | undefined, result: T | undefined): void {
    const stale = this.#entries.get(key)?.stale ?? new Set<string>();
    stale.add(versionOf(basedOn));
    this.#entries.set(key, { stale, obj: result === undefined ? undefined : this.#trim(result) });
  }

  forget(prefix: string): void {
    for (const key of this.#entries.keys()) if (key.startsWith(prefix)) this.#entries.delete(key);
  }
}

function versionOf(obj: Versioned | undefined): string {
  return obj ? `rv:${obj.metadata.resourceVersion ?? ''}` : 'absent';
}

/** Whether a write of this reconcile has already routed its change (`harouter_report_to_route_seconds` counts it once). */
interface Progress {
  routed: boolean;
}

type Flags = Record<(typeof ROUTER_CONDITIONS)[number], boolean>;

/** A report the reconciler can reason about (the CRD already refuses others; this is defence in depth). */
function usableReport(report: HARouterState | undefined): report is HARouterState {
  const spec = report?.spec;
  return (
    typeof report?.metadata?.name === 'string' &&
    typeof spec?.routerId === 'string' &&
    typeof spec.agent === 'string' &&
    (REPORTED_STATES as readonly string[]).includes(spec.state) &&
    typeof spec.observedAt === 'string' &&
    parseObservedAt(spec.observedAt) !== undefined
  );
}

/** The reconciler of `namespace/routerId` keys (see the module comment). */
export class HARouterReconciler implements Reconciler {
  readonly #options: ReconcilerOptions;
  readonly #now: () => Date;
  readonly #routers = new RecentWrites<HARouter>(trimRouterObject);
  readonly #slices = new RecentWrites<EndpointSliceObject>(trimSlice);
  readonly #reports = new RecentWrites<HARouterState>(trimRouterObject);
  /** Per router key: report name -> `uid/generation` last counted in `harouter_reports_total`. */
  readonly #countedReports = new Map<string, Map<string, string>>();
  /** Per router key: when a split brain that changes no routing was first seen (see SPLIT_BRAIN_GRACE_MS). */
  readonly #splitBrainSince = new Map<string, number>();
  /** Per router key: what the per-router series currently export. */
  readonly #exported = new Map<string, { active: string; transitions: number; flags: Flags }>();
  readonly #vrids: VRIDAllocator;
  readonly #watchedNamespace: string | undefined;

  constructor(options: ReconcilerOptions) {
    this.#options = options;
    this.#now = options.now ?? (() => new Date());
    this.#watchedNamespace = options.vrrp?.watchedNamespace;
    this.#vrids = new VRIDAllocator({
      raw: options.raw,
      claims: options.caches.vridClaims,
      routers: options.caches.harouters,
      namespace: options.vrrp?.claimNamespace ?? 'harouter-system',
      reserved: options.vrrp?.reservedVRIDs ?? [],
    });
  }

  async reconcile(key: string, log: Logger): Promise<ReconcileResult> {
    const parsed = parseRouterKey(key);
    if (!parsed) {
      log.warn('ignoring a malformed reconcile key');
      return undefined;
    }
    const { namespace, routerId } = parsed;
    const reports = this.#reportsOf(namespace, routerId);
    this.#countReports(key, reports);

    let fresh: HARouter | undefined;
    // Shared by the attempts: a slice applied before a status conflict has routed the change already.
    const progress: Progress = { routed: false };
    for (let attempt = 1; attempt <= CONFLICT_ATTEMPTS; attempt++) {
      const cached = this.#options.caches.harouters.get(key);
      const router = fresh ?? this.#routers.read(key, cached);
      if (!router) return this.#routerGone(key, namespace, reports, log);
      if (isDeleting(router)) return undefined;
      try {
        return await this.#reconcileRouter(key, router, reports, progress, log);
      } catch (err) {
        if (!isConflict(err) || attempt === CONFLICT_ATTEMPTS) throw err;
        log.debug({ attempt }, 'status conflict; re-reading the router');
        try {
          fresh = (await this.#options.raw({ path: routerPath(namespace, routerId) })) as HARouter;
        } catch (getErr) {
          if (isNotFound(getErr)) return this.#routerGone(key, namespace, reports, log);
          throw getErr;
        }
        this.#routers.wrote(key, cached, fresh);
      }
    }
    return undefined;
  }

  #reportsOf(namespace: string, routerId: string): HARouterState[] {
    const out: HARouterState[] = [];
    for (const cached of this.#options.caches.harouterStates.byIndex(
      REPORTS_BY_ROUTER,
      routerKey(namespace, routerId),
    )) {
      const report = this.#reports.read(`${namespace}/${cached.metadata.name}`, cached);
      if (usableReport(report)) out.push(report);
    }
    return out;
  }

  #countReports(key: string, reports: readonly HARouterState[]): void {
    const previous = this.#countedReports.get(key) ?? new Map<string, string>();
    const seen = new Map<string, string>();
    for (const report of reports) {
      const signature = `${report.metadata.uid ?? ''}/${report.metadata.generation ?? report.spec.observedAt}`;
      seen.set(report.metadata.name, signature);
      if (previous.get(report.metadata.name) !== signature) {
        this.#options.metrics.reports.inc({ state: report.spec.state });
      }
    }
    this.#countedReports.set(key, seen);
  }

  async #routerGone(
    key: string,
    namespace: string,
    reports: HARouterState[],
    log: Logger,
  ): Promise<undefined> {
    this.#dropRouterMetrics(key);
    this.#routers.forget(key);
    if (this.#watchedNamespace === undefined || this.#watchedNamespace === namespace) {
      await this.#vrids.releaseAll(key, log);
    }
    const writes = planReports(namespace, decideOrphanReports(reports), reports, this.#now());
    await this.#apply(writes, undefined, undefined, { routed: false }, log);
    if (reports.length === 0) {
      // Router and reports are gone: nothing will read their remembered writes again.
      this.#countedReports.delete(key);
      this.#reports.forget(`${key}.`);
    }
    return undefined;
  }

  async #reconcileRouter(
    key: string,
    router: HARouter,
    reports: HARouterState[],
    progress: Progress,
    log: Logger,
  ): Promise<ReconcileResult> {
    const { caches } = this.#options;
    const namespace = router.metadata.namespace ?? '';
    const nodes = new Map<string, NodeView>();
    for (const agent of router.spec.agents) {
      const node = caches.nodes.get(agent.name);
      if (node) nodes.set(agent.name, nodeFacts(node));
    }
    const endpoint = router.spec.endpoint;
    const serviceRefused = serviceRefusal(
      router,
      endpoint ? await this.#service(namespace, endpoint.serviceName) : undefined,
    );
    const slices: EndpointSliceObject[] = [];
    const wanted = endpoint ? sliceName(endpoint.serviceName) : undefined;
    const names = new Set<string>();
    const owned = caches.endpointSlices.byIndex(SLICES_BY_ROUTER, key) as unknown as EndpointSliceObject[];
    for (const cached of owned) names.add(cached.metadata.name);
    if (wanted) names.add(wanted);
    for (const name of names) {
      const cached = caches.endpointSlices.get(`${namespace}/${name}`) as unknown as
        | EndpointSliceObject
        | undefined;
      const slice = this.#slices.read(`${namespace}/${name}`, cached);
      if (slice && (name === wanted || isOwnedSlice(slice, router))) slices.push(slice);
    }

    const held = sliceHeldByOther(
      slices.find((x) => x.metadata.name === wanted),
      router,
    );
    if (held) log.warn({ slice: wanted }, 'the EndpointSlice for this router is owned by another controller');
    const vrid = await this.#vrids.ensure(router, log);
    const decision = decide({
      router,
      reports,
      nodes,
      serviceRefusal: serviceRefused,
      sliceHeldByOther: held,
      vrid,
    });
    if (decision.kind !== 'route') return undefined;
    const wait = this.#splitBrainWait(key, decision);
    if (wait > 0) {
      log.debug({ waitMs: wait }, 'new split brain without a routing change: confirming before recording it');
      return { requeueAfterMs: wait };
    }

    const writes = plan(decision, { router, slices, reports }, this.#now());
    if (writes.length > 0) log.debug({ writes: writes.map((w) => w.kind) }, 'applying writes');
    await this.#apply(writes, router, decision, progress, log);
    this.#exportRouter(key, decision);
    return undefined;
  }

  /**
   * The router's Service: from the cache, which holds only the Services labelled
   * `harouter.dev/router`. One not there is read once from the API server, so that
   * a Service that exists without the label is refused by its name
   * (`ServiceNotOptedIn`, `ServiceHasSelector`) rather than as missing; adding the
   * label brings it into the cache, and that event reconciles the router again.
   */
  async #service(namespace: string, name: string): Promise<ServiceFacts | undefined> {
    const cached = this.#options.caches.services.get(`${namespace}/${name}`);
    if (cached) return cached;
    try {
      const parsed = serviceFactsSchema.safeParse(
        await this.#options.raw({ path: `/api/v1/namespaces/${namespace}/services/${name}` }),
      );
      return parsed.success ? parsed.data : undefined;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  /** Milliseconds to wait before recording a new split brain that changes no routing; 0: go on. */
  #splitBrainWait(key: string, decision: RouteDecision): number {
    if (!decision.splitBrain || decision.wasSplitBrain || decision.activeChanged) {
      this.#splitBrainSince.delete(key);
      return 0;
    }
    const now = this.#now().getTime();
    const since = this.#splitBrainSince.get(key) ?? now;
    this.#splitBrainSince.set(key, since);
    const left = since + SPLIT_BRAIN_GRACE_MS - now;
    return Math.max(left, 0);
  }

  /**
   * Applies writes in plan order: routing and status one after the other (an
   * error aborts: the key is retried, a status conflict re-decides), then the
   * Events and `Accepted` writes together. An Event that fails is logged and
   * dropped; an `Accepted` error is thrown once all are done, so that one report
   * never holds back its router's routing nor the other reports.
   */
  async #apply(
    writes: readonly Write[],
    router: HARouter | undefined,
    decision: RouteDecision | undefined,
    progress: Progress,
    log: Logger,
  ): Promise<void> {
    const { raw, metrics } = this.#options;
    let reportError: unknown;
    /** Events and `Accepted` writes: independent of each other, sent together after the routing and status writes. */
    const trailing: Promise<void>[] = [];
    for (const write of writes) {
      switch (write.kind) {
        case 'applySlice': {
          const path = `/apis/discovery.k8s.io/v1/namespaces/${write.namespace}/endpointslices/${write.name}`;
          const key = `${write.namespace}/${write.name}`;
          const before = this.#slices.read(key, this.#options.caches.endpointSlices.get(key) as never);
          const result = (await raw({
            method: 'PATCH',
            path,
            query: { fieldManager: OPERATOR_FIELD_MANAGER, force: true },
            body: write.slice,
            contentType: 'application/apply-patch+yaml',
          })) as EndpointSliceObject;
          this.#slices.wrote(key, before, result);
          if (decision?.activeChanged && !progress.routed) this.#observeRoute(decision);
          progress.routed = true;
          break;
        }
        case 'deleteSlice': {
          const key = `${write.namespace}/${write.name}`;
          const before = this.#slices.read(key, this.#options.caches.endpointSlices.get(key) as never);
          try {
            await raw({
              method: 'DELETE',
              path: `/apis/discovery.k8s.io/v1/namespaces/${write.namespace}/endpointslices/${write.name}`,
              body: {
                apiVersion: 'v1',
                kind: 'DeleteOptions',
                ...(write.uid ? { preconditions: { uid: write.uid } } : {}),
              },
            });
          } catch (err) {
            if (!isNotFound(err) && !isConflict(err)) throw err;
          }
          this.#slices.wrote(key, before, undefined);
          break;
        }
        case 'routerStatus': {
          const result = (await raw({
            method: 'PATCH',
            path: `${routerPath(write.namespace, write.name)}/status`,
            query: { fieldManager: OPERATOR_FIELD_MANAGER },
            body: {
              metadata: write.resourceVersion ? { resourceVersion: write.resourceVersion } : {},
              status: write.patch,
            },
            contentType: 'application/merge-patch+json',
          })) as HARouter;
          this.#routers.wrote(routerKey(write.namespace, write.name), router, result);
          if (decision?.activeChanged) {
            metrics.activeChanges.inc();
            if (!progress.routed) this.#observeRoute(decision);
            progress.routed = true;
          }
          break;
        }
        case 'event':
          trailing.push(
            raw({
              method: 'POST',
              path: `/apis/events.k8s.io/v1/namespaces/${write.namespace}/events`,
              body: this.#event(write),
            }).then(
              () => undefined,
              (err: unknown) => {
                log.warn(
                  { error: describeError(err), reason: write.event.reason },
                  'could not record an Event',
                );
              },
            ),
          );
          break;
        case 'reportStatus':
          trailing.push(
            this.#setAccepted(write).catch((err: unknown) => {
              log.warn(
                { error: describeError(err), report: write.name },
                'could not set Accepted on a report',
              );
              reportError ??= err;
            }),
          );
          break;
      }
    }
    await Promise.all(trailing);
    if (reportError !== undefined) throw reportError;
  }

  async #setAccepted(write: Extract<Write, { kind: 'reportStatus' }>): Promise<void> {
    const key = `${write.namespace}/${write.name}`;
    const before = this.#reports.read(key, this.#options.caches.harouterStates.get(key));
    try {
      const result = (await this.#options.raw({
        method: 'PATCH',
        path: `/apis/${GROUP}/${VERSION}/namespaces/${write.namespace}/${HAROUTER_STATE.plural}/${write.name}/status`,
        query: { fieldManager: OPERATOR_FIELD_MANAGER },
        body: {
          status: {
            conditions: write.conditions,
            ...(write.observedGeneration !== undefined
              ? { observedGeneration: write.observedGeneration }
              : {}),
          },
        },
        contentType: 'application/merge-patch+json',
      })) as HARouterState;
      this.#reports.wrote(key, before, result);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  #event(write: Extract<Write, { kind: 'event' }>): Record<string, unknown> {
    const now = this.#now();
    return {
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: {
        name: `${write.router.name}.${now.getTime().toString(16)}${randomBytes(3).toString('hex')}`,
        namespace: write.namespace,
      },
      eventTime: formatMicroTime(now.getTime()),
      reportingController: REPORTING_CONTROLLER,
      reportingInstance: this.#options.identity,
      action: write.event.action,
      reason: write.event.reason,
      note: write.event.note,
      type: write.event.type,
      regarding: {
        apiVersion: API_VERSION,
        kind: HAROUTER.kind,
        name: write.router.name,
        namespace: write.namespace,
        ...(write.router.uid ? { uid: write.router.uid } : {}),
      },
    };
  }

  #observeRoute(decision: RouteDecision): void {
    if (decision.newestObservedAt === undefined) return;
    const seconds = secondsSince(decision.newestObservedAt, this.#now().getTime());
    if (seconds !== undefined) this.#options.metrics.reportToRoute.observe(Math.max(0, seconds));
  }

  #exportRouter(key: string, decision: RouteDecision): void {
    const { metrics } = this.#options;
    const labels = { namespace: decision.namespace, router: decision.routerId };
    const active = decision.activeAgent ?? '';
    const ready = decision.conditions.some((c) => c.type === 'Ready' && c.status === 'True');
    const flags: Flags = {
      ready,
      split_brain: decision.splitBrain,
      degraded: decision.degraded,
      no_primary: decision.activeAgent === undefined,
    };
    const before = this.#exported.get(key);
    if (before?.active !== active) {
      if (before) metrics.routerInfo.remove({ ...labels, active_agent: before.active });
      metrics.routerInfo.set({ ...labels, active_agent: active }, 1);
    }
    const previousTransitions = before?.transitions ?? 0;
    if (decision.transitions < previousTransitions) metrics.routerTransitions.remove(labels);
    const base = decision.transitions < previousTransitions ? 0 : previousTransitions;
    metrics.routerTransitions.inc(labels, decision.transitions - base);
    for (const condition of ROUTER_CONDITIONS) {
      const was = before?.flags[condition] ?? false;
      if (was !== flags[condition]) metrics.routers.inc({ condition }, flags[condition] ? 1 : -1);
    }
    this.#exported.set(key, { active, transitions: decision.transitions, flags });
  }

  #dropRouterMetrics(key: string): void {
    const { metrics } = this.#options;
    const before = this.#exported.get(key);
    const parsed = parseRouterKey(key);
    if (!before || !parsed) return;
    const labels = { namespace: parsed.namespace, router: parsed.routerId };
    metrics.routerInfo.remove({ ...labels, active_agent: before.active });
    metrics.routerTransitions.remove(labels);
    for (const condition of ROUTER_CONDITIONS) {
      if (before.flags[condition]) metrics.routers.dec({ condition });
    }
    this.#exported.delete(key);
  }
}

function routerPath(namespace: string, name: string): string {
  return `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${HAROUTER.plural}/${name}`;
}

/** Builds the operator's HARouter reconciler. */
export function createReconciler(options: ReconcilerOptions): HARouterReconciler {
  return new HARouterReconciler(options);
}
