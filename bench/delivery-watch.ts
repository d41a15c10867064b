/**
 * The agent benchmark's proof of delivery: a watch on the API server's
 * HARouterStates that knows, per (agent, router), the newest state and
 * `observedAt` stored. A phase's clock stops when this watch has seen every
 * report it wrote, not when the writer says it is done; a report the watch never
 * sees counts as missing. It imports nothing from `src/`: the checker does not
 * use the code it checks (it reads raw watch events and compares timestamps
 * with its own arithmetic).
 */
import { type KubeConfig, Watch } from '@kubernetes/client-node';

/** Nanoseconds since the epoch of an RFC 3339 time with 0 to 9 fractional digits and `Z` or an offset. */
export function rfc3339Nanos(text: string): bigint {
  const m = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/i.exec(text);
  if (!m) throw new Error(`not an RFC 3339 time: ${JSON.stringify(text.slice(0, 64))}`);
  const [, seconds, fraction = '', zone] = m as unknown as [string, string, string | undefined, string];
  const wholeMs = Date.parse(`${seconds}${zone.toUpperCase() === 'Z' ? 'Z' : zone}`);
  return BigInt(wholeMs) * 1_000_000n + BigInt(fraction.padEnd(9, '0'));
}

/** The RFC 3339 form (nine fractional digits, `Z`) of a wall-clock time in nanoseconds. */
export function nanosRfc3339(nanos: bigint): string {
  const ms = Number(nanos / 1_000_000n);
  const fraction = (nanos % 1_000_000_000n).toString().padStart(9, '0');
  return `${new Date(ms).toISOString().slice(0, 19)}.${fraction}Z`;
}

/** The wall clock in nanoseconds (millisecond resolution is enough for a phase boundary). */
export function wallNanos(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

interface Seen {
  state: string;
  observedAt: bigint;
}

interface Waiter {
  agent: string;
  ids: ReadonlySet<string>;
  state: string;
  since: bigint;
  left: Set<string>;
  done: () => void;
}

/** A watch on one namespace's HARouterStates that resolves waits as the events arrive. */
export class DeliveryWatch {
  private readonly seen = new Map<string, Seen>();
  private readonly waiters = new Set<Waiter>();
  private resourceVersion: string | undefined;
  private abort: { abort(): void } | undefined;
  private stopped = false;
  private readonly admin: KubeConfig;
  private readonly namespace: string;

  constructor(admin: KubeConfig, namespace: string) {
    this.admin = admin;
    this.namespace = namespace;
  }

  /** Starts watching; resolves once the watch is connected. Reconnects from the last resourceVersion. */
  async start(): Promise<void> {
    const path = `/apis/harouter.dev/v1alpha1/namespaces/${this.namespace}/harouterstates`;
    const watch = new Watch(this.admin);
    const connect = async (): Promise<void> => {
      if (this.stopped) return;
      try {
        this.abort = await watch.watch(
          path,
          {
            allowWatchBookmarks: true,
            ...(this.resourceVersion ? { resourceVersion: this.resourceVersion } : {}),
          },
          (type: string, object: RawState) => this.onEvent(type, object),
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

  /**
   * Resolves when the watch has seen, for every id, `agent`'s report in `state` with an
   * `observedAt` at or after `since`; rejects after `timeoutMs` with the number missing.
   */
  waitFor(
    agent: string,
    ids: readonly string[],
    state: string,
    since: bigint,
    timeoutMs: number,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const left = new Set(ids.filter((id) => !this.satisfies(agent, id, state, since)));
      if (left.size === 0) return resolve();
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new MissingReports(left.size, ids.length));
      }, timeoutMs);
      const waiter: Waiter = {
        agent,
        ids: new Set(ids),
        state,
        since,
        left,
        done: () => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve();
        },
      };
      this.waiters.add(waiter);
    });
  }

  /** How many of `ids` lack `agent`'s report in `state` at or after `since`, as seen now. */
  missing(agent: string, ids: readonly string[], state: string, since: bigint): number {
    return ids.filter((id) => !this.satisfies(agent, id, state, since)).length;
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private satisfies(agent: string, id: string, state: string, since: bigint): boolean {
    const seen = this.seen.get(`${agent}/${id}`);
    return seen !== undefined && seen.state === state && seen.observedAt >= since;
  }

  private onEvent(type: string, object: RawState): void {
    if (object.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion;
    if ((type !== 'ADDED' && type !== 'MODIFIED') || !object.spec) return;
    const { agent, routerId, state, observedAt } = object.spec;
    let nanos: bigint;
    try {
      nanos = rfc3339Nanos(observedAt);
    } catch {
      return;
    }
    const key = `${agent}/${routerId}`;
    const before = this.seen.get(key);
    if (before && before.observedAt > nanos) return;
    this.seen.set(key, { state, observedAt: nanos });
    for (const w of this.waiters) {
      if (w.agent !== agent || !w.ids.has(routerId)) continue;
      if (state === w.state && nanos >= w.since) w.left.delete(routerId);
      if (w.left.size === 0) w.done();
    }
  }
}

/** A wait that ended with reports the watch never saw. */
export class MissingReports extends Error {
  readonly missing: number;
  constructor(missing: number, of: number) {
    super(`${missing} of ${of} reports never reached the API server`);
    this.missing = missing;
  }
}

interface RawState {
  metadata?: { resourceVersion?: string };
  spec?: { routerId: string; agent: string; state: string; observedAt: string };
}
