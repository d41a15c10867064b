import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { GROUP, HAROUTER_STATE, VERSION } from '../api/group.ts';
import type { HARouterState } from '../api/index.ts';
import type { Transport } from './kubeconfig.ts';
import {
  type AttemptResult,
  classifyAttempt,
  type Outcome,
  type RetryLimits,
  type RetryResult,
  retryUntilFinal,
} from './retry.ts';

/** The field manager of every report. */
export const CLI_FIELD_MANAGER = 'harouterctl';

/** The server-side apply URL of a HARouterState (force, field manager `harouterctl`). */
export function applyUrl(server: string, namespace: string, name: string, dryRun = false): URL {
  const base = server.endsWith('/') ? server : `${server}/`;
  const path = `apis/${GROUP}/${VERSION}/namespaces/${encodeURIComponent(namespace)}/${HAROUTER_STATE.plural}/${encodeURIComponent(name)}`;
  const url = new URL(path, base);
  url.searchParams.set('fieldManager', CLI_FIELD_MANAGER);
  url.searchParams.set('force', 'true');
  if (dryRun) url.searchParams.set('dryRun', 'All');
  return url;
}

/** Longest response body kept (a Status is small; anything else is clipped). */
const MAX_BODY = 64 * 1024;

/**
 * Sends one server-side apply of `object` with the transport's credentials
 * (re-read on every call, so a rotated token file is picked up) and resolves
 * with the server's answer or the transport failure; never rejects. The request
 * is abandoned after `timeoutMs` (reported as code `ETIMEDOUT`). With `dryRun`,
 * the server admits the request (webhooks included) but stores nothing.
 */
export async function sendApply(
  transport: Transport,
  object: HARouterState,
  timeoutMs: number,
  dryRun = false,
): Promise<AttemptResult> {
  let url: URL;
  let options: https.RequestOptions;
  try {
    url = applyUrl(transport.server, object.metadata.namespace ?? 'default', object.metadata.name, dryRun);
    options = await transport.requestOptions();
  } catch (error) {
    return { kind: 'network', code: 'ECONFIG', message: (error as Error).message };
  }
  const body = JSON.stringify(object);
  const client = url.protocol === 'http:' ? http : https;
  return new Promise<AttemptResult>((resolve) => {
    let settled = false;
    const settle = (result: AttemptResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const request = client.request(
      url,
      {
        ...options,
        method: 'PATCH',
        headers: {
          ...(options.headers ?? {}),
          'Content-Type': 'application/apply-patch+yaml',
          Accept: 'application/json',
          'User-Agent': 'harouterctl',
          'Content-Length': Buffer.byteLength(body),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          if (size < MAX_BODY) chunks.push(chunk);
          size += chunk.length;
        });
        response.on('end', () =>
          settle({
            kind: 'response',
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8').slice(0, MAX_BODY),
          }),
        );
        response.on('error', (error: NodeJS.ErrnoException) =>
          settle({ kind: 'network', code: error.code ?? 'ERESPONSE', message: error.message }),
        );
      },
    );
    const timer = setTimeout(() => {
      settle({ kind: 'network', code: 'ETIMEDOUT', message: `no answer within ${timeoutMs}ms` });
      request.destroy();
    }, timeoutMs);
    request.on('error', (error: NodeJS.ErrnoException) =>
      settle({ kind: 'network', code: error.code ?? 'EREQUEST', message: error.message }),
    );
    request.end(body);
  });
}

/**
 * Applies `object` with {@link sendApply} until the outcome is final or the
 * limits run out ({@link retryUntilFinal} on the real clock); `onRetry` hears
 * each transient outcome before its wait. harouterctl and local mode both report this way.
 */
export function applyWithRetries(
  transport: Transport,
  object: HARouterState,
  limits: RetryLimits,
  options: { dryRun?: boolean; onRetry?: (outcome: Outcome, attempt: number, delayMs: number) => void } = {},
): Promise<RetryResult> {
  return retryUntilFinal(
    async (timeoutMs) => classifyAttempt(await sendApply(transport, object, timeoutMs, options.dryRun)),
    limits,
    { now: () => performance.now(), sleep: (ms) => sleep(ms), random: Math.random },
    options.onRetry,
  );
}
