/**
 * The operator's connection to the API server: raw JSON requests over kept-alive
 * HTTPS connections, with a bounded number of requests in flight and a
 * client-side rate limit (client-go's QPS and burst).
 *
 * Why not client-node's request path: in 2.0.1 `applySecurityAuthentication`
 * builds a new undici dispatcher, hence a new TLS connection, for every request;
 * at a thousand writes a second that is a thousand handshakes and a heap of
 * connection pools waiting for their idle timeout. Here one `https.Agent` keeps
 * at most `maxInFlight` connections open and reuses them. Credentials are read
 * through the KubeConfig (token files, client certificates) and refreshed every
 * minute, as client-go re-reads a rotated service-account token.
 */
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Metrics } from '../metrics.ts';
import { sleep } from '../runtime/backoff.ts';
import { Semaphore } from '../runtime/semaphore.ts';
import { TokenBucket } from '../runtime/token-bucket.ts';
import { KubeRequestError } from './errors.ts';

/** The User-Agent of every request, so API server audit logs name the operator. */
export const USER_AGENT = 'harouter-operator';
/** Default timeout of one API request (not of watches). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How long credentials read from the KubeConfig are reused before being read again. */
const CREDENTIALS_TTL_MS = 60_000;

/** One raw JSON request: method, absolute API path, query and body. */
export interface RawRequest {
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** Absolute API path, e.g. `/api/v1/nodes`. */
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
}

/** A request function returning the parsed JSON body; throws `KubeRequestError` on a non-2xx status. */
export type RawRequester = (request: RawRequest) => Promise<unknown>;

/** Limits and accounting of the transport. */
export interface TransportOptions {
  /** Timeout of each request in ms, queueing for a slot excluded (default 30 s). */
  requestTimeoutMs?: number;
  /** Requests in flight at once, i.e. kept-alive connections (default 32). */
  maxInFlight?: number;
  /** Sustained requests per second (default 0: unlimited). */
  qps?: number;
  /** Requests allowed at once above `qps` (default 2 x qps, at least 1). */
  burst?: number;
  metrics?: Metrics;
}

interface Credentials {
  headers: Record<string, string>;
  agent: HttpAgent;
  readAt: number;
}

/** Kept-alive, bounded, rate-limited raw requests (see the module comment). */
export class ApiTransport {
  readonly #kc: KubeConfig;
  readonly #server: URL;
  readonly #timeoutMs: number;
  readonly #maxInFlight: number;
  readonly #slots: Semaphore;
  readonly #bucket: TokenBucket;
  readonly #metrics: Metrics | undefined;
  #credentials: Promise<Credentials> | undefined;
  #tlsKey = '';

  constructor(kc: KubeConfig, options: TransportOptions = {}) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('kubeconfig has no current cluster');
    this.#kc = kc;
    this.#server = new URL(cluster.server.replace(/\/+$/, ''));
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#maxInFlight = options.maxInFlight ?? 32;
    this.#slots = new Semaphore(this.#maxInFlight);
    const qps = options.qps ?? 0;
    this.#bucket = new TokenBucket({ qps, burst: options.burst ?? Math.max(1, Math.ceil(2 * qps)) });
    this.#metrics = options.metrics;
  }

  /** Requests waiting for a slot (for tests and metrics). */
  get queued(): number {
    return this.#slots.waiting;
  }

  /** The `RawRequester` of this transport. */
  readonly request: RawRequester = async (request) => {
    const wait = this.#bucket.reserve();
    if (wait > 0) await sleep(wait, request.signal);
    await this.#slots.acquire();
    try {
      return await this.#send(request);
    } finally {
      this.#slots.release();
    }
  };

  /** Closes the kept-alive connections. */
  async close(): Promise<void> {
    const credentials = await this.#credentials?.catch(() => undefined);
    credentials?.agent.destroy();
  }

  async #send(request: RawRequest): Promise<unknown> {
    const { headers: auth, agent } = await this.#credentialsNow();
    const method = request.method ?? 'GET';
    const url = new URL(this.#server.pathname.replace(/\/$/, '') + request.path, this.#server);
    for (const [key, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    const body =
      request.body === undefined
        ? undefined
        : typeof request.body === 'string'
          ? request.body
          : JSON.stringify(request.body);
    const headers: Record<string, string | number> = {
      ...auth,
      Accept: 'application/json',
      'User-Agent': USER_AGENT,
    };
    if (body !== undefined) {
      headers['Content-Type'] = request.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(body);
    }
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const signal = request.signal ? AbortSignal.any([request.signal, timeout]) : timeout;
    const host = this.#server.host;
    let status: number;
    let text: string;
    try {
      ({ status, text } = await exchange(url, { method, headers, agent, signal }, body));
    } catch (err) {
      this.#metrics?.restClientRequests.inc({ code: '<error>', method, host });
      throw err;
    }
    this.#metrics?.restClientRequests.inc({ code: String(status), method, host });
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = text;
    }
    if (status < 200 || status >= 300) throw new KubeRequestError(status, parsed);
    return parsed;
  }

  #credentialsNow(): Promise<Credentials> {
    const current = this.#credentials;
    if (current) {
      return current.then((c) => {
        if (performance.now() - c.readAt < CREDENTIALS_TTL_MS) return c;
        if (this.#credentials === current) this.#credentials = this.#readCredentials(c);
        return this.#credentials as Promise<Credentials>;
      });
    }
    this.#credentials = this.#readCredentials(undefined);
    this.#credentials.catch(() => {
      this.#credentials = undefined;
    });
    return this.#credentials;
  }

  async #readCredentials(previous: Credentials | undefined): Promise<Credentials> {
    const opts: RequestOptions & { headers?: Record<string, string> } = { headers: {} };
    await this.#kc.applyToHTTPSOptions(opts);
    const tls = {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      ...(opts.rejectUnauthorized !== undefined ? { rejectUnauthorized: opts.rejectUnauthorized } : {}),
      ...(opts.servername ? { servername: opts.servername } : {}),
    };
    const tlsKey = JSON.stringify(
      [tls.ca, tls.cert, tls.key, tls.rejectUnauthorized, tls.servername].map(String),
    );
    let agent = previous?.agent;
    if (!agent || tlsKey !== this.#tlsKey) {
      const shared = { keepAlive: true, maxSockets: this.#maxInFlight, maxFreeSockets: this.#maxInFlight };
      agent =
        this.#server.protocol === 'http:' ? new HttpAgent(shared) : new HttpsAgent({ ...shared, ...tls });
      // The old pool's idle connections close; requests in flight on it finish first.
      if (previous?.agent) setTimeout(() => previous.agent.destroy(), this.#timeoutMs).unref();
      this.#tlsKey = tlsKey;
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.headers ?? {})) if (v !== undefined) headers[k] = String(v);
    if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
    return { headers, agent, readAt: performance.now() };
  }
}

/** One HTTP exchange: the status and the whole body as text. */
function exchange(
  url: URL,
  options: {
    method: string;
    headers: Record<string, string | number>;
    agent: HttpAgent;
    signal: AbortSignal;
  },
  body: string | undefined,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    const req = send(url, options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
      res.on('error', (err) => reject(options.signal.aborted ? options.signal.reason : err));
    });
    req.on('error', (err) => reject(options.signal.aborted ? options.signal.reason : err));
    req.end(body);
  });
}
