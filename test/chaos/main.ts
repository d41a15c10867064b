/**
 * `npm run chaos`: faults and fuzz during a storm (issue 14, docs/reliability.md).
 *
 * A real control plane (etcd, kube-apiserver, kube-controller-manager), two
 * operator processes with leader election behind a webhook load balancer, one
 * reporter per node, a few hundred routers and a continuous stream of
 * failovers with node NotReady flips. Admission is fuzzed in every mode, then
 * the faults are injected one after another; after each, and at the end, the
 * invariant checker compares the cluster with the truth the run kept. The last
 * line printed is the summary, as JSON; the exit code is 1 when any count is not 0.
 *
 *   npm run chaos -- [--routers 300] [--rate 20] [--fuzz-cases 10000] [--seed N]
 *                    [--faults a,b,...] [--dir DIR] [--keep]
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { API_VERSION, HAROUTER, HAROUTER_STATE } from '../../src/api/index.ts';
import { issueServingCert, startControlPlane } from '../../src/local/controlplane/index.ts';
import { installCrds } from '../integration/reconcile-harness.ts';
import { pool } from '../support/pool.ts';
import { AgentReporter, killableAgents } from './agents.ts';
import type { ActorName } from './arbitraries.ts';
import { type Evidence, FAULT_NAMES, type FaultName, inject } from './faults.ts';
import { type FuzzClients, type FuzzResult, prepareFuzzWorld, runFuzz } from './fuzz.ts';
import { adminHttp, expectOk, KubeHttp, waitFor, within } from './http.ts';
import { checkInvariants, RoutingHistory } from './invariants.ts';
import { OperatorPair, startWebhookBalancer } from './operators.ts';
import type { Actor, Mode } from './oracle.ts';
import {
  applyWebhookConfiguration,
  CHAOS_NAMESPACE,
  caBundleOf,
  createNamespace,
  FUZZ_NAMESPACES,
  INTRUDER_SA,
  installPolicy,
  installReporterRbac,
  mintToken,
  OPERATOR_SA,
  REPORTER_SA,
  SYSTEM_NAMESPACE,
  setNode,
  waitUntilGuarded,
} from './setup.ts';
import { DirectReporter, type NodeReporter, Storm, type StormRouter, Truth } from './storm.ts';

const { values } = parseArgs({
  options: {
    routers: { type: 'string', default: '300' },
    rate: { type: 'string', default: '20' },
    'fuzz-cases': { type: 'string', default: '10000' },
    seed: { type: 'string' },
    faults: { type: 'string', default: FAULT_NAMES.join(',') },
    dir: { type: 'string' },
    keep: { type: 'boolean', default: false },
    'check-timeout': { type: 'string', default: '180' },
    reporter: { type: 'string' },
  },
});
const ROUTERS = Number(values.routers);
const RATE = Number(values.rate);
const FUZZ_CASES = Number(values['fuzz-cases']);
const SEED = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const CHECK_TIMEOUT_MS = Number(values['check-timeout']) * 1000;
/** The node agent when this checkout has it (`harouterctl agent`), else the direct stand-in. */
const REPORTER = values.reporter ?? (agentAvailable() ? 'agent' : 'direct');
if (REPORTER !== 'agent' && REPORTER !== 'direct') throw new Error('--reporter must be agent or direct');
const faultNames = (values.faults ?? '')
  .split(',')
  .filter(Boolean)
  .map((f) => {
    if (!(FAULT_NAMES as readonly string[]).includes(f))
      throw new Error(`unknown fault ${JSON.stringify(f)}; known: ${FAULT_NAMES.join(', ')}`);
    return f as FaultName;
  });

const NODES = ['node-a', 'node-b', 'node-c', 'node-d'];
const IPS = ['198.51.100.21', '198.51.100.22', '198.51.100.23', '198.51.100.24'];
const log = (message: string, fields: Record<string, unknown> = {}) =>
  console.log(
    `${new Date().toISOString()} ${message}${Object.keys(fields).length ? ` ${JSON.stringify(fields)}` : ''}`,
  );

const dir = values.dir ?? (await mkdtemp(join(tmpdir(), 'harouter-chaos-')));
await mkdir(join(dir, 'logs'), { recursive: true });
log('starting the control plane', { dir, seed: SEED });
const plane = await startControlPlane({ dir });
const cleanups: (() => Promise<void> | void)[] = [() => plane.stop()];
let exitCode = 1;

try {
  const admin = adminHttp(plane.kubeconfigPath, 32);
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  await within('the CRDs to be established and served', installCrds(kc), 120_000);
  for (const ns of [SYSTEM_NAMESPACE, CHAOS_NAMESPACE, ...Object.values(FUZZ_NAMESPACES)])
    await createNamespace(admin, ns);
  for (const [i, node] of NODES.entries()) await setNode(admin, node, true, IPS[i] as string);
  await installReporterRbac(admin);

  // Real tokens: one pod-bound reporter token per node, and the fuzzer's other identities.
  const ca = await import('node:fs/promises').then((fs) => fs.readFile(plane.ca.certPath));
  const client = (token: string, maxSockets = 16) =>
    new KubeHttp({ server: plane.server, ca, credentials: { token }, maxSockets });
  const reporterTokens = new Map<string, string>();
  for (const node of NODES)
    reporterTokens.set(node, await mintToken(admin, SYSTEM_NAMESPACE, REPORTER_SA, node));
  const actors: Record<ActorName, Actor & { token?: string }> = {
    reporterA: { name: 'reporterA', kind: 'reporter', node: 'node-a', token: reporterTokens.get('node-a') },
    reporterB: { name: 'reporterB', kind: 'reporter', node: 'node-b', token: reporterTokens.get('node-b') },
    unbound: {
      name: 'unbound',
      kind: 'reporter',
      token: await mintToken(admin, SYSTEM_NAMESPACE, REPORTER_SA),
    },
    intruder: {
      name: 'intruder',
      kind: 'intruder',
      node: 'node-a',
      token: await mintToken(admin, SYSTEM_NAMESPACE, INTRUDER_SA, 'node-a'),
    },
    admin: { name: 'admin', kind: 'admin' },
    operator: {
      name: 'operator',
      kind: 'operator',
      token: await mintToken(admin, SYSTEM_NAMESPACE, OPERATOR_SA),
    },
    cleanup: {
      name: 'cleanup',
      kind: 'cleanup',
      token: await mintToken(admin, 'kube-system', 'generic-garbage-collector'),
    },
  };
  const clients = Object.fromEntries(
    Object.entries(actors).map(([name, a]) => [
      name,
      {
        http: a.token ? client(a.token) : admin,
        actor: { name: a.name, kind: a.kind, ...(a.node ? { node: a.node } : {}) },
      },
    ]),
  ) as FuzzClients;

  // Two operator replicas serving the webhook behind one URL; the policy for the other modes.
  const operators = new OperatorPair(dir, plane.kubeconfigPath);
  const serving = await issueServingCert({ ca: plane.ca, dir: join(dir, 'webhook-ca-1'), name: 'tls' });
  for (const r of operators.replicas) {
    await mkdir(r.certDir, { recursive: true, mode: 0o700 });
    await copyFile(serving.certPath, join(r.certDir, 'tls.crt'));
    await copyFile(serving.keyPath, join(r.certDir, 'tls.key'));
  }
  await operators.start();
  cleanups.push(() => operators.stop());
  const balancer = await startWebhookBalancer(() => operators.replicas.map((r) => r.webhookPort));
  cleanups.push(() => balancer.close());
  const webhookUrl = `https://127.0.0.1:${balancer.port}/validate`;
  const webhookNamespaces = [CHAOS_NAMESPACE, FUZZ_NAMESPACES.webhook, FUZZ_NAMESPACES.both];
  await applyWebhookConfiguration(admin, webhookUrl, await caBundleOf(plane.ca.certPath), webhookNamespaces);
  await installPolicy(admin, [FUZZ_NAMESPACES.policy, FUZZ_NAMESPACES.both]);
  await operators.ready();
  const firstLeader = await operators.leader();
  log('operators ready', { leader: firstLeader.identity });

  // The storm's routers: three agents each out of four nodes, a selector-less Service each.
  const routers: StormRouter[] = Array.from({ length: ROUTERS }, (_, i) => {
    const agents = [0, 1, 2].map((k) => NODES[(i + k) % NODES.length] as string);
    return {
      id: `c0c0c0c0-0000-4000-8000-${String(i).padStart(12, '0')}`,
      agents,
      master: agents[0] as string,
      primaries: new Set([agents[0] as string]),
    };
  });
  await pool(routers, 16, async (router, i) => {
    const service = `svc-${i}`;
    expectOk(
      `create Service ${service}`,
      await admin.request('POST', `/api/v1/namespaces/${CHAOS_NAMESPACE}/services`, {
        metadata: { name: service, labels: { 'harouter.dev/router': router.id } },
        spec: { clusterIP: 'None', ports: [{ name: 'bgp', port: 179, protocol: 'TCP' }] },
      }),
      [409],
    );
    expectOk(
      `create HARouter ${router.id}`,
      await admin.request('POST', `/apis/${API_VERSION}/namespaces/${CHAOS_NAMESPACE}/${HAROUTER.plural}`, {
        apiVersion: API_VERSION,
        kind: HAROUTER.kind,
        metadata: { name: router.id },
        spec: {
          agents: router.agents.map((name) => ({ name })),
          endpoint: { serviceName: service, ports: [{ name: 'bgp', port: 179 }] },
        },
      }),
      [409],
    );
  });

  const truth = new Truth();
  const reporters = new Map<string, NodeReporter>();
  const agents = new Map<string, AgentReporter>();
  cleanups.push(async () => {
    for (const r of reporters.values()) await r.stop();
  });
  for (const node of NODES) {
    const token = reporterTokens.get(node) as string;
    if (REPORTER === 'agent') {
      const agent = new AgentReporter(node, dir, CHAOS_NAMESPACE);
      reporters.set(node, agent);
      agents.set(node, agent);
      await agent.start(plane.server, plane.ca.certPath, token);
    } else {
      reporters.set(node, new DirectReporter(node, client(token, 8), CHAOS_NAMESPACE));
    }
  }
  log('reporters ready', { reporter: REPORTER });
  const storm = new Storm({ routers, reporters, truth, rate: RATE });
  const history = new RoutingHistory(admin, CHAOS_NAMESPACE);
  history.start();
  cleanups.push(() => history.stop());
  storm.seed();
  const initial = await checkInvariants(admin, CHAOS_NAMESPACE, truth, CHECK_TIMEOUT_MS);
  log('initial state converged', {
    ms: initial.ms,
    reportsLost: initial.reportsLost,
    wrongRoutes: initial.wrongRoutes,
  });
  if (initial.reportsLost + initial.wrongRoutes > 0)
    throw new Error(`the initial state did not converge: ${initial.examples.join('; ')}`);

  storm.start();
  cleanups.push(() => storm.stop());
  const flips = flipNodes(admin, storm, NODES, IPS);
  cleanups.push(() => flips.stop());

  // Fuzz while the storm flows.
  const namespaces: Record<Mode, string> = { ...FUZZ_NAMESPACES };
  const world = await prepareFuzzWorld(admin, clients, namespaces, { a: 'node-a', b: 'node-b', c: 'node-c' });
  for (const mode of Object.keys(namespaces) as Mode[]) {
    await waitUntilGuarded(
      admin,
      clients.reporterA.http,
      namespaces[mode],
      () => ({
        apiVersion: API_VERSION,
        kind: HAROUTER_STATE.kind,
        metadata: { name: `${world.createRouters[0]}.node-a` },
        spec: {
          routerId: world.createRouters[0],
          agent: 'node-a',
          state: 'Primary',
          observedAt: '2026-01-01T00:00:00Z',
        },
      }),
      60_000,
    );
  }
  const routerAgents = new Map<string, string[]>([
    ...world.createRouters.map((r) => [r, ['node-a', 'node-b', 'node-c']] as [string, string[]]),
    ...world.stored.map((s) => [s.spec.routerId, ['node-a', 'node-b']] as [string, string[]]),
    [world.foreignRouter, ['node-c']],
  ]);
  log('fuzzing admission', { cases: FUZZ_CASES, seed: SEED });
  const fuzz: FuzzResult = await runFuzz({
    admin,
    clients,
    namespaces,
    world,
    count: FUZZ_CASES,
    seed: SEED,
    routers: routerAgents,
  });
  for (const example of fuzz.examples) log(`fuzz: ${example}`);
  log('fuzz done', { ...fuzz, examples: undefined });

  // The faults, one after another, each checked.
  const faults: {
    name: FaultName;
    ms: number;
    reportsLost: number;
    wrongRoutes: number;
    evidence?: Evidence;
    error?: string;
  }[] = [];
  for (const name of faultNames) {
    await sleep(3000);
    log(`fault ${name}: injecting`);
    const t0 = Date.now();
    let evidence: Evidence | undefined;
    let error: string | undefined;
    try {
      evidence = await inject(name, {
        plane,
        admin,
        operators,
        storm,
        routers,
        history,
        dir,
        webhookUrl,
        webhookNamespaces,
        agents: REPORTER === 'agent' ? killableAgents(agents) : undefined,
        nodes: NODES,
      });
    } catch (err) {
      error = (err as Error).message;
      log(`fault ${name}: failed`, { error });
    }
    await sleep(3000);
    storm.pause();
    flips.pause();
    await within('the node flip in progress to finish', flips.idle(), 180_000);
    const check = await checkInvariants(admin, CHAOS_NAMESPACE, truth, CHECK_TIMEOUT_MS);
    faults.push({
      name,
      ms: Date.now() - t0,
      reportsLost: check.reportsLost,
      wrongRoutes: check.wrongRoutes,
      ...(evidence ? { evidence } : {}),
      ...(error ? { error } : {}),
    });
    log(`fault ${name}: checked`, { ...check, ms: Date.now() - t0, checkMs: check.ms });
    storm.resume();
    flips.resume();
  }

  storm.pause();
  flips.pause();
  await within('the node flip in progress to finish', flips.idle(), 180_000);
  const final = await checkInvariants(admin, CHAOS_NAMESPACE, truth, CHECK_TIMEOUT_MS);
  log('final check', { ...final });
  const routing = history.judge();
  log('routing history', { ...routing });
  let webhookErrors = 0;
  for (const r of operators.replicas) webhookErrors += await r.countLogLines('webhook request failed');

  const summary = {
    faults: faults.map((f) => ({
      name: f.name,
      ms: f.ms,
      reportsLost: f.reportsLost,
      wrongRoutes: f.wrongRoutes,
      ...(f.error ? { error: f.error } : {}),
      ...(f.evidence ? { evidence: f.evidence } : {}),
    })),
    routers: ROUTERS,
    nodes: NODES.length,
    failovers: storm.failovers,
    reportsSent: truth.sent,
    nodeFlips: flips.count,
    reportsLost: final.reportsLost + faults.reduce((n, f) => n + f.reportsLost, 0),
    wrongRoutes: final.wrongRoutes + faults.reduce((n, f) => n + f.wrongRoutes, 0),
    notReadyRoutes: routing.notReadyRoutes,
    notReadyRaces: routing.notReadyRaces,
    notReadyWithdrawMaxMs: routing.withdrawMaxMs,
    sliceVersionsWatched: routing.sliceVersions,
    acceptedPending: final.acceptedPending,
    faultErrors: faults.filter((f) => f.error).length,
    fuzzCases: fuzz.cases,
    fuzzRequests: fuzz.requests,
    fuzzWronglyAdmitted: fuzz.wronglyAdmitted,
    fuzzWronglyDenied: fuzz.wronglyDenied,
    fuzzUnnamedDenials: fuzz.unnamedDenials,
    fuzzErrors: fuzz.errors,
    fuzzByMode: fuzz.byMode,
    webhookErrors,
    operatorStarts: operators.replicas.reduce((n, r) => n + r.starts, 0),
    reporter: REPORTER,
    agentStarts: [...agents.values()].reduce((n, a) => n + a.starts, 0),
    seed: SEED,
  };
  const failures = [
    summary.reportsLost,
    summary.wrongRoutes,
    summary.notReadyRoutes,
    summary.faultErrors,
    summary.fuzzWronglyAdmitted,
    summary.fuzzWronglyDenied,
    summary.fuzzUnnamedDenials,
    summary.fuzzErrors,
    summary.webhookErrors,
  ].some((n) => n !== 0);
  if (summary.fuzzCases < 10_000)
    log('fewer than 10,000 fuzz cases: this run does not meet the issue', { fuzzCases: summary.fuzzCases });
  exitCode = failures ? 1 : 0;
  for (const cleanup of cleanups.reverse()) await cleanup();
  cleanups.length = 0;
  console.log(JSON.stringify(summary));
} catch (err) {
  console.error(`chaos run failed: ${(err as Error).stack ?? err}`);
  exitCode = 1;
} finally {
  for (const cleanup of cleanups.reverse()) {
    try {
      await cleanup();
    } catch (err) {
      console.error(`cleanup failed: ${(err as Error).message}`);
    }
  }
  if (!values.keep && values.dir === undefined) await rm(dir, { recursive: true, force: true });
  else console.error(`kept ${dir}`);
}
process.exit(exitCode);

function agentAvailable(): boolean {
  const bin = join(import.meta.dirname, '../../bin/harouterctl.js');
  return spawnSync(process.execPath, [bin, 'agent', '--help'], { encoding: 'utf8' }).status === 0;
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/**
 * Node NotReady flips in the stream: every 20 s one node (in turn) stops being a
 * new master for 2 s (so that no failover towards it is in flight), goes
 * NotReady while the routers it masters fail over and its own keepalived,
 * isolated, keeps claiming master; 10 s later it is Ready again and steps down.
 */
function flipNodes(admin: KubeHttp, storm: Storm, nodes: string[], ips: string[]) {
  let paused = false;
  let stopped = false;
  let busy: Promise<void> = Promise.resolve();
  let turn = 0;
  const state = { count: 0 };
  const flipOne = async () => {
    const i = turn++ % nodes.length;
    const node = nodes[i] as string;
    storm.quiet(node);
    await sleep(2000);
    await setNode(admin, node, false, ips[i] as string).catch(() => undefined);
    storm.isolate(node);
    state.count++;
    await sleep(10_000);
    // Ready again, retried through faults: a node must not stay NotReady by accident.
    await waitFor(
      `Node ${node} to be set Ready again`,
      async () =>
        await setNode(admin, node, true, ips[i] as string).then(
          () => true,
          () => false,
        ),
      120_000,
    );
    storm.rejoin(node);
    storm.unquiet(node);
  };
  const timer = setInterval(() => {
    if (paused || stopped) return;
    busy = busy.then(flipOne, flipOne);
  }, 20_000);
  return {
    get count() {
      return state.count;
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
    },
    idle: () => busy,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await busy;
    },
  };
}
