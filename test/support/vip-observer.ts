/**
 * The data plane as the tests' truth: which network namespace holds each
 * virtual address, when. One `ip -ts -o monitor address` per namespace
 * follows the kernel's address notifications, stamped by `ip` itself when it
 * received them (so the test process's own delays do not move the times); a
 * snapshot (`ip -br addr show`) seeds the state and can be taken again to
 * check the followed state against a fresh reading. The arithmetic (spans,
 * gaps, two holders) is in `vip-timeline.ts`. Nothing here reads the
 * operator's, the agent's or keepalived's configuration or decisions.
 *
 *   const vips = await observeVips({ namespaces: { 'node-a': 'run-node-a', ... }, isVip });
 *   const at = await vips.waitFor('203.0.113.1', (h) => h.join() === 'node-b');
 *   vips.overlaps('203.0.113.1', requestedAt)   // [] when there were never two holders
 *   await vips.stop();
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import {
  gaps as gapsOf,
  type HoldEvent,
  type HolderSpan,
  holderSpans,
  holdersAt,
  type Interval,
  overlaps as overlapsOf,
  parseBriefAddresses,
  parseMonitorLine,
} from './vip-timeline.ts';

/** Options of {@link observeVips}. */
export interface VipObserverOptions {
  /** Holder name (a node) to the network namespace it lives in. */
  namespaces: Readonly<Record<string, string>>;
  /** Which addresses are virtual addresses to follow (a node's own address is not). */
  isVip: (address: string) => boolean;
  /**
   * An address added to each namespace's `lo` and removed again at the start,
   * to learn that the monitor listens before the seeding snapshot (default
   * 127.0.0.254; it must not satisfy `isVip`).
   */
  marker?: string;
}

/** The followed holders of the virtual addresses; see the module comment. */
export interface VipObserver {
  /** Every change seen, seeds included, in arrival order. */
  readonly events: readonly HoldEvent[];
  /** When the seeding snapshot was taken: the earliest time the timeline knows. */
  readonly since: number;
  /** The virtual addresses seen so far. */
  vips(): string[];
  /** Who holds `vip` now, as followed. */
  holders(vip: string): readonly string[];
  /** Who held `vip` at `at`. */
  holdersAt(vip: string, at: number): readonly string[];
  /** The holder spans of `vip` over `[from, to]` (`to` default now). */
  spans(vip: string, from?: number, to?: number): HolderSpan[];
  /** The stretches with no holder of `vip` over `[from, to]`. */
  gaps(vip: string, from?: number, to?: number): Interval[];
  /** The stretches with two holders or more of `vip` over `[from, to]`. */
  overlaps(vip: string, from?: number, to?: number): Interval[];
  /**
   * Resolves with the time of the change that made `check(holders of vip)`
   * true (now, if it already holds); rejects after `timeoutMs` with the spans seen.
   */
  waitFor(vip: string, check: (holders: readonly string[]) => boolean, timeoutMs?: number): Promise<number>;
  /** A fresh reading of every namespace: virtual address to its sorted holders. */
  snapshot(): Promise<Map<string, string[]>>;
  /**
   * Throws when a fresh snapshot disagrees with the followed state (after
   * `settleMs` for notifications in flight; retried a few times while
   * addresses still move).
   */
  verify(settleMs?: number): Promise<void>;
  /** Why a monitor ended early, if one did. */
  failures(): string[];
  stop(): Promise<void>;
}

function ipOutput(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', [...args], { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Starts following the namespaces' addresses; see the module comment. */
export async function observeVips(options: VipObserverOptions): Promise<VipObserver> {
  const marker = options.marker ?? '127.0.0.254';
  if (options.isVip(marker)) throw new Error(`the marker ${marker} must not count as a virtual address`);
  const events: HoldEvent[] = [];
  const current = new Map<string, Set<string>>();
  const waiters = new Set<() => void>();
  const markersSeen = new Set<string>();
  const failures: string[] = [];
  const monitors: ChildProcess[] = [];
  let stopping = false;

  const record = (event: HoldEvent) => {
    const holders = current.get(event.vip) ?? new Set<string>();
    current.set(event.vip, holders);
    if (event.held === holders.has(event.holder)) return;
    if (event.held) holders.add(event.holder);
    else holders.delete(event.holder);
    events.push(event);
    for (const wake of waiters) wake();
  };

  const holders = (vip: string) => [...(current.get(vip) ?? [])].sort();

  for (const [holder, namespace] of Object.entries(options.namespaces)) {
    const child = spawn('ip', ['-n', namespace, '-ts', '-o', 'monitor', 'address'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, TZ: 'UTC' },
    });
    monitors.push(child);
    let stderr = '';
    child.stderr?.on('data', (chunk) => {
      stderr += String(chunk);
    });
    child.on('exit', (code, signal) => {
      if (!stopping) failures.push(`ip monitor in ${namespace} ended (${signal ?? code}): ${stderr.trim()}`);
      for (const wake of waiters) wake();
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
      const parsed = parseMonitorLine(line);
      if (!parsed) return;
      if (parsed.address === marker) {
        markersSeen.add(holder);
        for (const wake of waiters) wake();
        return;
      }
      if (options.isVip(parsed.address))
        record({ at: parsed.at, vip: parsed.address, holder, held: parsed.held });
    });
  }

  const stop = async () => {
    stopping = true;
    await Promise.all(
      monitors.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
  };

  const readAll = async (): Promise<Map<string, string[]>> => {
    const found = new Map<string, string[]>();
    for (const [holder, namespace] of Object.entries(options.namespaces)) {
      for (const iface of parseBriefAddresses(await ipOutput(['-n', namespace, '-br', 'addr', 'show']))) {
        for (const address of iface.addresses) {
          if (!options.isVip(address)) continue;
          found.set(address, [...(found.get(address) ?? []), holder]);
        }
      }
    }
    for (const list of found.values()) list.sort();
    return found;
  };

  try {
    // The marker proves each monitor is subscribed before the seeding snapshot is read.
    const deadline = Date.now() + 10_000;
    while (markersSeen.size < monitors.length) {
      if (failures.length > 0) throw new Error(failures.join('; '));
      if (Date.now() > deadline) throw new Error('ip monitor did not start listening within 10 s');
      for (const [holder, namespace] of Object.entries(options.namespaces)) {
        if (markersSeen.has(holder)) continue;
        await ipOutput(['-n', namespace, 'addr', 'replace', `${marker}/32`, 'dev', 'lo']);
      }
      await sleep(50);
    }
    for (const namespace of Object.values(options.namespaces))
      await ipOutput(['-n', namespace, 'addr', 'del', `${marker}/32`, 'dev', 'lo']);
  } catch (error) {
    await stop();
    throw error;
  }
  const since = Date.now();
  for (const [vip, list] of await readAll()) {
    for (const holder of list) record({ at: since, vip, holder, held: true });
  }

  const spans = (vip: string, from = since, to = Date.now()) => holderSpans(events, vip, from, to);
  return {
    events,
    since,
    vips: () => [...current.keys()].sort(),
    holders,
    holdersAt: (vip, at) => holdersAt(events, vip, at),
    spans,
    gaps: (vip, from, to) => gapsOf(spans(vip, from, to)),
    overlaps: (vip, from, to) => overlapsOf(spans(vip, from, to)),
    async waitFor(vip, check, timeoutMs = 30_000) {
      const met = () =>
        check(holders(vip)) ? (events.findLast((e) => e.vip === vip)?.at ?? since) : undefined;
      const now = met();
      if (now !== undefined) return now;
      return await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(wake);
          const seen = spans(vip)
            .map((s) => `${new Date(s.from).toISOString()} [${s.holders.join(',')}]`)
            .join(' -> ');
          reject(new Error(`the holders of ${vip} did not meet the check in ${timeoutMs} ms; seen: ${seen}`));
        }, timeoutMs);
        const wake = () => {
          const at = met();
          if (at === undefined && failures.length === 0) return;
          clearTimeout(timer);
          waiters.delete(wake);
          if (at !== undefined) resolve(at);
          else reject(new Error(failures.join('; ')));
        };
        waiters.add(wake);
      });
    },
    snapshot: readAll,
    async verify(settleMs = 200) {
      let difference = '';
      for (let attempt = 0; attempt < 5; attempt++) {
        await sleep(settleMs);
        const fresh = await readAll();
        await sleep(settleMs);
        const all = new Set([...fresh.keys(), ...current.keys()]);
        const wrong = [...all].filter((vip) => (fresh.get(vip) ?? []).join() !== holders(vip).join());
        if (wrong.length === 0) return;
        difference = wrong
          .map(
            (vip) =>
              `${vip}: read [${(fresh.get(vip) ?? []).join(',')}], followed [${holders(vip).join(',')}]`,
          )
          .join('; ');
      }
      throw new Error(`the followed holders disagree with ip addr: ${difference}`);
    },
    failures: () => [...failures],
    stop,
  };
}
