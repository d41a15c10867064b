/**
 * Wiring of the operator process. On every replica: informers (caches), the
 * admission webhook, metrics and probes. On the leader only (or on the single
 * replica without leader election): the work queue's workers calling the
 * reconciler. Losing the lease ends the operator with exit code 1 (like
 * controller-runtime) so that Kubernetes restarts it as a follower with fresh
 * state; a stop request (SIGTERM/SIGINT) stops the workers, releases the lease,
 * and closes the servers and watches.
 */
import { hostname } from 'node:os';
import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import {
  ENDPOINTSLICE_MANAGED_BY,
  GROUP,
  HAROUTER,
  HAROUTER_STATE,
  type HARouter,
  type HARouterState,
  harouterSchema,
  harouterStateSchema,
  type LeaseObject,
  ROUTER_LABEL,
  VERSION,
  VRID_CLAIM_SELECTOR,
} from './api/index.ts';
import type { OperatorConfig } from './config.ts';
import { Controller } from './controller/controller.ts';
import { keysForEvent, urgentKeysForEvent } from './controller/event-keys.ts';
import { holdUntilFresh } from './controller/fresh-caches.ts';
import {
  CLAIMS_BY_HOLDER,
  CLAIMS_BY_SEGMENT,
  claimHolderIndex,
  claimSegmentIndex,
  REPORTS_BY_ROUTER,
  ROUTERS_BY_AGENT,
  ROUTERS_BY_SEGMENT,
  ROUTERS_BY_SERVICE,
  reportRouterIndex,
  routerAgentIndex,
  routerSegmentIndex,
  routerServiceIndex,
  SLICES_BY_ROUTER,
  sliceRouterIndex,
} from './controller/indexes.ts';
import {
  type ServiceFacts,
  serviceFactsSchema,
  trimClaim,
  trimNode,
  trimRouterObject,
  trimSlice,
} from './controller/transforms.ts';
import type {
  CacheName,
  Caches,
  InformerEvent,
  KeyQueue,
  KeysForEvent,
  Reconciler,
} from './controller/types.ts';
import { WorkQueue } from './controller/workqueue.ts';
import { readCertificatePair } from './http/certificate-dir.ts';
import { createMetricsAuthorizer } from './http/metrics-auth.ts';
import { selfSignedCertificate } from './http/self-signed.ts';
import {
  type Check,
  type HttpServerHandle,
  type SecureMetrics,
  startMetricsServer,
  startProbeServer,
} from './http/server.ts';
import {
  type Connection,
  createKubeClients,
  type KubeClients,
  type RawRequester,
  type WatchFn,
} from './kube/client.ts';
import { describeError } from './kube/errors.ts';
import {
  collectionPath,
  Informer,
  type InformerOptions,
  type KubeObject,
  type SafeParser,
} from './kube/informer.ts';
import { LeaderElector } from './kube/leader-election.ts';
import type { Logger } from './log.ts';
import { CONTROLLER_NAME, createMetrics, type Metrics } from './metrics.ts';
import { createReconciler, type VRRPOptions } from './reconcile/reconciler.ts';
import { sleep } from './runtime/backoff.ts';
import { routerAgents, startWebhookServer, type WebhookServer } from './webhook/index.ts';

/** The label selecting the EndpointSlices the operator owns. */
export const MANAGED_SLICES_SELECTOR = `endpointslice.kubernetes.io/managed-by=${ENDPOINTSLICE_MANAGED_BY}`;
/**
 * The label selector of the Services the operator watches: those carrying
 * `harouter.dev/router` (any value, so that one labelled for another router is
 * still seen and refused by name). The API server filters: other Services never
 * reach the operator's memory.
 */
export const OPTED_IN_SERVICES_SELECTOR = ROUTER_LABEL;

/**
 * The limits of the secure metrics' own API client (TokenReviews and
 * SubjectAccessReviews): apart from the reconciler's, and not counted in
 * `rest_client_requests_total`, which measures the operator's work.
 */
export const METRICS_AUTH_CLIENT = { requestTimeoutMs: 5000, maxInFlight: 4, qps: 20, burst: 40 } as const;

/** One informer per cache the reconciler reads. */
export type Informers = {
  harouters: Informer<HARouter>;
  harouterStates: Informer<HARouterState>;
  nodes: Informer<V1Node>;
  endpointSlices: Informer<V1EndpointSlice>;
  services: Informer<ServiceFacts>;
  vridClaims: Informer<LeaseObject & KubeObject>;
};

/** What `createInformers` needs: client, namespace scope, logger and tuning. */
export interface InformerFactoryOptions {
  raw: RawRequester;
  watch: WatchFn;
  /** The API server's `host:port` (metrics label of the watches). */
  host?: string;
  /** Namespace of HARouters, reports, Services and slices; undefined: all. Nodes are cluster-scoped. */
  namespace: string | undefined;
  /** The operator's namespace, where the VRID claim Leases live. */
  claimNamespace: string;
  log: Logger;
  resyncPeriodMs?: number;
  watchTimeoutSeconds?: number;
  /** Counts watches in `rest_client_requests_total`. */
  metrics?: Metrics;
}

/** The operator's informers (not started). */
export function createInformers(options: InformerFactoryOptions): Informers {
  const { raw, watch, host, namespace, claimNamespace, log, resyncPeriodMs, watchTimeoutSeconds, metrics } =
    options;
  const make = <T extends KubeObject>(
    name: string,
    path: string,
    extra: Pick<InformerOptions<T>, 'labelSelector' | 'schema' | 'transform' | 'indexers'> = {},
  ) =>
    new Informer<T>({
      name,
      raw,
      watch,
      ...(host !== undefined ? { host } : {}),
      path,
      log,
      ...(resyncPeriodMs !== undefined ? { resyncPeriodMs } : {}),
      ...(watchTimeoutSeconds !== undefined ? { watchTimeoutSeconds } : {}),
      ...(metrics ? { metrics } : {}),
      // One informer reaching the API server again ends the others' backoff pauses: after an outage
      // every cache is current (and decisions resume, see fresh-caches.ts) as soon as the server is.
      onFresh: () => {
        for (const other of Object.values(informers)) other.retryNow();
      },
      ...extra,
    });
  const informers: Informers = {
    harouters: make<HARouter>(
      'harouters',
      collectionPath({ group: GROUP, version: VERSION, plural: HAROUTER.plural, namespace }),
      {
        schema: harouterSchema as SafeParser<HARouter>,
        transform: trimRouterObject,
        indexers: {
          [ROUTERS_BY_AGENT]: routerAgentIndex,
          [ROUTERS_BY_SERVICE]: routerServiceIndex,
          [ROUTERS_BY_SEGMENT]: routerSegmentIndex,
        },
      },
    ),
    harouterStates: make<HARouterState>(
      'harouterstates',
      collectionPath({ group: GROUP, version: VERSION, plural: HAROUTER_STATE.plural, namespace }),
      {
        schema: harouterStateSchema as SafeParser<HARouterState>,
        transform: trimRouterObject,
        indexers: { [REPORTS_BY_ROUTER]: reportRouterIndex },
      },
    ),
    nodes: make<V1Node>('nodes', collectionPath({ version: 'v1', plural: 'nodes' }), {
      transform: trimNode,
    }),
    endpointSlices: make<V1EndpointSlice>(
      'endpointslices',
      collectionPath({ group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespace }),
      {
        labelSelector: MANAGED_SLICES_SELECTOR,
        transform: trimSlice,
        indexers: { [SLICES_BY_ROUTER]: sliceRouterIndex },
      },
    ),
    services: make<ServiceFacts>(
      'services',
      collectionPath({ version: 'v1', plural: 'services', namespace }),
      { labelSelector: OPTED_IN_SERVICES_SELECTOR, schema: serviceFactsSchema },
    ),
    vridClaims: make<LeaseObject & KubeObject>(
      'vridclaims',
      collectionPath({
        group: 'coordination.k8s.io',
        version: 'v1',
        plural: 'leases',
        namespace: claimNamespace,
      }),
      {
        labelSelector: VRID_CLAIM_SELECTOR,
        transform: trimClaim,
        indexers: { [CLAIMS_BY_HOLDER]: claimHolderIndex, [CLAIMS_BY_SEGMENT]: claimSegmentIndex },
      },
    ),
  };
  return informers;
}

/** Routes every informer event through `urgentKeysFor` (queued urgent) and `keysFor` into `queue`. Call before starting the informers. */
export function connectInformers(
  informers: Informers,
  queue: KeyQueue,
  keysFor: KeysForEvent = keysForEvent,
  urgentKeysFor: KeysForEvent = urgentKeysForEvent,
): void {
  const caches = informers as unknown as Caches;
  for (const name of Object.keys(informers) as CacheName[]) {
    const informer = informers[name] as unknown as Informer<KubeObject>;
    const enqueue = (event: InformerEvent<KubeObject>) => {
      for (const key of urgentKeysFor(name, event as never, caches)) queue.addUrgent(key);
      for (const key of keysFor(name, event as never, caches)) queue.add(key);
    };
    informer.addEventHandler({
      add: (obj) => enqueue({ type: 'add', obj }),
      update: (oldObj, obj) => enqueue({ type: 'update', obj, oldObj }),
      delete: (obj) => enqueue({ type: 'delete', obj }),
    });
  }
}

/** The configuration, plus seams for tests (kubeconfig, metrics, reconciler, webhook). */
export interface OperatorOptions {
  config: OperatorConfig;
  log: Logger;
  metrics?: Metrics;
  /**
   * The API server and credentials: `loadConnection(config.kubeconfig)` in the
   * program; tests and tools holding a client-node KubeConfig pass `kubeConfigConnection(kc)`.
   */
  connection: Connection;
  /** Defaults to the reconcile side's `createReconciler`. */
  createReconciler?: (deps: {
    caches: Caches;
    raw: RawRequester;
    metrics: Metrics;
    identity: string;
    vrrp: VRRPOptions;
  }) => Reconciler;
  /** Defaults to the admission side's `startWebhookServer`. */
  startWebhook?: typeof startWebhookServer;
  /** Delay between attempts to start the webhook when its certificate is not there yet (default 5 s). */
  webhookRetryMs?: number;
}

/** Why the operator ended, and the process exit code that goes with it. */
export type OperatorExit = { reason: 'stopped'; code: 0 } | { reason: 'lost-lease' | 'failed'; code: 1 };

/** One operator process (see the module comment): `start`, then `done` says how and why it ended. */
export class Operator {
  readonly metrics: Metrics;
  readonly clients: KubeClients;
  readonly informers: Informers;
  readonly queue: WorkQueue;
  readonly #config: OperatorConfig;
  readonly #log: Logger;
  readonly #options: OperatorOptions;
  readonly #controller: Controller;
  readonly #servers: HttpServerHandle[] = [];
  readonly #stopping = new AbortController();
  readonly #electionStop = new AbortController();
  #elector: LeaderElector | undefined;
  #authClients: KubeClients | undefined;
  #election: Promise<'lost' | 'stopped'> | undefined;
  #webhook: WebhookServer | undefined;
  #webhookLoop: Promise<void> | undefined;
  #workers: Promise<void> | undefined;
  #exit: ((exit: OperatorExit) => void) | undefined;
  #stopped: Promise<void> | undefined;
  /** Resolves once the operator has ended and cleaned up. */
  readonly done: Promise<OperatorExit>;

  constructor(options: OperatorOptions) {
    const { config } = options;
    this.#options = options;
    this.#config = config;
    this.#log = options.log;
    this.metrics = options.metrics ?? createMetrics();
    this.clients = createKubeClients(options.connection, {
      metrics: this.metrics,
      requestTimeoutMs: config.requestTimeoutMs,
      maxInFlight: config.kubeApiMaxInflight,
      qps: config.kubeApiQps,
      burst: config.kubeApiBurst,
    });
    this.informers = createInformers({
      raw: this.clients.raw,
      watch: this.clients.watch,
      host: this.clients.host,
      namespace: config.namespace,
      claimNamespace: config.leaderElectionNamespace,
      log: this.#log.child({ component: 'informer' }),
      resyncPeriodMs: config.resyncPeriodMs,
      metrics: this.metrics,
    });
    this.queue = new WorkQueue({ name: CONTROLLER_NAME, metrics: this.metrics });
    const caches = this.informers as unknown as Caches;
    const reconciler = (options.createReconciler ?? createReconciler)({
      caches,
      raw: this.clients.raw,
      metrics: this.metrics,
      identity: config.identity,
      vrrp: {
        claimNamespace: config.leaderElectionNamespace,
        reservedVRIDs: config.vrrpReservedVrids,
        watchedNamespace: config.namespace,
      },
    });
    this.#controller = new Controller({
      name: CONTROLLER_NAME,
      queue: this.queue,
      // No decision on a cache whose watch is down (a Node gone NotReady meanwhile would still look Ready).
      reconciler: holdUntilFresh(
        reconciler,
        Object.values(this.informers),
        this.#stopping.signal,
        this.#log.child({ component: 'controller' }),
      ),
      workers: config.workers,
      log: this.#log.child({ component: 'controller' }),
      metrics: this.metrics,
    });
    this.done = new Promise((resolve) => {
      this.#exit = resolve;
    });
  }

  /** True when every informer has synced. */
  cachesSynced(): boolean {
    return Object.values(this.informers).every((i) => i.hasSynced());
  }

  /** True when this replica runs the reconcile workers. */
  isLeader(): boolean {
    return this.#config.leaderElect ? (this.#elector?.isLeader() ?? false) : this.#workers !== undefined;
  }

  /** The ports actually bound: metrics, probes, webhook (when serving). */
  ports(): { metrics?: number; probes?: number; webhook?: number } {
    return { ...this.#ports, ...(this.#webhook ? { webhook: this.#webhook.port } : {}) };
  }

  #ports: { metrics?: number; probes?: number } = {};

  readyChecks(): Check[] {
    const checks: Check[] = [{ name: 'informers', check: () => this.cachesSynced() }];
    if (this.#config.webhook) checks.push({ name: 'webhook', check: () => this.#webhook !== undefined });
    return checks;
  }

  /** Starts everything; resolves once the servers listen (caches sync in the background). */
  async start(): Promise<void> {
    const { config } = this;
    try {
      if (config.metricsBindAddress) {
        const server = await startMetricsServer({
          bind: config.metricsBindAddress,
          metrics: this.metrics,
          log: this.#log,
          ...(config.metricsSecure ? { secure: await this.#secureMetrics() } : {}),
        });
        this.#servers.push(server);
        this.#ports.metrics = server.port;
      }
      if (config.healthProbeBindAddress) {
        const server = await startProbeServer({
          bind: config.healthProbeBindAddress,
          healthz: () => [{ name: 'ping', check: () => true }],
          readyz: () => this.readyChecks(),
          log: this.#log,
        });
        this.#servers.push(server);
        this.#ports.probes = server.port;
      }
    } catch (err) {
      this.#log.error({ error: describeError(err) }, 'failed to start the HTTP servers');
      await this.#shutdown({ reason: 'failed', code: 1 });
      throw err;
    }
    if (config.webhook) this.#webhookLoop = this.#startWebhook();
    for (const informer of Object.values(this.informers)) informer.start();

    if (config.leaderElect) {
      this.#elector = new LeaderElector({
        raw: this.clients.raw,
        namespace: config.leaderElectionNamespace,
        name: config.leaderElectionId,
        identity: config.identity,
        log: this.#log.child({ component: 'leader-election' }),
        metrics: this.metrics,
        leaseDurationMs: config.leaderElectionLeaseDurationMs,
        renewDeadlineMs: config.leaderElectionRenewDeadlineMs,
        retryPeriodMs: config.leaderElectionRetryPeriodMs,
        onStartedLeading: () => this.#startWorkers(),
      });
      this.#election = this.#elector.run(this.#electionStop.signal);
      this.#election.then(
        (outcome) => {
          if (outcome === 'lost') {
            this.#log.error('leader election lost: exiting');
            void this.#shutdown({ reason: 'lost-lease', code: 1 });
          }
        },
        (err: unknown) => {
          // Without a running elector this replica can no longer tell whether it leads.
          this.#log.error({ error: describeError(err) }, 'leader election failed: exiting');
          void this.#shutdown({ reason: 'failed', code: 1 });
        },
      );
    } else {
      this.#startWorkers();
    }
  }

  /** The secure metrics' certificate (mounted and reloaded when it changes, else self-signed) and caller check. */
  async #secureMetrics(): Promise<SecureMetrics> {
    const dir = this.#config.metricsCertDir;
    const pair = dir
      ? { ...(await readCertificatePair(dir)), certDir: dir }
      : selfSignedCertificate(['localhost', '127.0.0.1', hostname()]);
    // Its own client: reviews of strangers' tokens never take the reconciler's rate limit or slots.
    this.#authClients ??= createKubeClients(this.#options.connection, METRICS_AUTH_CLIENT);
    return { ...pair, authorize: createMetricsAuthorizer({ raw: this.#authClients.raw }) };
  }

  get config(): OperatorConfig {
    return this.#config;
  }

  /** Graceful stop: workers drain, the lease is released, servers and watches close. */
  stop(): Promise<OperatorExit> {
    void this.#shutdown({ reason: 'stopped', code: 0 });
    return this.done;
  }

  #startWorkers(): void {
    if (this.#workers || this.#stopping.signal.aborted) return;
    const log = this.#log.child({ component: 'controller' });
    this.#workers = (async () => {
      const synced = await Promise.all(
        Object.values(this.informers).map((i) => i.waitForSync(this.#stopping.signal)),
      );
      if (!synced.every(Boolean) || this.#stopping.signal.aborted) return;
      log.info('caches synced: starting the reconcile workers');
      // As controller-runtime: events reach the queue only on the leader. Connecting
      // now replays every cached object as an add, so a new leader starts from what is.
      connectInformers(this.informers, this.queue);
      await this.#controller.start();
    })();
  }

  async #startWebhook(): Promise<void> {
    const { config } = this;
    const start = this.#options.startWebhook ?? startWebhookServer;
    const retryMs = this.#options.webhookRetryMs ?? 5000;
    let warned = false;
    // The membership rule reads the HARouter cache: serve only once it is complete.
    if (!(await this.informers.harouters.waitForSync(this.#stopping.signal))) return;
    while (!this.#stopping.signal.aborted) {
      try {
        const server = await start({
          bindAddress: config.webhookBindAddress.text,
          certDir: config.certDir,
          ...(config.webhookClientCa ? { clientCaFile: config.webhookClientCa } : {}),
          config: {
            reporterServiceAccounts: config.reporterServiceAccounts,
            allowedUsers: config.allowedUsers,
            allowedGroups: config.allowedGroups,
            operatorServiceAccount: config.operatorServiceAccount,
            requireNodeBinding: config.requireNodeBinding,
          },
          routers: (namespace, routerId) =>
            routerAgents(this.informers.harouters.get(`${namespace}/${routerId}`)),
          logger: this.#log,
          metrics: this.metrics,
        });
        if (this.#stopping.signal.aborted) {
          await server.close();
          return;
        }
        this.#webhook = server;
        this.#log.info({ port: server.port, certDir: config.certDir }, 'webhook serving');
        return;
      } catch (err) {
        if (!warned) {
          this.#log.warn(
            { error: describeError(err), retryInMs: retryMs },
            'webhook not started yet, retrying',
          );
          warned = true;
        }
        await sleep(retryMs, this.#stopping.signal);
      }
    }
  }

  #shutdown(exit: OperatorExit): Promise<void> {
    if (this.#stopped) return this.#stopped;
    this.#stopped = (async () => {
      this.#stopping.abort();
      this.#log.info({ reason: exit.reason }, 'shutting down');
      // 1. No more writes: stop taking keys and let the reconciles in flight finish.
      await this.#controller.stop().catch(() => undefined);
      await this.#workers?.catch(() => undefined);
      // 2. Release the lease (when still held) so a follower takes over at its next retry.
      this.#electionStop.abort();
      await this.#election?.catch(() => undefined);
      // 3. Close the servers and the watches.
      await this.#webhookLoop;
      await Promise.all([
        this.#webhook?.close(),
        ...this.#servers.map((s) => s.close()),
        ...Object.values(this.informers).map((i) => i.stop()),
      ]).catch((err: unknown) => this.#log.warn({ error: describeError(err) }, 'error while closing'));
      await Promise.all([this.clients.close(), this.#authClients?.close()]);
      this.#log.info({ reason: exit.reason }, 'stopped');
      this.#exit?.(exit);
    })();
    return this.#stopped;
  }
}
