/**
 * The admission webhook's HTTPS server: `POST /validate` with an AdmissionReview
 * v1, answered with HTTP 200 and the policy's decision for every well-formed
 * review. The certificate comes from a directory (`tls.crt`, `tls.key`) and is
 * reloaded when the files change (polled; a Secret volume swaps a `..data`
 * symlink); a new pair that fails to load is ignored and the old one kept.
 *
 * With a client CA (`--webhook-client-ca`), only a caller with a certificate it
 * signed (the API server's, from its admission configuration) completes the TLS
 * handshake: forged reviews reach neither the policy, the log nor the metrics.
 * Untrusted request fields are logged escaped and bounded (`escapeForLog`), and
 * denials are logged at most {@link DENIAL_LOG_LINES} per reason per window.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { createSecureContext } from 'node:tls';
import { readCertificatePair, reloadCertificateFromDir } from '../http/certificate-dir.ts';
import {
  boundServer,
  ClientAbortedError,
  jsonDepthWithin,
  RequestError,
  RequestGate,
  type ServerLimits,
  WEBHOOK_LIMITS,
} from '../http/limits.ts';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { closeServer } from '../runtime/close-server.ts';
import { LogLimit } from '../runtime/log-limit.ts';
import { escapeForLog } from '../runtime/log-text.ts';
import { type AdmissionConfig, checkAdmissionConfig } from './config.ts';
import { WEBHOOK_PATH } from './manifests.ts';
import {
  type AdmissionDecision,
  ALLOWED_REASONS,
  admit,
  DENIED_REASONS,
  type RouterAgents,
} from './policy.ts';
import { type AdmissionResponse, admissionReviewSchema, NODE_NAME_EXTRA } from './review.ts';

/** Options of {@link startWebhookServer}. */
export interface WebhookServerOptions {
  /** `host:port`, `:port` (all interfaces) or `[::1]:port`; port 0 picks a free port. Default `:9443`. */
  bindAddress?: string;
  /** Directory holding `tls.crt` and `tls.key`. */
  certDir: string;
  /**
   * PEM file of the CA of the API server's client certificate: when given, a caller must
   * present a certificate it signed (checked at the TLS handshake; read at start).
   */
  clientCaFile?: string;
  config: AdmissionConfig;
  /** The HARouters' agents, from the informer cache (the membership rule); must be synced before serving. */
  routers: RouterAgents;
  logger: Logger;
  metrics: Metrics;
  /** Milliseconds since the epoch (default `Date.now`); the clock rule's reference. */
  clock?: () => number;
  /** How often the certificate files are checked for changes (default 10 s). */
  certPollIntervalMs?: number;
  /** Largest request body accepted (default 3 MiB; larger gets HTTP 413). */
  maxBodyBytes?: number;
  /** The bounds on connections, requests, bytes and time (default {@link WEBHOOK_LIMITS}). */
  limits?: Partial<ServerLimits>;
}

/** A running webhook server. */
export interface WebhookServer {
  /** The port actually bound (useful with port 0). */
  readonly port: number;
  /** Re-reads the certificate files now; true when a new pair was loaded. */
  reloadCertificate(): Promise<boolean>;
  /**
   * Stops accepting connections and resolves when the server is closed, without waiting on the
   * API server's kept-alive connections ({@link closeServer}: a few seconds at most).
   */
  close(): Promise<void>;
}

/** The `webhook` label of the controller-runtime webhook metrics. */
const WEBHOOK_LABEL = WEBHOOK_PATH;

/** Parses `host:port`, `:port` or `[v6]:port`. */
export function parseBindAddress(address: string): { host: string | undefined; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(address);
  const port = Number(match?.[3]);
  if (!match || port > 65535)
    throw new RangeError(`bind address must be host:port, got ${JSON.stringify(address)}`);
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port };
}

/** Denial log lines per reason in each {@link DENIAL_LOG_WINDOW_MS} (the rest are counted, and said in the next line). */
export const DENIAL_LOG_LINES = 10;
export const DENIAL_LOG_WINDOW_MS = 10_000;

/** Untrusted text as a bounded log field (undefined stays undefined). */
const field = (text: string | undefined) => (text === undefined ? undefined : escapeForLog(text));

/** Starts the webhook server; rejects when the certificate cannot be loaded or the address bound. */
export async function startWebhookServer(options: WebhookServerOptions): Promise<WebhookServer> {
  const problems = checkAdmissionConfig(options.config);
  if (problems.length > 0) throw new Error(`invalid admission configuration: ${problems.join('; ')}`);
  const log = options.logger.child({ component: 'webhook' });
  const { metrics, config } = options;
  const clock = options.clock ?? Date.now;
  const limits: ServerLimits = {
    ...WEBHOOK_LIMITS,
    ...options.limits,
    ...(options.maxBodyBytes !== undefined ? { maxBodyBytes: options.maxBodyBytes } : {}),
  };
  const gate = new RequestGate(limits);
  const { host, port } = parseBindAddress(options.bindAddress ?? ':9443');

  for (const reason of ALLOWED_REASONS) metrics.admissionDecisions.inc({ decision: 'allowed', reason }, 0);
  for (const reason of DENIED_REASONS) metrics.admissionDecisions.inc({ decision: 'denied', reason }, 0);
  metrics.webhookInFlight.set({ webhook: WEBHOOK_LABEL }, 0);

  const current = await readCertificatePair(options.certDir);
  // Read once: a changed client CA takes a restart (the serving pair is reloaded below).
  const clientCa = options.clientCaFile ? await readFile(options.clientCaFile) : undefined;
  if (clientCa) createSecureContext({ ca: clientCa }); // throws when the CA is unusable
  const denialLimits = new Map<string, LogLimit>();

  const send = (res: ServerResponse, status: number, body: unknown) => {
    const text = JSON.stringify(body);
    // Only the API server's well-formed reviews (200) keep their connection; the rest close it.
    if (status !== 200) res.shouldKeepAlive = false;
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
    res.end(text);
    metrics.webhookRequests.inc({ webhook: WEBHOOK_LABEL, code: String(status) });
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    // The path as sent (a query is ignored); not through `new URL`, which throws on some request targets.
    const path = (req.url ?? '/').split('?')[0];
    if (path !== WEBHOOK_PATH) return send(res, 404, { error: 'not found' });
    if (req.method !== 'POST') return send(res, 405, { error: 'method not allowed' });
    const contentType = req.headers['content-type'] ?? '';
    if (!contentType.startsWith('application/json'))
      return send(res, 415, { error: 'expected application/json' });
    const body = await gate.readBody(req, res);
    // Without a well-formed request there is no uid to answer: HTTP 400, which the API server treats
    // as a failure (fail closed); counted as denied, MalformedRequest.
    const malformed = (message: string) => {
      metrics.admissionDecisions.inc({ decision: 'denied', reason: 'MalformedRequest' });
      return new RequestError(400, message);
    };
    if (!jsonDepthWithin(body, limits.maxJsonDepth)) throw malformed('request body nests too deep');
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch {
      throw malformed('request body is not JSON');
    }
    const review = admissionReviewSchema.safeParse(json);
    if (!review.success) throw malformed('request body is not an admission.k8s.io/v1 AdmissionReview');
    const request = review.data.request;
    const decision: AdmissionDecision = admit(request, config, clock(), options.routers);
    const response: AdmissionResponse = { uid: request.uid, allowed: decision.allowed };
    if (!decision.allowed) {
      response.status = {
        code: decision.code,
        reason: decision.code === 422 ? 'Invalid' : 'Forbidden',
        message: decision.message,
      };
    }
    metrics.admissionDecisions.inc({
      decision: decision.allowed ? 'allowed' : 'denied',
      reason: decision.reason,
    });
    const fields = () => ({
      uid: field(request.uid),
      operation: request.operation,
      namespace: field(request.namespace),
      name: field(request.name),
      user: field(request.userInfo.username),
      node: field(request.userInfo.extra?.[NODE_NAME_EXTRA]?.[0]),
      dryRun: request.dryRun ?? false,
      reason: decision.reason,
    });
    if (decision.allowed) {
      if (log.isLevelEnabled('debug')) log.debug(fields(), 'admission allowed');
    } else {
      let limit = denialLimits.get(decision.reason);
      if (!limit) {
        limit = new LogLimit(DENIAL_LOG_LINES, DENIAL_LOG_WINDOW_MS);
        denialLimits.set(decision.reason, limit);
      }
      const { write, suppressed } = limit.take();
      if (write)
        log.info(
          { ...fields(), rule: decision.rule, ...(suppressed > 0 ? { suppressed } : {}) },
          'admission denied',
        );
    }
    send(res, 200, { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response });
  };

  const server: Server = createServer(
    {
      cert: current.cert,
      key: current.key,
      ...(clientCa ? { ca: clientCa, requestCert: true, rejectUnauthorized: true } : {}),
      minVersion: 'TLSv1.2',
      handshakeTimeout: limits.handshakeTimeoutMs,
      maxHeaderSize: limits.maxHeaderBytes,
    },
    (req, res) => {
      if (!gate.admit(req, res)) {
        metrics.webhookRequests.inc({ webhook: WEBHOOK_LABEL, code: '429' });
        return;
      }
      const started = process.hrtime.bigint();
      metrics.webhookInFlight.inc({ webhook: WEBHOOK_LABEL });
      res.on('close', () => {
        metrics.webhookInFlight.dec({ webhook: WEBHOOK_LABEL });
        metrics.webhookLatency.observe(
          { webhook: WEBHOOK_LABEL },
          Number(process.hrtime.bigint() - started) / 1e9,
        );
      });
      handle(req, res).catch((err: unknown) => {
        // A client that went away mid-request gets no answer and no status: not a server error.
        if (err instanceof ClientAbortedError) {
          log.debug({ error: err.message }, 'webhook client closed the request');
          return;
        }
        const status = err instanceof RequestError ? err.status : 500;
        // Bad requests are counted (controller_runtime_webhook_requests_total{code}), logged at debug only:
        // anyone who reaches the port could otherwise fill the log.
        if (status === 500) log.error({ err }, 'webhook request failed');
        else log.debug({ status, error: (err as Error).message }, 'bad webhook request');
        if (!res.headersSent && !res.destroyed) send(res, status, { error: (err as Error).message });
        else if (!res.headersSent)
          metrics.webhookRequests.inc({ webhook: WEBHOOK_LABEL, code: String(status) });
      });
    },
  );
  // Keep-alive outlives the API server's idle timeout (90 s) so it never writes to a closed socket.
  boundServer(server, limits);
  server.on('tlsClientError', (err) => log.debug({ err: { message: err.message } }, 'TLS handshake failed'));

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  log.info({ port: bound, host: host ?? '*', path: WEBHOOK_PATH }, 'webhook server listening');

  const reloader = reloadCertificateFromDir(server, {
    dir: options.certDir,
    current,
    ...(clientCa ? { ca: clientCa } : {}),
    log,
    intervalMs: options.certPollIntervalMs,
  });

  return {
    port: bound,
    reloadCertificate: reloader.reload,
    close: () => {
      reloader.stop();
      return closeServer(server);
    },
  };
}
