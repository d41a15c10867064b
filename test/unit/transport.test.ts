import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiTransport } from '../../src/kube/transport.ts';
import { createMetrics } from '../../src/metrics.ts';
import { Semaphore } from '../../src/runtime/semaphore.ts';
import { TokenBucket } from '../../src/runtime/token-bucket.ts';

describe('TokenBucket', () => {
  it('lets a burst through, then spaces requests 1/qps apart', () => {
    let now = 0;
    const bucket = new TokenBucket({ qps: 10, burst: 3, now: () => now });
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    expect(bucket.reserve()).toBeCloseTo(100);
    expect(bucket.reserve()).toBeCloseTo(200);
    now = 1000; // refilled to the burst, never above
    expect([bucket.reserve(), bucket.reserve(), bucket.reserve()]).toEqual([0, 0, 0]);
    expect(bucket.reserve()).toBeGreaterThan(0);
  });

  it('qps 0 is unlimited; bad settings are refused', () => {
    const bucket = new TokenBucket({ qps: 0, burst: 1 });
    for (let i = 0; i < 1000; i++) expect(bucket.reserve()).toBe(0);
    expect(() => new TokenBucket({ qps: -1, burst: 1 })).toThrow(RangeError);
    expect(() => new TokenBucket({ qps: 1, burst: 0 })).toThrow(RangeError);
  });
});

describe('Semaphore', () => {
  it('holds at most limit and hands slots over in arrival order', async () => {
    const sem = new Semaphore(2);
    const order: number[] = [];
    await sem.acquire();
    await sem.acquire();
    const third = sem.acquire().then(() => order.push(3));
    const fourth = sem.acquire().then(() => order.push(4));
    expect(sem.waiting).toBe(2);
    sem.release();
    await third;
    sem.release();
    await fourth;
    expect(order).toEqual([3, 4]);
    expect(sem.held).toBe(2);
  });
});

describe('ApiTransport', () => {
  let server: Server;
  let base: string;
  const sockets = new Set<unknown>();
  let inFlight = 0;
  let maxSeen = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      sockets.add(req.socket);
      inFlight++;
      maxSeen = Math.max(maxSeen, inFlight);
      const reply = () => {
        inFlight--;
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', path: req.url }));
      };
      if (req.url?.includes('park')) setTimeout(reply, 30);
      else reply();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const kubeConfig = () => {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'c', server: base, skipTLSVerify: true }],
      users: [{ name: 'u', token: 'secret-token' }],
      contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
      currentContext: 'x',
    });
    return kc;
  };

  it('reuses kept-alive connections and never has more than maxInFlight requests out', async () => {
    sockets.clear();
    maxSeen = 0;
    const metrics = createMetrics({ processMetrics: false });
    const transport = new ApiTransport(kubeConfig(), { maxInFlight: 4, metrics });
    await Promise.all(Array.from({ length: 40 }, (_, i) => transport.request({ path: `/api/v1/park/${i}` })));
    for (let i = 0; i < 20; i++) await transport.request({ path: '/api/v1/namespaces/x' });
    expect(maxSeen).toBeLessThanOrEqual(4);
    expect(sockets.size).toBeLessThanOrEqual(4);
    const counted = (await metrics.registry.getSingleMetric('rest_client_requests_total')?.get())?.values;
    expect(counted?.find((v) => v.labels.code === '200' && v.labels.method === 'GET')?.value).toBe(60);
    await transport.close();
  });

  it('waits for the rate limit: qps 50 with burst 1 spaces 6 requests over about 100 ms', async () => {
    const transport = new ApiTransport(kubeConfig(), { qps: 50, burst: 1 });
    const started = performance.now();
    for (let i = 0; i < 6; i++) await transport.request({ path: '/api/v1/namespaces/x' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    await transport.close();
  });
});
