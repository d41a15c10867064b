/**
 * Failover benchmark (not a test): N routers x 3 agents on a local control
 * plane (real etcd + kube-apiserver), the operator in its own process, then a
 * burst of failovers (every router at once moves from agent 0 to agent 1, the
 * way keepalived reports it: the new primary first, then the old one steps
 * down). Per N, in the same run:
 *
 * 1. the API server's write floor: the same report writes as the burst (2 per
 *    router, server-side apply of a HARouterState) from a tight client (kept-alive
 *    HTTPS, `--concurrency` in flight), before the operator runs;
 * 2. the burst, written by the same tight client, and its convergence, observed
 *    by watching the HARouters and EndpointSlices (no polling);
 * 3. single failovers at idle: `harouter_report_to_route_seconds` against one
 *    API round trip.
 *
 * The operator runs as the image and the chart run it: compiled to JavaScript
 * (bench/compiled.ts) with the Deployment's Node flags (`--max-old-space-size`
 * overrides the heap bound). Prints one JSON line per N (fields in
 * docs/performance.md).
 *
 *   npm run bench -- [--routers 1000,10000] [--workers 16] [--concurrency 16] [--idle 20]
 *     [--operator-flag=--kube-api-max-inflight=32 ...] [--max-old-space-size MiB] [--cpu-prof DIR]
 *     [--node-flag=--heapsnapshot-signal=SIGUSR2 ...] [--keep]
 *
 * Needs the Kubernetes binaries (built and cached on first use, like the tests).
 */
import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import pino from 'pino';
import {
  API_VERSION,
  formatObservedAt,
  GROUP,
  HAROUTER,
  HAROUTER_STATE,
  type HARouter,
  type ReportedState,
  VERSION,
} from '../src/api/index.ts';
import { collectionPath, Informer } from '../src/kube/informer.ts';
import { kubeConfigConnection } from '../src/kube/kubeconfig.ts';
import { ApiTransport, type RawRequester } from '../src/kube/transport.ts';
import { startControlPlane } from '../src/local/controlplane/index.ts';
import type { EndpointSliceObject } from '../src/reconcile/plan.ts';
import { installCrds } from '../test/integration/reconcile-harness.ts';
import { pool } from '../test/support/pool.ts';
import { percentile } from '../test/support/stats.ts';
import { chartOperatorNodeFlags, compileForBenchmark } from './compiled.ts';

const { values } = parseArgs({
  options: {
    routers: { type: 'string', default: '50' },
    workers: { type: 'string', default: '16' },
    concurrency: { type: 'string', default: '16' },
    idle: { type: 'string', default: '20' },
    'operator-flag': { type: 'string', multiple: true, default: [] },
    'max-old-space-size': { type: 'string', default: '' },
    'cpu-prof': { type: 'string', default: '' },
    'node-flag': { type: 'string', multiple: true, default: [] },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = (values.routers ?? '50').split(',').map(Number);
const workers = Number(values.workers);
const concurrency = Number(values.concurrency);
const idleFailovers = Number(values.idle);
if (sizes.some((n) => !Number.isInteger(n) || n < 1) || !(concurrency >= 16)) {
  process.stderr.write('--routers takes positive integers; --concurrency must be at least 16\n');
  process.exit(2);
}

interface Stats {
  writes: { routing: number; events: number; accepted: number; other: number };
  rss: number;
  heapUsed: number;
  reconcile: { count: number; sum: number };
  reportToRoute: number[];
}

/** A wall-clock observedAt with nanoseconds (monotonic within the run). */
let lastNanos = 0n;
function nowObservedAt(): string {
  let nanos = BigInt(Date.now()) * 1_000_000n;
  if (nanos <= lastNanos) nanos = lastNanos + 1n;
  lastNanos = nanos;
  return formatObservedAt(nanos);
}

/** Waits for `check` (re-evaluated on `poke` and every 200 ms), failing after `timeoutMs` with `what`. */
async function waitUntil(what: () => string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function ask(child: ChildProcess, gc = false, timeoutMs = 30_000): Promise<Stats> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('timed out waiting for the operator process stats')),
      timeoutMs,
    );
    child.once('message', (m) => {
      clearTimeout(timer);
      resolve(m as Stats);
    });
    child.send(gc ? 'stats-gc' : 'stats');
  });
}

const totalWrites = (s: Stats) => s.writes.routing + s.writes.events + s.writes.accepted + s.writes.other;

/** Waits until the operator has made no write for `quietMs`. */
async function quiescent(child: ChildProcess, timeoutMs: number, quietMs = 1500): Promise<Stats> {
  const deadline = performance.now() + timeoutMs;
  let last = await ask(child);
  let since = performance.now();
  for (;;) {
    if (performance.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for the operator to stop writing`);
    await new Promise((r) => setTimeout(r, 200));
    const now = await ask(child);
    if (totalWrites(now) !== totalWrites(last)) {
      last = now;
      since = performance.now();
    } else if (performance.now() - since >= quietMs) return now;
  }
}

/** VmHWM (peak resident set) of a process, in MiB. */
function peakRssMiB(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Math.round(Number(match[1]) / 1024) : Number.NaN;
}

const crPath = (namespace: string, plural: string, name?: string) =>
  `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${plural}${name ? `/${name}` : ''}`;

/** One report, as `harouterctl` writes it: server-side apply, field manager harouterctl, force. */
function writeReport(
  raw: RawRequester,
  namespace: string,
  routerId: string,
  agent: string,
  state: ReportedState,
) {
  const name = `${routerId}.${agent}`;
  return raw({
    method: 'PATCH',
    path: crPath(namespace, HAROUTER_STATE.plural, name),
    query: { fieldManager: 'harouterctl', force: true },
    contentType: 'application/apply-patch+yaml',
    body: {
      apiVersion: API_VERSION,
      kind: HAROUTER_STATE.kind,
      metadata: { name, namespace },
      spec: { routerId, agent, state, observedAt: nowObservedAt() },
    },
  });
}

async function runSize(kc: KubeConfig, kubeconfigPath: string, n: number, compiled: string): Promise<void> {
  const namespace = `bench-${n}`;
  const raw = new ApiTransport(kubeConfigConnection(kc), { maxInFlight: concurrency, qps: 0 });
  const request = raw.request;
  await request({ method: 'POST', path: '/api/v1/namespaces', body: { metadata: { name: namespace } } });
  const agents = ['a', 'b', 'c'].map((x) => `${namespace}-${x}`);
  const ips = ['198.51.100.51', '198.51.100.52', '198.51.100.53'];
  for (const [i, name] of agents.entries()) {
    await request({ method: 'POST', path: '/api/v1/nodes', body: { metadata: { name } } });
    const now = `${new Date().toISOString().slice(0, 19)}Z`;
    await request({
      method: 'PATCH',
      path: `/api/v1/nodes/${name}/status`,
      contentType: 'application/merge-patch+json',
      body: {
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'KubeletReady',
              message: 'bench',
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
          addresses: [{ type: 'InternalIP', address: ips[i] }],
        },
      },
    });
  }
  const ids = Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);
  const setupStart = performance.now();
  await pool(ids, concurrency, async (id, i) => {
    // The Service opts in (annotation, no selector); headless: the local range has 254 addresses.
    await request({
      method: 'POST',
      path: `/api/v1/namespaces/${namespace}/services`,
      body: {
        metadata: { name: `svc-${i}`, annotations: { 'harouter.dev/router': id } },
        spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
      },
    });
    await request({
      method: 'POST',
      path: crPath(namespace, HAROUTER.plural),
      body: {
        apiVersion: API_VERSION,
        kind: HAROUTER.kind,
        metadata: { name: id },
        spec: {
          agents: agents.map((name) => ({ name })),
          endpoint: { serviceName: `svc-${i}`, ports: [{ port: 80 }] },
        },
      },
    });
    await writeReport(request, namespace, id, agents[0] as string, 'Primary');
    await writeReport(request, namespace, id, agents[1] as string, 'Backup');
    await writeReport(request, namespace, id, agents[2] as string, 'Backup');
  });
  const setupMs = performance.now() - setupStart;

  // 1. The floor: the burst's writes (2 reports per router), from the same tight client, nothing watching them change.
  const floorStart = performance.now();
  await pool(ids, concurrency, async (id) => {
    await writeReport(request, namespace, id, agents[1] as string, 'Backup');
    await writeReport(request, namespace, id, agents[2] as string, 'Backup');
  });
  const floorWritesPerSecond = (2 * n) / ((performance.now() - floorStart) / 1000);
  // One API round trip: a single report write with nothing else in flight.
  const roundTrips: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    await writeReport(request, namespace, ids[i % n] as string, agents[2] as string, 'Backup');
    roundTrips.push(performance.now() - t);
  }
  roundTrips.sort((x, y) => x - y);

  // Convergence is observed through watches of the HARouters and the EndpointSlices.
  const log = pino({ level: 'silent' });
  const routers = new Informer<HARouter>({
    name: 'bench-harouters',
    raw: request,
    watch: raw.watch,
    log,
    path: collectionPath({ group: GROUP, version: VERSION, plural: HAROUTER.plural, namespace }),
  });
  const slices = new Informer<EndpointSliceObject & { metadata: { name: string } }>({
    name: 'bench-slices',
    raw: request,
    watch: raw.watch,
    log,
    path: collectionPath({ group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', namespace }),
  });
  let target = 0;
  let t0 = 0;
  const routedAt = new Map<string, number>();
  const check = (i: number) => {
    const id = ids[i] as string;
    if (routedAt.has(id)) return;
    const r = routers.get(`${namespace}/${id}`);
    const s = slices.get(`${namespace}/svc-${i}-harouter`);
    if (r?.status?.activeAgent === agents[target] && s?.endpoints?.[0]?.addresses?.[0] === ips[target]) {
      routedAt.set(id, performance.now() - t0);
    }
  };
  const indexOf = (id: string) => Number(id.slice(-12));
  routers.addEventHandler({
    add: (o) => check(indexOf(o.metadata.name)),
    update: (_, o) => check(indexOf(o.metadata.name)),
  });
  slices.addEventHandler({
    add: (o) => check(Number(o.metadata.name.slice(4, -9))),
    update: (_, o) => check(Number(o.metadata.name.slice(4, -9))),
  });
  routers.start();
  slices.start();
  const allRouted = (what: string, timeoutMs: number) =>
    waitUntil(
      () =>
        `${what}: ${routedAt.size} of ${n} routers routed to ${agents[target]} (status.activeAgent and EndpointSlice)`,
      () => routedAt.size === n,
      timeoutMs,
    );

  const operatorFlags = values['operator-flag'] ?? [];
  const heap = values['max-old-space-size'];
  const child = fork(
    join(compiled, 'bench', 'operator-process.js'),
    [kubeconfigPath, namespace, String(workers), ...operatorFlags],
    {
      execPath: process.execPath,
      execArgv: [
        '--expose-gc',
        ...chartOperatorNodeFlags(),
        ...(heap ? [`--max-old-space-size=${heap}`] : []),
        ...(values['cpu-prof'] ? ['--cpu-prof', `--cpu-prof-dir=${values['cpu-prof']}`] : []),
        ...(values['node-flag'] ?? []),
      ],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  process.stderr.write(`bench: operator process ${child.pid} (${n} routers)\n`);
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('timed out waiting for the operator process to sync its caches')),
        300_000,
      );
      child.once('message', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
      child.once('exit', (code) =>
        reject(new Error(`operator process exited with ${code} before it was ready`)),
      );
    });
    const idleRss = (await ask(child, true)).rss;
    t0 = performance.now();
    target = 0;
    for (let i = 0; i < n; i++) check(i);
    // Generous: 10x the floor's time for the writes expected (slice, status, Event, 3 Accepted per router).
    const allowed = (writes: number) => Math.max(120_000, (10_000 * writes) / floorWritesPerSecond);
    await allRouted('the initial convergence', allowed(6 * n));
    const initialMs = performance.now() - t0;
    const before = await quiescent(child, allowed(n));

    // 2. The burst: every router fails over from agent 0 to agent 1.
    routedAt.clear();
    target = 1;
    const load = loadavg()[0];
    t0 = performance.now();
    await pool(ids, concurrency, async (id) => {
      await writeReport(request, namespace, id, agents[1] as string, 'Primary');
      await writeReport(request, namespace, id, agents[0] as string, 'Backup');
    });
    const writtenMs = performance.now() - t0;
    await allRouted('the burst', allowed(5 * n));
    const convergedMs = performance.now() - t0;
    const after = await quiescent(child, allowed(n));
    const retained = await ask(child, true);
    const peak = peakRssMiB(child.pid as number);

    // 3. Single failovers at idle, one after the other (agent 1 -> 2 -> 1 ...).
    const idleRoutes: number[] = [];
    for (let k = 0; k < Math.min(idleFailovers, n); k++) {
      const id = ids[k] as string;
      const from = agents[1] as string;
      const to = agents[2] as string;
      const statsBefore = (await ask(child)).reportToRoute.length;
      await writeReport(request, namespace, id, to, 'Primary');
      await writeReport(request, namespace, id, from, 'Backup');
      await waitUntil(
        () => `the single failover of router ${k} to ${to}`,
        () =>
          routers.get(`${namespace}/${id}`)?.status?.activeAgent === to &&
          slices.get(`${namespace}/svc-${k}-harouter`)?.endpoints?.[0]?.addresses?.[0] === ips[2],
        30_000,
      );
      await quiescent(child, 30_000, 300);
      idleRoutes.push(...(await ask(child)).reportToRoute.slice(statsBefore).map((s) => s * 1000));
    }
    idleRoutes.sort((x, y) => x - y);

    const operatorWrites = totalWrites(after) - totalWrites(before);
    const burstWrites = 2 * n + operatorWrites;
    const floorSeconds = burstWrites / floorWritesPerSecond;
    const perRouter = [...routedAt.values()].sort((x, y) => x - y);
    console.log(
      JSON.stringify({
        routers: n,
        agentsPerRouter: 3,
        workers,
        floorConcurrency: concurrency,
        loadAverage1m: Number(load?.toFixed(1)),
        setupMs: Math.round(setupMs),
        floorWritesPerSecond: Math.round(floorWritesPerSecond),
        apiRoundTripMs: {
          p50: Number(percentile(roundTrips, 50).toFixed(1)),
          p95: Number(percentile(roundTrips, 95).toFixed(1)),
        },
        burstWrites,
        floorSeconds: Number(floorSeconds.toFixed(2)),
        initialConvergenceMs: Math.round(initialMs),
        burstReportsWrittenMs: Math.round(writtenMs),
        burstConvergenceMs: Math.round(convergedMs),
        floorRatio: Number((convergedMs / 1000 / floorSeconds).toFixed(2)),
        perRouterConvergenceMs: {
          p50: Math.round(percentile(perRouter, 50)),
          p95: Math.round(percentile(perRouter, 95)),
          max: Math.round(perRouter.at(-1) ?? Number.NaN),
        },
        writesPerFailover: Number((operatorWrites / n).toFixed(2)),
        routingWritesPerFailover: Number(((after.writes.routing - before.writes.routing) / n).toFixed(2)),
        eventWritesPerFailover: Number(((after.writes.events - before.writes.events) / n).toFixed(2)),
        reconciles: after.reconcile.count - before.reconcile.count,
        reconcileMeanMs: Number(
          (
            ((after.reconcile.sum - before.reconcile.sum) /
              Math.max(1, after.reconcile.count - before.reconcile.count)) *
            1000
          ).toFixed(2),
        ),
        idleReportToRouteMs: {
          count: idleRoutes.length,
          p50: Number(percentile(idleRoutes, 50).toFixed(1)),
          p99: Number(percentile(idleRoutes, 99).toFixed(1)),
        },
        operatorIdleRssMiB: Math.round(idleRss / 2 ** 20),
        operatorPeakRssMiB: peak,
        operatorRssAfterGcMiB: Math.round(retained.rss / 2 ** 20),
        operatorHeapAfterGcMiB: Math.round(retained.heapUsed / 2 ** 20),
      }),
    );
  } finally {
    child.send('stop');
    await new Promise((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(undefined);
      }, 30_000);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(undefined);
      });
    });
    await routers.stop();
    await slices.stop();
    for (const name of agents)
      await request({ method: 'DELETE', path: `/api/v1/nodes/${name}` }).catch(() => undefined);
    await raw.close();
  }
}

const started = performance.now();
const dir = await mkdtemp(join(tmpdir(), 'harouter-bench-'));
const plane = await startControlPlane({ dir });
try {
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  await installCrds(kc);
  const compiled = await compileForBenchmark(join(dir, 'dist'));
  for (const n of sizes) await runSize(kc, plane.kubeconfigPath, n, compiled);
} finally {
  await plane.stop();
  if (!values.keep) await rm(dir, { recursive: true, force: true });
  process.stderr.write(`bench: ${Math.round((performance.now() - started) / 1000)} s in all\n`);
}
