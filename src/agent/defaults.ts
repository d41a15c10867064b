/**
 * The node agent's defaults (API.md), in a module with no imports so that
 * `harouterctl --help` and `report` do not load the agent to print them.
 */

/** keepalived's notify FIFO, unless `--fifo` says otherwise. */
export const DEFAULT_FIFO = '/run/harouter/notify.fifo';

/** Defaults of the agent's other flags. */
export const AGENT_DEFAULTS = {
  stateDir: '/var/lib/harouter',
  metricsBindAddress: ':8090',
  /** Most reports in flight at once (and pooled connections): 16 to 32 keep the API server busy. */
  concurrency: 32,
  requestTimeoutMs: 10_000,
} as const;

/** Defaults of the keepalived flags (`--keepalived-config-dir`). */
export const KEEPALIVED_DEFAULTS = {
  /** `--fence-dir`: one file per router, `1` while this node's instance is fenced. */
  fenceDir: '/run/harouter/fence',
  /** `--keepalived-pid-file`: keepalived's own default. */
  pidFile: '/run/keepalived.pid',
} as const;

/**
 * The Node flags the chart's DaemonSet runs the agent with (`reporter.agent.nodeFlags`)
 * and the agent benchmark measures: V8's lite mode (no optimizing compiler: the
 * agent waits on the network, not on JavaScript), a 1 MiB young generation and a
 * 64 MiB old-space bound. Each MiB is resident on every network node; the CPU
 * and memory it trades are in docs/performance.md. A chart test keeps the two equal.
 */
export const AGENT_NODE_FLAGS: readonly string[] = [
  '--lite-mode',
  '--max-semi-space-size=1',
  '--max-old-space-size=64',
];
