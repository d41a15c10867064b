/**
 * Bounded work per request for every server the operator exposes (webhook,
 * metrics, probes): whatever anyone who can reach a port sends, the memory and
 * the time it can tie up stay bounded, and real requests keep being served.
 *
 * - connections: at most `maxConnections` sockets, and `maxConnectionsPerAddress`
 *   from one client address; a new connection beyond either cap evicts the
 *   slowest busy connection (of that address, or of the server), so slow clients
 *   cannot lock the API server out (`connection-pacing.ts`);
 * - time: the TLS handshake and the whole request (headers and body) each have a
 *   deadline, and a request must arrive at `minBytesPerSecond` after a short
 *   grace; the server's own sweep enforces them every {@link PACING_SWEEP_MS};
 *   idle keep-alive has its timeout;
 * - requests: at most `maxConcurrentRequests` at once; beyond, HTTP 429 and the
 *   connection is closed without reading the body;
 * - bytes: a body larger than `maxBodyBytes` is refused from its
 *   Content-Length before a byte is read, and otherwise as soon as it grows past
 *   the limit while being read; all bodies being read share `maxBytesInFlight`;
 * - JSON: the nesting depth is checked on the raw bytes before `JSON.parse`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { type ConnectionPhase, type ConnectionState, chooseEviction, overdue } from './connection-pacing.ts';

/** The bounds of one server (see the module comment). */
export interface ServerLimits {
  readonly maxConnections: number;
  /** Connections from one client address (the API server's own stay well below it). */
  readonly maxConnectionsPerAddress: number;
  readonly maxConcurrentRequests: number;
  /** Largest request body; 0 for servers that take no body. */
  readonly maxBodyBytes: number;
  /**
   * Sum of the bodies larger than {@link SMALL_BODY_BYTES} being read at once. Small
   * bodies (every real AdmissionReview) never wait on large ones: they are bounded by
   * `maxConnections` times `SMALL_BODY_BYTES`.
   */
  readonly maxBytesInFlight: number;
  /** Deepest `{`/`[` nesting accepted in a JSON body. */
  readonly maxJsonDepth: number;
  /** TLS handshake deadline (HTTPS servers). */
  readonly handshakeTimeoutMs: number;
  /** From connection (or the previous response) to the end of the request headers. */
  readonly headersTimeoutMs: number;
  /** From the start of a request (after the handshake, or after the previous answer) to the end of its body. */
  readonly requestTimeoutMs: number;
  /** The slowest a request (headers and body) may arrive once `rateGraceMs` has passed. */
  readonly minBytesPerSecond: number;
  /** A request's first moments, in which no rate is asked of it. */
  readonly rateGraceMs: number;
  /** Idle time after which a kept-alive connection is closed. */
  readonly keepAliveTimeoutMs: number;
  /** Largest request head (request line and headers), in bytes. */
  readonly maxHeaderBytes: number;
}

/**
 * The webhook's bounds. The API server's AdmissionReviews of HARouterStates are a
 * few KiB (reporter metadata is limited; a report's spec is small); 1 MiB leaves
 * room for an administrator's annotations (256 KiB at most per object, sent as
 * object and oldObject). The API server waits 5 s for an answer, so a request
 * that takes longer than 10 s is garbage; its idle timeout is 90 s, so keep-alive
 * outlives it. The API server sends a review at once (a 1 MiB body at 4 KiB/s
 * would outlast its timeout many times over), so anything slower than 4 KiB/s
 * after its first second is a slow client. Half the connections may come from
 * one address: two slow clients cannot fill the server, and the API server,
 * whose calls take milliseconds, outpaces a slow client on its own address.
 * Every connection may have a request in flight (the limit that matters for
 * memory is bytes); measured in issue 13 to keep a garbage flood within the
 * chart's 256 MiB heap.
 */
export const WEBHOOK_LIMITS: ServerLimits = Object.freeze({
  maxConnections: 128,
  maxConnectionsPerAddress: 64,
  maxConcurrentRequests: 128,
  maxBodyBytes: 1024 * 1024,
  maxBytesInFlight: 4 * 1024 * 1024,
  maxJsonDepth: 64,
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  minBytesPerSecond: 4096,
  rateGraceMs: 1000,
  keepAliveTimeoutMs: 90_000,
  maxHeaderBytes: 16 * 1024,
});

/** The metrics and probe servers' bounds: GET only, a few scrapers and kubelets. */
export const HTTP_LIMITS: ServerLimits = Object.freeze({
  maxConnections: 64,
  maxConnectionsPerAddress: 32,
  maxConcurrentRequests: 8,
  maxBodyBytes: 0,
  maxBytesInFlight: 0,
  maxJsonDepth: 0,
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 15_000,
  minBytesPerSecond: 4096,
  rateGraceMs: 1000,
  keepAliveTimeoutMs: 65_000,
  maxHeaderBytes: 16 * 1024,
});

/** Bodies up to this size are not counted in `maxBytesInFlight` (see there). */
export const SMALL_BODY_BYTES = 64 * 1024;

/** An error with the HTTP status to answer. */
export class RequestError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/**
 * The client closed its connection before the request body was complete (the API
 * server gave up on a slow answer, a client was killed). There is no one to answer:
 * servers neither respond nor count it as an HTTP status, and above all not as a
 * server error (a 5xx means the server failed).
 */
export class ClientAbortedError extends Error {
  constructor() {
    super('the client closed the request before its body was complete');
    this.name = 'ClientAbortedError';
  }
}

/** Counts requests and body bytes in flight against a server's limits. */
export class RequestGate {
  readonly #limits: ServerLimits;
  #requests = 0;
  #bytes = 0;

  constructor(limits: ServerLimits) {
    this.#limits = limits;
  }

  /** Requests and body bytes in flight now. */
  get load(): { requests: number; bytes: number } {
    return { requests: this.#requests, bytes: this.#bytes };
  }

  /**
   * Admits a request, or answers 429 (closing the connection, body unread) when
   * the server is at its limit. Returns false when refused. An admitted request
   * leaves the gate when its response closes.
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#requests >= this.#limits.maxConcurrentRequests) {
      refuse(res, 429, 'too many requests');
      req.socket.destroySoon();
      return false;
    }
    this.#requests++;
    res.once('close', () => {
      this.#requests--;
    });
    return true;
  }

  /**
   * Reads a request body within the limits: 413 past `maxBodyBytes` (from the
   * Content-Length, or while reading), 503 when the bytes in flight would pass
   * `maxBytesInFlight`. The bytes are released when the response closes. Rejects with
   * {@link ClientAbortedError} when the client goes away before the body is complete.
   */
  readBody(req: IncomingMessage, res: ServerResponse): Promise<Buffer> {
    const { maxBodyBytes, maxBytesInFlight } = this.#limits;
    let held = 0;
    res.once('close', () => {
      this.#bytes -= held;
      held = 0;
    });
    let size = 0;
    const take = (n: number): RequestError | undefined => {
      if (size + n > maxBodyBytes) return new RequestError(413, 'request body too large');
      // Only what a body holds beyond SMALL_BODY_BYTES counts against the shared budget.
      const counted = Math.max(0, size + n - SMALL_BODY_BYTES) - Math.max(0, size - SMALL_BODY_BYTES);
      if (this.#bytes + counted > maxBytesInFlight) return new RequestError(503, 'server busy');
      held += counted;
      this.#bytes += counted;
      return undefined;
    };
    return new Promise((resolve, reject) => {
      const fail = (err: RequestError) => {
        // Stop reading: the rest of the body is never buffered (the connection closes after the answer).
        req.pause();
        res.shouldKeepAlive = false;
        reject(err);
      };
      // With a Content-Length (the API server always sends one) the whole body is reserved up
      // front and read into one buffer: no second copy, and a refusal before a byte is read.
      const declared = Number(req.headers['content-length']);
      const sized = Number.isSafeInteger(declared) && declared >= 0;
      const early = sized ? take(declared) : undefined;
      if (sized && !early) size = declared;
      if (early) {
        fail(early);
        return;
      }
      const into = sized ? Buffer.allocUnsafe(declared) : undefined;
      const chunks: Buffer[] = [];
      let read = 0;
      let done = false;
      req.on('data', (chunk: Buffer) => {
        if (done) return;
        let err: RequestError | undefined;
        if (into) {
          if (read + chunk.length > into.length)
            err = new RequestError(400, 'request body longer than its Content-Length');
        } else {
          err = take(chunk.length);
          if (!err) size += chunk.length;
        }
        if (err) {
          done = true;
          chunks.length = 0;
          fail(err);
          return;
        }
        if (into) chunk.copy(into, read);
        else chunks.push(chunk);
        read += chunk.length;
      });
      req.on('end', () => {
        if (!done) resolve(into ? into.subarray(0, read) : Buffer.concat(chunks, read));
        done = true;
      });
      // An error on the request stream is the client's connection failing mid-body (Node reports a
      // closed connection as `aborted`): a client abort, not a bad request.
      req.on('error', () => {
        if (!done) reject(new ClientAbortedError());
        done = true;
      });
      req.on('close', () => {
        if (!done) reject(new ClientAbortedError());
        done = true;
      });
    });
  }
}

/** Answers a refusal as plain text (never request content). */
export function refuse(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) return;
  res.shouldKeepAlive = false;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    connection: 'close',
    ...(status === 429 || status === 503 ? { 'retry-after': '1' } : {}),
  });
  res.end(`${text}\n`);
}

/**
 * True when the JSON text in `body` nests `{`/`[` at most `maxDepth` deep. Reads
 * bytes only (strings and escapes skipped), so it costs no allocation: it runs
 * before `JSON.parse`, which would build every level.
 */
export function jsonDepthWithin(body: Uint8Array, maxDepth: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return false;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return true;
}

/** How often a server checks its connections' deadlines and rates. */
export const PACING_SWEEP_MS = 250;

/** The key of a connection, the same for its TCP socket and the TLS socket on top of it. */
const peerKey = (socket: Socket) => `${socket.remoteAddress}|${socket.remotePort}`;

/** A client address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) written as IPv4. */
const clientAddress = (socket: Socket) => (socket.remoteAddress ?? '').replace(/^::ffff:/, '');

/** One open connection: its TCP socket, phase, and the byte count where the phase began. */
interface TrackedConnection extends ConnectionState {
  readonly socket: Socket;
  phase: ConnectionPhase;
  since: number;
  /** `socket.bytesRead` when the phase began. */
  start: number;
  /** The request being received, while there is one (`complete` once it has arrived whole). */
  request: IncomingMessage | undefined;
  readonly bytes: number;
}

/**
 * Applies the connection and time bounds to a server before it listens: the
 * caps with eviction of the slowest busy connection, and a sweep that closes
 * connections past their deadlines or below the minimum rate
 * (`connection-pacing.ts`). Node's own timeouts stay set as a second line.
 */
export function boundServer(server: Server, limits: ServerLimits): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Inactivity on a socket (a client that stops reading the answer, say).
  server.timeout = limits.requestTimeoutMs;
  const tls = 'setSecureContext' in server;
  /** Open connections by peer key, oldest first. */
  const open = new Map<string, TrackedConnection>();
  const enter = (c: TrackedConnection, phase: ConnectionPhase) => {
    c.phase = phase;
    c.since = performance.now();
    c.start = c.socket.bytesRead;
  };
  /** A kept-alive connection's next request: timed from now, its bytes counted from the last answer. */
  const beginRequest = (c: TrackedConnection) => {
    c.phase = 'request';
    c.since = performance.now();
  };
  /** A request that has arrived whole is being answered: never evicted, never timed. */
  const current = (c: TrackedConnection) => {
    if (c.phase === 'request' && c.request?.complete) c.phase = 'processing';
    return c;
  };
  server.on('connection', (socket: Socket) => {
    const now = performance.now();
    const decision = chooseEviction([...open.values()].map(current), clientAddress(socket), now, limits);
    if (decision.action === 'refuse') {
      socket.destroy();
      return;
    }
    if (decision.action === 'evict') decision.victim.socket.destroy();
    const key = peerKey(socket);
    const connection: TrackedConnection = {
      socket,
      address: clientAddress(socket),
      phase: tls ? 'handshake' : 'request',
      since: now,
      start: 0,
      request: undefined,
      get bytes() {
        return this.socket.bytesRead - this.start;
      },
    };
    open.set(key, connection);
    socket.once('close', () => {
      if (open.get(key)?.socket === socket) open.delete(key);
    });
  });
  server.on('secureConnection', (socket: Socket) => {
    const connection = open.get(peerKey(socket));
    if (connection?.phase === 'handshake') enter(connection, 'request');
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const connection = open.get(peerKey(req.socket));
    if (!connection) return;
    // The next request on a kept-alive connection, before the sweep saw its first bytes.
    if (connection.phase === 'idle') beginRequest(connection);
    connection.request = req;
    res.once('close', () => {
      connection.request = undefined;
      enter(connection, 'idle');
    });
  });
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const connection of open.values()) {
      const c = current(connection);
      // Bytes after an answer: the next request has begun (its head may still be arriving).
      if (c.phase === 'idle' && c.bytes > 0) beginRequest(c);
      if (overdue(c, now, limits)) c.socket.destroy();
    }
  }, PACING_SWEEP_MS);
  sweep.unref();
  server.once('close', () => clearInterval(sweep));
}
