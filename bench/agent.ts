/**
 * Node agent benchmark (not a test): how fast one `harouterctl agent` turns a
 * burst of keepalived transitions into stored HARouterStates, against a local
 * environment (real etcd + kube-apiserver, the operator and its webhook in the
 * path, pod-bound reporter tokens), compared in the same run with
 *  - the floor: an independent tight client (bench/tight-client.ts, not the
 *    agent's sender) storing the same node-a reports with node-a's token at the
 *    agent's concurrency; measured before and after each agent phase, the best
 *    of those is the floor;
 *  - 50 `harouterctl report` processes started at once (a process per
 *    transition), the compiled CLI with the agent's Node flags, with each
 *    process's CPU time beside the wall time.
 * Every phase's clock stops when a watch on the API server (bench/delivery-watch.ts)
 * has seen every report with an `observedAt` from that phase, not when the writer
 * says it is done; a report never seen is `missing`, and any missing report makes
 * the benchmark exit 1. The agent runs as the chart runs it (compiled to
 * JavaScript, `src/compile.ts`, with the DaemonSet's Node flags) and as a checkout
 * runs it (`node bin/harouterctl.js agent`, the TypeScript sources, no flags).
 * Phases alternate the stored state (Backup, Primary), so every write is an update
 * of an existing report. Prints one JSON line per N.
 *
 *   npm run bench:agent -- [--transitions 1000,10000] [--as chart,checkout] [--node-flags '...'] [--keep]
 */
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { AGENT_DEFAULTS, AGENT_NODE_FLAGS } from '../src/agent/defaults.ts';
import { freePort } from '../src/local/controlplane/index.ts';
import { startLocal } from '../src/local/environment.ts';
import { SAMPLE_NAMESPACE } from '../src/local/sample.ts';
import {
  type AgentProgram,
  createRouters,
  FifoWriter,
  routerIds,
  startAgentProcess,
  until,
} from '../test/support/agent-process.ts';
import { NODE, REPO } from '../test/support/paths.ts';
import { pool } from '../test/support/pool.ts';
import { compileForBenchmark } from './compiled.ts';
import { DeliveryWatch, MissingReports, nanosRfc3339, wallNanos } from './delivery-watch.ts';
import { TightClient } from './tight-client.ts';
import { ownCpuMs, runTimed } from './timed-process.ts';

const { values } = parseArgs({
  options: {
    transitions: { type: 'string', default: '1000,10000' },
    as: { type: 'string', default: 'chart,checkout' },
    processes: { type: 'string', default: '50' },
    'node-flags': { type: 'string', default: AGENT_NODE_FLAGS.join(' ') },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = (values.transitions ?? '1000').split(',').map(Number);
const programs = (values.as ?? 'chart').split(',') as ('chart' | 'checkout')[];
for (const p of programs)
  if (p !== 'chart' && p !== 'checkout') throw new Error(`--as: chart or checkout, not ${p}`);
const processes = Number(values.processes);
const nodeFlags = (values['node-flags'] ?? '').split(/\s+/).filter(Boolean);
const MiB = 1024 * 1024;
const AGENT = 'node-a';
/** Longest a phase may take before its unseen reports count as missing. */
const PHASE_TIMEOUT_MS = 600_000;

/** VmRSS and VmHWM (peak) of a process, in MiB, from /proc. */
async function memory(pid: number): Promise<{ rss: number; peak: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) =>
    Number(/\s(\d+) kB/.exec(status.split('\n').find((l) => l.startsWith(key)) ?? '')?.[1] ?? 0);
  return { rss: (kib('VmRSS:') * 1024) / MiB, peak: (kib('VmHWM:') * 1024) / MiB };
}

/** Waits until the operator's work queue stays empty for a second (its reconciles would skew the timings). */
async function operatorSettled(metricsPort: number): Promise<void> {
  let emptySince = 0;
  await until('the operator to settle', 600_000, async () => {
    // Local mode restarts an operator that exits: an unanswered scrape is "not settled yet".
    const text = await fetch(`http://127.0.0.1:${metricsPort}/metrics`)
      .then((r) => r.text())
      .catch(() => undefined);
    if (text === undefined) return false;
    const depth = Number(/^workqueue_depth\{name="harouter"\} (\d+)/m.exec(text)?.[1] ?? 0);
    if (depth > 0) {
      emptySince = 0;
      return false;
    }
    emptySince ||= performance.now();
    return performance.now() - emptySince > 1000;
  });
}

const round = (n: number, digits = 1) => Number(n.toFixed(digits));

/** What one timed phase measured: its time to the last report seen, and the reports never seen. */
interface Phase {
  ms: number;
  missing: number;
}

/** Waits for the watch to see `ids` in `state` from `since`; a timeout gives the count never seen. */
async function delivered(
  watch: DeliveryWatch,
  agent: string,
  ids: readonly string[],
  state: string,
  since: bigint,
  started: number,
): Promise<Phase> {
  try {
    await watch.waitFor(agent, ids, state, since, PHASE_TIMEOUT_MS);
    return { ms: performance.now() - started, missing: 0 };
  } catch (error) {
    if (error instanceof MissingReports) return { ms: performance.now() - started, missing: error.missing };
    throw error;
  }
}

/** The floor: the tight client stores node-a's report of every router in `state`. */
async function floorPhase(
  kubeconfig: string,
  watch: DeliveryWatch,
  ids: readonly string[],
  state: string,
): Promise<Phase & { failures: number }> {
  const client = new TightClient(kubeconfig, SAMPLE_NAMESPACE, AGENT_DEFAULTS.concurrency);
  let failures = 0;
  const since = wallNanos();
  const started = performance.now();
  await pool(ids, AGENT_DEFAULTS.concurrency, async (router, i) => {
    const observedAt = nanosRfc3339(since + BigInt(i));
    const status = await client.apply({ router, agent: AGENT, state, observedAt }).catch(() => 0);
    if (status !== 200 && status !== 201) failures++;
  });
  const phase = await delivered(watch, AGENT, ids, state, since, started);
  client.close();
  return { ...phase, failures };
}

/** The agent, run as `program`: every router's line written at once into its FIFO. */
async function agentPhase(
  home: string,
  kubeconfig: string,
  program: AgentProgram,
  watch: DeliveryWatch,
  ids: readonly string[],
): Promise<Phase & { peakRssMiB: number; idleRssMiB: number; cpuMsPerReport: number }> {
  await mkdir(join(home, 'run'), { recursive: true });
  await chmod(join(home, 'run'), 0o700);
  const fifo = join(home, 'run', 'notify.fifo');
  const agent = startAgentProcess(
    [
      `--fifo=${fifo}`,
      `--state-dir=${join(home, 'spool')}`,
      `--kubeconfig=${kubeconfig}`,
      `--agent=${AGENT}`,
      '--log-level=warn',
    ],
    await freePort(),
    {},
    program,
  );
  await agent.ready();
  const writer = new FifoWriter(fifo);
  await writer.open();
  const pid = agent.child.pid as number;
  await new Promise((r) => setTimeout(r, 1000));
  const idle = await memory(pid);
  const cpuBefore = await ownCpuMs(pid);
  const lines = ids.map((id) => `INSTANCE "${id}" MASTER 100\n`).join('');
  const since = wallNanos();
  const started = performance.now();
  await writer.write(lines);
  const phase = await delivered(watch, AGENT, ids, 'Primary', since, started);
  const peak = await memory(pid);
  const cpuMs = (await ownCpuMs(pid)) - cpuBefore;
  await writer.close();
  agent.child.kill('SIGTERM');
  await agent.exited;
  return {
    ...phase,
    peakRssMiB: round(peak.peak),
    idleRssMiB: round(idle.rss),
    cpuMsPerReport: round(cpuMs / ids.length, 3),
  };
}

/** A process per transition: `processes` compiled `harouterctl report` runs for node-c, started at once. */
async function perExecPhase(bin: string, kubeconfig: string, watch: DeliveryWatch, ids: readonly string[]) {
  const since = wallNanos();
  const started = performance.now();
  const costs = await Promise.all(
    ids.map((id) =>
      runTimed(NODE, [
        ...nodeFlags,
        bin,
        'report',
        `--kubeconfig=${kubeconfig}`,
        '--router',
        id,
        '--agent',
        'node-c',
        'INSTANCE',
        id,
        'MASTER',
        '100',
      ]),
    ),
  );
  const phase = await delivered(watch, 'node-c', ids, 'Primary', since, started);
  const cpu = costs.map((c) => c.cpuMs);
  return {
    ...phase,
    failures: costs.filter((c) => c.code !== 0).length,
    cpuMsPerProcess: round(cpu.reduce((a, b) => a + b, 0) / cpu.length),
    wallMsPerProcess: round(costs.reduce((a, c) => a + c.wallMs, 0) / costs.length),
  };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-agent-'));
  const env = await startLocal({
    dir: join(dir, 'local'),
    logLevel: 'warn',
    freePorts: true,
    print: () => undefined,
  });
  const admin = new KubeConfig();
  admin.loadFromFile(env.adminKubeconfig);
  const compiled = await compileForBenchmark(join(dir, 'dist'));
  const programOf: Record<'chart' | 'checkout', AgentProgram> = {
    chart: { bin: join(compiled, 'bin', 'harouterctl.js'), nodeArgs: nodeFlags },
    checkout: { bin: join(REPO, 'bin', 'harouterctl.js') },
  };
  const watch = new DeliveryWatch(admin, SAMPLE_NAMESPACE);
  await watch.start();
  const nodeA = env.reporterKubeconfigs[AGENT] as string;
  let anyMissing = false;
  try {
    for (const n of sizes) {
      const ids = routerIds(n);
      await createRouters(admin, SAMPLE_NAMESPACE, ids, ['node-a', 'node-b', 'node-c']);
      // Every timed write is then an update: the floor creates node-a's reports first, untimed.
      const created = await floorPhase(nodeA, watch, ids, 'Stopped');
      await operatorSettled(env.ports.metrics);

      const floors: (Phase & { failures: number })[] = [];
      const agents: Record<string, Awaited<ReturnType<typeof agentPhase>>> = {};
      for (const name of programs) {
        floors.push(await floorPhase(nodeA, watch, ids, 'Backup'));
        await operatorSettled(env.ports.metrics);
        agents[name] = await agentPhase(join(dir, `agent-${n}-${name}`), nodeA, programOf[name], watch, ids);
        await operatorSettled(env.ports.metrics);
      }
      floors.push(await floorPhase(nodeA, watch, ids, 'Backup'));
      await operatorSettled(env.ports.metrics);
      const perExec = await perExecPhase(
        programOf.chart.bin,
        env.reporterKubeconfigs['node-c'] as string,
        watch,
        ids.slice(0, processes),
      );
      await operatorSettled(env.ports.metrics);

      const floorMs = Math.min(...floors.map((f) => f.ms));
      const missing =
        created.missing +
        perExec.missing +
        floors.reduce((a, f) => a + f.missing, 0) +
        Object.values(agents).reduce((a, p) => a + p.missing, 0);
      anyMissing ||= missing > 0;
      const byProgram = Object.fromEntries(
        Object.entries(agents).map(([name, p]) => [
          name,
          {
            agentMs: Math.round(p.ms),
            agentVsFloor: round(p.ms / floorMs, 2),
            peakRssMiB: p.peakRssMiB,
            idleRssMiB: p.idleRssMiB,
            cpuMsPerReport: p.cpuMsPerReport,
            missing: p.missing,
          },
        ]),
      );
      const reference = agents.chart ?? Object.values(agents)[0];
      console.log(
        JSON.stringify({
          transitions: n,
          ...byProgram,
          agentConcurrency: AGENT_DEFAULTS.concurrency,
          missing,
          floorMs: Math.round(floorMs),
          floorRunsMs: floors.map((f) => Math.round(f.ms)),
          floorWritesPerSecond: Math.round((n / floorMs) * 1000),
          floorFailures: floors.reduce((a, f) => a + f.failures, 0),
          perExecReports: perExec.missing === 0 ? processes : processes - perExec.missing,
          perExecMs: Math.round(perExec.ms),
          perExecFailures: perExec.failures,
          perExecCpuMsPerProcess: perExec.cpuMsPerProcess,
          perExecWallMsPerProcess: perExec.wallMsPerProcess,
          ...(reference
            ? {
                perReportSpeedup: round(perExec.ms / processes / (reference.ms / n), 1),
                perReportCpuRatio: round(perExec.cpuMsPerProcess / reference.cpuMsPerReport, 1),
              }
            : {}),
        }),
      );
    }
  } finally {
    watch.stop();
    await env.stop();
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
  if (anyMissing) {
    console.error('bench:agent: reports were missing (the JSON lines say how many): failing');
    process.exitCode = 1;
  }
}

await main();
