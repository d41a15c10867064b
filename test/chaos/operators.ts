/**
 * Two `harouter-operator` processes with leader election, as a Deployment with
 * two replicas would run them: each serves the webhook, metrics and probes; a
 * replica that exits (a lost lease ends the process with code 1; the chaos run
 * SIGKILLs leaders) is started again after a second, as the kubelet would. A
 * TCP load balancer in front of both webhooks plays the Service: the API server
 * calls one URL, the connection goes to a replica that accepts it.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { freePort } from '../../src/local/controlplane/index.ts';
import { NODE, REPO } from '../support/paths.ts';
import { waitFor } from './http.ts';
import { OPERATOR_SA, REPORTER_SA, SYSTEM_NAMESPACE } from './setup.ts';

const BIN = join(REPO, 'bin', 'harouter-operator.js');

/** Plain-HTTP metrics where the operator can serve them securely (the run scrapes them without a token). */
const PLAIN_METRICS = spawnSync(NODE, [BIN, '--help'], { encoding: 'utf8' }).stdout.includes(
  '--metrics-secure',
)
  ? ['--metrics-secure=false']
  : [];

/** The Lease both replicas campaign for. */
export const LEASE_NAME = 'harouter-operator';

/** One replica: its ports and its current process (replaced when it restarts). */
export class Replica {
  readonly identity: string;
  readonly certDir: string;
  readonly logPath: string;
  metricsPort = 0;
  probePort = 0;
  webhookPort = 0;
  /** Times the process was started. */
  starts = 0;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log: WriteStream;
  #stopping = false;
  readonly #args: () => string[];

  constructor(identity: string, dir: string, kubeconfig: string) {
    this.identity = identity;
    this.certDir = join(dir, `certs-${identity}`);
    this.logPath = join(dir, 'logs', `${identity}.log`);
    this.#log = createWriteStream(this.logPath, { flags: 'a' });
    this.#args = () => [
      BIN,
      `--kubeconfig=${kubeconfig}`,
      `--metrics-bind-address=127.0.0.1:${this.metricsPort}`,
      `--health-probe-bind-address=127.0.0.1:${this.probePort}`,
      `--webhook-bind-address=127.0.0.1:${this.webhookPort}`,
      `--cert-dir=${this.certDir}`,
      `--leader-election-namespace=${SYSTEM_NAMESPACE}`,
      `--leader-election-id=${LEASE_NAME}`,
      `--identity=${identity}`,
      `--reporter-service-accounts=${SYSTEM_NAMESPACE}/${REPORTER_SA}`,
      `--operator-service-account=${SYSTEM_NAMESPACE}/${OPERATOR_SA}`,
      '--log-level=info',
      ...PLAIN_METRICS,
    ];
  }

  /** Starts the process (ports chosen on the first start and kept, as a Pod's would be). */
  async start(): Promise<void> {
    if (this.metricsPort === 0) {
      this.metricsPort = await freePort();
      this.probePort = await freePort();
      this.webhookPort = await freePort();
    }
    this.starts++;
    this.#log.write(`\n--- start ${this.starts} at ${new Date().toISOString()} ---\n`);
    const child = spawn(NODE, this.#args(), {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH ?? '' },
    });
    child.stdout?.pipe(this.#log, { end: false });
    child.stderr?.pipe(this.#log, { end: false });
    this.#child = child;
    this.#exited = new Promise((done) =>
      child.on('exit', (code, signal) => {
        this.#log.write(`--- exit ${code ?? signal} at ${new Date().toISOString()} ---\n`);
        done();
        // Restarted like a Pod's container, unless the run is stopping it or a fault restarts it itself.
        if (!this.#stopping && this.#child === child) setTimeout(() => void this.start(), 1000);
      }),
    );
  }

  /** Sends a signal to the running process. */
  kill(signal: NodeJS.Signals): void {
    this.#child?.kill(signal);
  }

  /** Resolves when the current process has exited. */
  exited(): Promise<void> {
    return this.#exited;
  }

  /** One value of a metric on this replica's /metrics (summed over series), or undefined when unreachable. */
  async metric(name: string): Promise<number | undefined> {
    try {
      const res = await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`, {
        signal: AbortSignal.timeout(3000),
      });
      let sum = 0;
      for (const line of (await res.text()).split('\n')) {
        const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
        if (m && m[1] === name) sum += Number(m[3]);
      }
      return sum;
    } catch {
      return undefined;
    }
  }

  async isLeader(): Promise<boolean> {
    return (await this.metric('leader_election_master_status')) === 1;
  }

  async isReady(): Promise<boolean> {
    try {
      return (await fetch(`http://127.0.0.1:${this.probePort}/readyz`, { signal: AbortSignal.timeout(3000) }))
        .ok;
    } catch {
      return false;
    }
  }

  /** Stops for good (SIGTERM: the leader releases its Lease). */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.kill('SIGTERM');
    const timer = setTimeout(() => this.kill('SIGKILL'), 10_000);
    await this.#exited;
    clearTimeout(timer);
    await new Promise<void>((done) => this.#log.end(done));
  }

  /** Counts lines of this replica's log (every incarnation) that contain `text`. */
  async countLogLines(text: string): Promise<number> {
    const log = await readFile(this.logPath, 'utf8').catch(() => '');
    return log.split('\n').filter((l) => l.includes(text)).length;
  }
}

/** The two replicas, and which of them leads. */
export class OperatorPair {
  readonly replicas: [Replica, Replica];

  constructor(dir: string, kubeconfig: string) {
    this.replicas = [new Replica('operator-1', dir, kubeconfig), new Replica('operator-2', dir, kubeconfig)];
  }

  async start(): Promise<void> {
    for (const r of this.replicas) await r.start();
  }

  /** The replica that reports leading; waits (naming what for) up to `timeoutMs`. */
  async leader(timeoutMs = 60_000): Promise<Replica> {
    let found: Replica | undefined;
    await waitFor(
      'an operator replica to lead',
      async () => {
        for (const r of this.replicas) if (await r.isLeader()) found = r;
        return found !== undefined;
      },
      timeoutMs,
    );
    return found as Replica;
  }

  /** Waits until both replicas are ready (caches synced, webhook serving). */
  async ready(timeoutMs = 90_000): Promise<void> {
    for (const r of this.replicas) await waitFor(`${r.identity} /readyz`, () => r.isReady(), timeoutMs);
  }

  async stop(): Promise<void> {
    await Promise.all(this.replicas.map((r) => r.stop()));
  }
}

/**
 * A TCP load balancer on 127.0.0.1 for the replicas' webhook ports: each
 * connection goes to the next backend, or to the other one when the first
 * refuses (a replica restarting), as kube-proxy with ready endpoints would.
 */
export async function startWebhookBalancer(
  backends: () => number[],
): Promise<{ port: number; close(): Promise<void> }> {
  let next = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.pause();
    const ports = backends();
    const tryBackend = (attempt: number) => {
      if (attempt >= ports.length) {
        client.destroy();
        return;
      }
      const port = ports[(next + attempt) % ports.length] as number;
      const upstream = connect(port, '127.0.0.1');
      const retry = () => tryBackend(attempt + 1);
      upstream.once('error', retry);
      upstream.once('connect', () => {
        upstream.off('error', retry);
        sockets.add(upstream);
        upstream.on('close', () => sockets.delete(upstream));
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
      });
    };
    next++;
    tryBackend(0);
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    close: () =>
      new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
  };
}
