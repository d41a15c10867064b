/**
 * Failover benchmark (not a test): N routers x 3 agents on a local control
 * plane (real etcd + kube-apiserver), the reconcile loop in its own process,
 * then a burst of failovers (every router at once moves from agent 0 to agent 1,
 * the way keepalived reports it: the new primary first, then the old one steps
 * down). Prints, per N: time until every router's status and EndpointSlice
 * point at the new agent, per-router convergence percentiles, API writes per
 * failover, the report-to-route histogram's mean and the operator's RSS.
 *
 *   npm run bench -- [--routers 50,200] [--workers 4] [--keep]
 *
 * Needs the Kubernetes binaries (built and cached on first use, like the tests).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CoreV1Api, CustomObjectsApi, DiscoveryV1Api, KubeConfig } from '@kubernetes/client-node';
import { formatObservedAt, GROUP, HAROUTER, type HARouter, VERSION } from '../src/api/index.ts';
import { startControlPlane } from '../src/local/controlplane/index.ts';
import { Cluster, installCrds } from '../test/integration/reconcile-harness.ts';
import { pool } from '../test/support/pool.ts';

const { values } = parseArgs({
  options: {
    routers: { type: 'string', default: '50' },
    workers: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '16' },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = (values.routers ?? '50').split(',').map(Number);
const workers = Number(values.workers);
const concurrency = Number(values.concurrency);

interface Stats {
  writes: number;
  rss: number;
  heapUsed: number;
  reportToRoute: { name?: string; value: number }[];
  reconcileTime: { name?: string; value: number }[];
}

/** Mean and count of a histogram between two scrapes. */
function histogramDelta(
  before: { name?: string; value: number }[],
  after: { name?: string; value: number }[],
) {
  const pick = (values: typeof before, suffix: string) =>
    values.find((v) => v.name?.endsWith(suffix))?.value ?? 0;
  const count = pick(after, '_count') - pick(before, '_count');
  const sum = pick(after, '_sum') - pick(before, '_sum');
  return { count, mean: count > 0 ? Number((sum / count).toFixed(4)) : null };
}

/** A wall-clock observedAt with nanoseconds (monotonic within the run). */
let lastNanos = 0n;
function nowObservedAt(): string {
  let nanos = BigInt(Date.now()) * 1_000_000n;
  if (nanos <= lastNanos) nanos = lastNanos + 1n;
  lastNanos = nanos;
  return formatObservedAt(nanos);
}

function ask(child: ChildProcess, gc = false): Promise<Stats> {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m as Stats));
    child.send(gc ? 'stats-gc' : 'stats');
  });
}

async function quiescentWrites(child: ChildProcess, quietMs = 1500): Promise<Stats> {
  let last = await ask(child);
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    const now = await ask(child);
    if (now.writes !== last.writes) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return now;
  }
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function runSize(kc: KubeConfig, kubeconfigPath: string, n: number): Promise<void> {
  const namespace = `bench-${n}`;
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  const cluster = new Cluster(kc, namespace);
  const agents = ['a', 'b', 'c'].map((x) => `${namespace}-${x}`);
  const ips = ['198.51.100.51', '198.51.100.52', '198.51.100.53'];
  for (const [i, name] of agents.entries()) await cluster.setNode(name, true, ips[i] as string);
  const ids = Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  await pool(ids, concurrency, async (id, i) => {
    await cluster.createService(`svc-${i}`, 80, true);
    await cluster.createRouter(id, {
      agents: agents.map((name) => ({ name })),
      endpoint: { serviceName: `svc-${i}`, ports: [{ port: 80 }] },
    });
    await cluster.report(id, agents[0] as string, 'Primary', nowObservedAt());
    await cluster.report(id, agents[1] as string, 'Backup', nowObservedAt());
    await cluster.report(id, agents[2] as string, 'Backup', nowObservedAt());
  });

  const child = fork(
    join(import.meta.dirname, 'operator-process.ts'),
    [kubeconfigPath, namespace, String(workers)],
    {
      execPath: process.execPath,
      execArgv: ['--expose-gc'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  await new Promise((resolve) => child.once('message', resolve));
  const custom = kc.makeApiClient(CustomObjectsApi);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const converged = async (agentIndex: number, seen?: Map<string, number>, t0 = 0): Promise<boolean> => {
    const routers = (
      (await custom.listNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace,
        plural: HAROUTER.plural,
      })) as {
        items: HARouter[];
      }
    ).items;
    const slices = (await discovery.listNamespacedEndpointSlice({ namespace })).items;
    const sliceIp = new Map(slices.map((s) => [s.metadata?.name, s.endpoints?.[0]?.addresses?.[0]]));
    let done = 0;
    for (const [i, r] of routers.entries()) {
      const ok =
        r.status?.activeAgent === agents[agentIndex] &&
        sliceIp.get(`${r.spec.endpoint?.serviceName}-harouter`) === ips[agentIndex];
      if (ok) {
        done++;
        if (seen && !seen.has(r.metadata.name)) seen.set(r.metadata.name, performance.now() - t0);
      }
      void i;
    }
    return done === n;
  };
  const setupStart = performance.now();
  while (!(await converged(0))) await new Promise((r) => setTimeout(r, 100));
  const initialMs = performance.now() - setupStart;
  const before = await quiescentWrites(child);

  // The burst: every router fails over from agent 0 to agent 1.
  const seen = new Map<string, number>();
  const t0 = performance.now();
  await pool(ids, concurrency, async (id) => {
    await cluster.report(id, agents[1] as string, 'Primary', nowObservedAt());
    await cluster.report(id, agents[0] as string, 'Backup', nowObservedAt());
  });
  const writtenMs = performance.now() - t0;
  while (!(await converged(1, seen, t0))) await new Promise((r) => setTimeout(r, 50));
  const convergedMs = performance.now() - t0;
  const after = await quiescentWrites(child);
  const peak = after;
  const retained = await ask(child, true);
  const perRouter = [...seen.values()].sort((x, y) => x - y);
  const reportToRoute = histogramDelta(before.reportToRoute, after.reportToRoute);
  const reconciles = histogramDelta(before.reconcileTime, after.reconcileTime);

  console.log(
    JSON.stringify({
      routers: n,
      agentsPerRouter: 3,
      workers,
      initialConvergenceMs: Math.round(initialMs),
      burstReportsWrittenMs: Math.round(writtenMs),
      burstConvergenceMs: Math.round(convergedMs),
      perRouterConvergenceMs: {
        p50: Math.round(percentile(perRouter, 50)),
        p95: Math.round(percentile(perRouter, 95)),
        max: Math.round(perRouter.at(-1) ?? Number.NaN),
      },
      writesPerFailover: Number(((after.writes - before.writes) / n).toFixed(2)),
      reportToRouteMeanSeconds: reportToRoute.mean,
      reconciles: reconciles.count,
      reconcileMeanSeconds: reconciles.mean,
      operatorRssMiB: Math.round(peak.rss / 2 ** 20),
      operatorHeapUsedMiB: Math.round(peak.heapUsed / 2 ** 20),
      operatorRssAfterGcMiB: Math.round(retained.rss / 2 ** 20),
      operatorHeapAfterGcMiB: Math.round(retained.heapUsed / 2 ** 20),
    }),
  );
  child.send('stop');
  await new Promise((resolve) => child.once('exit', resolve));
  for (const name of agents) await cluster.deleteNode(name);
}

const dir = await mkdtemp(join(tmpdir(), 'harouter-bench-'));
const plane = await startControlPlane({ dir });
try {
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  await installCrds(kc);
  for (const n of sizes) await runSize(kc, plane.kubeconfigPath, n);
} finally {
  await plane.stop();
  if (!values.keep) await rm(dir, { recursive: true, force: true });
}
