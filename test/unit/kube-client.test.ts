import type { IncomingMessage } from 'node:http';
import { ApiException } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients } from '../../src/kube/client.ts';
import { apiErrorFacts, describeError, isTransient, KubeRequestError } from '../../src/kube/errors.ts';
import { simpleConnection } from '../../src/kube/kubeconfig.ts';
import { createMetrics } from '../../src/metrics.ts';
import { type StandInServer, startStandInServer } from '../support/stand-in-server.ts';

// The client against a local plain-HTTP server that plays the API server:
// timeouts, metrics, headers and error bodies are client-side behaviour.

let server: StandInServer;
let base: string;
const seen: IncomingMessage[] = [];

beforeAll(async () => {
  server = await startStandInServer((req, res) => {
    seen.push(req);
    if (req.url?.startsWith('/api/v1/namespaces/slow')) return; // never answers
    if (req.url?.startsWith('/api/v1/namespaces/missing')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message: 'namespaces "missing" not found',
          reason: 'NotFound',
          code: 404,
        }),
      );
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        kind: 'Namespace',
        apiVersion: 'v1',
        metadata: { name: 'ok', creationTimestamp: '2026-01-01T00:00:00Z' },
      }),
    );
  });
  base = server.base;
});

afterAll(() => server.close());

const connection = () => simpleConnection({ server: base, token: 'secret-token' });

async function count(metrics: ReturnType<typeof createMetrics>, labels: Record<string, string>) {
  const values = (await metrics.registry.getSingleMetric('rest_client_requests_total')?.get())?.values ?? [];
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((s, v) => s + v.value, 0);
}

describe('API clients', () => {
  it('raw requests are authenticated and counted by code, method and host', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const clients = createKubeClients(connection(), { metrics });
    const raw = (await clients.raw({ path: '/api/v1/namespaces/ok' })) as {
      metadata: { creationTimestamp: unknown };
    };
    // Raw requests keep timestamps as the server sent them.
    expect(raw.metadata.creationTimestamp).toBe('2026-01-01T00:00:00Z');
    const last = seen.at(-1);
    expect(last?.headers.authorization).toBe('Bearer secret-token');
    expect(last?.headers['user-agent']).toBe('harouter-operator');
    const host = new URL(base).host;
    expect(clients.host).toBe(host);
    expect(await count(metrics, { code: '200', method: 'GET', host })).toBe(1);
    await clients.close();
  });

  it('times out a request that gets no answer and counts it as <error>', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const clients = createKubeClients(connection(), { metrics, requestTimeoutMs: 150 });
    const started = performance.now();
    const rawErr = await clients.raw({ path: '/api/v1/namespaces/slow' }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(apiErrorFacts(rawErr)).toMatchObject({ status: 0, reason: 'Timeout' });
    expect(isTransient(rawErr)).toBe(true);
    expect(await count(metrics, { code: '<error>' })).toBe(1);
    await clients.close();
  });

  it('maps API errors to the parsed Status without the client message', async () => {
    const clients = createKubeClients(connection());
    const raw = await clients.raw({ path: '/api/v1/namespaces/missing' }).catch((e: unknown) => e);
    expect(raw).toBeInstanceOf(KubeRequestError);
    expect(apiErrorFacts(raw)).toEqual({
      status: 404,
      reason: 'NotFound',
      message: 'namespaces "missing" not found',
    });
    await clients.close();
  });

  it("keeps the server's Retry-After (details.retryAfterSeconds) when it is a positive integer", () => {
    const initializing = new KubeRequestError(
      503,
      '{"kind":"Status","code":503,"reason":"ServiceUnavailable","message":"paths not installed","details":{"retryAfterSeconds":5}}',
    );
    expect(apiErrorFacts(initializing)).toEqual({
      status: 503,
      reason: 'ServiceUnavailable',
      message: 'paths not installed',
      retryAfterSeconds: 5,
    });
    for (const bad of [0, -1, 1.5, '5', null]) {
      const err = new KubeRequestError(
        503,
        JSON.stringify({ code: 503, details: { retryAfterSeconds: bad } }),
      );
      expect(apiErrorFacts(err).retryAfterSeconds).toBeUndefined();
    }
  });

  it("recognises client-node's ApiException (typed clients in tests and tools) by its shape", () => {
    const typed = new ApiException(
      404,
      'long message',
      JSON.stringify({ kind: 'Status', code: 404, reason: 'NotFound', message: 'gone' }),
      { authorization: 'Bearer secret-token' },
    );
    expect(apiErrorFacts(typed)).toEqual({ status: 404, reason: 'NotFound', message: 'gone' });
    const described = JSON.stringify(describeError(typed));
    expect(described).not.toContain('secret-token');
    expect(described).not.toContain('Headers');
  });
});

describe('apiErrorFacts', () => {
  it('parses causes, falls back to the HTTP status, and handles non-JSON bodies', () => {
    const invalid = new ApiException(
      422,
      'long message with headers',
      JSON.stringify({
        kind: 'Status',
        code: 422,
        reason: 'Invalid',
        message: 'bad',
        details: {
          causes: [{ reason: 'FieldValueForbidden', message: 'stale report: x', field: 'spec.observedAt' }],
        },
      }),
      {},
    );
    expect(apiErrorFacts(invalid)).toEqual({
      status: 422,
      reason: 'Invalid',
      message: 'bad',
      causes: [{ reason: 'FieldValueForbidden', message: 'stale report: x', field: 'spec.observedAt' }],
    });
    expect(apiErrorFacts(new ApiException(503, 'x', '<html>oops</html>', {}))).toEqual({
      status: 503,
      reason: 'ServiceUnavailable',
      message: '',
    });
    expect(
      apiErrorFacts(new KubeRequestError(409, { reason: 'AlreadyExists', message: 'exists' })),
    ).toMatchObject({
      status: 409,
      reason: 'AlreadyExists',
    });
    expect(apiErrorFacts(Object.assign(new Error('Gone'), { statusCode: 410 })).status).toBe(410);
    expect(apiErrorFacts('weird')).toEqual({ status: 0, reason: 'Unknown', message: 'string' });
  });
});
