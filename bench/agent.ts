/**
 * Node agent benchmark (not a test): how fast one `harouterctl agent` turns a
 * burst of keepalived transitions into stored HARouterStates, against a local
 * environment (real etcd + kube-apiserver, the operator and its webhook in the
 * path), compared in the same run with
 *  - 50 `harouterctl report` processes started at once (a process per
 *    transition; more would not fit in memory), and
 *  - the API server's write floor: a tight client applying the same number of
 *    reports over kept-alive connections at the agent's concurrency.
 * The HARouters are created first (the webhook's membership rule), and the
 * operator is let settle before each phase. The FIFO writer holds the FIFO open
 * as keepalived does and writes all N lines at once. The agent runs as the
 * chart runs it: compiled to JavaScript (`src/compile.ts`, as in the image) with
 * the DaemonSet's Node flags. Prints one JSON line per N.
 *
 *   npm run bench:agent -- [--transitions 1000,10000] [--node-flags '...'] [--keep]
 */
import { spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { AGENT_DEFAULTS, AGENT_NODE_FLAGS } from '../src/agent/defaults.ts';
import { createSender } from '../src/agent/sender.ts';
import { formatObservedAt } from '../src/api/index.ts';
import { freePort } from '../src/local/controlplane/index.ts';
import { startLocal } from '../src/local/environment.ts';
import { SAMPLE_NAMESPACE } from '../src/local/sample.ts';
import { processClock } from '../src/report/clock.ts';
import { loadTransport } from '../src/report/kubeconfig.ts';
import { reportObject } from '../src/report/object.ts';
import {
  createRouters,
  FifoWriter,
  readStates,
  routerIds,
  startAgentProcess,
  until,
} from '../test/support/agent-process.ts';
import { NODE, REPO } from '../test/support/paths.ts';
import { pool } from '../test/support/pool.ts';
import { compileForBenchmark } from './compiled.ts';

const { values } = parseArgs({
  options: {
    transitions: { type: 'string', default: '1000,10000' },
    processes: { type: 'string', default: '50' },
    'node-flags': { type: 'string', default: AGENT_NODE_FLAGS.join(' ') },
    keep: { type: 'boolean', default: false },
  },
});
const sizes = (values.transitions ?? '1000').split(',').map(Number);
const processes = Number(values.processes);
const CLI = join(REPO, 'bin', 'harouterctl.js');
const MiB = 1024 * 1024;

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
  const program = {
    bin: join(compiled, 'bin', 'harouterctl.js'),
    nodeArgs: (values['node-flags'] ?? '').split(/\s+/).filter(Boolean),
  };
  try {
    for (const n of sizes) {
      const ids = routerIds(n);
      await createRouters(admin, SAMPLE_NAMESPACE, ids, ['node-a', 'node-b', 'node-c']);
      await operatorSettled(env.ports.metrics);

      // The agent: node-a's reports of N routers, written at once into its FIFO.
      const home = join(dir, `agent-${n}`);
      await mkdir(join(home, 'run'), { recursive: true });
      await chmod(join(home, 'run'), 0o700);
      const fifo = join(home, 'run', 'notify.fifo');
      const agent = startAgentProcess(
        [
          `--fifo=${fifo}`,
          `--state-dir=${join(home, 'spool')}`,
          `--kubeconfig=${env.reporterKubeconfigs['node-a']}`,
          '--agent=node-a',
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
      const lines = ids.map((id) => `INSTANCE "${id}" MASTER 100\n`).join('');
      const agentStart = performance.now();
      await writer.write(lines);
      await until('the agent to store every report', 600_000, async () => {
        const done =
          (await agent.metric('harouter_agent_reports_total{result="applied"}')) +
          (await agent.metric('harouter_agent_reports_total{result="stale"}'));
        return done >= n;
      });
      const agentMs = performance.now() - agentStart;
      const agentMemory = await memory(pid);
      const stored = await readStates(admin, SAMPLE_NAMESPACE, 'node-a');
      const missing = ids.filter((id) => stored.get(id)?.state !== 'Primary').length;
      await writer.close();
      agent.child.kill('SIGTERM');
      await agent.exited;
      await operatorSettled(env.ports.metrics);

      // A process per transition: `processes` harouterctl report runs for node-c, started at once.
      const execStart = performance.now();
      const codes = await Promise.all(
        ids.slice(0, processes).map(
          (id) =>
            new Promise<number | null>((done) => {
              const child = spawn(
                NODE,
                [
                  CLI,
                  'report',
                  `--kubeconfig=${env.reporterKubeconfigs['node-c']}`,
                  '--router',
                  id,
                  '--agent',
                  'node-c',
                  'INSTANCE',
                  id,
                  'MASTER',
                  '100',
                ],
                { stdio: 'ignore' },
              );
              child.on('exit', (code) => done(code));
            }),
        ),
      );
      const perExecMs = performance.now() - execStart;
      const execFailures = codes.filter((code) => code !== 0).length;
      await operatorSettled(env.ports.metrics);

      // The floor: node-b's N reports from a tight kept-alive client at the agent's concurrency.
      const floorConcurrency = AGENT_DEFAULTS.concurrency;
      const sender = createSender(await loadTransport(env.reporterKubeconfigs['node-b']), {
        maxSockets: floorConcurrency,
        timeoutMs: 30_000,
      });
      const clock = processClock();
      let floorFailures = 0;
      const floorStart = performance.now();
      await pool(ids, floorConcurrency, async (id) => {
        const object = reportObject(
          { router: id, agent: 'node-b', state: 'Backup' },
          SAMPLE_NAMESPACE,
          formatObservedAt(clock.nowNanos()),
        );
        const outcome = await sender.apply(object);
        if (outcome.kind !== 'applied') floorFailures++;
      });
      const floorMs = performance.now() - floorStart;
      sender.close();
      await operatorSettled(env.ports.metrics);

      console.log(
        JSON.stringify({
          transitions: n,
          agentMs: Math.round(agentMs),
          agentMsPerReport: round(agentMs / n, 3),
          agentPeakRssMiB: round(agentMemory.peak),
          agentIdleRssMiB: round(idle.rss),
          agentConcurrency: AGENT_DEFAULTS.concurrency,
          missing,
          perExecReports: processes,
          perExecMs: Math.round(perExecMs),
          perExecMsPerReport: round(perExecMs / processes, 1),
          perExecFailures: execFailures,
          perReportSpeedup: round(perExecMs / processes / (agentMs / n), 1),
          floorMs: Math.round(floorMs),
          floorWritesPerSecond: Math.round((n / floorMs) * 1000),
          floorConcurrency,
          floorFailures,
          agentVsFloor: round(agentMs / floorMs, 2),
        }),
      );
    }
  } finally {
    await env.stop();
    if (!values.keep) await rm(dir, { recursive: true, force: true });
  }
}

await main();
