/**
 * Who may read `/metrics` (API.md, "Metrics"): a caller the API server
 * authenticates (TokenReview of its bearer token) and authorizes for `get` on the
 * non-resource URL `/metrics` (SubjectAccessReview), as controller-runtime's
 * secure metrics do. The metrics name every router and its active node: they
 * are not for any pod that can reach the port.
 *
 * Answers are cached for a short time (a scraper every 30 s costs two API calls a
 * minute, not two per scrape), in a bounded map, so random tokens cannot grow
 * memory; callers without a token are refused before any API call.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RawRequester } from '../kube/client.ts';

/** The outcome: 200 may read, 401 not authenticated, 403 not authorized, 503 could not ask. */
export type MetricsAccess = 200 | 401 | 403 | 503;

/** Options of {@link createMetricsAuthorizer}. */
export interface MetricsAuthorizerOptions {
  raw: RawRequester;
  /** How long an answer is reused (default 60 s). */
  cacheTtlMs?: number;
  /** Most cached answers (default 256; the oldest go first). */
  maxCached?: number;
  now?: () => number;
}

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; uid?: string; groups?: string[]; extra?: Record<string, string[]> };
}

/** The bearer token of a request, when it has one. */
function bearerToken(req: IncomingMessage): string | undefined {
  const header = req.headers.authorization;
  const match = typeof header === 'string' ? /^Bearer\s+(\S{1,8192})\s*$/i.exec(header) : null;
  return match?.[1];
}

/** Builds the check the secure metrics server runs on every request. */
export function createMetricsAuthorizer(
  options: MetricsAuthorizerOptions,
): (req: IncomingMessage) => Promise<MetricsAccess> {
  const { raw } = options;
  const ttl = options.cacheTtlMs ?? 60_000;
  const max = options.maxCached ?? 256;
  const now = options.now ?? Date.now;
  const cache = new Map<string, { access: MetricsAccess; until: number }>();

  const review = async (token: string): Promise<MetricsAccess> => {
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
  };

  return async (req) => {
    const token = bearerToken(req);
    if (!token) return 401;
    const key = createHash('sha256').update(token).digest('base64');
    const hit = cache.get(key);
    if (hit && hit.until > now()) return hit.access;
    let access: MetricsAccess;
    try {
      access = await review(token);
    } catch {
      return 503;
    }
    cache.delete(key);
    cache.set(key, { access, until: now() + ttl });
    while (cache.size > max) cache.delete(cache.keys().next().value as string);
    return access;
  };
}
