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

/**
 * The Node flags the chart's DaemonSet gives the agent (its `NODE_OPTIONS`) and
 * the agent benchmark runs it with: a 1 MiB young generation instead of V8's
 * default, because the agent's objects are small and short-lived and every MiB
 * of semi-space is resident on every network node (measured in
 * docs/performance.md).
 */
export const AGENT_NODE_OPTIONS = '--max-semi-space-size=1';
