/**
 * The plain-HTTP endpoints every replica serves: Prometheus metrics
 * (`/metrics`, from the operator's own registry) and the probes (`/healthz`,
 * `/readyz`). Probe checks are named functions; a probe answers 200 `ok` when
 * all pass and 500 listing the failing ones otherwise (`?verbose` lists all),
 * like controller-runtime's healthz handler. Both are bounded (`limits.ts`):
 * connections, concurrent requests, header size and time.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { BindAddress } from '../flag-values.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { closeServer } from '../runtime/close-server.ts';
import { type CertificateReloader, reloadCertificateFromDir } from './certificate-dir.ts';
import { boundServer, HTTP_LIMITS, RequestGate, type ServerLimits } from './limits.ts';
import type { MetricsAccess } from './metrics-auth.ts';

/** A listening server: its bound port, and `close` (requests in flight get a few seconds, kept-alive clients are not waited on). */
export interface HttpServerHandle {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/** A named health check; a thrown error counts as failing. */
export interface Check {
  name: string;
  check: () => boolean | Promise<boolean>;
}

/**
 * An error as log fields: its name, code and message. Handlers here make no
 * API calls, so no error carries request headers; kept local so that the
 * server does not load the Kubernetes client (the node agent uses it too, and
 * every MiB of its resident memory counts).
 */
function errorFields(err: unknown): { name?: string; code?: string; message: string } {
  if (!(err instanceof Error)) return { message: String(err) };
  const code = (err as NodeJS.ErrnoException).code;
  return { name: err.name, ...(code ? { code } : {}), message: err.message };
}

type Handler = (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void> | void;

async function serve(
  bind: BindAddress,
  routes: Record<string, Handler>,
  log: Logger,
  tls?: ServerCertificate,
  limits: ServerLimits = HTTP_LIMITS,
): Promise<HttpServerHandle> {
  const gate = new RequestGate(limits);
  const listener = (req: IncomingMessage, res: ServerResponse) => {
    if (!gate.admit(req, res)) return;
    // `new URL` throws on some request targets (`//[`): answer 400, never let it escape the listener.
    const url = URL.parse(req.url ?? '/', 'http://localhost');
    if (!url) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('bad request\n');
      return;
    }
    const handler = routes[url.pathname];
    if (!handler) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res
        .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' })
        .end('method not allowed\n');
      return;
    }
    Promise.resolve(handler(req, res, url)).catch((err: unknown) => {
      log.error({ error: errorFields(err), path: url.pathname }, 'http handler failed');
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('internal error\n');
    });
  };
  const httpsServer = tls
    ? createHttpsServer(
        {
          cert: tls.cert,
          key: tls.key,
          minVersion: 'TLSv1.2',
          handshakeTimeout: limits.handshakeTimeoutMs,
          maxHeaderSize: limits.maxHeaderBytes,
        },
        listener,
      )
    : undefined;
  const server: Server = httpsServer ?? createServer({ maxHeaderSize: limits.maxHeaderBytes }, listener);
  boundServer(server, limits);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port: bind.port, host: bind.host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Once listening, a server error (EMFILE on accept, say) is logged: without a listener it would end the process.
  server.on('error', (err: unknown) => log.error({ error: errorFields(err) }, 'http server error'));
  const port = (server.address() as AddressInfo).port;
  log.info({ address: bind.text, port }, 'serving');
  let reloader: CertificateReloader | undefined;
  if (httpsServer && tls?.certDir) {
    reloader = reloadCertificateFromDir(httpsServer, {
      dir: tls.certDir,
      current: { cert: Buffer.from(tls.cert), key: Buffer.from(tls.key) },
      log,
      intervalMs: tls.certPollIntervalMs,
    });
  }
  return {
    port,
    close: () => {
      reloader?.stop();
      return closeServer(server).catch(() => undefined);
    },
  };
}

/** A server's certificate and key, PEM; with `certDir`, the directory they were read from, polled for a new pair. */
export interface ServerCertificate {
  cert: string | Buffer;
  key: string | Buffer;
  /** Where `tls.crt` and `tls.key` came from: a rotated pair there replaces the served one. */
  certDir?: string;
  /** How often `certDir` is checked (default 10 s). */
  certPollIntervalMs?: number;
}

/** Secure metrics: HTTPS with this certificate, and a check of every caller (see `metrics-auth.ts`). */
export interface SecureMetrics extends ServerCertificate {
  authorize: (req: IncomingMessage) => Promise<MetricsAccess>;
}

const ACCESS_TEXT: Record<Exclude<MetricsAccess, 200>, string> = {
  401: 'unauthorized',
  403: 'forbidden',
  429: 'too many new tokens from this address',
  503: 'cannot authorize now',
};

/** `GET /metrics` from a registry; with `secure`, only for callers it authorizes. */
function metricsHandler(registry: Registry, secure?: SecureMetrics): Handler {
  return async (req, res) => {
    const access = secure ? await secure.authorize(req) : 200;
    if (access !== 200) {
      res.writeHead(access, { 'content-type': 'text/plain; charset=utf-8' }).end(`${ACCESS_TEXT[access]}\n`);
      return;
    }
    const body = await registry.metrics();
    res.writeHead(200, { 'content-type': registry.contentType }).end(body);
  };
}

/** Serves `GET /metrics` from `metrics.registry`: plain HTTP, or HTTPS to authorized callers only. */
export function startMetricsServer(options: {
  bind: BindAddress;
  metrics: Metrics;
  log: Logger;
  secure?: SecureMetrics;
}): Promise<HttpServerHandle> {
  const { secure } = options;
  return serve(
    options.bind,
    { '/metrics': metricsHandler(options.metrics.registry, secure) },
    options.log.child({ server: 'metrics' }),
    secure,
  );
}

async function runChecks(checks: readonly Check[]): Promise<Array<{ name: string; ok: boolean }>> {
  return Promise.all(
    checks.map(async (c) => {
      try {
        return { name: c.name, ok: (await c.check()) === true };
      } catch {
        return { name: c.name, ok: false };
      }
    }),
  );
}

function probe(checks: () => readonly Check[]): Handler {
  return async (_req, res, url) => {
    const results = await runChecks(checks());
    const ok = results.every((r) => r.ok);
    const verbose = url.searchParams.has('verbose');
    const lines = results
      .filter((r) => verbose || !r.ok)
      .map((r) => `[${r.ok ? '+' : '-'}]${r.name} ${r.ok ? 'ok' : 'failed'}`);
    const body = ok && !verbose ? 'ok\n' : `${lines.join('\n')}\n${ok ? 'ok' : 'check failed'}\n`;
    res.writeHead(ok ? 200 : 500, { 'content-type': 'text/plain; charset=utf-8' }).end(body);
  };
}

/** Where probes are served and the checks they run (read on every request). */
export interface ProbeServerOptions {
  bind: BindAddress;
  healthz: () => readonly Check[];
  readyz: () => readonly Check[];
  log: Logger;
}

/**
 * Serves `/healthz` (liveness) and `/readyz` (readiness). The check lists are
 * read on every request, so checks added later (e.g. the webhook's) count.
 */
export function startProbeServer(options: ProbeServerOptions): Promise<HttpServerHandle> {
  return serve(
    options.bind,
    { '/healthz': probe(options.healthz), '/readyz': probe(options.readyz) },
    options.log.child({ server: 'probes' }),
  );
}

/**
 * Serves `/metrics`, `/healthz` and `/readyz` on one address, for a process
 * with a single port (the node agent's `--metrics-bind-address`).
 */
export function startMetricsAndProbeServer(
  options: ProbeServerOptions & { registry: Registry },
): Promise<HttpServerHandle> {
  return serve(
    options.bind,
    {
      '/metrics': metricsHandler(options.registry),
      '/healthz': probe(options.healthz),
      '/readyz': probe(options.readyz),
    },
    options.log.child({ server: 'metrics' }),
  );
}
