/**
 * The operator's API clients: one KubeConfig, every request through one HTTP
 * library that adds a per-request timeout (client-node 2.x has none) and counts
 * `rest_client_requests_total{code,method,host}`. Because the timeout and the
 * metrics live in the HTTP library (not in middleware), per-call options can
 * never drop them; still, pass per-call options built with `setHeaderOptions`
 * (which uses `middlewareMergeStrategy: 'append'`) or `patchOptions` below so
 * the client's own middleware (user agent) is kept.
 */
import { existsSync } from 'node:fs';
import {
  type ApiType,
  type ConfigurationOptions,
  CoreV1Api,
  createConfiguration,
  type HttpLibrary,
  IsomorphicFetchHttpLibrary,
  KubeConfig,
  Observable,
  type ObservableMiddleware,
  PatchStrategy,
  type RequestContext,
  type ResponseContext,
  ServerConfiguration,
  setHeaderMiddleware,
  setHeaderOptions,
} from '@kubernetes/client-node';
import type { Metrics } from '../metrics.ts';
import {
  ApiTransport,
  DEFAULT_REQUEST_TIMEOUT_MS,
  type RawRequester,
  type TransportOptions,
  USER_AGENT,
} from './transport.ts';

export type { RawRequest, RawRequester } from './transport.ts';

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Loads the client configuration like controller-runtime: the `--kubeconfig`
 * path when given, else `KUBECONFIG`, else the in-cluster service account, else
 * `~/.kube/config`.
 */
export function loadKubeConfig(
  kubeconfigPath?: string,
  env: NodeJS.ProcessEnv = process.env,
  inClusterTokenPath = SERVICE_ACCOUNT_TOKEN,
): KubeConfig {
  const kc = new KubeConfig();
  if (kubeconfigPath) {
    kc.loadFromFile(kubeconfigPath);
  } else if (env.KUBECONFIG) {
    kc.loadFromDefault();
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(inClusterTokenPath)) {
    kc.loadFromCluster();
  } else {
    kc.loadFromDefault();
  }
  if (!kc.getCurrentCluster()) throw new Error('kubeconfig has no current cluster');
  return kc;
}

/** Options shared by every client `createKubeClients` builds. */
export interface ClientOptions {
  /** Timeout of each request in ms (default 30 s). */
  requestTimeoutMs?: number;
  metrics?: Metrics;
}

/**
 * The HTTP library behind every client: client-node's fetch library with a
 * timeout signal (combined with any caller signal) and request metrics.
 */
export class InstrumentedHttpLibrary implements HttpLibrary {
  readonly #inner = new IsomorphicFetchHttpLibrary();
  readonly #timeoutMs: number;
  readonly #metrics: Metrics | undefined;

  constructor(options: ClientOptions = {}) {
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#metrics = options.metrics;
  }

  send(request: RequestContext): Observable<ResponseContext> {
    return new Observable(this.sendPromise(request));
  }

  async sendPromise(request: RequestContext): Promise<ResponseContext> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const callerSignal = request.getSignal();
    request.setSignal(callerSignal ? AbortSignal.any([callerSignal, timeout]) : timeout);
    const method = String(request.getHttpMethod());
    let host = '';
    try {
      host = new URL(request.getUrl()).host;
    } catch {
      host = '';
    }
    try {
      const response = await this.#inner.send(request).toPromise();
      this.#metrics?.restClientRequests.inc({ code: String(response.httpStatusCode), method, host });
      return response;
    } catch (err) {
      this.#metrics?.restClientRequests.inc({ code: '<error>', method, host });
      throw err;
    }
  }
}

/** Builds a typed API client that uses the instrumented HTTP library. */
export function makeApiClient<T extends ApiType>(
  kc: KubeConfig,
  apiClientType: new (config: ReturnType<typeof createConfiguration>) => T,
  httpApi: HttpLibrary,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('kubeconfig has no current cluster');
  const config = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    httpApi,
    middleware: [setHeaderMiddleware('User-Agent', USER_AGENT)],
  });
  return new apiClientType(config);
}

/**
 * The operator's clients, sharing one KubeConfig. The operator itself only
 * needs `raw` (kept-alive, bounded and rate-limited: see `transport.ts`); `core`
 * serves tests and tools that want typed objects.
 */
export interface KubeClients {
  kc: KubeConfig;
  core: CoreV1Api;
  /** Raw JSON requests (see `ApiTransport`). */
  raw: RawRequester;
  /** Closes the kept-alive connections of `raw`. */
  close(): Promise<void>;
}

/** Builds `KubeClients`: `core` on the instrumented HTTP library, `raw` on an `ApiTransport`. */
export function createKubeClients(
  kc: KubeConfig,
  options: ClientOptions & TransportOptions = {},
): KubeClients {
  const httpApi = new InstrumentedHttpLibrary(options);
  const transport = new ApiTransport(kc, options);
  return {
    kc,
    core: makeApiClient(kc, CoreV1Api, httpApi),
    raw: transport.request,
    close: () => transport.close(),
  };
}

/**
 * Per-call options that set the PATCH content type while keeping the client's
 * middleware (`middlewareMergeStrategy: 'append'`). Custom resources refuse
 * strategic merge (415): use `merge` or `apply`.
 */
export function patchOptions(
  strategy: 'merge' | 'apply' | 'json',
  options?: ConfigurationOptions<ObservableMiddleware>,
): ConfigurationOptions<ObservableMiddleware> {
  const contentType =
    strategy === 'merge'
      ? PatchStrategy.MergePatch
      : strategy === 'apply'
        ? PatchStrategy.ServerSideApply
        : PatchStrategy.JsonPatch;
  return setHeaderOptions('Content-Type', contentType, options);
}
