/**
 * The agent's side of sending: today's `report` apply over kept-alive
 * connections, and what each answer means for the agent (which, unlike
 * `report`, never gives up).
 */
import http from 'node:http';
import https from 'node:https';
import type { HARouterState } from '../api/index.ts';
import { sendApply } from '../report/apply.ts';
import type { Transport } from '../report/kubeconfig.ts';
import { backoffDelay, classifyAttempt, type Outcome } from '../report/retry.ts';

/** What the agent does with an answer (the `result` label of `harouter_agent_reports_total`). */
export type AgentResult = 'applied' | 'stale' | 'refused' | 'retried';

/**
 * The agent's reading of an outcome: stored, or refused as stale (a newer
 * report is there: delivered); 422, an invalid object, is refused for good;
 * everything else, 401 and 403 included (a token mid-rotation, RBAC or
 * admission being fixed), is retried. Pure.
 */
export function agentResult(outcome: Outcome): AgentResult {
  switch (outcome.kind) {
    case 'applied':
      return 'applied';
    case 'stale':
      return 'stale';
    case 'refused':
      return outcome.status === 422 ? 'refused' : 'retried';
    case 'transient':
      return 'retried';
  }
}

/** The agent's retry waits: 200 ms doubling, capped at 30 s, with equal jitter. */
export const AGENT_BACKOFF = { initialMs: 200, maxMs: 30_000, factor: 2 } as const;

/** The wait before retry number `failures` (1 for the first). */
export function agentBackoffMs(failures: number, random: number = Math.random()): number {
  return backoffDelay(Math.max(0, failures - 1), random, AGENT_BACKOFF);
}

/** Sends reports over a pool of kept-alive connections. */
export interface Sender {
  /** One attempt to apply `object`; never rejects. */
  apply(object: HARouterState): Promise<Outcome>;
  /** Whether the API server answers at all (`GET /version`, any HTTP status). */
  answers(): Promise<boolean>;
  /** Closes the pooled connections. */
  close(): void;
}

/** A {@link Sender} over `transport`, at most `maxSockets` connections, each request abandoned after `timeoutMs`. */
export function createSender(
  transport: Transport,
  options: { maxSockets: number; timeoutMs: number },
): Sender {
  const secure = !transport.server.startsWith('http:');
  const agent = secure
    ? new https.Agent({ keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: options.maxSockets })
    : new http.Agent({ keepAlive: true, maxSockets: options.maxSockets, maxFreeSockets: options.maxSockets });
  const pooled: Transport = {
    server: transport.server,
    ...(transport.namespace ? { namespace: transport.namespace } : {}),
    requestOptions: async () => ({ ...(await transport.requestOptions()), agent }),
  };
  return {
    apply: async (object) => classifyAttempt(await sendApply(pooled, object, options.timeoutMs)),
    answers: async () => {
      try {
        const requestOptions = await pooled.requestOptions();
        const url = new URL(
          'version',
          transport.server.endsWith('/') ? transport.server : `${transport.server}/`,
        );
        const client = secure ? https : http;
        return await new Promise<boolean>((resolve) => {
          const request = client.get(url, { ...requestOptions, timeout: options.timeoutMs }, (response) => {
            response.resume();
            resolve(true);
          });
          request.on('timeout', () => request.destroy());
          request.on('error', () => resolve(false));
        });
      } catch {
        return false;
      }
    },
    close: () => agent.destroy(),
  };
}
