import { parseArgs } from 'node:util';
import {
  type HARouterState,
  harouterStateSchema,
  isPrintable,
  REPORTED_STATES,
  type ReportedState,
} from '../api/index.ts';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
import { parseKeepalivedArgs } from '../report/keepalived.ts';
import { NAMESPACE_PATTERN } from '../report/namespace.ts';
import { reportObject } from '../report/object.ts';
import { UsageError } from '../report/usage-error.ts';
import type { AgentCommand } from './agent-args.ts';

/** Defaults of the report's timing flags, in milliseconds. */
export const DEFAULTS = {
  requestTimeoutMs: 5_000,
  deadlineMs: 15_000,
  maxAttempts: 10,
} as const;

/** Everything `harouterctl report` needs, checked. */
export interface ReportCommand {
  command: 'report';
  router: string;
  agent: string;
  state: ReportedState;
  priority?: number;
  message?: string;
  /** Explicit `--namespace`; otherwise resolved with {@link resolveNamespace} once the kubeconfig is read. */
  namespace?: string;
  kubeconfig?: string;
  requestTimeoutMs: number;
  deadlineMs: number;
  maxAttempts: number;
  logLevel: LogLevel;
  /** Print the object that would be applied on stdout and stop (no network). */
  dryRun: boolean;
}

export type Command =
  | ReportCommand
  | AgentCommand
  | { command: 'help'; topic: 'main' | 'report' | 'agent' }
  | { command: 'version' };

/**
 * Reads a duration: `250ms`, `5s`, `1m`, `1m30s` or a bare number of seconds
 * (`2.5`). Returns milliseconds, or undefined when malformed or not positive.
 */
export function parseDuration(text: string): number | undefined {
  if (/^[0-9]+(\.[0-9]+)?$/.test(text)) {
    const ms = Math.round(Number(text) * 1000);
    return ms > 0 ? ms : undefined;
  }
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const parts = [...text.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== text) return undefined;
  const ms = Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * (unit[p[2] ?? ''] ?? 0), 0));
  return ms > 0 ? ms : undefined;
}

const OPTIONS = {
  router: { type: 'string' },
  agent: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  state: { type: 'string' },
  priority: { type: 'string' },
  message: { type: 'string' },
  kubeconfig: { type: 'string' },
  timeout: { type: 'string' },
  deadline: { type: 'string' },
  'max-attempts': { type: 'string' },
  'log-level': { type: 'string' },
  'dry-run': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const;

/**
 * Parses the command line (without `node` and the script). `env` supplies the
 * defaults (`NODE_NAME`, `POD_NAMESPACE`). Throws {@link UsageError}. Pure.
 */
export function parseCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Command {
  let parsed: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>>;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  if (values.version && command === undefined) return { command: 'version' };
  if (command === undefined) {
    if (values.help) return { command: 'help', topic: 'main' };
    throw new UsageError('missing command: try "harouterctl report --help"');
  }
  if (command === 'help') {
    return { command: 'help', topic: rest[0] === 'report' || rest[0] === 'agent' ? rest[0] : 'main' };
  }
  if (command === 'agent')
    throw new UsageError('"agent" must be the first argument: harouterctl agent [flags]');
  if (command !== 'report') {
    throw new UsageError(`unknown command "${printable(command)}": the commands are "report" and "agent"`);
  }
  if (values.help) return { command: 'help', topic: 'report' };
  return parseReport(values, rest, env);
}

/** Text safe to echo in an error: control characters replaced. */
function printable(text: string): string {
  return isPrintable(text) ? text.slice(0, 80) : JSON.stringify(text.slice(0, 80));
}

type Values = {
  [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K]['type'] extends 'boolean' ? boolean : string;
};

function parseReport(
  values: Values,
  positionals: string[],
  env: Readonly<Record<string, string | undefined>>,
) {
  let state: ReportedState | undefined;
  let priority: number | undefined;
  let defaultMessage: string | undefined;
  if (positionals.length > 0) {
    const notify = parseKeepalivedArgs(positionals);
    if ('error' in notify) throw new UsageError(notify.error);
    state = notify.state;
    priority = notify.priority;
    const text = `keepalived ${notify.type} ${notify.name} ${notify.keepalivedState}`;
    if (isPrintable(text) && [...text].length <= 256) defaultMessage = text;
  }
  if (values.state !== undefined) {
    if (!(REPORTED_STATES as readonly string[]).includes(values.state)) {
      throw new UsageError(`--state must be one of ${REPORTED_STATES.join(', ')}`);
    }
    if (state !== undefined && state !== values.state) {
      throw new UsageError("--state disagrees with keepalived's state argument");
    }
    state = values.state as ReportedState;
  }
  if (state === undefined) {
    throw new UsageError(
      "missing state: append keepalived's notify arguments (INSTANCE|GROUP <name> <STATE> <priority>) or pass --state",
    );
  }
  if (values.priority !== undefined) {
    if (!/^[0-9]{1,3}$/.test(values.priority) || Number(values.priority) > 255) {
      throw new UsageError('--priority must be an integer from 0 to 255');
    }
    priority = Number(values.priority);
  }
  const router = values.router;
  if (router === undefined || router === '') throw new UsageError('--router <uuid> is required');
  const agent = values.agent ?? env.NODE_NAME;
  if (agent === undefined || agent === '') {
    throw new UsageError('--agent is required when the NODE_NAME environment variable is not set');
  }
  const namespace = values.namespace ?? (env.POD_NAMESPACE || undefined);
  if (namespace !== undefined && !NAMESPACE_PATTERN.test(namespace)) {
    throw new UsageError('--namespace (or POD_NAMESPACE) must be a namespace name (DNS-1123 label)');
  }
  const duration = (flag: 'timeout' | 'deadline', fallback: number) => {
    const text = values[flag];
    if (text === undefined) return fallback;
    const ms = parseDuration(text);
    if (ms === undefined)
      throw new UsageError(`--${flag} must be a positive duration such as 500ms, 5s or 1m`);
    return ms;
  };
  const requestTimeoutMs = duration('timeout', DEFAULTS.requestTimeoutMs);
  const deadlineMs = duration('deadline', DEFAULTS.deadlineMs);
  let maxAttempts: number = DEFAULTS.maxAttempts;
  if (values['max-attempts'] !== undefined) {
    const text = values['max-attempts'];
    if (!/^[1-9][0-9]{0,2}$/.test(text))
      throw new UsageError('--max-attempts must be an integer from 1 to 999');
    maxAttempts = Number(text);
  }
  const logLevel = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const command: ReportCommand = {
    command: 'report',
    router,
    agent,
    state,
    requestTimeoutMs,
    deadlineMs,
    maxAttempts,
    logLevel: logLevel as LogLevel,
    dryRun: values['dry-run'] === true,
  };
  if (priority !== undefined) command.priority = priority;
  const message = values.message ?? defaultMessage;
  if (message !== undefined) command.message = message;
  if (namespace !== undefined) command.namespace = namespace;
  if (values.kubeconfig !== undefined) command.kubeconfig = values.kubeconfig;
  // Check the report's own fields now, with a placeholder time, so that a bad
  // router id, agent or message is a usage error before any file or network.
  buildReport(command, 'default', '1970-01-01T00:00:00Z');
  return command;
}

/**
 * The HARouterState to apply, checked with the contract's zod schema.
 * Throws {@link UsageError} naming the first bad field.
 */
export function buildReport(command: ReportCommand, namespace: string, observedAt: string): HARouterState {
  const object = reportObject(command, namespace, observedAt);
  const result = harouterStateSchema.safeParse(object);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue?.path.join('.') ?? '';
    const flag = FLAG_OF_FIELD[field] ?? field;
    throw new UsageError(`${flag}: ${issue?.message ?? 'invalid'}`);
  }
  if (object.metadata.name.length > 253)
    throw new UsageError('--router and --agent make a name over 253 characters');
  return object as HARouterState;
}

const FLAG_OF_FIELD: Record<string, string> = {
  'spec.routerId': '--router',
  'spec.agent': '--agent (or NODE_NAME)',
  'spec.message': '--message',
  'spec.priority': 'priority',
  'spec.state': 'state',
};
