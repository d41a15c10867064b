/**
 * The data plane as the tests' truth, pure part: parsing what `ip` prints about
 * addresses (`ip -ts -o monitor address`, `ip -br addr show`) and the
 * arithmetic of who held a virtual address when (holder spans, gaps with no
 * holder, moments with two). It knows nothing of the operator, the agent or
 * keepalived's configuration: it is the oracle those are checked against.
 * The processes that feed it are in `vip-observer.ts`.
 */

/** A virtual address appeared on (`held`) or vanished from one holder, at `at` (ms since the epoch, fractional). */
export interface HoldEvent {
  at: number;
  vip: string;
  holder: string;
  held: boolean;
}

/** One line of `ip -ts -o monitor address`, parsed. */
export interface MonitorAddress {
  /** When `ip` received the kernel's notification (ms since the epoch, microsecond fraction kept). */
  at: number;
  /** True for a new address, false for `Deleted`. */
  held: boolean;
  interface: string;
  family: 'inet' | 'inet6';
  /** The address without its prefix length. */
  address: string;
}

/** One interface of `ip -br addr show`. */
export interface BriefInterface {
  /** The name without the `@peer` suffix of a veth. */
  interface: string;
  state: string;
  /** Addresses without their prefix lengths. */
  addresses: string[];
}

const TIMESTAMP = /^\[(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\]$/;

/**
 * Milliseconds since the epoch of `ip -ts`'s `[YYYY-MM-DDTHH:MM:SS.uuuuuu]`,
 * read as UTC (run `ip` with `TZ=UTC`: it prints local time without a zone).
 * Undefined when the text is not such a stamp.
 */
export function parseIpTimestamp(stamp: string): number | undefined {
  const m = TIMESTAMP.exec(stamp);
  if (!m) return undefined;
  const [, y, mo, d, h, mi, s, frac = ''] = m;
  const whole = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  if (Number.isNaN(whole)) return undefined;
  return whole + (frac === '' ? 0 : Number(`0.${frac}`) * 1000);
}

const MONITOR =
  /^(\[[^\]]+\])\s+(Deleted\s+)?\d+:\s+([^\s:]+)\s+(inet6?)\s+([0-9A-Fa-f.:]+)(?:\/\d{1,3})?(?:\s|$)/;

/**
 * Parses one line of `ip -ts -o monitor address`: `[stamp] [Deleted ]IDX: IF
 * inet|inet6 ADDR/LEN ...`. Undefined for anything else (another kind of
 * event, a continuation line, a line without a stamp).
 */
export function parseMonitorLine(line: string): MonitorAddress | undefined {
  const m = MONITOR.exec(line);
  if (!m) return undefined;
  const at = parseIpTimestamp(m[1] as string);
  if (at === undefined) return undefined;
  return {
    at,
    held: m[2] === undefined,
    interface: m[3] as string,
    family: m[4] as 'inet' | 'inet6',
    address: (m[5] as string).toLowerCase(),
  };
}

/** Parses `ip -br addr show`: one interface per line, `NAME[@PEER] STATE ADDR/LEN...`. */
export function parseBriefAddresses(output: string): BriefInterface[] {
  const interfaces: BriefInterface[] = [];
  for (const line of output.split('\n')) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 2 || fields[0] === '') continue;
    const [name, state, ...addresses] = fields as [string, string, ...string[]];
    interfaces.push({
      interface: name.split('@')[0] as string,
      state,
      addresses: addresses.map((a) => (a.split('/')[0] as string).toLowerCase()),
    });
  }
  return interfaces;
}

/** A stretch of time (ms since the epoch) during which `vip` had exactly `holders` (sorted). */
export interface HolderSpan {
  from: number;
  to: number;
  holders: readonly string[];
}

/** A stretch of time and its length in ms. */
export interface Interval {
  from: number;
  to: number;
  ms: number;
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** The events of `vip` in time order (stable for equal times: the order they were recorded in). */
function eventsOf(events: readonly HoldEvent[], vip: string): HoldEvent[] {
  return events
    .map((e, i) => ({ e, i }))
    .filter(({ e }) => e.vip === vip)
    .sort((x, y) => x.e.at - y.e.at || x.i - y.i)
    .map(({ e }) => e);
}

function apply(held: Set<string>, e: HoldEvent): void {
  if (e.held) held.add(e.holder);
  else held.delete(e.holder);
}

/**
 * The holder sets of `vip` over `[from, to]`, consecutive spans with equal
 * sets merged. An event repeating the state (an address added where it
 * already was) changes nothing. Throws when `to < from`.
 */
export function holderSpans(
  events: readonly HoldEvent[],
  vip: string,
  from: number,
  to: number,
): HolderSpan[] {
  if (to < from) throw new Error(`the window ends (${to}) before it begins (${from})`);
  const held = new Set<string>();
  const ordered = eventsOf(events, vip);
  let index = 0;
  for (; index < ordered.length && (ordered[index] as HoldEvent).at <= from; index++) {
    apply(held, ordered[index] as HoldEvent);
  }
  const raw: HolderSpan[] = [{ from, to, holders: [...held].sort() }];
  for (; index < ordered.length && (ordered[index] as HoldEvent).at <= to; index++) {
    const e = ordered[index] as HoldEvent;
    apply(held, e);
    (raw.at(-1) as HolderSpan).to = e.at;
    raw.push({ from: e.at, to, holders: [...held].sort() });
  }
  // Events at one instant leave spans of no length: only the state after the last of them counts
  // (the last span is kept even so: it is the state at `to`).
  const spans: HolderSpan[] = [];
  for (const span of raw.filter((s, i) => s.to > s.from || i === raw.length - 1)) {
    const last = spans.at(-1);
    if (last && sameSet(last.holders, span.holders)) last.to = span.to;
    else spans.push({ ...span });
  }
  return spans;
}

/** Who holds `vip` at time `at`, every event up to and including `at` applied. */
export function holdersAt(events: readonly HoldEvent[], vip: string, at: number): readonly string[] {
  return (holderSpans(events, vip, at, at)[0] as HolderSpan).holders;
}

function intervals(spans: readonly HolderSpan[], keep: (holders: readonly string[]) => boolean): Interval[] {
  return spans.filter((s) => keep(s.holders)).map((s) => ({ from: s.from, to: s.to, ms: s.to - s.from }));
}

/** The stretches of `spans` with no holder. */
export function gaps(spans: readonly HolderSpan[]): Interval[] {
  return intervals(spans, (h) => h.length === 0);
}

/** The stretches of `spans` with two holders or more (a split brain on the wire). */
export function overlaps(spans: readonly HolderSpan[]): Interval[] {
  return intervals(spans, (h) => h.length >= 2);
}

/** How many times the holder set changed within `spans` (0: the address stayed where it was). */
export function changes(spans: readonly HolderSpan[]): number {
  return Math.max(0, spans.length - 1);
}

/**
 * The single holder that `spans` ends with after the last change, and when
 * that span began; undefined when the window ends with none or several.
 */
export function settledHolder(spans: readonly HolderSpan[]): { holder: string; since: number } | undefined {
  const last = spans.at(-1);
  if (last?.holders.length !== 1) return undefined;
  return { holder: last.holders[0] as string, since: last.from };
}
