import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AgentResult } from './sender.ts';

/** The `kind` label of `harouter_agent_lines_total`. */
export const LINE_KINDS = ['transition', 'ignored', 'unmapped', 'malformed'] as const;
export type LineKind = (typeof LINE_KINDS)[number];

/** The `result` label of `harouter_agent_reports_total`. */
export const AGENT_RESULTS: readonly AgentResult[] = ['applied', 'stale', 'refused', 'retried'];

/**
 * The node agent's metrics (API.md, "Observability"), on a registry of its own
 * with the process metrics. Every label value is known and starts at zero.
 */
export interface AgentMetrics {
  readonly registry: Registry;
  readonly lines: Counter<'kind'>;
  readonly reports: Counter<'result'>;
  readonly pendingRouters: Gauge;
  readonly reportSeconds: Histogram;
  /** SIGHUPs sent to keepalived (`--keepalived-config-dir`). */
  readonly keepalivedReloads: Counter;
  /** Router files the agent keeps (`--keepalived-config-dir`). */
  readonly renderedRouters: Gauge;
}

/** Creates the agent's metrics; `pending` is read at each scrape. */
export function createAgentMetrics(
  pending: () => number,
  options: { processMetrics?: boolean } = {},
): AgentMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const metrics: AgentMetrics = {
    registry,
    lines: new Counter({
      name: 'harouter_agent_lines_total',
      help: 'Lines read from the notify FIFO, by kind (transition, ignored, unmapped, malformed).',
      labelNames: ['kind'],
      registers,
    }),
    reports: new Counter({
      name: 'harouter_agent_reports_total',
      help: 'Report attempts by result (applied, stale, refused, retried).',
      labelNames: ['result'],
      registers,
    }),
    pendingRouters: new Gauge({
      name: 'harouter_agent_pending_routers',
      help: 'Routers with a report not yet delivered.',
      registers,
      collect() {
        this.set(pending());
      },
    }),
    reportSeconds: new Histogram({
      name: 'harouter_agent_report_seconds',
      help: 'Time from reading a line to the API server accepting its report.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    }),
    keepalivedReloads: new Counter({
      name: 'harouter_agent_keepalived_reloads_total',
      help: 'Reloads (SIGHUP) sent to keepalived after its rendered configuration changed.',
      registers,
    }),
    renderedRouters: new Gauge({
      name: 'harouter_agent_rendered_routers',
      help: 'Routers whose keepalived configuration the agent renders on this node.',
      registers,
    }),
  };
  for (const kind of LINE_KINDS) metrics.lines.inc({ kind }, 0);
  for (const result of AGENT_RESULTS) metrics.reports.inc({ result }, 0);
  return metrics;
}
