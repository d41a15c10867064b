import { createPublicKey, X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createMetricsAuthorizer } from '../../src/http/metrics-auth.ts';
import { selfSignedCertificate } from '../../src/http/self-signed.ts';
import type { RawRequest } from '../../src/kube/client.ts';

const withToken = (token?: string) =>
  ({ headers: token === undefined ? {} : { authorization: `Bearer ${token}` } }) as IncomingMessage;

/** A requester answering TokenReviews (`good-*` tokens authenticate) and SARs (`reader` may read). */
function reviews() {
  const calls: string[] = [];
  const raw = async (req: RawRequest) => {
    calls.push(req.path);
    const body = req.body as { spec: { token?: string; user?: string } };
    if (req.path.endsWith('/tokenreviews')) {
      const token = body.spec.token ?? '';
      return token.startsWith('good-')
        ? { status: { authenticated: true, user: { username: token.slice(5), groups: ['g'] } } }
        : { status: { authenticated: false } };
    }
    return { status: { allowed: body.spec.user === 'reader' } };
  };
  return { raw: raw as never, calls };
}

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

  it('caches answers for the TTL, in a bounded map', async () => {
    const { raw, calls } = reviews();
    let now = 0;
    const authorize = createMetricsAuthorizer({ raw, cacheTtlMs: 1000, maxCached: 2, now: () => now });
    await authorize(withToken('good-reader'));
    await authorize(withToken('good-reader'));
    expect(calls).toHaveLength(2);
    now = 1001;
    await authorize(withToken('good-reader'));
    expect(calls).toHaveLength(4);
    // Two other tokens push the first out of the cache.
    await authorize(withToken('x1'));
    await authorize(withToken('x2'));
    const before = calls.length;
    await authorize(withToken('good-reader'));
    expect(calls.length).toBe(before + 2);
  });

  it('503 when the API server cannot be asked', async () => {
    const authorize = createMetricsAuthorizer({
      raw: (async () => Promise.reject(new Error('down'))) as never,
    });
    expect(await authorize(withToken('good-reader'))).toBe(503);
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
