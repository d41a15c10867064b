/**
 * A small kept-alive HTTPS client for the chaos run: one connection pool per
 * identity (a bearer token or the admin's client certificate), JSON in and out,
 * a timeout on every request, and never a throw for an HTTP status.
 */
import { readFileSync } from 'node:fs';
import { Agent, request } from 'node:https';

/** How a client authenticates. */
export type Credentials = { token: string } | { cert: Buffer; key: Buffer };

/** An answer of the API server (or a transport failure, as status 0). */
export interface Answer {
  status: number;
  /** Parsed JSON body; `{ message }` with the error text for a transport failure. */
  body: Record<string, unknown> & { message?: string };
}

/** Options of {@link KubeHttp}. */
export interface KubeHttpOptions {
  server: string;
  ca: Buffer;
  credentials: Credentials;
  /** Connections kept open at most (default 16). */
  maxSockets?: number;
  /** Per-request timeout (default 15 s). */
  timeoutMs?: number;
}

/** One identity's connection pool to the API server. */
export class KubeHttp {
  readonly #url: URL;
  readonly #agent: Agent;
  readonly #headers: Record<string, string>;
  readonly #timeoutMs: number;

  constructor(options: KubeHttpOptions) {
    this.#url = new URL(options.server);
    const tls =
      'cert' in options.credentials ? { cert: options.credentials.cert, key: options.credentials.key } : {};
    this.#agent = new Agent({
      keepAlive: true,
      maxSockets: options.maxSockets ?? 16,
      ca: options.ca,
      ...tls,
    });
    this.#headers =
      'token' in options.credentials ? { Authorization: `Bearer ${options.credentials.token}` } : {};
    this.#timeoutMs = options.timeoutMs ?? 15_000;
  }

  /**
   * Sends one request; resolves with the answer, status 0 on a transport failure or timeout. A
   * request that fails because the server had just closed the kept-alive connection it was sent
   * on is sent again once, on a fresh connection (it never reached the server).
   */
  async request(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body?: unknown,
    contentType = 'application/json',
  ): Promise<Answer> {
    const first = await this.#send(method, path, body, contentType);
    return first.staleSocket ? (await this.#send(method, path, body, contentType)).answer : first.answer;
  }

  #send(
    method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE',
    path: string,
    body: unknown,
    contentType: string,
  ): Promise<{ answer: Answer; staleSocket: boolean }> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise((resolve) => {
      const req = request(
        {
          agent: this.#agent,
          hostname: this.#url.hostname,
          port: this.#url.port,
          method,
          path,
          headers: {
            ...this.#headers,
            Accept: 'application/json',
            ...(payload !== undefined
              ? { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(payload) }
              : {}),
          },
          timeout: this.#timeoutMs,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) =>
            resolve({ answer: { status: 0, body: { message: err.message } }, staleSocket: false }),
          );
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: Answer['body'];
            try {
              parsed = text ? JSON.parse(text) : {};
            } catch {
              parsed = { message: text.slice(0, 2000) };
            }
            resolve({ answer: { status: res.statusCode ?? 0, body: parsed }, staleSocket: false });
          });
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`timed out after ${this.#timeoutMs} ms: ${method} ${path}`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        resolve({
          answer: { status: 0, body: { message: err.message } },
          staleSocket: req.reusedSocket && err.code === 'ECONNRESET',
        }),
      );
      req.end(payload);
    });
  }

  /**
   * Streams a watch: calls `onLine` with each line of the body; resolves with the
   * HTTP status when the server ends the stream, the connection breaks or `signal` aborts.
   */
  watch(path: string, onLine: (line: string) => void, signal: AbortSignal): Promise<number> {
    return new Promise((resolve) => {
      const req = request(
        {
          agent: this.#agent,
          hostname: this.#url.hostname,
          port: this.#url.port,
          method: 'GET',
          path,
          headers: { ...this.#headers, Accept: 'application/json' },
          signal,
        },
        (res) => {
          let buffered = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffered += chunk;
            let newline = buffered.indexOf('\n');
            while (newline !== -1) {
              const line = buffered.slice(0, newline);
              buffered = buffered.slice(newline + 1);
              if (line.trim()) onLine(line);
              newline = buffered.indexOf('\n');
            }
          });
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', () => resolve(0));
          res.on('close', () => resolve(res.statusCode ?? 0));
        },
      );
      // A frozen API server sends nothing: give up on a silent stream so that the caller re-watches.
      req.setTimeout(60_000, () => req.destroy());
      req.on('error', () => resolve(0));
      req.end();
    });
  }

  /** Closes the pool's idle connections. */
  close(): void {
    this.#agent.destroy();
  }
}

/** The admin's client from a kubeconfig written by the control plane (credentials embedded). */
export function adminHttp(kubeconfigPath: string, maxSockets = 16): KubeHttp {
  const config = JSON.parse(readFileSync(kubeconfigPath, 'utf8')) as {
    clusters: { cluster: { server: string; 'certificate-authority-data': string } }[];
    users: { user: { 'client-certificate-data': string; 'client-key-data': string } }[];
  };
  const cluster = config.clusters[0]?.cluster;
  const user = config.users[0]?.user;
  if (!cluster || !user) throw new Error(`${kubeconfigPath} has no cluster or user`);
  return new KubeHttp({
    server: cluster.server,
    ca: Buffer.from(cluster['certificate-authority-data'], 'base64'),
    credentials: {
      cert: Buffer.from(user['client-certificate-data'], 'base64'),
      key: Buffer.from(user['client-key-data'], 'base64'),
    },
    maxSockets,
  });
}

/** Throws unless the answer is a success; the message names what was attempted. */
export function expectOk(what: string, answer: Answer, also: number[] = []): Answer {
  if ((answer.status >= 200 && answer.status < 300) || also.includes(answer.status)) return answer;
  throw new Error(`${what}: HTTP ${answer.status} ${answer.body.message ?? ''}`);
}

/** Polls `check` every `intervalMs` until it returns true; throws naming `what` after `timeoutMs`. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 250,
): Promise<number> {
  const started = Date.now();
  let last = '';
  for (;;) {
    try {
      if (await check()) return Date.now() - started;
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() - started > timeoutMs)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** `promise`, or an error naming `what` once `timeoutMs` has passed. */
export async function within<T>(what: string, promise: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
