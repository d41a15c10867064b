import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiErrorFacts, KubeRequestError } from '../../src/kube/errors.ts';
import { simpleConnection } from '../../src/kube/kubeconfig.ts';
import { ApiTransport, WatchStreamError } from '../../src/kube/transport.ts';
import { createMetrics } from '../../src/metrics.ts';
import { Semaphore } from '../../src/runtime/semaphore.ts';
import { TokenBucket } from '../../src/runtime/token-bucket.ts';
import { type StandInServer, startStandInServer } from '../support/stand-in-server.ts';

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
  let server: StandInServer;
  let base: string;
  const sockets = new Set<unknown>();
  let inFlight = 0;
  let maxSeen = 0;

  beforeAll(async () => {
    server = await startStandInServer((req, res) => {
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
    base = server.base;
  });

  afterAll(() => server.close());

  const connection = () => simpleConnection({ server: base, token: 'secret-token' });

  it('reuses kept-alive connections and never has more than maxInFlight requests out', async () => {
    sockets.clear();
    maxSeen = 0;
    const metrics = createMetrics({ processMetrics: false });
    const transport = new ApiTransport(connection(), { maxInFlight: 4, metrics });
    await Promise.all(Array.from({ length: 40 }, (_, i) => transport.request({ path: `/api/v1/park/${i}` })));
    for (let i = 0; i < 20; i++) await transport.request({ path: '/api/v1/namespaces/x' });
    expect(maxSeen).toBeLessThanOrEqual(4);
    expect(sockets.size).toBeLessThanOrEqual(4);
    const counted = (await metrics.registry.getSingleMetric('rest_client_requests_total')?.get())?.values;
    expect(counted?.find((v) => v.labels.code === '200' && v.labels.method === 'GET')?.value).toBe(60);
    await transport.close();
  });

  it('waits for the rate limit: qps 50 with burst 1 spaces 6 requests over about 100 ms', async () => {
    const transport = new ApiTransport(connection(), { qps: 50, burst: 1 });
    const started = performance.now();
    for (let i = 0; i < 6; i++) await transport.request({ path: '/api/v1/namespaces/x' });
    expect(performance.now() - started).toBeGreaterThanOrEqual(90);
    await transport.close();
  });
});

describe('ApiTransport.watch', () => {
  let server: StandInServer;
  let base: string;
  const seen: { url: string; authorization?: string; socket: unknown }[] = [];
  const closed: string[] = [];

  beforeAll(async () => {
    server = await startStandInServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      seen.push({ url: req.url ?? '', authorization: req.headers.authorization, socket: req.socket });
      req.socket.once('close', () => closed.push(url.pathname));
      const line = (type: string, name: string, extra: Record<string, unknown> = {}) =>
        `${JSON.stringify({ type, object: { metadata: { name, resourceVersion: '7' }, ...extra } })}\n`;
      switch (url.pathname) {
        case '/api/v1/events': {
          res.writeHead(200, { 'content-type': 'application/json' });
          // One event split across writes, in the middle of a multi-byte character.
          const bytes = Buffer.from(line('ADDED', 'a', { data: { v: 'é€' } }));
          const cut = bytes.indexOf(0xe2) + 1;
          res.write(bytes.subarray(0, cut));
          setTimeout(() => {
            res.write(Buffer.concat([bytes.subarray(cut), Buffer.from(`\n${line('BOOKMARK', '')}`)]));
            res.end(line('DELETED', 'b').trimEnd()); // the last line without its newline
          }, 20);
          return;
        }
        case '/api/v1/gone':
          res.writeHead(410, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired', message: 'too old' }));
          return;
        case '/api/v1/huge':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write(line('ADDED', 'small'));
          // A line that never ends: the client must give up at its bound, not buffer it all.
          for (let i = 0; i < 64; i++) res.write('x'.repeat(1024));
          return;
        case '/api/v1/silent':
        case '/api/v1/held':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.flushHeaders();
          return;
        default:
          res.writeHead(404);
          res.end();
      }
    });
    base = server.base;
  });

  afterAll(() => server.close());

  const connection = () => simpleConnection({ server: base, token: 'watch-token' });

  function watchOnce(transport: ApiTransport, path: string, query: Record<string, string | boolean> = {}) {
    const events: Array<[string, unknown]> = [];
    const state = { connected: false };
    let controller: AbortController | undefined;
    const done = new Promise<unknown>((resolve) => {
      void transport
        .watch(
          path,
          query,
          (type, obj) => events.push([type, obj]),
          resolve,
          () => {
            // Reported before any event.
            state.connected = events.length === 0;
          },
        )
        .then((c) => {
          controller = c;
        });
    });
    return { events, done, state, abort: () => controller?.abort() };
  }

  it('streams newline-delimited events, splitting chunks anywhere, and reuses the kept-alive connection', async () => {
    const transport = new ApiTransport(connection());
    const first = watchOnce(transport, '/api/v1/events', { resourceVersion: '5', allowWatchBookmarks: true });
    expect(await first.done).toBeNull();
    expect(first.state.connected).toBe(true);
    expect(
      first.events.map(([type, obj]) => [type, (obj as { metadata: { name: string } }).metadata.name]),
    ).toEqual([
      ['ADDED', 'a'],
      ['BOOKMARK', ''],
      ['DELETED', 'b'],
    ]);
    expect(first.events[0]?.[1]).toMatchObject({ data: { v: 'é€' } });
    const query = new URL(seen.at(-1)?.url ?? '', 'http://x').searchParams;
    expect(Object.fromEntries(query)).toEqual({
      resourceVersion: '5',
      allowWatchBookmarks: 'true',
      watch: '1',
    });
    expect(seen.at(-1)?.authorization).toBe('Bearer watch-token');
    const second = watchOnce(transport, '/api/v1/events');
    expect(await second.done).toBeNull();
    expect(seen.at(-1)?.socket).toBe(seen.at(-2)?.socket);
    await transport.close();
  });

  it('ends a refused watch with the Status as a KubeRequestError (410: relist)', async () => {
    const transport = new ApiTransport(connection());
    const { done, events, state } = watchOnce(transport, '/api/v1/gone');
    const err = await done;
    expect(err).toBeInstanceOf(KubeRequestError);
    expect(apiErrorFacts(err)).toMatchObject({ status: 410, reason: 'Expired' });
    // Refused: never reported as accepted.
    expect(state.connected).toBe(false);
    expect(events).toEqual([]);
    await transport.close();
  });

  it('ends the watch and drops the connection when a line exceeds the bound', async () => {
    const transport = new ApiTransport(connection(), { maxWatchLineBytes: 16 * 1024 });
    closed.length = 0;
    const { done, events } = watchOnce(transport, '/api/v1/huge');
    const err = await done;
    expect(err).toBeInstanceOf(WatchStreamError);
    expect(String((err as Error).message)).toContain('16384 bytes');
    expect(events).toHaveLength(1);
    await until(() => closed.includes('/api/v1/huge'));
    await transport.close();
  });

  it('ends a silent watch as timed out, and an aborted one with the abort reason', async () => {
    const transport = new ApiTransport(connection(), { watchIdleTimeoutMs: 100 });
    const silent = watchOnce(transport, '/api/v1/silent');
    expect(apiErrorFacts(await silent.done)).toMatchObject({ status: 0, reason: 'Timeout' });
    closed.length = 0;
    const held = watchOnce(transport, '/api/v1/held');
    await until(() => seen.at(-1)?.url.startsWith('/api/v1/held') ?? false);
    held.abort();
    expect((await held.done) as Error).toMatchObject({ name: 'AbortError' });
    await until(() => closed.includes('/api/v1/held'));
    await transport.close();
  });

  it('close() ends the open watches', async () => {
    const transport = new ApiTransport(connection());
    const held = watchOnce(transport, '/api/v1/held');
    await until(() => seen.at(-1)?.url.startsWith('/api/v1/held') ?? false);
    await transport.close();
    expect(await held.done).toBeInstanceOf(Error);
  });
});

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
}
