/**
 * One node's `harouterctl agent` process (API.md, "The node agent"): it reads
 * the node's keepalived FIFO and reports with the node's pod-bound reporter
 * kubeconfig. It runs in the caller's network namespace, where the API server
 * listens; only the FIFO joins it to keepalived.
 */
import { resolve } from 'node:path';
import { exitedWithin, type ManagedProcess, startProcess, waitUntil } from '../controlplane/process.ts';

const HAROUTERCTL = resolve(import.meta.dirname, '../../../bin/harouterctl.js');

/** harouterctl's entry point: `HAROUTER_LOCAL_HAROUTERCTL` runs another one (a work-in-progress build). */
function harouterctl(): string {
  return process.env.HAROUTER_LOCAL_HAROUTERCTL ?? HAROUTERCTL;
}

/** What one node's agent is started with. */
export interface AgentOptions {
  /** The node (`--agent`). */
  node: string;
  fifo: string;
  stateDir: string;
  kubeconfig: string;
  /** Default namespace of the routers (`--namespace`). */
  namespace: string;
  /** keepalived instance name to `[namespace/]routerId` (`--instance`). */
  instances: Readonly<Record<string, string>>;
  /** `--metrics-bind-address`, such as `127.0.0.1:8090`. */
  metricsAddress: string;
  logLevel?: string;
  /** `--keepalived-config-dir`, `--fence-dir` and `--keepalived-pid-file`: render keepalived's files. */
  keepalived?: { configDir: string; fenceDir: string; pidFile: string };
}

/** The agent's arguments after `harouterctl`. Pure. */
export function agentArgs(options: AgentOptions): string[] {
  return [
    'agent',
    `--fifo=${options.fifo}`,
    `--state-dir=${options.stateDir}`,
    `--kubeconfig=${options.kubeconfig}`,
    `--agent=${options.node}`,
    `--namespace=${options.namespace}`,
    ...Object.entries(options.instances).map(([name, router]) => `--instance=${name}=${router}`),
    `--metrics-bind-address=${options.metricsAddress}`,
    `--log-level=${options.logLevel ?? 'info'}`,
    ...(options.keepalived
      ? [
          `--keepalived-config-dir=${options.keepalived.configDir}`,
          `--fence-dir=${options.keepalived.fenceDir}`,
          `--keepalived-pid-file=${options.keepalived.pidFile}`,
        ]
      : []),
  ];
}

/** Controls the agent on one node; see {@link agentOn}. */
export interface Agent {
  readonly logPath: string;
  readonly options: AgentOptions;
  pid(): number | undefined;
  running(): boolean;
  /** Resolves with how the current process exited. */
  exited(): Promise<string>;
  /** Starts the agent; throws when it already runs. */
  start(): Promise<void>;
  /**
   * Waits until the agent answers `/readyz` with 200 (its FIFO is open and the
   * API server has answered once); throws if it exits or `timeoutMs` passes.
   */
  ready(timeoutMs?: number): Promise<void>;
  /** SIGTERM and waits: the agent syncs its spool and exits 0. */
  stop(): Promise<void>;
  /** SIGKILL: what is read but not yet delivered is only in the spool. */
  kill(): Promise<void>;
  /** Changes the options for the next start (a running agent is not restarted). */
  configure(options: Partial<AgentOptions>): void;
}

/** The agent of one node, run with `node` (Node 24), logging to `logPath`. */
export function agentOn(initial: AgentOptions, logPath: string, node = process.execPath): Agent {
  let options = initial;
  let current: ManagedProcess | undefined;
  const running = () => current !== undefined && current.exited() === undefined;
  return {
    logPath,
    get options() {
      return options;
    },
    pid: () => (running() ? current?.pid : undefined),
    running,
    exited: async () => (current ? current.done : 'never started'),
    async start() {
      if (running()) throw new Error(`the agent of ${options.node} already runs`);
      await current?.stop();
      // The agent ends with whoever started it (no orphan reporting on after a crashed test).
      current = startProcess(
        `agent ${options.node}`,
        'setpriv',
        ['--pdeathsig', 'TERM', '--', node, harouterctl(), ...agentArgs(options)],
        logPath,
      );
      const early = await exitedWithin(current, 100);
      if (early !== undefined)
        throw new Error(`the agent of ${options.node} did not start (${early}); see ${logPath}`);
    },
    async ready(timeoutMs = 30_000) {
      const running = current;
      await waitUntil(
        `the agent of ${options.node} to be ready (/readyz on ${options.metricsAddress})`,
        timeoutMs,
        async () => (await fetch(`http://${options.metricsAddress}/readyz`)).status === 200,
        () => {
          const exit = running?.exited();
          return exit ? `it exited (${exit}); see ${logPath}` : undefined;
        },
      );
    },
    async stop() {
      await current?.stop(15_000);
    },
    async kill() {
      if (!current || !running()) return;
      current.signal('SIGKILL');
      await current.stop();
    },
    configure(changes) {
      options = { ...options, ...changes };
    },
  };
}
