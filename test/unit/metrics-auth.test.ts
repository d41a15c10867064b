import { createPublicKey, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createMetricsAuthorizer } from '../../src/http/metrics-auth.ts';
import { selfSignedCertificate } from '../../src/http/self-signed.ts';
import type { RawRequest, RawRequester } from '../../src/kube/client.ts';
import { BoundedMap } from '../../src/runtime/bounded-map.ts';

const withToken = (token?: string, address = '10.0.0.1') =>
  ({
    headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
    socket: { remoteAddress: address },
  }) as unknown as IncomingMessage;

/**
 * A requester answering TokenReviews (`good-*` tokens authenticate) and SARs
 * (`reader` may read). With `held`, each request waits until `release()`.
 */
function reviews(held = false) {
  const calls: string[] = [];
  const waiting: Array<() => void> = [];
  const raw = async (req: RawRequest) => {
    calls.push(req.path);
    if (held) await new Promise<void>((resolve) => waiting.push(resolve));
    const body = req.body as { spec: { token?: string; user?: string } };
    if (req.path.endsWith('/tokenreviews')) {
      const token = body.spec.token ?? '';
      return token.startsWith('good-')
        ? { status: { authenticated: true, user: { username: token.slice(5), groups: ['g'] } } }
        : { status: { authenticated: false } };
    }
    return { status: { allowed: body.spec.user === 'reader' } };
  };
  const release = async () => {
    while (waiting.length > 0) {
      for (const resolve of waiting.splice(0)) resolve();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { raw: raw as never, calls, release };
}

const tokenReviews = (calls: string[]) => calls.filter((c) => c.endsWith('/tokenreviews')).length;

describe('createMetricsAuthorizer', () => {
  it('401 without a token (no API call) or with an unknown one; 403 unauthorized; 200 authorized', async () => {
    const { raw, calls } = reviews();
    const authorize = createMetricsAuthorizer({ raw });
    expect(await authorize(withToken())).toBe(401);
    expect(await authorize({ headers: { authorization: 'Basic abc' } } as IncomingMessage)).toBe(401);
    expect(calls).toEqual([]);
    expect(await authorize(withToken('bad'))).toBe(401);
    expect(await authorize(withToken('good-stranger'))).toBe(403);
    expect(await authorize(withToken('good-reader'))).toBe(200);
  });

  it('caches answers for the TTL, then reviews the token again', async () => {
    const { raw, calls } = reviews();
    let now = 0;
    const authorize = createMetricsAuthorizer({ raw, cacheTtlMs: 1000, now: () => now });
    await authorize(withToken('good-reader'));
    await authorize(withToken('good-reader'));
    expect(calls).toHaveLength(2);
    now = 1001;
    expect(await authorize(withToken('good-reader'))).toBe(200);
    expect(calls).toHaveLength(4);
  });

  it('caches a refused token apart: asked again, it costs no review', async () => {
    const { raw, calls } = reviews();
    const authorize = createMetricsAuthorizer({ raw });
    expect(await authorize(withToken('bad'))).toBe(401);
    expect(await authorize(withToken('bad', '10.0.0.2'))).toBe(401);
    expect(calls).toHaveLength(1);
  });

  it('random tokens never push an authenticated token out of the cache', async () => {
    const { raw, calls } = reviews();
    const authorize = createMetricsAuthorizer({ raw, maxCached: 2, maxDenied: 8 });
    expect(await authorize(withToken('good-reader'))).toBe(200);
    // Many strangers, each from its own address so that no address bound refuses them first.
    for (let i = 0; i < 100; i++) expect(await authorize(withToken(`random-${i}`, `10.1.0.${i}`))).toBe(401);
    const before = calls.length;
    expect(await authorize(withToken('good-reader'))).toBe(200);
    expect(calls.length).toBe(before);
  });

  it('the refused-token cache is bounded: the oldest refused token is reviewed again', async () => {
    const { raw, calls } = reviews();
    const authorize = createMetricsAuthorizer({ raw, maxDenied: 2, perAddressQps: 0 });
    await authorize(withToken('bad-1'));
    await authorize(withToken('bad-2'));
    await authorize(withToken('bad-1'));
    expect(tokenReviews(calls)).toBe(2);
    await authorize(withToken('bad-3'));
    await authorize(withToken('bad-2'));
    expect(tokenReviews(calls)).toBe(4);
  });

  it('one new token at a time per address, at most perAddressBurst, refilled at perAddressQps', async () => {
    const { raw, calls, release } = reviews(true);
    let now = 0;
    const authorize = createMetricsAuthorizer({
      raw,
      perAddressQps: 1,
      perAddressBurst: 2,
      maxUnknownPending: 10,
      now: () => now,
    });
    const first = authorize(withToken('x1', 'a'));
    expect(await authorize(withToken('x2', 'a'))).toBe(429);
    const other = authorize(withToken('y1', 'b'));
    await release();
    expect([await first, await other]).toEqual([401, 401]);
    // The budget: 2 at once ('x1', 'x3'), then 1 a second.
    const second = authorize(withToken('x3', 'a'));
    await release();
    expect(await second).toBe(401);
    expect(await authorize(withToken('x4', 'a'))).toBe(429);
    expect(tokenReviews(calls)).toBe(3);
    now = 1000;
    const refilled = authorize(withToken('x5', 'a'));
    await release();
    expect(await refilled).toBe(401);
    expect(await authorize(withToken('x6', 'a'))).toBe(429);
    expect(tokenReviews(calls)).toBe(4);
  });

  it('at most maxUnknownPending reviews of new tokens at once (503 beyond), without using up an address', async () => {
    const { raw, release } = reviews(true);
    const authorize = createMetricsAuthorizer({ raw, maxUnknownPending: 2, perAddressBurst: 1 });
    const a = authorize(withToken('x1', 'a'));
    const b = authorize(withToken('x2', 'b'));
    expect(await authorize(withToken('x3', 'c'))).toBe(503);
    await release();
    expect([await a, await b]).toEqual([401, 401]);
    // 'c' was refused for the global bound: its own budget is still there.
    const c = authorize(withToken('good-reader', 'c'));
    await release();
    expect(await c).toBe(200);
  });

  it('a token once authenticated is reviewed again when it expires, past every bound on strangers', async () => {
    const { raw, calls, release } = reviews(true);
    let now = 0;
    const authorize = createMetricsAuthorizer({
      raw,
      cacheTtlMs: 1000,
      maxUnknownPending: 1,
      perAddressBurst: 1,
      perAddressQps: 0.001,
      now: () => now,
    });
    const first = authorize(withToken('good-reader', 'a'));
    await release();
    expect(await first).toBe(200);
    // The address's budget is spent and a stranger holds the one slot for new tokens.
    const stranger = authorize(withToken('random', 'b'));
    now = 2000;
    const again = authorize(withToken('good-reader', 'a'));
    await release();
    expect(await again).toBe(200);
    expect(await stranger).toBe(401);
    expect(tokenReviews(calls)).toBe(3);
  });

  it('requests with the same token share one review', async () => {
    const { raw, calls, release } = reviews(true);
    const authorize = createMetricsAuthorizer({ raw });
    const all = [1, 2, 3, 4, 5].map((i) => authorize(withToken('good-reader', `10.0.0.${i}`)));
    await release();
    expect(await Promise.all(all)).toEqual([200, 200, 200, 200, 200]);
    expect(tokenReviews(calls)).toBe(1);
  });

  it('503 when the API server cannot be asked, and nothing is cached', async () => {
    let up = false;
    const raw: RawRequester = reviews().raw;
    const authorize = createMetricsAuthorizer({
      raw: async (req) => (up ? raw(req) : Promise.reject(new Error('down'))),
      perAddressQps: 0,
    });
    expect(await authorize(withToken('good-reader'))).toBe(503);
    up = true;
    expect(await authorize(withToken('good-reader'))).toBe(200);
  });
});

describe('BoundedMap', () => {
  it('never holds more than max entries, dropping the least recently used', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.tuple(fc.boolean(), fc.nat(20))),
        (max, ops) => {
          const map = new BoundedMap<number, number>(max);
          const model: number[] = [];
          for (const [isSet, key] of ops) {
            const at = model.indexOf(key);
            if (isSet) {
              map.set(key, key);
              if (at >= 0) model.splice(at, 1);
              model.push(key);
              if (model.length > max) model.shift();
            } else {
              expect(map.get(key)).toBe(at >= 0 ? key : undefined);
              if (at >= 0) model.push(...model.splice(at, 1));
            }
            expect(map.size).toBe(model.length);
            expect(map.size).toBeLessThanOrEqual(max);
          }
        },
      ),
    );
  });
});

describe('selfSignedCertificate', () => {
  it('is a certificate for the names, signed by its own key, valid now', () => {
    const now = new Date('2026-12-01T00:00:00Z');
    const { cert, key } = selfSignedCertificate(['localhost', '127.0.0.1'], now);
    const x509 = new X509Certificate(cert);
    expect(x509.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1');
    expect(x509.verify(createPublicKey(key))).toBe(true);
    expect(new Date(x509.validFrom).getTime()).toBeLessThan(now.getTime());
    expect(new Date(x509.validTo).getTime()).toBeGreaterThan(now.getTime() + 300 * 86_400_000);
  });

  it('encodes any serial as a valid positive INTEGER (random bytes starting with zeros included)', () => {
    for (const first of [0x00, 0x01, 0x7f, 0x80, 0xff]) {
      const { cert } = selfSignedCertificate(['localhost'], new Date(), (size) => Buffer.alloc(size, first));
      const x509 = new X509Certificate(cert);
      expect(x509.serialNumber).toMatch(/^[4-7]/);
      expect(x509.serialNumber).toHaveLength(32);
    }
  });
});
