/**
 * Which connections a server closes, as pure functions of what each connection
 * has done (its phase, when that began, the bytes received since) and the clock:
 *
 * - {@link overdue}: a connection past its deadline (handshake, or the whole
 *   request: headers and body), or sending slower than the minimum rate, is closed
 *   by the server's own sweep, not left to Node's coarse timeout checks;
 * - {@link chooseEviction}: when a new connection arrives at a full server (or at
 *   its source address's cap), the slowest busy connection makes room for it,
 *   so slow clients cannot lock out a fast one (the API server), even from the
 *   same address; a connection whose request has arrived whole is never closed.
 */

/** What a connection is doing: TLS handshake, receiving a request, awaiting its answer, or idle between requests. */
export type ConnectionPhase = 'handshake' | 'request' | 'processing' | 'idle';

/** One connection as the pacing rules see it. */
export interface ConnectionState {
  readonly phase: ConnectionPhase;
  /** When the current phase began (ms, the same clock as `now`). */
  readonly since: number;
  /** Bytes received since the current phase began (TLS bytes on an HTTPS server). */
  readonly bytes: number;
  /** The client's address (the per-address cap). */
  readonly address: string;
}

/** The bounds these rules apply (a subset of a server's `ServerLimits`). */
export interface PacingLimits {
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly handshakeTimeoutMs: number;
  /** From the start of a request (the connection's, or the end of the previous answer) to the end of its body. */
  readonly requestTimeoutMs: number;
  /** The slowest a request may arrive, after {@link PacingLimits.rateGraceMs}. */
  readonly minBytesPerSecond: number;
  /** A request's first moments, in which no rate is asked of it. */
  readonly rateGraceMs: number;
}

/** A connection younger than this in its request is not judged by its rate when choosing whom to evict. */
export const EVICTION_YOUNG_MS = 250;
/** A handshake older than this is stalled: a real client's takes milliseconds. */
export const STALLED_HANDSHAKE_MS = 1000;

/** Why a connection must be closed now, or undefined while it keeps within its bounds. */
export function overdue(
  c: ConnectionState,
  now: number,
  limits: PacingLimits,
): 'handshake deadline' | 'request deadline' | 'too slow' | undefined {
  const elapsed = now - c.since;
  if (c.phase === 'handshake') return elapsed > limits.handshakeTimeoutMs ? 'handshake deadline' : undefined;
  if (c.phase !== 'request') return undefined;
  if (elapsed > limits.requestTimeoutMs) return 'request deadline';
  const owed = (limits.minBytesPerSecond * (elapsed - limits.rateGraceMs)) / 1000;
  return c.bytes < owed ? 'too slow' : undefined;
}

/**
 * The eviction order, lowest first: 0, a stalled sender (a request older than
 * {@link EVICTION_YOUNG_MS} or a handshake older than {@link STALLED_HANDSHAKE_MS}),
 * slowest (bytes per second) first; 1, a young request, slowest first; 2, a young
 * handshake, oldest first (the server, not the client, paces a handshake, so its
 * bytes say little); 3, an idle keep-alive connection, oldest first: a client
 * (the API server) may be writing its next request on it right now, and closing
 * it under that write fails the request outright. A connection whose request has
 * arrived (`processing`) is never evicted.
 */
function evictionRank(c: ConnectionState, now: number): [number, number] | undefined {
  const elapsed = Math.max(1, now - c.since);
  const rate = c.bytes / elapsed;
  switch (c.phase) {
    case 'processing':
      return undefined;
    case 'idle':
      return [3, c.since];
    case 'request':
      return elapsed >= EVICTION_YOUNG_MS ? [0, rate] : [1, rate];
    case 'handshake':
      return elapsed >= STALLED_HANDSHAKE_MS ? [0, rate] : [2, c.since];
  }
}

/** The connection to evict first among `candidates` (see {@link evictionRank}), or undefined when none may be. */
export function slowestConnection<T extends ConnectionState>(
  candidates: Iterable<T>,
  now: number,
): T | undefined {
  let best: T | undefined;
  let bestRank: [number, number] | undefined;
  for (const c of candidates) {
    const rank = evictionRank(c, now);
    if (!rank) continue;
    if (!bestRank || rank[0] < bestRank[0] || (rank[0] === bestRank[0] && rank[1] < bestRank[1])) {
      best = c;
      bestRank = rank;
    }
  }
  return best;
}

/**
 * What to do with a new connection from `address`: admit it, admit it after
 * evicting `victim` (from the same address when that address is at its cap,
 * else from the whole server), or refuse it when every candidate is answering a
 * request that has arrived whole.
 */
export function chooseEviction<T extends ConnectionState>(
  open: readonly T[],
  address: string,
  now: number,
  limits: PacingLimits,
): { action: 'admit' } | { action: 'evict'; victim: T } | { action: 'refuse' } {
  const sameAddress = open.filter((c) => c.address === address);
  let candidates: readonly T[] | undefined;
  if (sameAddress.length >= limits.maxConnectionsPerAddress) candidates = sameAddress;
  else if (open.length >= limits.maxConnections) candidates = open;
  if (!candidates) return { action: 'admit' };
  const victim = slowestConnection(candidates, now);
  return victim ? { action: 'evict', victim } : { action: 'refuse' };
}
