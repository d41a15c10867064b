import type { HARouterState } from '../api/index.ts';
import type { Logger } from '../log.ts';
import { applyWithRetries } from '../report/apply.ts';
import { loadTransport, type Transport } from '../report/kubeconfig.ts';
import { resolveNamespace, serviceAccountNamespace } from '../report/namespace.ts';
import { exitCodeFor, type Outcome } from '../report/retry.ts';
import { buildReport, type ReportCommand } from './args.ts';

/**
 * Everything local before the first request: the kubeconfig, the namespace and
 * the checked object. Throws {@link UsageError}; never touches the network.
 */
export async function prepareReport(
  command: ReportCommand,
  observedAt: string,
): Promise<{ transport: Transport; object: HARouterState }> {
  const transport = await loadTransport(command.kubeconfig);
  const namespace = command.namespace
    ? command.namespace
    : resolveNamespace(undefined, transport.namespace, serviceAccountNamespace());
  return { transport, object: buildReport(command, namespace, observedAt) };
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
  const { transport, object } = await prepareReport(command, observedAt);
  const fields = {
    namespace: object.metadata.namespace,
    name: object.metadata.name,
    state: object.spec.state,
    observedAt,
  };
  const result = await applyWithRetries(
    transport,
    object,
    {
      requestTimeoutMs: command.requestTimeoutMs,
      deadlineMs: command.deadlineMs,
      maxAttempts: command.maxAttempts,
    },
    {
      onRetry: (outcome, attempt, delayMs) =>
        log.warn(
          { ...fields, attempt, delayMs, ...outcomeFields(outcome) },
          'report not delivered yet; retrying',
        ),
    },
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
