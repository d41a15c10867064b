/**
 * Who may read `/metrics` (API.md, "Metrics"): a caller the API server
 * authenticates (TokenReview of its bearer token) and authorizes for `get` on the
 * non-resource URL `/metrics` (SubjectAccessReview), as controller-runtime's
 * secure metrics do. The metrics name every router and its active node: they
 * are not for any pod that can reach the port.
 *
 * Anyone who reaches the port can send a new random token with every request,
 * and each would cost a TokenReview. So that strangers can neither slow the
 * reconciler nor lock real scrapers out:
 * - the reviews go through a client of their own (`raw`: the operator gives the
 *   authorizer its own connection, rate limit and in-flight bound, apart from
 *   the reconciler's);
 * - answers are cached for a short time in two bounded maps: tokens the API
 *   server authenticated (200 or 403) and tokens it did not (401), so random
 *   tokens only ever push other random tokens out, never a real scraper;
 * - a token once authenticated is reviewed again when its answer expires without
 *   any of the bounds below (there are at most `maxCached` such tokens);
 * - a token never seen authenticated is reviewed only within bounds: one review
 *   at a time per source address, `perAddressQps` (burst `perAddressBurst`) per
 *   address, else 429; `maxUnknownPending` such reviews at once in all, else 503;
 * - concurrent requests with the same token share one review.
 * Callers without a token are refused before any of this.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RawRequester } from '../kube/client.ts';
import { BoundedMap } from '../runtime/bounded-map.ts';
import { TokenBucket } from '../runtime/token-bucket.ts';

/**
 * The outcome: 200 may read, 401 not authenticated, 403 not authorized, 429 this
 * address sends too many new tokens, 503 could not ask now.
 */
export type MetricsAccess = 200 | 401 | 403 | 429 | 503;

/** The bounds of {@link createMetricsAuthorizer}; every field has a default. */
export interface MetricsAuthorizerLimits {
  /** How long an answer is reused (default 60 s). */
  cacheTtlMs: number;
  /** Most cached answers for authenticated tokens (default 256; the least recently used go first). */
  maxCached: number;
  /** Most cached answers for tokens the API server did not authenticate (default 4096). */
  maxDenied: number;
  /** Reviews of tokens never seen authenticated, in flight at once (default 2; beyond: 503). */
  maxUnknownPending: number;
  /** Reviews of new tokens per second per source address (default 0.5; beyond: 429). */
  perAddressQps: number;
  /** Reviews of new tokens one address may send at once after a quiet period (default 5). */
  perAddressBurst: number;
  /** Source addresses remembered (default 1024; the least recently seen are forgotten). */
  maxAddresses: number;
}

/** The defaults of {@link MetricsAuthorizerLimits}. */
export const METRICS_AUTH_LIMITS: MetricsAuthorizerLimits = {
  cacheTtlMs: 60_000,
  maxCached: 256,
  maxDenied: 4096,
  maxUnknownPending: 2,
  perAddressQps: 0.5,
  perAddressBurst: 5,
  maxAddresses: 1024,
};

/** Options of {@link createMetricsAuthorizer}. */
export interface MetricsAuthorizerOptions extends Partial<MetricsAuthorizerLimits> {
  /** The authorizer's own API client (never the reconciler's). */
  raw: RawRequester;
  /** Milliseconds clock (default `performance.now`). */
  now?: () => number;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

interface CachedAnswer {
  access: 200 | 403;
  until: number;
}

interface Source {
  pending: number;
  budget: TokenBucket;
}

/** The bearer token of a request, when it has one. */
function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+(\S{1,8192})\s*$/i.exec(header) : null;
  return match?.[1];
}

/** Asks the API server: TokenReview, then SubjectAccessReview for `get /metrics`. */
async function review(raw: RawRequester, token: string): Promise<200 | 401 | 403> {
  const tokenReview = (await raw({
    method: 'POST',
    path: '/apis/authentication.k8s.io/v1/tokenreviews',
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } },
  })) as { status?: TokenReviewStatus };
  const user = tokenReview.status?.user;
  if (tokenReview.status?.authenticated !== true || !user?.username) return 401;
  const access = (await raw({
    method: 'POST',
    path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: user.username,
        ...(user.uid ? { uid: user.uid } : {}),
        ...(user.groups ? { groups: user.groups } : {}),
        ...(user.extra ? { extra: user.extra } : {}),
        nonResourceAttributes: { path: '/metrics', verb: 'get' },
      },
    },
  })) as { status?: { allowed?: boolean } };
  return access.status?.allowed === true ? 200 : 403;
}

/** Builds the check the secure metrics server runs on every request (see the module comment). */
export function createMetricsAuthorizer(
  options: MetricsAuthorizerOptions,
): (req: IncomingMessage) => Promise<MetricsAccess> {
  const { raw } = options;
  const limits = { ...METRICS_AUTH_LIMITS, ...definedLimits(options) };
  const now = options.now ?? (() => performance.now());
  const known = new BoundedMap<string, CachedAnswer>(limits.maxCached);
  const denied = new BoundedMap<string, number>(limits.maxDenied);
  const sources = new BoundedMap<string, Source>(limits.maxAddresses);
  const inFlight = new Map<string, Promise<MetricsAccess>>();
  let unknownPending = 0;

  const ask = (key: string, token: string): Promise<MetricsAccess> => {
    const shared = inFlight.get(key);
    if (shared) return shared;
    const answer = review(raw, token).then(
      (access) => {
        if (access === 401) {
          known.delete(key);
          denied.set(key, now() + limits.cacheTtlMs);
        } else {
          denied.delete(key);
          known.set(key, { access, until: now() + limits.cacheTtlMs });
        }
        return access;
      },
      (): MetricsAccess => 503,
    );
    const done = answer.finally(() => inFlight.delete(key));
    inFlight.set(key, done);
    return done;
  };

  const source = (address: string): Source => {
    let found = sources.get(address);
    if (!found) {
      found = {
        pending: 0,
        budget: new TokenBucket({ qps: limits.perAddressQps, burst: limits.perAddressBurst, now }),
      };
      sources.set(address, found);
    }
    return found;
  };

  return async (req) => {
    const token = bearerToken(req);
    if (!token) return 401;
    const key = createHash('sha256').update(token).digest('base64');
    const cached = known.get(key);
    if (cached && cached.until > now()) return cached.access;
    // Authenticated before: reviewed again without the bounds on strangers.
    if (cached) return ask(key, token);
    const deniedUntil = denied.get(key);
    if (deniedUntil !== undefined && deniedUntil > now()) return 401;
    const shared = inFlight.get(key);
    if (shared) return shared;
    const from = source(req.socket?.remoteAddress ?? 'unknown');
    if (from.pending > 0) return 429;
    if (unknownPending >= limits.maxUnknownPending) return 503;
    if (!from.budget.tryTake()) return 429;
    unknownPending++;
    from.pending++;
    try {
      return await ask(key, token);
    } finally {
      unknownPending--;
      from.pending--;
    }
  };
}

function definedLimits(options: Partial<MetricsAuthorizerLimits>): Partial<MetricsAuthorizerLimits> {
  return Object.fromEntries(
    (Object.keys(METRICS_AUTH_LIMITS) as (keyof MetricsAuthorizerLimits)[])
      .filter((k) => options[k] !== undefined)
      .map((k) => [k, options[k]]),
  );
}
