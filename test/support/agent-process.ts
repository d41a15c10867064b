/**
 * Driving a real `harouterctl agent` process the way a node does: the process
 * itself, a writer that holds the notify FIFO open as keepalived does, and the
 * HARouters and HARouterStates around it. Used by the agent's integration tests
 * and by `npm run bench:agent`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { CustomObjectsApi, type KubeConfig, Watch } from '@kubernetes/client-node';
import { compareObservedAt, GROUP, HAROUTER, HAROUTER_STATE, VERSION } from '../../src/api/index.ts';
import { NODE, REPO } from './paths.ts';
import { pool } from './pool.ts';

const BIN = join(REPO, 'bin', 'harouterctl.js');

/** Waits until `check` is true, polling every 50 ms; rejects naming `what` after `timeoutMs`. */
export async function until(
  what: string,
  timeoutMs: number,
  check: () => boolean | Promise<boolean>,
): Promise<void> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A running `harouterctl agent`. */
export interface AgentProcess {
  readonly child: ChildProcess;
  /** Everything it wrote on stderr so far (JSON log lines). */
  stderr(): string;
  /** Resolves with the exit code (or the signal's name). */
  readonly exited: Promise<number | string>;
  /** The `/metrics` text. */
  metrics(): Promise<string>;
  /** A counter or gauge value from `/metrics` (`name{labels}` exactly as printed). */
  metric(series: string): Promise<number>;
  /** Resolves once `/readyz` answers 200. */
  ready(timeoutMs?: number): Promise<void>;
}

/** Which harouterctl to run: the checkout's sources by default, or a compiled copy (`npm run build`) with Node flags. */
export interface AgentProgram {
  bin: string;
  nodeArgs?: string[];
}

/** Starts `harouterctl agent` with `args`, its metrics, health and readiness on `127.0.0.1:<metricsPort>`. */
export function startAgentProcess(
  args: string[],
  metricsPort: number,
  env: Record<string, string> = {},
  program: AgentProgram = { bin: BIN },
): AgentProcess {
  const command = [...(program.nodeArgs ?? []), program.bin, 'agent', ...args];
  const child = spawn(NODE, [...command, `--metrics-bind-address=127.0.0.1:${metricsPort}`], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const exited = new Promise<number | string>((done) =>
    child.on('exit', (code, signal) => done(code ?? signal ?? 'unknown')),
  );
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  const metrics = async () => (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return {
    child,
    stderr: () => stderr,
    exited,
    metrics,
    async metric(series) {
      const line = (await metrics()).split('\n').find((l) => l.startsWith(`${series} `));
      if (line === undefined) throw new Error(`no series ${series} in the agent's /metrics`);
      return Number(line.slice(series.length + 1));
    },
    ready: (timeoutMs = 60_000) =>
      until('the agent to be ready (/readyz)', timeoutMs, async () => {
        if (gone) throw new Error(`the agent exited before it was ready:\n${stderr}`);
        try {
          return (await fetch(`http://127.0.0.1:${metricsPort}/readyz`)).status === 200;
        } catch {
          return false;
        }
      }),
  };
}

/**
 * Holds the FIFO open read-write, as keepalived does, and writes lines to it
 * (blocking writes on a worker thread, so a full pipe waits for the reader).
 */
export class FifoWriter {
  private stream: WriteStream | undefined;
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  /** Opens the FIFO (waiting for it to exist). */
  async open(timeoutMs = 60_000): Promise<void> {
    await until(`the FIFO ${this.path} to exist`, timeoutMs, () => existsSync(this.path));
    const stream = createWriteStream(this.path, { flags: 'r+' });
    await new Promise<void>((ready, fail) => {
      stream.once('open', () => ready());
      stream.once('error', fail);
    });
    this.stream = stream;
  }

  /** Writes `text` (lines with their newlines); resolves once the kernel took all of it. */
  write(text: string | Buffer): Promise<void> {
    const stream = this.stream;
    if (!stream) throw new Error('the FIFO writer is not open');
    return new Promise((done, fail) => stream.write(text, (error) => (error ? fail(error) : done())));
  }

  /** Closes the writer's end. */
  async close(): Promise<void> {
    const stream = this.stream;
    this.stream = undefined;
    if (stream) await new Promise<void>((done) => stream.close(() => done()));
  }
}

/** `n` fresh router ids. */
export function routerIds(n: number): string[] {
  return Array.from({ length: n }, () => randomUUID());
}

/** Creates one HARouter per id in `namespace`, listing `agents` (the membership rule needs them first). */
export async function createRouters(
  admin: KubeConfig,
  namespace: string,
  ids: readonly string[],
  agents: readonly string[],
  concurrency = 16,
): Promise<void> {
  const api = admin.makeApiClient(CustomObjectsApi);
  await pool(ids, concurrency, async (id) => {
    await api.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: HAROUTER.plural,
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: HAROUTER.kind,
        metadata: { name: id },
        spec: { agents: agents.map((name) => ({ name })) },
      },
    });
  });
}

/** A stored report: state and observedAt. */
export interface StoredState {
  state: string;
  observedAt: string;
}

/** The stored reports of `agent` in `namespace`, by router id. */
export async function readStates(
  admin: KubeConfig,
  namespace: string,
  agent: string,
): Promise<Map<string, StoredState>> {
  const api = admin.makeApiClient(CustomObjectsApi);
  const states = new Map<string, StoredState>();
  let continueToken: string | undefined;
  do {
    const page = (await api.listNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: HAROUTER_STATE.plural,
      limit: 2000,
      ...(continueToken ? { _continue: continueToken } : {}),
    })) as {
      items: { spec: { routerId: string; agent: string; state: string; observedAt: string } }[];
      metadata?: { continue?: string };
    };
    for (const item of page.items) {
      if (item.spec.agent === agent) {
        states.set(item.spec.routerId, { state: item.spec.state, observedAt: item.spec.observedAt });
      }
    }
    continueToken = page.metadata?.continue || undefined;
  } while (continueToken);
  return states;
}

/**
 * Watches the HARouterStates of `namespace` and records, per router, every
 * observedAt stored, in the order the API server stored them; reconnects from
 * the last resourceVersion when the watch ends (an API server frozen and
 * resumed, say).
 */
export class StateHistory {
  readonly byRouter = new Map<string, string[]>();
  private abort: { abort(): void } | undefined;
  private stopped = false;
  private resourceVersion: string | undefined;

  private readonly admin: KubeConfig;
  private readonly namespace: string;
  private readonly agent: string;

  constructor(admin: KubeConfig, namespace: string, agent: string) {
    this.admin = admin;
    this.namespace = namespace;
    this.agent = agent;
  }

  async start(): Promise<void> {
    const watch = new Watch(this.admin);
    const path = `/apis/${GROUP}/${VERSION}/namespaces/${this.namespace}/${HAROUTER_STATE.plural}`;
    const connect = async (): Promise<void> => {
      if (this.stopped) return;
      try {
        this.abort = await watch.watch(
          path,
          {
            allowWatchBookmarks: true,
            ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
          },
          (
            type,
            object: {
              metadata?: { resourceVersion?: string };
              spec?: { routerId: string; agent: string; observedAt: string };
            },
          ) => {
            if (object.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion;
            if ((type === 'ADDED' || type === 'MODIFIED') && object.spec?.agent === this.agent) {
              const list = this.byRouter.get(object.spec.routerId) ?? [];
              if (list.at(-1) !== object.spec.observedAt) list.push(object.spec.observedAt);
              this.byRouter.set(object.spec.routerId, list);
            }
          },
          () => {
            if (!this.stopped) setTimeout(() => void connect(), 200);
          },
        );
      } catch {
        if (!this.stopped) setTimeout(() => void connect(), 500);
      }
    };
    await connect();
  }

  /** Routers whose stored observedAt ever went backwards (must be none). */
  backwards(): string[] {
    return [...this.byRouter]
      .filter(([, list]) => list.some((t, i) => i > 0 && compareObservedAt(list[i - 1] as string, t) > 0))
      .map(([id]) => id);
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }
}
