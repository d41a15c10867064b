/**
 * The operator's connection to the API server: raw JSON requests over kept-alive
 * HTTPS connections, with a bounded number of requests in flight and a
 * client-side rate limit (client-go's QPS and burst).
 *
 * Why not client-node's request path: in 2.0.1 `applySecurityAuthentication`
 * builds a new undici dispatcher, hence a new TLS connection, for every request;
 * at a thousand writes a second that is a thousand handshakes and a heap of
 * connection pools waiting for their idle timeout. Here one `https.Agent` keeps
 * at most `maxInFlight` connections open for requests (and `maxWatches` for
 * watches) and reuses them. Credentials are read through the `Connection` (token
 * files, client certificates; see `kubeconfig.ts`) and refreshed every minute, as
 * client-go re-reads a rotated service-account token.
 *
 * Watches (`watch`) stream over the same agent: a GET with `watch=1`, one JSON
 * event per line, each line bounded (`maxWatchLineBytes`) so that a broken or
 * hostile server cannot grow the process's memory, and ended when nothing arrived
 * for `watchIdleTimeoutMs` (a half-open connection never hangs a watch). The
 * operator loads no part of @kubernetes/client-node at run time.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { Metrics } from '../metrics.ts';
import { sleep } from '../runtime/backoff.ts';
import { LineSplitter, type SplitEvent } from '../runtime/line-splitter.ts';
import { Semaphore } from '../runtime/semaphore.ts';
import { TokenBucket } from '../runtime/token-bucket.ts';
import { KubeRequestError } from './errors.ts';
import type { Connection } from './kubeconfig.ts';

/** The User-Agent of every request, so API server audit logs name the operator. */
export const USER_AGENT = 'harouter-operator';
/** Default timeout of one API request (not of watches). */
export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** How long credentials read from the connection are reused before being read again. */
const CREDENTIALS_TTL_MS = 60_000;
/** Longest watch event line (one object as JSON); the API server refuses objects far smaller. */
export const DEFAULT_MAX_WATCH_LINE_BYTES = 16 * 1024 * 1024;
/** A watch with no data for this long is ended as timed out (client-node's inactivity limit). */
export const DEFAULT_WATCH_IDLE_TIMEOUT_MS = 30_000;
/** How much of a refused watch's body is read for its Status. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

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

/**
 * Starts a watch of a collection path (client-node's `Watch.watch` signature).
 * `onEvent` receives each event's `type` and `object`; `onDone` is called once,
 * with `null` when the server ended the stream, else with the error (a
 * `KubeRequestError` when the server refused the watch, the abort reason when the
 * returned controller was aborted). Abort the controller to stop the watch.
 */
export type WatchFn = (
  path: string,
  query: Record<string, string | number | boolean | undefined>,
  onEvent: (type: string, obj: unknown) => void,
  onDone: (err: unknown) => void,
  /** Called once the server has accepted the watch (HTTP 200), before any event. */
  onConnected?: () => void,
) => Promise<AbortController>;

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
  /** Watches open at once, each on a connection of its own (default 16); more wait for one to end. */
  maxWatches?: number;
  /** Longest line of a watch stream (default 16 MiB): a longer one ends the watch with an error. */
  maxWatchLineBytes?: number;
  /** A watch that received nothing for this long ends with a `TimeoutError` (default 30 s). */
  watchIdleTimeoutMs?: number;
  metrics?: Metrics;
}

interface Credentials {
  headers: Record<string, string>;
  agent: HttpAgent;
  readAt: number;
}

/** Kept-alive, bounded, rate-limited raw requests (see the module comment). */
export class ApiTransport {
  readonly #connection: Connection;
  readonly #server: URL;
  readonly #timeoutMs: number;
  readonly #maxInFlight: number;
  readonly #maxWatches: number;
  readonly #maxLineBytes: number;
  readonly #watchIdleMs: number;
  readonly #slots: Semaphore;
  readonly #watchSlots: Semaphore;
  readonly #bucket: TokenBucket;
  readonly #metrics: Metrics | undefined;
  readonly #watches = new Set<AbortController>();
  #credentials: Promise<Credentials> | undefined;
  #tlsKey = '';

  constructor(connection: Connection, options: TransportOptions = {}) {
    this.#connection = connection;
    this.#server = new URL(connection.server.replace(/\/+$/, ''));
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#maxInFlight = options.maxInFlight ?? 32;
    this.#maxWatches = options.maxWatches ?? 16;
    this.#maxLineBytes = options.maxWatchLineBytes ?? DEFAULT_MAX_WATCH_LINE_BYTES;
    this.#watchIdleMs = options.watchIdleTimeoutMs ?? DEFAULT_WATCH_IDLE_TIMEOUT_MS;
    this.#slots = new Semaphore(this.#maxInFlight);
    this.#watchSlots = new Semaphore(this.#maxWatches);
    const qps = options.qps ?? 0;
    this.#bucket = new TokenBucket({ qps, burst: options.burst ?? Math.max(1, Math.ceil(2 * qps)) });
    this.#metrics = options.metrics;
  }

  /** The API server's `host:port` (the `host` label of request metrics). */
  get host(): string {
    return this.#server.host;
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

  /** The `WatchFn` of this transport (see the module comment); resolves at once. */
  readonly watch: WatchFn = async (path, query, onEvent, onDone, onConnected) => {
    const controller = new AbortController();
    this.#watches.add(controller);
    void this.#stream(
      path,
      query,
      controller,
      onEvent,
      (err) => {
        this.#watches.delete(controller);
        onDone(err);
      },
      onConnected,
    );
    return controller;
  };

  /** Ends the watches and closes the kept-alive connections. */
  async close(): Promise<void> {
    for (const watch of this.#watches) watch.abort();
    const credentials = await this.#credentials?.catch(() => undefined);
    credentials?.agent.destroy();
  }

  #url(path: string, query: RawRequest['query']): URL {
    const url = new URL(this.#server.pathname.replace(/\/$/, '') + path, this.#server);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url;
  }

  async #send(request: RawRequest): Promise<unknown> {
    const { headers: auth, agent } = await this.#credentialsNow();
    const method = request.method ?? 'GET';
    const url = this.#url(request.path, request.query);
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

  /** One watch: waits for the rate limit and a watch slot, then streams until it ends or is aborted. */
  async #stream(
    path: string,
    query: RawRequest['query'],
    controller: AbortController,
    onEvent: (type: string, obj: unknown) => void,
    onDone: (err: unknown) => void,
    onConnected?: () => void,
  ): Promise<void> {
    const signal = controller.signal;
    let ended = false;
    let idle: NodeJS.Timeout | undefined;
    let release: (() => void) | undefined;
    const end = (err: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(idle);
      signal.removeEventListener('abort', onAbort);
      controller.abort();
      release?.();
      onDone(err);
    };
    const onAbort = () => end(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const wait = this.#bucket.reserve();
      if (wait > 0) await sleep(wait, signal);
      if (ended) return;
      await this.#watchSlots.acquire();
      release = () => this.#watchSlots.release();
      if (ended) return release();
      const { headers: auth, agent } = await this.#credentialsNow();
      if (ended) return;
      const url = this.#url(path, { ...query, watch: 1 });
      const headers = { ...auth, Accept: 'application/json', 'User-Agent': USER_AGENT };
      const resetIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(() => end(timeoutError('watch received nothing in time')), this.#watchIdleMs);
        idle.unref();
      };
      resetIdle();
      const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
      const req = send(url, { method: 'GET', headers, agent, signal }, (res) => {
        resetIdle();
        res.on('error', (err) => end(signal.aborted ? signal.reason : err));
        if (res.statusCode !== 200) {
          readStatus(res).then(
            (body) => end(new KubeRequestError(res.statusCode ?? 0, body)),
            (err) => end(err),
          );
          return;
        }
        try {
          onConnected?.();
        } catch (err) {
          end(err);
          return;
        }
        const lines = new LineSplitter(this.#maxLineBytes);
        const tooLong = () =>
          new WatchStreamError(`a watch event is longer than ${this.#maxLineBytes} bytes`);
        const deliver = (line: SplitEvent): boolean => {
          if (ended) return false;
          if (line.kind === 'too-long') {
            end(tooLong());
            return false;
          }
          const text = line.bytes.toString('utf8').trim();
          if (text === '') return true;
          let event: { type?: unknown; object?: unknown };
          try {
            event = JSON.parse(text);
          } catch {
            end(new WatchStreamError('a watch event is not JSON'));
            return false;
          }
          try {
            onEvent(String(event?.type), event?.object);
          } catch (err) {
            end(err);
            return false;
          }
          return !ended;
        };
        res.on('data', (chunk: Buffer) => {
          if (ended) return;
          resetIdle();
          lines.push(chunk, deliver);
          if (lines.skipping && !ended) end(tooLong());
        });
        res.on('end', () => {
          const rest = lines.rest();
          if (rest && !deliver(rest)) return;
          end(null);
        });
      });
      req.on('error', (err) => end(signal.aborted ? signal.reason : err));
      req.end();
    } catch (err) {
      end(err);
    }
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
    const opts: RequestOptions = await this.#connection.requestOptions();
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
      const shared = {
        keepAlive: true,
        maxSockets: this.#maxInFlight + this.#maxWatches,
        maxFreeSockets: this.#maxInFlight,
      };
      agent =
        this.#server.protocol === 'http:' ? new HttpAgent(shared) : new HttpsAgent({ ...shared, ...tls });
      // The old pool's idle connections close; requests and watches in flight on it finish first.
      const grace = Math.max(this.#timeoutMs, this.#watchIdleMs);
      if (previous?.agent) setTimeout(() => previous.agent.destroy(), grace).unref();
      this.#tlsKey = tlsKey;
    }
    const headers: Record<string, string> = {};
    const given = Array.isArray(opts.headers) ? {} : (opts.headers ?? {});
    for (const [k, v] of Object.entries(given)) if (v !== undefined) headers[k] = String(v);
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

/** A watch stream the transport cannot read (a line that is not JSON, or too long). */
export class WatchStreamError extends Error {
  override name = 'WatchStreamError';
}

function timeoutError(message: string): Error {
  const err = new Error(message);
  err.name = 'TimeoutError';
  return err;
}

/** The body of a refused watch (a `metav1.Status`), read up to a bound, parsed when it is JSON. */
function readStatus(res: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        resolve(JSON.parse(text));
      } catch {
        resolve(text);
      }
    };
    res.on('data', (chunk: Buffer) => {
      if (bytes >= MAX_ERROR_BODY_BYTES) return;
      chunks.push(chunk.subarray(0, MAX_ERROR_BODY_BYTES - bytes));
      bytes += chunk.length;
      if (bytes >= MAX_ERROR_BODY_BYTES) {
        res.destroy();
        done();
      }
    });
    res.on('end', done);
    res.on('error', reject);
  });
}
