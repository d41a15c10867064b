/**
 * What the dashboard and the alerts are about, played against a running operator
 * with reports stamped now (so report-to-route latency is real): a failover, a split
 * brain, a flapping router. Used by test/integration/prometheus.test.ts and by
 * bench/dashboard-pictures.ts.
 */
import { join } from 'node:path';
import { freePort } from '../../src/local/controlplane/index.ts';
import {
  CHART_ALERT_RULES,
  OPERATOR_JOB,
  type RunningPrometheus,
  startPrometheus,
} from '../../src/local/prometheus.ts';
import { type Cluster, conditionOf, waitFor } from './reconcile-harness.ts';

/**
 * A Prometheus in `dir/prometheus` scraping the operator's metrics port every second with the
 * chart's job label, evaluating the chart's alert rules as they ship every second.
 */
export async function startScenarioPrometheus(dir: string, metricsPort: number): Promise<RunningPrometheus> {
  return startPrometheus({
    dir: join(dir, 'prometheus'),
    port: await freePort(),
    targets: { operator: [{ job: OPERATOR_JOB, url: `http://127.0.0.1:${metricsPort}/metrics` }] },
    ruleFiles: [CHART_ALERT_RULES],
    logPath: join(dir, 'prometheus.log'),
    scrapeInterval: '1s',
    evaluationInterval: '1s',
  });
}

/** Waits until the router's status names `agent` as its active agent. */
export async function waitActive(cluster: Cluster, router: string, agent: string, timeoutMs = 30_000) {
  await waitFor(async () => (await cluster.getRouter(router)).status?.activeAgent === agent, timeoutMs);
}

/** Reports `agent` Primary and the others Backup, as keepalived would at start. */
export async function elect(cluster: Cluster, router: string, agent: string, others: readonly string[]) {
  await cluster.report(router, agent, 'Primary', new Date().toISOString());
  for (const other of others) await cluster.report(router, other, 'Backup', new Date().toISOString());
  await waitActive(cluster, router, agent);
}

/**
 * A failover the way keepalived reports it: the new primary first, then the old one
 * steps down; resolves once the operator routes to `to`.
 */
export async function failover(cluster: Cluster, router: string, from: string, to: string) {
  await cluster.report(router, to, 'Primary', new Date().toISOString());
  await cluster.report(router, from, 'Backup', new Date().toISOString());
  await waitActive(cluster, router, to);
}

/** Both agents claim Primary; resolves once the router's SplitBrain condition is True. */
export async function splitBrain(cluster: Cluster, router: string, a: string, b: string) {
  await cluster.report(router, a, 'Primary', new Date().toISOString());
  await cluster.report(router, b, 'Primary', new Date().toISOString());
  await waitFor(
    async () => conditionOf(await cluster.getRouter(router), 'SplitBrain')?.status === 'True',
    30_000,
  );
}

/** `times` failovers back and forth between `a` (active at the start) and `b`, `pauseMs` apart. */
export async function flap(
  cluster: Cluster,
  router: string,
  a: string,
  b: string,
  times: number,
  pauseMs = 0,
) {
  let [from, to] = [a, b];
  for (let i = 0; i < times; i++) {
    await failover(cluster, router, from, to);
    [from, to] = [to, from];
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  }
}
