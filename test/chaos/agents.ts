/**
 * One real node agent (`harouterctl agent`) per node, fed the way keepalived
 * feeds it: lines `INSTANCE "<routerId>" MASTER 100` written into the node's
 * notify FIFO. The run holds each FIFO open read-write, as keepalived holds its
 * own, so that lines written while an agent is down wait in the pipe for the
 * restarted agent. An agent that exits is started again after a second (a
 * DaemonSet's Pod would be); its spool directory survives.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, constants, createWriteStream, openSync, type WriteStream, writeSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReportedState } from '../../src/api/index.ts';
import { freePort, writeKubeconfig } from '../../src/local/controlplane/index.ts';
import { NODE, REPO } from '../support/paths.ts';
import type { KillableAgents } from './faults.ts';
import { waitFor, within } from './http.ts';
import type { NodeReporter } from './storm.ts';

const BIN = join(REPO, 'bin', 'harouterctl.js');

/** keepalived's words for the reported states. */
const KEEPALIVED_STATE: Record<ReportedState, string> = {
  Primary: 'MASTER',
  Backup: 'BACKUP',
  Fault: 'FAULT',
  Stopped: 'STOP',
};

/** One node's agent process and the FIFO the run writes into. */
export class AgentReporter implements NodeReporter {
  readonly node: string;
  readonly fifo: string;
  readonly stateDir: string;
  readonly kubeconfig: string;
  readonly logPath: string;
  metricsPort = 0;
  starts = 0;
  #fd: number | undefined;
  readonly #backlog: string[] = [];
  #flushTimer: NodeJS.Timeout | undefined;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #stopping = false;
  readonly #log: WriteStream;
  readonly #namespace: string;

  constructor(node: string, dir: string, namespace: string) {
    this.node = node;
    const home = join(dir, 'agents', node);
    this.fifo = join(home, 'run', 'notify.fifo');
    this.stateDir = join(home, 'spool');
    this.kubeconfig = join(home, 'reporter.kubeconfig');
    this.logPath = join(dir, 'logs', `agent-${node}.log`);
    this.#log = createWriteStream(this.logPath, { flags: 'a' });
    this.#namespace = namespace;
  }

  /** Writes the node's kubeconfig (pod-bound token), starts the agent, and opens the FIFO once it exists. */
  async start(server: string, caCertPath: string, token: string): Promise<void> {
    await mkdir(join(this.fifo, '..'), { recursive: true, mode: 0o700 });
    await chmod(join(this.fifo, '..'), 0o700);
    await mkdir(this.stateDir, { recursive: true, mode: 0o700 });
    await writeKubeconfig({
      path: this.kubeconfig,
      server,
      caCertPath,
      user: { token },
      namespace: this.#namespace,
      userName: `reporter-${this.node}`,
    });
    this.metricsPort = await freePort();
    this.#spawn();
    await waitFor(`the agent of ${this.node} to be ready`, () => this.ready(), 60_000);
    this.#fd = openSync(this.fifo, constants.O_RDWR | constants.O_NONBLOCK);
  }

  #spawn(): void {
    this.starts++;
    this.#log.write(`\n--- start ${this.starts} at ${new Date().toISOString()} ---\n`);
    const child = spawn(
      NODE,
      [
        BIN,
        'agent',
        `--fifo=${this.fifo}`,
        `--state-dir=${this.stateDir}`,
        `--kubeconfig=${this.kubeconfig}`,
        `--namespace=${this.#namespace}`,
        `--agent=${this.node}`,
        `--metrics-bind-address=127.0.0.1:${this.metricsPort}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
    );
    child.stdout?.pipe(this.#log, { end: false });
    child.stderr?.pipe(this.#log, { end: false });
    this.#child = child;
    this.#exited = new Promise((done) =>
      child.on('exit', (code, signal) => {
        this.#log.write(`--- exit ${code ?? signal} at ${new Date().toISOString()} ---\n`);
        done();
        if (!this.#stopping && this.#child === child) setTimeout(() => this.#spawn(), 1000);
      }),
    );
  }

  async ready(): Promise<boolean> {
    try {
      return (
        await fetch(`http://127.0.0.1:${this.metricsPort}/readyz`, { signal: AbortSignal.timeout(3000) })
      ).ok;
    } catch {
      return false;
    }
  }

  /** One value of the agent's metrics (summed over series whose labels contain `labels`). */
  async metric(name: string, labels = ''): Promise<number | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, {
        signal: AbortSignal.timeout(3000),
      });
      let sum = 0;
      for (const line of (await res.text()).split('\n')) {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
        if (m && m[1] === name && (m[2] ?? '').includes(labels)) sum += Number(m[3]);
      }
      return sum;
    } catch {
      return undefined;
    }
  }

  send(routerId: string, state: ReportedState): void {
    this.#backlog.push(`INSTANCE "${routerId}" ${KEEPALIVED_STATE[state]} 100\n`);
    this.#flush();
  }

  /** Writes what the pipe takes now; the rest waits (a full pipe: keepalived would block). */
  #flush(): void {
    if (this.#fd === undefined) return;
    while (this.#backlog.length > 0) {
      const line = this.#backlog[0] as string;
      try {
        writeSync(this.#fd, line);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
        this.#flushTimer ??= setTimeout(() => {
          this.#flushTimer = undefined;
          this.#flush();
        }, 20);
        return;
      }
      this.#backlog.shift();
    }
  }

  /** SIGKILLs the agent; it is started again a second later. */
  kill(): void {
    this.#child?.kill('SIGKILL');
  }

  exited(): Promise<void> {
    return this.#exited;
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    this.#child?.kill('SIGTERM');
    const timer = setTimeout(() => this.#child?.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
    if (this.#flushTimer) clearTimeout(this.#flushTimer);
    if (this.#fd !== undefined) closeSync(this.#fd);
    await new Promise<void>((done) => this.#log.end(done));
  }
}

/** The agents as the agent-kill fault needs them. */
export function killableAgents(agents: ReadonlyMap<string, AgentReporter>): KillableAgents {
  return {
    async killWithBacklog(node, burst) {
      const agent = agents.get(node);
      if (!agent) throw new Error(`no agent on ${node}`);
      const starts = agent.starts;
      burst();
      // Kill once the agent has read lines it has not delivered yet (or after 2 s, whatever it holds then).
      let pending = 0;
      await waitFor(
        `the agent of ${node} to hold undelivered lines`,
        async () => {
          pending = (await agent.metric('harouter_agent_pending_routers')) ?? 0;
          return pending > 0;
        },
        2000,
        10,
      ).catch(() => undefined);
      agent.kill();
      await within(`the agent of ${node} to exit after SIGKILL`, agent.exited(), 30_000);
      await waitFor(`the agent of ${node} to be restarted`, async () => agent.starts > starts, 30_000);
      await waitFor(`the restarted agent of ${node} to be ready`, () => agent.ready(), 60_000);
      return { pendingAtKill: pending };
    },
  };
}
