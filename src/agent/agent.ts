/**
 * `harouterctl agent`: one long-running process per node that turns
 * keepalived's notify FIFO into HARouterStates. The wiring of the parts:
 * FIFO -> splitter -> parser -> mapping -> stamp -> spool + coalescing queue
 * -> sender, with metrics and probes on one port.
 */
import { closeSync, readFileSync, statSync } from 'node:fs';
import { formatObservedAt } from '../api/observed-at.ts';
import { codePointLength, isPrintable } from '../api/validation.ts';
import type { BindAddress } from '../flag-values.ts';
import { type HttpServerHandle, startMetricsAndProbeServer } from '../http/server.ts';
import type { Logger } from '../log.ts';
import { type ObservedAtClock, processClock } from '../report/clock.ts';
import { loadTransport, type Transport } from '../report/kubeconfig.ts';
import { resolveNamespace, serviceAccountNamespace } from '../report/namespace.ts';
import { reportObject } from '../report/object.ts';
import { UsageError } from '../report/usage-error.ts';
import { LogLimit } from '../runtime/log-limit.ts';
import { escapeForLog } from '../runtime/log-text.ts';
import { FifoFollower, type OpenedFifo, openCheckedFifo, ownTrust } from './fifo.ts';
import { type KeepalivedDriver, type KeepalivedOptions, startKeepalivedDriver } from './keepalived-driver.ts';
import { hexForLog, parseNotifyLine } from './line.ts';
import { InstanceMap, type InstanceTargets, parseInstancesFile } from './mapping.ts';
import { type AgentMetrics, createAgentMetrics } from './metrics.ts';
import { CoalescingQueue } from './queue.ts';
import { agentBackoffMs, agentResult, createSender } from './sender.ts';
import { NotifyLineSplitter, type SplitLine } from './splitter.ts';
import { routerKey, Spool, type SpoolEntry } from './spool.ts';
import { WarnedNames } from './warned-names.ts';

/** Everything the agent needs, checked by the command line. */
export interface AgentConfig {
  fifo: string;
  /** `--fifo-group`: a group whose members may also write the FIFO (a non-root agent shares it with keepalived). */
  fifoGroup?: number;
  stateDir: string;
  /** `--instance` values, parsed. */
  instances: InstanceTargets;
  instancesFile?: string;
  /** `--namespace` or `POD_NAMESPACE`; otherwise the kubeconfig's, the service account's, then `default`. */
  namespace?: string;
  agent: string;
  kubeconfig?: string;
  /** Where `/metrics`, `/healthz` and `/readyz` are served; null: nowhere. */
  metricsBind: BindAddress | null;
  /** Most reports in flight at once (and pooled connections). */
  concurrency: number;
  requestTimeoutMs: number;
  /** `--keepalived-config-dir` and its companions: render keepalived's configuration from HARouters. */
  keepalived?: KeepalivedOptions;
}

/** A running agent. */
export interface RunningAgent {
  readonly metrics: AgentMetrics;
  /** The metrics server's port, when it serves one. */
  readonly port: number | undefined;
  /** Ready: the FIFO is open and the API server has answered once. */
  ready(): boolean;
  /** Resolves when no report is pending (for tests and benchmarks). */
  whenIdle(): Promise<void>;
  /** Resolves when no keepalived render is running or waiting. */
  whenRendered(): Promise<void>;
  /** Stops reading, syncs the spool and closes everything. */
  stop(): Promise<void>;
}

interface Pending {
  entry: SpoolEntry;
  /** `performance.now()` when the line was read; absent for values from the spool. */
  readAt?: number;
}

/** How many unmapped names are remembered (as digests) to warn once each. */
const MAX_WARNED_NAMES = 10_000;
const RETRY_LOG_INTERVAL_MS = 60_000;

/**
 * Starts the agent. Order (API.md): the FIFO is checked and opened first,
 * before the instances file, the credentials, the spool or the network; then
 * the spool's undelivered reports are queued before any new line is read.
 * Throws {@link UsageError} (exit 2) for a refused FIFO or bad configuration.
 */
export async function startAgent(
  config: AgentConfig,
  log: Logger,
  clock: ObservedAtClock = processClock(),
): Promise<RunningAgent> {
  const opened = openCheckedFifo(config.fifo, ownTrust(config.fifoGroup));
  let spool: Spool | undefined;
  try {
    const fileTargets = readInstancesFile(config.instancesFile);
    const transport = await loadTransport(config.kubeconfig);
    const namespace = resolveNamespace(config.namespace, transport.namespace, serviceAccountNamespace());
    const instances = new InstanceMap(config.instances, fileTargets, namespace);
    const opening = await Spool.open(config.stateDir, log.child({ component: 'spool' }));
    spool = opening.spool;
    return await run(config, log, clock, opened, opening, instances, transport, namespace);
  } catch (error) {
    closeSync(opened.fd);
    await spool?.close().catch(() => undefined);
    throw error;
  }
}

function readInstancesFile(path: string | undefined): InstanceTargets {
  if (path === undefined) return new Map();
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read --instances ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  const parsed = parseInstancesFile(text);
  if ('error' in parsed) throw new UsageError(`--instances ${path}: ${parsed.error}`);
  return parsed;
}

async function run(
  config: AgentConfig,
  log: Logger,
  clock: ObservedAtClock,
  opened: OpenedFifo,
  opening: { spool: Spool; pending: SpoolEntry[] },
  instances: InstanceMap,
  transport: Transport,
  namespace: string,
): Promise<RunningAgent> {
  const { spool } = opening;
  const sender = createSender(transport, {
    maxSockets: config.concurrency,
    timeoutMs: config.requestTimeoutMs,
  });
  let apiAnswered = false;
  let stopped = false;
  const retryLogged = new Map<string, number>();
  const refusedLimit = new LogLimit(20, 10_000);

  const queue: CoalescingQueue<Pending> = new CoalescingQueue<Pending>({
    concurrency: config.concurrency,
    backoffMs: (failures) => agentBackoffMs(failures),
    deliver: async (key, { entry, readAt }, failures) => {
      const object = reportObject(
        {
          router: entry.router,
          agent: config.agent,
          state: entry.state,
          ...(entry.priority !== undefined ? { priority: entry.priority } : {}),
          ...(entry.message !== undefined ? { message: entry.message } : {}),
        },
        entry.namespace,
        entry.observedAt,
      );
      const outcome = await sender.apply(object);
      if ('status' in outcome && outcome.status !== undefined) apiAnswered = true;
      const result = agentResult(outcome);
      metrics.reports.inc({ result });
      const fields = {
        namespace: entry.namespace,
        router: entry.router,
        state: entry.state,
        observedAt: entry.observedAt,
        status: 'status' in outcome ? outcome.status : undefined,
        reason: 'reason' in outcome ? outcome.reason : undefined,
        serverMessage: 'message' in outcome ? outcome.message : undefined,
      };
      if (result === 'retried') {
        const now = performance.now();
        const last = retryLogged.get(key);
        if (last === undefined || now - last >= RETRY_LOG_INTERVAL_MS) {
          retryLogged.set(key, now);
          log.warn({ ...fields, attempt: failures + 1 }, 'report not delivered yet; retrying');
        }
        return 'retry';
      }
      if (result === 'applied' && readAt !== undefined) {
        metrics.reportSeconds.observe((performance.now() - readAt) / 1000);
      }
      if (result === 'refused') {
        const { write, suppressed } = refusedLimit.take();
        if (write)
          log.error({ ...fields, suppressed }, 'report refused by the API server as invalid; dropped');
      }
      if (retryLogged.delete(key))
        log.info(
          { namespace: entry.namespace, router: entry.router, result },
          'report delivered after retries',
        );
      return 'done';
    },
    onDone: (_key, { entry }) => spool.delivered(entry),
  });
  const metrics = createAgentMetrics(() => queue.pending);

  let driver: KeepalivedDriver | undefined;
  if (config.keepalived) {
    try {
      driver = await startKeepalivedDriver(
        config.keepalived,
        { agent: config.agent, namespace, fifo: config.fifo, connection: transport },
        metrics,
        log.child({ component: 'keepalived-config' }),
      );
    } catch (error) {
      queue.stop();
      sender.close();
      throw new UsageError(
        `--keepalived-config-dir ${config.keepalived.configDir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  }

  for (const entry of opening.pending) queue.offer(routerKey(entry), { entry });
  if (opening.pending.length > 0) log.info({ routers: opening.pending.length }, 'delivering the spool first');

  const unmappedWarned = new WarnedNames(MAX_WARNED_NAMES);
  const unmappedLimit = new LogLimit(20, 10_000);
  const malformedLimit = new LogLimit(20, 10_000);
  const logMalformed = (fields: Record<string, unknown>) => {
    const { write, suppressed } = malformedLimit.take();
    if (write) log.warn({ ...fields, path: config.fifo, suppressed }, 'malformed line from the FIFO ignored');
  };

  const onLine = (line: SplitLine) => {
    if (line.kind === 'too-long') {
      metrics.lines.inc({ kind: 'malformed' });
      logMalformed({
        problem: 'longer than 4096 bytes',
        bytes: line.bytes,
        line: escapeForLog(line.head.toString('utf8'), 80),
      });
      return;
    }
    if (line.kind === 'not-utf8') {
      metrics.lines.inc({ kind: 'malformed' });
      logMalformed({ problem: 'not UTF-8', hex: hexForLog(line.bytes) });
      return;
    }
    const readAt = performance.now();
    const observedAt = formatObservedAt(clock.nowNanos());
    const parsed = parseNotifyLine(line.text);
    if (parsed.kind === 'malformed') {
      metrics.lines.inc({ kind: 'malformed' });
      logMalformed({ problem: parsed.problem, line: escapeForLog(line.text) });
      return;
    }
    if (parsed.kind === 'ignored') {
      metrics.lines.inc({ kind: 'ignored' });
      log.debug(
        { name: escapeForLog(parsed.name), event: parsed.event },
        'keepalived event that is not a transition',
      );
      return;
    }
    const target = instances.resolve(parsed.name);
    if (!target) {
      metrics.lines.inc({ kind: 'unmapped' });
      if (unmappedWarned.firstTime(parsed.name)) {
        const { write, suppressed } = unmappedLimit.take();
        if (write) {
          log.warn(
            { name: escapeForLog(parsed.name), type: parsed.type, suppressed },
            'no router is mapped to this keepalived name; its lines are ignored',
          );
        }
      }
      return;
    }
    metrics.lines.inc({ kind: 'transition' });
    const message = `keepalived ${parsed.type} ${parsed.name} ${parsed.keepalivedState}`;
    const entry: SpoolEntry = {
      namespace: target.namespace,
      router: target.router,
      state: parsed.state,
      observedAt,
      ...(parsed.priority !== undefined ? { priority: parsed.priority } : {}),
      ...(isPrintable(message) && codePointLength(message) <= 256 ? { message } : {}),
    };
    spool.put(entry);
    queue.offer(routerKey(entry), { entry, readAt });
  };

  const splitters = new Map<number, NotifyLineSplitter>();
  const follower = new FifoFollower(opened, {
    path: config.fifo,
    trust: ownTrust(config.fifoGroup),
    log,
    onData: (chunk, stream) => {
      let splitter = splitters.get(stream);
      if (!splitter) {
        splitter = new NotifyLineSplitter(onLine);
        splitters.set(stream, splitter);
      }
      splitter.push(chunk);
      spool.syncNow();
    },
  });

  const stopWatching = watchInstancesFile(config.instancesFile, instances, log);

  let server: HttpServerHandle | undefined;
  if (config.metricsBind) {
    server = await startMetricsAndProbeServer({
      bind: config.metricsBind,
      registry: metrics.registry,
      healthz: () => [{ name: 'ping', check: () => true }],
      readyz: () => [
        { name: 'fifo', check: () => follower.open },
        { name: 'apiserver', check: () => apiAnswered },
        ...(driver ? [{ name: 'keepalived-config', check: () => driver?.synced() === true }] : []),
      ],
      log,
    });
  }

  void (async () => {
    for (let attempt = 1; !apiAnswered && !stopped; attempt++) {
      if (await sender.answers()) apiAnswered = true;
      else await new Promise((resolve) => setTimeout(resolve, agentBackoffMs(attempt)).unref());
    }
  })();

  log.info(
    { fifo: config.fifo, stateDir: config.stateDir, agent: config.agent, concurrency: config.concurrency },
    'agent started',
  );

  return {
    metrics,
    port: server?.port,
    ready: () => follower.open && apiAnswered,
    whenIdle: () => queue.whenIdle(),
    whenRendered: async () => driver?.whenRendered(),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (driver) {
        // keepalived run here writes its STOP lines as it exits: read them into the spool first.
        await driver.stop();
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      follower.close();
      stopWatching();
      queue.stop();
      await spool.close();
      sender.close();
      await server?.close();
      log.info({ undelivered: spool.size }, 'agent stopped; the spool is synced');
    },
  };
}

/** Re-reads the `--instances` file when it changes (checked every second); a bad new file keeps the old map. */
function watchInstancesFile(path: string | undefined, instances: InstanceMap, log: Logger): () => void {
  if (path === undefined) return () => undefined;
  const identity = () => {
    try {
      const stat = statSync(path);
      return `${stat.ino}:${stat.size}:${stat.mtimeMs}`;
    } catch {
      return 'missing';
    }
  };
  let seen = identity();
  const timer = setInterval(() => {
    const now = identity();
    if (now === seen) return;
    seen = now;
    try {
      instances.replaceFile(readInstancesFile(path));
      log.info({ path }, 'instances file re-read');
    } catch (error) {
      log.error(
        { path, problem: (error as Error).message },
        'instances file not usable; keeping the previous mapping',
      );
    }
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}
