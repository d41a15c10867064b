import { existsSync, readFileSync } from 'node:fs';
import type https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import type { HARouterState } from '../api/index.ts';
import type { Logger } from '../log.ts';
import { sendApply } from './apply.ts';
import { buildReport, type ReportCommand, resolveNamespace, UsageError } from './args.ts';
import { classifyAttempt, exitCodeFor, type Outcome, retryUntilFinal } from './retry.ts';

/** Where the in-cluster service account's namespace is mounted. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/namespace';

function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** Where the in-cluster service account's token is mounted. */
const SERVICE_ACCOUNT_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Loads the kubeconfig in controller-runtime's order: `--kubeconfig`, else
 * `$KUBECONFIG`, else the in-cluster service account (its token file is re-read
 * as the kubelet rotates it), else `~/.kube/config`. Local only; a missing or
 * malformed file is a {@link UsageError}.
 */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  try {
    if (path !== undefined) kc.loadFromFile(path);
    else if (!env.KUBECONFIG && env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN_FILE)) {
      kc.loadFromCluster();
    } else kc.loadFromDefault();
  } catch (error) {
    throw new UsageError(`cannot read the kubeconfig: ${(error as Error).message}`);
  }
  const cluster = kc.getCurrentCluster();
  if (!cluster?.server) throw new UsageError('the kubeconfig has no current cluster with a server');
  return kc;
}

/**
 * Everything local before the first request: the kubeconfig, the namespace and
 * the checked object. Throws {@link UsageError}; never touches the network.
 */
export async function prepareReport(
  command: ReportCommand,
  observedAt: string,
): Promise<{ kc: KubeConfig; object: HARouterState }> {
  try {
    const kc = loadKubeConfig(command.kubeconfig);
    const context = kc.getContextObject(kc.getCurrentContext());
    const namespace = command.namespace
      ? command.namespace
      : resolveNamespace(undefined, context?.namespace, readOptional(SERVICE_ACCOUNT_NAMESPACE_FILE));
    const object = buildReport(command, namespace, observedAt);
    // Reads the credentials once now, so that an unreadable CA, key or token
    // file is a usage error rather than a retried network failure.
    await kc.applyToHTTPSOptions({} as https.RequestOptions);
    return { kc, object };
  } catch (error) {
    if (error instanceof UsageError) throw error;
    throw new UsageError(`cannot use the kubeconfig's credentials: ${(error as Error).message}`);
  }
}

/** How the final outcome is logged: level and constant message. */
const FINAL_LOG = {
  applied: ['info', 'report applied'],
  stale: ['info', 'report is older than the stored one (stale): a newer report is already there'],
  refused: ['error', 'report refused by the API server'],
  transient: ['error', 'report not delivered before the deadline'],
} as const satisfies Record<Outcome['kind'], readonly ['info' | 'error', string]>;

/** The server's answer as log fields: HTTP status, reason and message (untrusted text, in a field). */
function outcomeFields(outcome: Outcome) {
  return {
    status: 'status' in outcome ? outcome.status : undefined,
    reason: 'reason' in outcome ? outcome.reason : undefined,
    serverMessage: 'message' in outcome ? outcome.message : undefined,
  };
}

/**
 * Runs `harouterctl report`: prepares the object, then applies it with
 * retries. Returns the exit code. `observedAt` was stamped by the caller as
 * early as possible.
 */
export async function runReport(command: ReportCommand, observedAt: string, log: Logger): Promise<number> {
  const { kc, object } = await prepareReport(command, observedAt);
  const fields = {
    namespace: object.metadata.namespace,
    name: object.metadata.name,
    state: object.spec.state,
    observedAt,
  };
  const result = await retryUntilFinal(
    async (timeoutMs) => classifyAttempt(await sendApply(kc, object, timeoutMs)),
    {
      requestTimeoutMs: command.requestTimeoutMs,
      deadlineMs: command.deadlineMs,
      maxAttempts: command.maxAttempts,
    },
    { now: () => performance.now(), sleep: (ms) => sleep(ms), random: Math.random },
    (outcome, attempt, delayMs) =>
      log.warn(
        { ...fields, attempt, delayMs, ...outcomeFields(outcome) },
        'report not delivered yet; retrying',
      ),
  );
  const { outcome, attempts } = result;
  const [level, message] = FINAL_LOG[outcome.kind];
  log[level](
    {
      ...fields,
      attempts,
      ...outcomeFields(outcome),
      ...(outcome.kind === 'transient' ? { deadlineMs: command.deadlineMs } : {}),
    },
    message,
  );
  return exitCodeFor(outcome);
}
