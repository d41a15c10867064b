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
