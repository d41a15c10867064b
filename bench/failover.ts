/**
 * Failover benchmark (not a test): N routers x 3 agents on a local control
 * plane (real etcd + kube-apiserver), the operator in its own process, then a
 * burst of failovers (every router at once moves from agent 0 to agent 1, the
 * way keepalived reports it: the new primary first, then the old one steps
 * down). Every report goes the production path: the operator serves its
 * admission webhook, registered as the chart registers it (`failurePolicy:
 * Fail`), and each report is written with a pod-bound reporter token of its own
 * node (TokenRequest), through RBAC, the CRD's rules and the webhook. Per N, in
 * the same run:
 *
 * 1. the write floor through admission: the same report writes as the burst (2
 *    per router, server-side apply) from a tight client (kept-alive HTTPS, one
 *    connection pool per node's token), swept over 16, 32 and 64 requests in
 *    flight before the burst and again after it; the best of each sweep is the
 *    floor (`floorWritesPerSecond`, `floorWritesPerSecondAfter`);
 * 2. the burst, written by the same tight client at `--concurrency`, and its
 *    convergence, observed by watching the HARouters and EndpointSlices (no
 *    polling), with the operator's CPU time and the reviews it served meanwhile;
 * 3. single failovers at idle: `harouter_report_to_route_seconds` against one
 *    API round trip.
 *
 * `--no-webhook` measures without admission (admin credentials, no webhook), for
 * comparison. The operator runs as the image and the chart run it: compiled to
 * JavaScript (bench/compiled.ts) with the Deployment's Node flags
 * (`--max-old-space-size` overrides the heap bound). Prints one JSON line per N
 * (fields in docs/performance.md).
 *
 *   npm run bench -- [--routers 1000,10000] [--workers 16] [--concurrency 16] [--idle 20]
 *     [--floor-sweep 16,32,64] [--no-webhook]
 *     [--operator-flag=--kube-api-max-inflight=32 ...] [--max-old-space-size MiB] [--cpu-prof DIR]
 *     [--node-flag=--heapsnapshot-signal=SIGUSR2 ...] [--keep] [--attack-metrics 50]
 *
 * `--attack-metrics N` serves the operator's metrics securely (as the chart does)
 * and floods them with random bearer tokens from N clients during the burst
 * (bench/metrics-attack.ts); the line then carries the attack's answers.
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
import {
  base64File,
  freePort,
  issueServingCert,
  startControlPlane,
} from '../src/local/controlplane/index.ts';
import { applyManifests, type Kubectl } from '../src/local/kubectl.ts';
import { baseManifests } from '../src/local/sample.ts';
import type { EndpointSliceObject } from '../src/reconcile/plan.ts';
import { WEBHOOK_PATH, webhookConfiguration } from '../src/webhook/manifests.ts';
import { installCrds } from '../test/integration/reconcile-harness.ts';
import { pool } from '../test/support/pool.ts';
import { percentile } from '../test/support/stats.ts';
import { chartOperatorNodeFlags, compileForBenchmark } from './compiled.ts';
import { deleteNodeReporter, mintNodeToken, tokenTransport } from './reporters.ts';
import { ownCpuMs } from './timed-process.ts';

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
    'floor-sweep': { type: 'string', default: '16,32,64' },
    'no-webhook': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    'attack-metrics': { type: 'string', default: '0' },
  },
});
const floorSweep = (values['floor-sweep'] ?? '16').split(',').map(Number);
const webhook = !values['no-webhook'];
const sizes = (values.routers ?? '50').split(',').map(Number);
const workers = Number(values.workers);
const concurrency = Number(values.concurrency);
const idleFailovers = Number(values.idle);
const attackClients = Number(values['attack-metrics']);
if (
  sizes.some((n) => !Number.isInteger(n) || n < 1) ||
  !(concurrency >= 16) ||
  floorSweep.some((c) => !Number.isInteger(c) || c < 1)
) {
  process.stderr.write(
    '--routers and --floor-sweep take positive integers; --concurrency must be at least 16\n',
  );
  process.exit(2);
}

interface Stats {
  writes: { routing: number; events: number; accepted: number; other: number };
  rss: number;
  heapUsed: number;
  reconcile: { count: number; sum: number };
  reportToRoute: number[];
  /** Admission reviews the operator's webhook answered so far. */
  reviews: number;
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

/** Writes per second for `writes` (each a function doing one write) at `inFlight` at once. */
async function writeRate(writes: (() => Promise<unknown>)[], inFlight: number): Promise<number> {
  const started = performance.now();
  await pool(writes, inFlight, (write) => write().then(() => undefined));
  return writes.length / ((performance.now() - started) / 1000);
}

/** The floor sweep: the rate of `writes()` (a fresh batch each time) at each of `floorSweep` in flight. */
async function sweep(writes: () => (() => Promise<unknown>)[]): Promise<Record<string, number>> {
  const rates: Record<string, number> = {};
  for (const inFlight of floorSweep) rates[inFlight] = Math.round(await writeRate(writes(), inFlight));
  return rates;
}

/** Waits until `write` (a dry-run report no webhook would admit) is denied: the webhook intercepts. */
async function webhookIntercepting(write: () => Promise<unknown>): Promise<void> {
  const deadline = performance.now() + 60_000;
  for (;;) {
    const denied = await write().then(
      () => false,
      (error: unknown) => (error as { status?: number }).status === 403,
    );
    if (denied) return;
    if (performance.now() > deadline) throw new Error('the webhook did not start intercepting within 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The benchmark's ValidatingWebhookConfiguration (the chart's, pointed at the benchmark's operator). */
const BENCH_WEBHOOK = 'harouter-bench';

interface SizeContext {
  kc: KubeConfig;
  kubeconfigPath: string;
  compiled: string;
  /** Where the webhook's serving certificate is (with `webhook`), and its CA bundle. */
  webhookCert?: { dir: string; caBundle: string };
  kubectl: Kubectl;
}

async function runSize(context: SizeContext, n: number): Promise<void> {
  const { kc, kubeconfigPath, compiled } = context;
  const namespace = `bench-${n}`;
  const raw = new ApiTransport(kubeConfigConnection(kc), {
    maxInFlight: Math.max(concurrency, ...floorSweep),
    qps: 0,
  });
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
  // Each node's reports go through its own pod-bound token; without the webhook, the admin's client.
  const reporters = new Map<string, ApiTransport>();
  if (webhook) {
    for (const agent of agents) {
      const token = await mintNodeToken(request, agent);
      reporters.set(agent, tokenTransport(kc, token, Math.max(concurrency, ...floorSweep)));
    }
  }
  const reporterOf = (agent: string): RawRequester => reporters.get(agent)?.request ?? request;
  const report = (id: string, agent: string, state: ReportedState) =>
    writeReport(reporterOf(agent), namespace, id, agent, state);
  const ids = Array.from({ length: n }, (_, i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`);

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

  const setup = async () => {
    const started = performance.now();
    await pool(ids, concurrency, async (id, i) => {
      // The Service opts in (label, no selector); headless: the local range has 254 addresses.
      await request({
        method: 'POST',
        path: `/api/v1/namespaces/${namespace}/services`,
        body: {
          metadata: { name: `svc-${i}`, labels: { 'harouter.dev/router': id } },
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
    });
    if (webhook) {
      // The webhook admits a node's first report only for a router its cache holds: the
      // operator has seen every router once it has written each one's status.
      await waitUntil(
        () => 'the operator to see every router (its status written)',
        () => ids.every((id) => routers.get(`${namespace}/${id}`)?.status?.observedGeneration !== undefined),
        600_000,
      );
    }
    await pool(ids, concurrency, async (id) => {
      await report(id, agents[0] as string, 'Primary');
      await report(id, agents[1] as string, 'Backup');
      await report(id, agents[2] as string, 'Backup');
    });
    return performance.now() - started;
  };
  // The floor's writes: each report rewritten in the state it already has (nothing to reconcile).
  const floorWrites = (states: readonly [string, ReportedState][]) => () =>
    ids.flatMap((id) =>
      states.map(
        ([agent, state]) =>
          () =>
            report(id, agent, state),
      ),
    );

  // With --attack-metrics, the operator serves secure metrics (as in the chart) on a known port.
  const metricsPort = attackClients > 0 ? await freePort() : 0;
  const operatorFlags = [
    ...(attackClients > 0
      ? [`--metrics-bind-address=127.0.0.1:${metricsPort}`, '--metrics-secure=true']
      : []),
    ...(values['operator-flag'] ?? []),
  ];
  const heap = values['max-old-space-size'];
  const webhookPort = webhook ? await freePort() : 0;
  const startOperator = () =>
    fork(
      join(compiled, 'bench', 'operator-process.js'),
      [
        kubeconfigPath,
        namespace,
        String(workers),
        ...(context.webhookCert
          ? [
              '--webhook=true',
              `--webhook-bind-address=127.0.0.1:${webhookPort}`,
              `--cert-dir=${context.webhookCert.dir}`,
            ]
          : []),
        ...operatorFlags,
      ],
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
  const operatorReady = (child: ChildProcess) =>
    new Promise((resolve, reject) => {
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

  let child: ChildProcess | undefined;
  try {
    let setupMs: number;
    let floorBefore: Record<string, number> = {};
    let idleRss = 0;
    const floorStates: [string, ReportedState][] = [
      [agents[1] as string, 'Backup'],
      [agents[2] as string, 'Backup'],
    ];
    if (context.webhookCert) {
      // Admission needs the operator (its webhook) before any report: it runs from the start.
      child = startOperator();
      process.stderr.write(`bench: operator process ${child.pid} (${n} routers, webhook on)\n`);
      await operatorReady(child);
      idleRss = (await ask(child, true)).rss;
      await applyManifests(context.kubectl, [
        webhookConfiguration({
          name: BENCH_WEBHOOK,
          url: `https://127.0.0.1:${webhookPort}${WEBHOOK_PATH}`,
          caBundle: context.webhookCert.caBundle,
        }),
      ]);
      await webhookIntercepting(() =>
        reporterOf(agents[1] as string)({
          method: 'PATCH',
          path: crPath(namespace, HAROUTER_STATE.plural, `${ids[0]}.${agents[0]}`),
          query: { fieldManager: 'harouterctl', force: true, dryRun: 'All' },
          contentType: 'application/apply-patch+yaml',
          body: {
            apiVersion: API_VERSION,
            kind: HAROUTER_STATE.kind,
            metadata: { name: `${ids[0]}.${agents[0]}`, namespace },
            spec: { routerId: ids[0], agent: agents[0], state: 'Primary', observedAt: nowObservedAt() },
          },
        }),
      );
      t0 = performance.now();
      setupMs = await setup();
    } else {
      setupMs = await setup();
    }
    const allowedFor = (rate: number) => (writes: number) => Math.max(120_000, (10_000 * writes) / rate);
    if (!child) {
      // 1. The floor before the operator runs (no webhook: nothing watching the writes change).
      floorBefore = await sweep(floorWrites(floorStates));
      child = startOperator();
      process.stderr.write(`bench: operator process ${child.pid} (${n} routers, no webhook)\n`);
      await operatorReady(child);
      idleRss = (await ask(child, true)).rss;
      t0 = performance.now();
      for (let i = 0; i < n; i++) check(i);
      await allRouted('the initial convergence', allowedFor(Math.max(...Object.values(floorBefore)))(6 * n));
    } else {
      for (let i = 0; i < n; i++) check(i);
      await allRouted('the initial convergence', 600_000 + 60 * n);
    }
    const initialMs = performance.now() - t0;
    const operator = child;
    await quiescent(operator, 600_000);
    if (webhook) {
      // 1. The floor through admission, the operator (and its webhook) running.
      floorBefore = await sweep(floorWrites(floorStates));
      await quiescent(operator, 600_000);
    }
    const floorWritesPerSecond = Math.max(...Object.values(floorBefore));
    const allowed = allowedFor(floorWritesPerSecond);
    // One API round trip: a single report write with nothing else in flight.
    const roundTrips: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t = performance.now();
      await report(ids[i % n] as string, agents[2] as string, 'Backup');
      roundTrips.push(performance.now() - t);
    }
    roundTrips.sort((x, y) => x - y);
    const before = await quiescent(operator, allowed(n));

    // 2. The burst: every router fails over from agent 0 to agent 1 (under the attack, when asked).
    const attack = attackClients > 0 ? await startAttack(metricsPort, attackClients) : undefined;
    routedAt.clear();
    target = 1;
    const load = loadavg()[0];
    const cpuBefore = await ownCpuMs(operator.pid as number);
    t0 = performance.now();
    await pool(ids, concurrency, async (id) => {
      await report(id, agents[1] as string, 'Primary');
      await report(id, agents[0] as string, 'Backup');
    });
    const writtenMs = performance.now() - t0;
    await allRouted('the burst', allowed(5 * n));
    const convergedMs = performance.now() - t0;
    const after = await quiescent(operator, allowed(n));
    const cpuMs = (await ownCpuMs(operator.pid as number)) - cpuBefore;
    const attackAnswers = await attack?.stop();
    const retained = await ask(operator, true);
    const peak = peakRssMiB(operator.pid as number);

    // The floor again, after the burst: each report rewritten in its new state.
    const floorAfter = await sweep(
      floorWrites([
        [agents[0] as string, 'Backup'],
        [agents[2] as string, 'Backup'],
      ]),
    );
    await quiescent(operator, allowed(n));

    // 3. Single failovers at idle, one after the other (agent 1 -> 2 -> 1 ...).
    const idleRoutes: number[] = [];
    for (let k = 0; k < Math.min(idleFailovers, n); k++) {
      const id = ids[k] as string;
      const from = agents[1] as string;
      const to = agents[2] as string;
      const statsBefore = (await ask(operator)).reportToRoute.length;
      await report(id, to, 'Primary');
      await report(id, from, 'Backup');
      await waitUntil(
        () => `the single failover of router ${k} to ${to}`,
        () =>
          routers.get(`${namespace}/${id}`)?.status?.activeAgent === to &&
          slices.get(`${namespace}/svc-${k}-harouter`)?.endpoints?.[0]?.addresses?.[0] === ips[2],
        30_000,
      );
      await quiescent(operator, 30_000, 300);
      idleRoutes.push(...(await ask(operator)).reportToRoute.slice(statsBefore).map((s) => s * 1000));
    }
    idleRoutes.sort((x, y) => x - y);

    const operatorWrites = totalWrites(after) - totalWrites(before);
    const burstWrites = 2 * n + operatorWrites;
    const floorSeconds = burstWrites / floorWritesPerSecond;
    const reportsOnlySeconds = (2 * n) / floorWritesPerSecond;
    const perRouter = [...routedAt.values()].sort((x, y) => x - y);
    console.log(
      JSON.stringify({
        routers: n,
        agentsPerRouter: 3,
        webhook,
        workers,
        floorConcurrency: concurrency,
        loadAverage1m: Number(load?.toFixed(1)),
        setupMs: Math.round(setupMs),
        floorWritesPerSecond,
        floorWritesPerSecondAfter: Math.max(...Object.values(floorAfter)),
        floorSweep: { before: floorBefore, after: floorAfter },
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
        reportsOnlyRatio: Number((convergedMs / 1000 / reportsOnlySeconds).toFixed(2)),
        perRouterConvergenceMs: {
          p50: Math.round(percentile(perRouter, 50)),
          p95: Math.round(percentile(perRouter, 95)),
          max: Math.round(perRouter.at(-1) ?? Number.NaN),
        },
        writesPerFailover: Number((operatorWrites / n).toFixed(2)),
        routingWritesPerFailover: Number(((after.writes.routing - before.writes.routing) / n).toFixed(2)),
        eventWritesPerFailover: Number(((after.writes.events - before.writes.events) / n).toFixed(2)),
        admissionReviews: after.reviews - before.reviews,
        operatorCpuMsPerFailover: Number((cpuMs / n).toFixed(2)),
        ...(attackAnswers ? { metricsAttack: attackAnswers } : {}),
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
    if (child) {
      const running = child;
      running.send('stop');
      await new Promise((resolve) => {
        const timer = setTimeout(() => {
          running.kill('SIGKILL');
          resolve(undefined);
        }, 30_000);
        running.once('exit', () => {
          clearTimeout(timer);
          resolve(undefined);
        });
      });
    }
    if (webhook) {
      await request({
        method: 'DELETE',
        path: `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${BENCH_WEBHOOK}`,
      }).catch(() => undefined);
    }
    await routers.stop();
    await slices.stop();
    for (const name of agents) {
      await deleteNodeReporter(request, name);
      await request({ method: 'DELETE', path: `/api/v1/nodes/${name}` }).catch(() => undefined);
    }
    for (const reporter of reporters.values()) await reporter.close();
    await raw.close();
  }
}

/**
 * Forks bench/metrics-attack.ts on the operator's metrics port and waits 2 s
 * for it to reach full speed; `stop` ends it and returns its answers.
 */
async function startAttack(port: number, clients: number): Promise<{ stop(): Promise<unknown> }> {
  const attacker = fork(
    join(import.meta.dirname, 'metrics-attack.ts'),
    ['--port', String(port), '--clients', String(clients)],
    { execArgv: ['--disable-warning=ExperimentalWarning'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] },
  );
  await new Promise((resolve, reject) => {
    attacker.once('message', resolve);
    attacker.once('exit', (code) => reject(new Error(`the attacker exited with ${code}`)));
  });
  await new Promise((r) => setTimeout(r, 2000));
  return {
    stop: () =>
      new Promise((resolve) => {
        attacker.once('message', resolve);
        attacker.send('stop');
      }),
  };
}

const started = performance.now();
const dir = await mkdtemp(join(tmpdir(), 'harouter-bench-'));
const plane = await startControlPlane({ dir });
try {
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  await installCrds(kc);
  const k: Kubectl = {
    binary: plane.binaries.kubectl,
    kubeconfig: plane.kubeconfigPath,
    cacheDir: join(dir, 'kubectl-cache'),
  };
  let webhookCert: SizeContext['webhookCert'];
  if (webhook) {
    // The reporter service account and its RBAC, and the webhook's serving certificate, as local mode makes them.
    await applyManifests(k, baseManifests());
    const certDir = join(dir, 'webhook');
    await issueServingCert({
      ca: plane.ca,
      dir: certDir,
      name: 'tls',
      ips: ['127.0.0.1'],
      dnsNames: ['localhost'],
    });
    webhookCert = { dir: certDir, caBundle: await base64File(plane.ca.certPath) };
  }
  const compiled = await compileForBenchmark(join(dir, 'dist'));
  for (const n of sizes)
    await runSize(
      {
        kc,
        kubeconfigPath: plane.kubeconfigPath,
        compiled,
        kubectl: k,
        ...(webhookCert ? { webhookCert } : {}),
      },
      n,
    );
} finally {
  await plane.stop();
  if (!values.keep) await rm(dir, { recursive: true, force: true });
  process.stderr.write(`bench: ${Math.round((performance.now() - started) / 1000)} s in all\n`);
}
