import { createServer } from 'node:net';
import { resolve } from 'node:path';
import { freePort, type ManagedProcess, startProcess } from './controlplane/index.ts';
import { formatLogLine } from './pretty.ts';

const repoRoot = resolve(import.meta.dirname, '../..');

/** The operator's listen ports in local mode. */
export interface OperatorPorts {
  metrics: number;
  probes: number;
  webhook: number;
}

/** The contract's ports (API.md, "Metrics"): used when free on 127.0.0.1. */
export const DEFAULT_PORTS: OperatorPorts = { metrics: 8080, probes: 8081, webhook: 9443 };

function isFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer();
    server.once('error', () => done(false));
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)));
  });
}

/** `port` when it is free on 127.0.0.1, else a free one (0 asks for a free one). */
export async function preferredPort(port: number): Promise<number> {
  return port !== 0 && (await isFree(port)) ? port : freePort();
}

/**
 * Each preferred port when it is free on 127.0.0.1, else a free one (so a second
 * copy or a busy 8080 never blocks); 0 asks for a free one.
 */
export async function choosePorts(preferred: OperatorPorts = DEFAULT_PORTS): Promise<OperatorPorts> {
  const pick = preferredPort;
  return {
    metrics: await pick(preferred.metrics),
    probes: await pick(preferred.probes),
    webhook: await pick(preferred.webhook),
  };
}

/** A running operator process. */
export type OperatorProcess = ManagedProcess;

/** Options of {@link startOperator}. */
export interface OperatorOptions {
  kubeconfig: string;
  certDir: string;
  /** The CA of the API server's webhook client certificate: the webhook then refuses every other caller. */
  webhookClientCa: string;
  ports: OperatorPorts;
  logPath: string;
  logLevel: string;
  /** Receives each formatted log line. */
  print: (line: string) => void;
}

/** The operator's command line in local mode (flags of `/work/notes/TEAM.md`, the operator's `--help`). */
export function operatorArgs(
  options: Pick<OperatorOptions, 'kubeconfig' | 'certDir' | 'webhookClientCa' | 'ports' | 'logLevel'>,
): string[] {
  return [
    // HAROUTER_LOCAL_OPERATOR runs another entry point (a work-in-progress operator build).
    process.env.HAROUTER_LOCAL_OPERATOR ?? resolve(repoRoot, 'bin', 'harouter-operator.js'),
    `--kubeconfig=${options.kubeconfig}`,
    `--metrics-bind-address=127.0.0.1:${options.ports.metrics}`,
    // Plain HTTP on loopback: local mode is for one person on one machine.
    '--metrics-secure=false',
    `--health-probe-bind-address=127.0.0.1:${options.ports.probes}`,
    `--webhook-bind-address=127.0.0.1:${options.ports.webhook}`,
    `--cert-dir=${options.certDir}`,
    `--webhook-client-ca=${options.webhookClientCa}`,
    '--leader-elect=true',
    '--leader-election-namespace=harouter-system',
    '--identity=local-operator',
    `--log-level=${options.logLevel}`,
  ];
}

/**
 * Starts `bin/harouter-operator.js` with the Node that runs local mode. Its JSON
 * logs go raw to `logPath` and, made readable, to `print`.
 */
export function startOperator(options: OperatorOptions): OperatorProcess {
  return startProcess('harouter-operator', process.execPath, operatorArgs(options), options.logPath, {
    env: { ...process.env, POD_NAMESPACE: 'harouter-system' },
    onLine: (line) => options.print(formatLogLine(line)),
  });
}
