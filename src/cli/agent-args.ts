import { parseArgs } from 'node:util';
import type { AgentConfig } from '../agent/agent.ts';
import { AGENT_DEFAULTS, DEFAULT_FIFO, KEEPALIVED_DEFAULTS } from '../agent/defaults.ts';
import type { KeepalivedOptions } from '../agent/keepalived-driver.ts';
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
  'fifo-group': { type: 'string' },
  'state-dir': { type: 'string' },
  instance: { type: 'string', multiple: true },
  instances: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  agent: { type: 'string' },
  kubeconfig: { type: 'string' },
  'metrics-bind-address': { type: 'string' },
  'max-in-flight': { type: 'string' },
  timeout: { type: 'string' },
  'keepalived-config-dir': { type: 'string' },
  'fence-dir': { type: 'string' },
  'keepalived-pid-file': { type: 'string' },
  'run-keepalived': { type: 'boolean' },
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
  const keepalived = keepalivedOptions(values);
  const fifoGroup = values['fifo-group'];
  if (fifoGroup !== undefined && !/^(0|[1-9][0-9]{0,9})$/.test(fifoGroup)) {
    throw new UsageError('--fifo-group must be a numeric group id');
  }
  const config: AgentConfig = {
    fifo,
    ...(fifoGroup !== undefined ? { fifoGroup: Number(fifoGroup) } : {}),
    stateDir: values['state-dir'] ?? AGENT_DEFAULTS.stateDir,
    instances,
    agent,
    metricsBind,
    concurrency,
    requestTimeoutMs,
    ...(values.instances !== undefined ? { instancesFile: values.instances } : {}),
    ...(namespace !== undefined ? { namespace } : {}),
    ...(values.kubeconfig !== undefined ? { kubeconfig: values.kubeconfig } : {}),
    ...(keepalived ? { keepalived } : {}),
  };
  return { command: 'agent', config, logLevel: logLevel as LogLevel };
}

/** The keepalived flags, checked: all of them need `--keepalived-config-dir`. */
function keepalivedOptions(values: {
  'keepalived-config-dir'?: string | undefined;
  'fence-dir'?: string | undefined;
  'keepalived-pid-file'?: string | undefined;
  'run-keepalived'?: boolean | undefined;
}): KeepalivedOptions | undefined {
  const configDir = values['keepalived-config-dir'];
  if (configDir === undefined) {
    for (const flag of ['fence-dir', 'keepalived-pid-file', 'run-keepalived'] as const) {
      if (values[flag] !== undefined) throw new UsageError(`--${flag} needs --keepalived-config-dir`);
    }
    return undefined;
  }
  const paths = {
    'keepalived-config-dir': configDir,
    'fence-dir': values['fence-dir'] ?? KEEPALIVED_DEFAULTS.fenceDir,
    'keepalived-pid-file': values['keepalived-pid-file'] ?? KEEPALIVED_DEFAULTS.pidFile,
  };
  for (const [flag, path] of Object.entries(paths)) {
    // The directories go into keepalived's configuration: no character it would read otherwise.
    if (!/^\/[A-Za-z0-9_./@+-]*$/.test(path) || path.split('/').includes('..'))
      throw new UsageError(`--${flag} must be an absolute path of letters, digits and _./@+- (no "..")`);
  }
  return {
    configDir: paths['keepalived-config-dir'],
    fenceDir: paths['fence-dir'],
    pidFile: paths['keepalived-pid-file'],
    run: values['run-keepalived'] === true,
  };
}
