/**
 * The reconcile loop in a process of its own, for the benchmark (so that its RSS
 * is the operator's, not the load generator's). Started by bench/failover.ts
 * with `fork`; arguments: kubeconfig path, namespace, workers. Answers `stats`
 * messages with its API write count and memory.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { startTestOperator } from '../test/integration/reconcile-harness.ts';

const [kubeconfig, namespace, workers] = process.argv.slice(2);
if (!kubeconfig || !namespace || !process.send) {
  process.stderr.write('usage: forked by bench/failover.ts with <kubeconfig> <namespace> [workers]\n');
  process.exit(2);
}
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const operator = await startTestOperator(kc, namespace, Number(workers ?? 4));

async function histogram(name: string) {
  const json = await operator.metrics.registry.getMetricsAsJSON();
  const values = json.find((m) => m.name === name)?.values ?? [];
  return values.map((v) => ({
    le: v.labels.le,
    value: v.value,
    name: (v as { metricName?: string }).metricName,
  }));
}

process.on('message', async (message) => {
  if (message === 'stats' || message === 'stats-gc') {
    // After a collection, memory is what is retained, not garbage (forked with --expose-gc).
    if (message === 'stats-gc') (globalThis as { gc?: () => void }).gc?.();
    process.send?.({
      writes: await operator.writes(),
      rss: process.memoryUsage().rss,
      heapUsed: process.memoryUsage().heapUsed,
      reportToRoute: await histogram('harouter_report_to_route_seconds'),
      reconcileTime: await histogram('controller_runtime_reconcile_time_seconds'),
    });
  } else if (message === 'stop') {
    await operator.stop();
    process.exit(0);
  }
});
process.send({ ready: true });
