/**
 * The storm: a continuous stream of keepalived transitions over a few hundred
 * routers, reported per node, with the truth the run keeps (the newest state
 * each agent sent for each router) and occasional node NotReady flips.
 */
import { formatObservedAt, type ReportedState } from '../../src/api/index.ts';
import type { KubeHttp } from './http.ts';

/** Reports one node's keepalived transitions to the API server (a node agent, or a stand-in for one). */
export interface NodeReporter {
  readonly node: string;
  /** The instance of `routerId` on this node went to `state`; delivery happens in the background. */
  send(routerId: string, state: ReportedState): void;
  /** Stops for good. */
  stop(): Promise<void>;
}

/** The newest state each agent sent for each router: what the stored reports must equal. */
export class Truth {
  readonly #sent = new Map<string, ReportedState>();
  /** Lines sent in total. */
  sent = 0;

  record(routerId: string, node: string, state: ReportedState): void {
    this.#sent.set(`${routerId}.${node}`, state);
    this.sent++;
  }

  /** report name (`<routerId>.<node>`) -> newest state sent. */
  entries(): IterableIterator<[string, ReportedState]> {
    return this.#sent.entries();
  }

  get(name: string): ReportedState | undefined {
    return this.#sent.get(name);
  }
}

let lastNanos = 0n;
/** Wall-clock observedAt with nanoseconds, strictly increasing within the run (as the agent stamps lines). */
export function stamp(): string {
  let nanos = BigInt(Date.now()) * 1_000_000n;
  if (nanos <= lastNanos) nanos = lastNanos + 1n;
  lastNanos = nanos;
  return formatObservedAt(nanos);
}

/**
 * A stand-in for the node agent while `harouterctl agent` is not available: the
 * same delivery rules (newest line per router wins, one write in flight per
 * router, server-side apply with the node's pod-bound token over kept-alive
 * connections, a stale refusal counts as delivered, everything else retried
 * with backoff until delivered), without the FIFO and the spool.
 */
export class DirectReporter implements NodeReporter {
  readonly node: string;
  readonly #http: KubeHttp;
  readonly #namespace: string;
  readonly #pending = new Map<string, { state: ReportedState; observedAt: string }>();
  readonly #inFlight = new Set<string>();
  readonly #queue: string[] = [];
  #active = 0;
  #stopped = false;
  /** Writes refused for good (422 other than stale): a bug in the run or the server. */
  refused = 0;
  retried = 0;

  readonly concurrency: number;

  constructor(node: string, http: KubeHttp, namespace: string, concurrency = 8) {
    this.concurrency = concurrency;
    this.node = node;
    this.#http = http;
    this.#namespace = namespace;
  }

  send(routerId: string, state: ReportedState): void {
    const queued = this.#pending.has(routerId);
    this.#pending.set(routerId, { state, observedAt: stamp() });
    if (!queued && !this.#inFlight.has(routerId)) this.#queue.push(routerId);
    this.#pump();
  }

  #pump(): void {
    while (!this.#stopped && this.#active < this.concurrency && this.#queue.length > 0) {
      const routerId = this.#queue.shift() as string;
      this.#active++;
      void this.#deliver(routerId).finally(() => {
        this.#active--;
        this.#pump();
      });
    }
  }

  async #deliver(routerId: string): Promise<void> {
    this.#inFlight.add(routerId);
    let delay = 100;
    try {
      for (;;) {
        const next = this.#pending.get(routerId);
        if (!next || this.#stopped) return;
        this.#pending.delete(routerId);
        for (;;) {
          const ok = await this.#apply(routerId, next.state, next.observedAt);
          if (ok || this.#stopped) break;
          this.retried++;
          await new Promise((r) => setTimeout(r, delay * (0.5 + Math.random())));
          delay = Math.min(delay * 2, 2000);
          // A newer line replaces the value being retried.
          if (this.#pending.has(routerId)) break;
        }
      }
    } finally {
      this.#inFlight.delete(routerId);
    }
  }

  async #apply(routerId: string, state: ReportedState, observedAt: string): Promise<boolean> {
    const name = `${routerId}.${this.node}`;
    const answer = await this.#http.request(
      'PATCH',
      `/apis/harouter.dev/v1alpha1/namespaces/${this.#namespace}/harouterstates/${name}?fieldManager=harouterctl&force=true`,
      {
        apiVersion: 'harouter.dev/v1alpha1',
        kind: 'HARouterState',
        metadata: { name, namespace: this.#namespace },
        spec: { routerId, agent: this.node, state, observedAt },
      },
      'application/apply-patch+yaml',
    );
    if (answer.status >= 200 && answer.status < 300) return true;
    if (answer.status === 422 && (answer.body.message ?? '').includes('stale report')) return true;
    if (answer.status === 422) {
      this.refused++;
      return true;
    }
    return false;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
  }
}

/** A router of the storm: its agents (nodes), keepalived's master, and every agent claiming master. */
export interface StormRouter {
  id: string;
  agents: string[];
  master: string;
  /** Agents whose newest report is Primary (more than one: a split brain). */
  primaries: Set<string>;
}

/** Options of {@link Storm}. */
export interface StormOptions {
  routers: StormRouter[];
  reporters: Map<string, NodeReporter>;
  truth: Truth;
  /** Failovers per second. */
  rate: number;
}

/**
 * The stream of failovers: each tick picks routers at random and moves their
 * master to another agent the way keepalived reports it (the new master's
 * MASTER line, then the old master's BACKUP), with an occasional FAULT or a
 * split brain that resolves at the next failover. `quiet(node)` keeps a node
 * from becoming a new master (before a NotReady flip); `pause()`/`resume()`
 * stop the stream for the invariant checker.
 */
export class Storm {
  readonly #o: StormOptions;
  readonly #quiet = new Set<string>();
  #timer: NodeJS.Timeout | undefined;
  #paused = false;
  failovers = 0;

  constructor(options: StormOptions) {
    this.#o = options;
  }

  #send(router: StormRouter, node: string, state: ReportedState): void {
    const reporter = this.#o.reporters.get(node);
    if (!reporter) throw new Error(`no reporter for node ${node}`);
    this.#o.truth.record(router.id, node, state);
    reporter.send(router.id, state);
  }

  /** The initial reports: the first agent master, the others backup. */
  seed(): void {
    for (const router of this.#o.routers) {
      for (const agent of router.agents)
        this.#send(router, agent, agent === router.master ? 'Primary' : 'Backup');
    }
  }

  /** Moves `router`'s master to `to` (keepalived's order: the new master first, then the others step down). */
  failover(router: StormRouter, to: string, oldState: ReportedState = 'Backup'): void {
    this.#send(router, to, 'Primary');
    for (const claimer of router.primaries)
      if (claimer !== to) this.#send(router, claimer, claimer === router.master ? oldState : 'Backup');
    router.primaries = new Set([to]);
    router.master = to;
    this.failovers++;
  }

  /** `to` claims master while the others still do (a split brain, resolved by the next failover). */
  splitBrain(router: StormRouter, to: string): void {
    this.#send(router, to, 'Primary');
    router.primaries.add(to);
    this.failovers++;
  }

  /**
   * `node` is cut off: every router it masters fails over to another agent,
   * while `node`'s own keepalived, isolated, keeps claiming master.
   */
  isolate(node: string): void {
    for (const router of this.#o.routers) {
      if (router.master !== node) continue;
      const to = router.agents.find((a) => a !== node && !this.#quiet.has(a));
      if (!to) continue;
      this.#send(router, to, 'Primary');
      router.primaries.add(to);
      router.master = to;
      this.failovers++;
    }
  }

  /** `node` is back: its keepalived sees the other masters and steps down where it still claims. */
  rejoin(node: string): void {
    for (const router of this.#o.routers) {
      if (router.master === node || !router.primaries.has(node)) continue;
      this.#send(router, node, 'Backup');
      router.primaries.delete(node);
    }
  }

  #tick(): void {
    if (this.#paused) return;
    const perTick = Math.max(1, Math.round(this.#o.rate / 10));
    for (let i = 0; i < perTick; i++) {
      const router = this.#o.routers[Math.floor(Math.random() * this.#o.routers.length)] as StormRouter;
      const candidates = router.agents.filter((a) => a !== router.master && !this.#quiet.has(a));
      const to = candidates[Math.floor(Math.random() * candidates.length)];
      if (!to) continue;
      const roll = Math.random();
      if (roll < 0.05) this.splitBrain(router, to);
      else this.failover(router, to, roll < 0.15 ? 'Fault' : 'Backup');
    }
  }

  start(): void {
    this.#timer = setInterval(() => this.#tick(), 100);
  }

  pause(): void {
    this.#paused = true;
  }

  resume(): void {
    this.#paused = false;
  }

  /** Keeps `node` from becoming a new master until {@link unquiet}. */
  quiet(node: string): void {
    this.#quiet.add(node);
  }

  unquiet(node: string): void {
    this.#quiet.delete(node);
  }

  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
  }
}
