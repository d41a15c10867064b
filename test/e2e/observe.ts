/**
 * What the e2e tests watch: every EndpointSlice change in a namespace, with the
 * time it arrived, so that a failover is timed from the watch (never by
 * polling), and the latency from a report's `observedAt` (stamped when the
 * agent read keepalived's FIFO line) to the slice that applied it.
 */
import { type KubeConfig, type V1EndpointSlice, Watch } from '@kubernetes/client-node';

/** One observed state of a slice: which addresses it routes to, since when. */
export interface SliceChange {
  at: number;
  service: string;
  addresses: string[];
}

/** Records slice changes; see the module comment. */
export class SliceWatch {
  readonly changes: SliceChange[] = [];
  readonly #current = new Map<string, string[]>();
  readonly #waiters = new Set<() => void>();
  #abort: AbortController | undefined;
  #stopped = false;
  #watch: Watch;
  #namespace: string;

  constructor(kc: KubeConfig, namespace: string) {
    this.#watch = new Watch(kc);
    this.#namespace = namespace;
  }

  /** Starts watching (and restarts the watch whenever the server ends it). */
  async start(): Promise<void> {
    const path = `/apis/discovery.k8s.io/v1/namespaces/${this.#namespace}/endpointslices`;
    const onEvent = (type: string, slice: V1EndpointSlice) => {
      const service = slice.metadata?.labels?.['kubernetes.io/service-name'];
      if (!service) return;
      const addresses = type === 'DELETED' ? [] : (slice.endpoints ?? []).flatMap((e) => e.addresses);
      const before = this.#current.get(service);
      this.#current.set(service, addresses);
      if (before?.join() === addresses.join()) return;
      this.changes.push({ at: Date.now(), service, addresses });
      for (const wake of this.#waiters) wake();
    };
    const onDone = () => {
      if (!this.#stopped) void this.start();
    };
    this.#abort = await this.#watch.watch(path, {}, onEvent, onDone);
  }

  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
  }

  /** The addresses the service's slice routes to now, as far as the watch saw. */
  current(service: string): string[] | undefined {
    return this.#current.get(service);
  }

  /**
   * Waits until the service's slice routes to exactly `address` and returns when
   * that change arrived (or, if it already did before `since`, that earlier time).
   */
  async routed(service: string, address: string, timeoutMs = 30_000): Promise<number> {
    const find = () => {
      if (this.#current.get(service)?.join() !== address) return undefined;
      return this.changes.findLast((c) => c.service === service)?.at;
    };
    const found = find();
    if (found !== undefined) return found;
    return await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(check);
        reject(
          new Error(
            `the slice of ${service} did not route to ${address} in ${timeoutMs} ms (now ${JSON.stringify(this.#current.get(service))})`,
          ),
        );
      }, timeoutMs);
      const check = () => {
        const at = find();
        if (at === undefined) return;
        clearTimeout(timer);
        this.#waiters.delete(check);
        resolve(at);
      };
      this.#waiters.add(check);
    });
  }
}

/** p50 and max of a list of milliseconds. Pure. */
export function summarize(values: readonly number[]): { n: number; p50: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const p50 = sorted.length === 0 ? Number.NaN : (sorted[Math.floor((sorted.length - 1) / 2)] as number);
  return { n: sorted.length, p50, max: sorted.at(-1) ?? Number.NaN };
}

/** Milliseconds since the epoch of an RFC 3339 `observedAt` (millisecond precision is enough for timing). */
export function observedMs(observedAt: string): number {
  return Date.parse(observedAt);
}
