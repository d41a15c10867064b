/**
 * The operator in a process of its own, for the benchmark (so that its memory is
 * the operator's, not the load generator's): the wiring `harouter-operator` runs
 * (`src/operator.ts`: informers, event mapping, work queue, workers, reconciler,
 * the kept-alive transport), watching one namespace, without leader election or
 * metrics and probe servers; its admission webhook when the flags ask for it
 * (`--webhook=true --webhook-bind-address --cert-dir`, given last). Forked by bench/failover.ts with the kubeconfig path,
 * the namespace and the workers; extra operator flags follow. Its writes are
 * counted by what they write (routing, Events, `Accepted`); the report-to-route
 * observations are kept one by one for exact percentiles.
 */
import pino from 'pino';
import { parseConfig } from '../src/config.ts';
import { loadConnection, type RawRequest, type RawRequester } from '../src/kube/client.ts';
import { createMetrics } from '../src/metrics.ts';
import { Operator } from '../src/operator.ts';
import { createReconciler } from '../src/reconcile/reconciler.ts';

const [kubeconfig, namespace, workers, ...extra] = process.argv.slice(2);
if (!kubeconfig || !namespace || !process.send) {
  process.stderr.write(
    'usage: forked by bench/failover.ts with <kubeconfig> <namespace> <workers> [flags]\n',
  );
  process.exit(2);
}
// As harouter-operator loads it: no client-node at run time, so the memory measured is the operator's.
const connection = await loadConnection(kubeconfig);

/** The operator's writes by what they change. */
const writes = { routing: 0, events: 0, accepted: 0, other: 0 };
function countWrite(request: RawRequest): void {
  if ((request.method ?? 'GET') === 'GET') return;
  if (request.path.includes('/endpointslices/') || /\/harouters\/[^/]+\/status$/.test(request.path))
    writes.routing++;
  else if (request.path.endsWith('/events')) writes.events++;
  else if (request.path.includes('/harouterstates/')) writes.accepted++;
  else writes.other++;
}
const counting =
  (raw: RawRequester): RawRequester =>
  (request) => {
    countWrite(request);
    return raw(request);
  };

const metrics = createMetrics({ processMetrics: false });
const reportToRoute: number[] = [];
const observe = metrics.reportToRoute.observe.bind(metrics.reportToRoute);
metrics.reportToRoute.observe = ((value: number) => {
  reportToRoute.push(value);
  observe(value);
}) as typeof metrics.reportToRoute.observe;

const parsed = parseConfig(
  [
    `--namespace=${namespace}`,
    '--webhook=false',
    '--leader-elect=false',
    '--metrics-bind-address=0',
    '--health-probe-bind-address=0',
    `--workers=${workers ?? 4}`,
    `--identity=bench-${process.pid}`,
    ...extra,
  ],
  {},
);
if (parsed.help) throw new Error('unexpected --help');
const operator = new Operator({
  config: parsed.config,
  log: pino({ level: process.env.HAROUTER_BENCH_LOG ?? 'warn' }),
  metrics,
  connection,
  createReconciler: (deps) => createReconciler({ ...deps, raw: counting(deps.raw) }),
});
await operator.start();
const serving = () => !parsed.config.webhook || operator.ports().webhook !== undefined;
while (!(operator.isLeader() && operator.cachesSynced() && serving()))
  await new Promise((r) => setTimeout(r, 50));

/** Every admission review the webhook answered, whatever its outcome. */
async function reviews(): Promise<number> {
  const json = await metrics.registry.getMetricsAsJSON();
  const values = json.find((m) => m.name === 'controller_runtime_webhook_requests_total')?.values ?? [];
  return values.reduce((sum, v) => sum + v.value, 0);
}

async function histogram(name: string): Promise<{ count: number; sum: number }> {
  const json = await metrics.registry.getMetricsAsJSON();
  const values = json.find((m) => m.name === name)?.values ?? [];
  const pick = (suffix: string) =>
    values.find((v) => (v as { metricName?: string }).metricName?.endsWith(suffix))?.value ?? 0;
  return { count: pick('_count'), sum: pick('_sum') };
}

process.on('message', async (message) => {
  if (message === 'stats' || message === 'stats-gc') {
    // After a collection, memory is what is retained, not garbage (forked with --expose-gc).
    if (message === 'stats-gc') (globalThis as { gc?: () => void }).gc?.();
    process.send?.({
      writes: { ...writes },
      rss: process.memoryUsage().rss,
      heapUsed: process.memoryUsage().heapUsed,
      reconcile: await histogram('controller_runtime_reconcile_time_seconds'),
      reportToRoute: [...reportToRoute],
      reviews: await reviews(),
    });
  } else if (message === 'stop') {
    await operator.stop();
    process.exit(0);
  }
});
process.send({ ready: true });
