import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiException, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients, loadKubeConfig, patchOptions } from '../../src/kube/client.ts';
import { apiErrorFacts, describeError, isTransient, KubeRequestError } from '../../src/kube/errors.ts';
import { createMetrics } from '../../src/metrics.ts';

// The clients against a local plain-HTTP server that plays the API server:
// timeouts, metrics, headers and error bodies are client-side behaviour.

let server: Server;
let base: string;
const seen: IncomingMessage[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
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
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

function kubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: base, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'secret-token' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

async function count(metrics: ReturnType<typeof createMetrics>, labels: Record<string, string>) {
  const values = (await metrics.registry.getSingleMetric('rest_client_requests_total')?.get())?.values ?? [];
  return values
    .filter((v) => Object.entries(labels).every(([k, l]) => (v.labels as Record<string, unknown>)[k] === l))
    .reduce((s, v) => s + v.value, 0);
}

describe('API clients', () => {
  it('typed and raw requests are authenticated and counted by code, method and host', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const clients = createKubeClients(kubeConfig(), { metrics });
    const ns = await clients.core.readNamespace({ name: 'ok' });
    expect(ns.metadata?.name).toBe('ok');
    const raw = (await clients.raw({ path: '/api/v1/namespaces/ok' })) as {
      metadata: { creationTimestamp: unknown };
    };
    // Raw requests keep timestamps as the server sent them.
    expect(raw.metadata.creationTimestamp).toBe('2026-01-01T00:00:00Z');
    const last = seen.at(-1);
    expect(last?.headers.authorization).toBe('Bearer secret-token');
    expect(last?.headers['user-agent']).toBe('harouter-operator');
    const host = new URL(base).host;
    expect(await count(metrics, { code: '200', method: 'GET', host })).toBe(2);
  });

  it('times out a request that gets no answer and counts it as <error>', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const clients = createKubeClients(kubeConfig(), { metrics, requestTimeoutMs: 150 });
    const started = performance.now();
    const err = await clients.core.readNamespace({ name: 'slow' }).catch((e: unknown) => e);
    expect(performance.now() - started).toBeLessThan(3000);
    expect(apiErrorFacts(err).reason).toBe('Timeout');
    const rawErr = await clients.raw({ path: '/api/v1/namespaces/slow' }).catch((e: unknown) => e);
    expect(apiErrorFacts(rawErr)).toMatchObject({ status: 0, reason: 'Timeout' });
    expect(isTransient(rawErr)).toBe(true);
    expect(await count(metrics, { code: '<error>' })).toBe(2);
  });

  it('keeps the client middleware when per-call options set a patch content type', async () => {
    const clients = createKubeClients(kubeConfig());
    await clients.core.readNamespace({ name: 'ok' }, patchOptions('merge'));
    expect(seen.at(-1)?.headers['content-type']).toBe('application/merge-patch+json');
    expect(seen.at(-1)?.headers['user-agent']).toBe('harouter-operator');
    expect(patchOptions('apply').middlewareMergeStrategy).toBe('append');
  });

  it('maps API errors to the parsed Status without the client message', async () => {
    const clients = createKubeClients(kubeConfig());
    const typed = await clients.core.readNamespace({ name: 'missing' }).catch((e: unknown) => e);
    expect(typed).toBeInstanceOf(ApiException);
    expect(apiErrorFacts(typed)).toEqual({
      status: 404,
      reason: 'NotFound',
      message: 'namespaces "missing" not found',
    });
    const described = JSON.stringify(describeError(typed));
    expect(described).not.toContain('secret-token');
    expect(described).not.toContain('Headers');
    const raw = await clients.raw({ path: '/api/v1/namespaces/missing' }).catch((e: unknown) => e);
    expect(raw).toBeInstanceOf(KubeRequestError);
    expect(apiErrorFacts(raw)).toEqual({
      status: 404,
      reason: 'NotFound',
      message: 'namespaces "missing" not found',
    });
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

async function tempFile(): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), 'kc-')), 'config');
}

describe('loadKubeConfig', () => {
  it('refuses a kubeconfig without a current cluster', async () => {
    const path = await tempFile();
    await writeFile(path, 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    expect(() => loadKubeConfig(path)).toThrow(/no current cluster/);
  });

  it('prefers the explicit path over KUBECONFIG', async () => {
    const path = await tempFile();
    await writeFile(
      path,
      `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${base}"}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\ncurrent-context: x\n`,
    );
    const kc = loadKubeConfig(path, { KUBECONFIG: '/nonexistent' });
    expect(kc.getCurrentCluster()?.server).toBe(base);
  });
});
