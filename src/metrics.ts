import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { REPORTED_STATES } from './api/index.ts';

/** Reasons a router is counted under in `harouter_routers`. */
export const ROUTER_CONDITIONS = ['ready', 'split_brain', 'degraded', 'no_primary'] as const;

/**
 * Every metric the operator exports, on one registry per process (not prom-client's
 * global one, so that tests can run several operators in one process).
 * Names follow the contract: controller-runtime's standard names so existing
 * dashboards work, plus the `harouter_*` domain metrics. Base units, histograms,
 * bounded label values; known label sets start at zero.
 */
export interface Metrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<'controller' | 'result'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly reconcileErrors: Counter<'controller'>;
  readonly workqueueDepth: Gauge<'name'>;
  readonly workqueueAdds: Counter<'name'>;
  readonly workqueueQueueDuration: Histogram<'name'>;
  readonly workqueueWorkDuration: Histogram<'name'>;
  readonly workqueueRetries: Counter<'name'>;
  readonly restClientRequests: Counter<'code' | 'method' | 'host'>;
  readonly leaderElectionMasterStatus: Gauge<'name'>;
  readonly webhookRequests: Counter<'webhook' | 'code'>;
  readonly webhookLatency: Histogram<'webhook'>;
  readonly webhookInFlight: Gauge<'webhook'>;
  readonly reports: Counter<'state'>;
  readonly admissionDecisions: Counter<'decision' | 'reason'>;
  readonly activeChanges: Counter;
  readonly routers: Gauge<'condition'>;
  readonly routerInfo: Gauge<'namespace' | 'router' | 'active_agent'>;
  readonly routerTransitions: Counter<'namespace' | 'router'>;
  readonly reportToRoute: Histogram;
}

/** The controller name used in `controller` labels. */
export const CONTROLLER_NAME = 'harouter';

/** Creates the operator's metrics on a fresh registry, with process metrics. */
export function createMetrics(options: { processMetrics?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
  const metrics: Metrics = {
    registry,
    reconcileTotal: new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller and result.',
      labelNames: ['controller', 'result'],
      registers,
    }),
    reconcileTime: new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller.',
      labelNames: ['controller'],
      buckets: latencyBuckets,
      registers,
    }),
    reconcileErrors: new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller.',
      labelNames: ['controller'],
      registers,
    }),
    workqueueDepth: new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of the work queue.',
      labelNames: ['name'],
      registers,
    }),
    workqueueAdds: new Counter({
      name: 'workqueue_adds_total',
      help: 'Total number of adds handled by the work queue.',
      labelNames: ['name'],
      registers,
    }),
    workqueueQueueDuration: new Histogram({
      name: 'workqueue_queue_duration_seconds',
      help: 'How long in seconds an item stays in the work queue before being requested.',
      labelNames: ['name'],
      buckets: latencyBuckets,
      registers,
    }),
    workqueueWorkDuration: new Histogram({
      name: 'workqueue_work_duration_seconds',
      help: 'How long in seconds processing an item from the work queue takes.',
      labelNames: ['name'],
      buckets: latencyBuckets,
      registers,
    }),
    workqueueRetries: new Counter({
      name: 'workqueue_retries_total',
      help: 'Total number of retries handled by the work queue.',
      labelNames: ['name'],
      registers,
    }),
    restClientRequests: new Counter({
      name: 'rest_client_requests_total',
      help: 'Number of HTTP requests to the API server, partitioned by status code, method and host.',
      labelNames: ['code', 'method', 'host'],
      registers,
    }),
    leaderElectionMasterStatus: new Gauge({
      name: 'leader_election_master_status',
      help: '1 when this process is the leader of the named lease, 0 otherwise.',
      labelNames: ['name'],
      registers,
    }),
    webhookRequests: new Counter({
      name: 'controller_runtime_webhook_requests_total',
      help: 'Total number of admission requests by HTTP status code.',
      labelNames: ['webhook', 'code'],
      registers,
    }),
    webhookLatency: new Histogram({
      name: 'controller_runtime_webhook_latency_seconds',
      help: 'Histogram of the latency of processing admission requests.',
      labelNames: ['webhook'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    }),
    webhookInFlight: new Gauge({
      name: 'controller_runtime_webhook_requests_in_flight',
      help: 'Current number of admission requests being served.',
      labelNames: ['webhook'],
      registers,
    }),
    reports: new Counter({
      name: 'harouter_reports_total',
      help: 'HARouterState reports observed by the operator, by reported state.',
      labelNames: ['state'],
      registers,
    }),
    admissionDecisions: new Counter({
      name: 'harouter_admission_decisions_total',
      help: 'Admission decisions on HARouterStates by the webhook, by decision and rule.',
      labelNames: ['decision', 'reason'],
      registers,
    }),
    activeChanges: new Counter({
      name: 'harouter_active_changes_total',
      help: 'Changes of any HARouter active agent (to and from none included).',
      registers,
    }),
    routers: new Gauge({
      name: 'harouter_routers',
      help: 'HARouters by condition.',
      labelNames: ['condition'],
      registers,
    }),
    routerInfo: new Gauge({
      name: 'harouter_router_info',
      help: 'One series per HARouter, with its active agent ("" when none).',
      labelNames: ['namespace', 'router', 'active_agent'],
      registers,
    }),
    routerTransitions: new Counter({
      name: 'harouter_router_transitions_total',
      help: 'status.transitions of each HARouter: changes of its active agent.',
      labelNames: ['namespace', 'router'],
      registers,
    }),
    reportToRoute: new Histogram({
      name: 'harouter_report_to_route_seconds',
      help: "Time from a report's observedAt to the routing write that applied it (clamped at 0).",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
  };
  for (const state of REPORTED_STATES) metrics.reports.inc({ state }, 0);
  for (const condition of ROUTER_CONDITIONS) metrics.routers.set({ condition }, 0);
  metrics.activeChanges.inc(0);
  metrics.reportToRoute.zero({});
  return metrics;
}
