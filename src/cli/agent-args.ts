import { parseArgs } from 'node:util';
import type { AgentConfig } from '../agent/agent.ts';
import { AGENT_DEFAULTS, DEFAULT_FIFO } from '../agent/defaults.ts';
import { parseInstanceFlags } from '../agent/mapping.ts';
import { isAgentName } from '../api/validation.ts';
import { parseBind, parseDuration } from '../flag-values.ts';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
import { NAMESPACE_PATTERN } from '../report/namespace.ts';
import { UsageError } from '../report/usage-error.ts';

/** Everything `harouterctl agent` needs, checked. */
export interface AgentCommand {
  command: 'agent';
  config: AgentConfig;
  logLevel: LogLevel;
}

const OPTIONS = {
  fifo: { type: 'string' },
  'state-dir': { type: 'string' },
  instance: { type: 'string', multiple: true },
  instances: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  agent: { type: 'string' },
  kubeconfig: { type: 'string' },
  'metrics-bind-address': { type: 'string' },
  'max-in-flight': { type: 'string' },
  timeout: { type: 'string' },
  'log-level': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/**
 * Parses `harouterctl agent`'s flags (the arguments after `agent`). `env`
 * supplies `NODE_NAME` and `POD_NAMESPACE`. Throws {@link UsageError}. Pure.
 */
export function parseAgentCommandLine(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): AgentCommand | { command: 'help'; topic: 'agent' } {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS; strict: true }>>['values'];
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return { command: 'help', topic: 'agent' };
  const agent = values.agent ?? env.NODE_NAME;
  if (agent === undefined || agent === '') {
    throw new UsageError('--agent is required when the NODE_NAME environment variable is not set');
  }
  if (!isAgentName(agent))
    throw new UsageError('--agent (or NODE_NAME) must be a node name (DNS-1123 subdomain)');
  const namespace = values.namespace ?? (env.POD_NAMESPACE || undefined);
  if (namespace !== undefined && !NAMESPACE_PATTERN.test(namespace)) {
    throw new UsageError('--namespace (or POD_NAMESPACE) must be a namespace name (DNS-1123 label)');
  }
  const instances = parseInstanceFlags(values.instance ?? []);
  if ('error' in instances) throw new UsageError(instances.error);
  let metricsBind: AgentConfig['metricsBind'];
  try {
    metricsBind = parseBind(values['metrics-bind-address'] ?? AGENT_DEFAULTS.metricsBindAddress, true);
  } catch (error) {
    throw new UsageError(`--metrics-bind-address ${(error as Error).message}`);
  }
  let concurrency: number = AGENT_DEFAULTS.concurrency;
  if (values['max-in-flight'] !== undefined) {
    if (!/^[1-9][0-9]{0,3}$/.test(values['max-in-flight'])) {
      throw new UsageError('--max-in-flight must be an integer from 1 to 9999');
    }
    concurrency = Number(values['max-in-flight']);
  }
  let requestTimeoutMs: number = AGENT_DEFAULTS.requestTimeoutMs;
  if (values.timeout !== undefined) {
    const ms = parseDuration(values.timeout);
    if (ms === undefined || ms <= 0)
      throw new UsageError('--timeout must be a positive duration such as 500ms, 5s or 1m');
    requestTimeoutMs = ms;
  }
  const logLevel = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  const fifo = values.fifo ?? DEFAULT_FIFO;
  if (!fifo.startsWith('/')) throw new UsageError('--fifo must be an absolute path');
  const config: AgentConfig = {
    fifo,
    stateDir: values['state-dir'] ?? AGENT_DEFAULTS.stateDir,
    instances,
    agent,
    metricsBind,
    concurrency,
    requestTimeoutMs,
    ...(values.instances !== undefined ? { instancesFile: values.instances } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
  };
  return { command: 'agent', config, logLevel: logLevel as LogLevel };
}
