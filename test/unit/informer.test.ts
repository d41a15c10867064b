import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { RawRequest } from '../../src/kube/client.ts';
import { KubeRequestError } from '../../src/kube/errors.ts';
import {
  collectionPath,
  FRESH_AFTER_CONNECT_MS,
  Informer,
  type InformerOptions,
  type KubeObject,
  objectKey,
  type WatchFn,
} from '../../src/kube/informer.ts';
import { createLogger } from '../../src/log.ts';

// These unit tests drive the informer's state machine with a scripted list and
// watch; its behaviour against a real API server is in test/integration/informer.test.ts.

const log = createLogger('silent');
const host = '127.0.0.1:1';

type Obj = KubeObject & { data?: Record<string, string> };
const cm = (name: string, rv: string, data: Record<string, string> = {}): Obj => ({
  metadata: { name, namespace: 'ns', resourceVersion: rv },
  data,
});

interface WatchCall {
  query: Record<string, unknown>;
  emit: (type: string, obj: unknown) => void;
  done: (err: unknown) => void;
  /** The server accepted the watch (HTTP 200). */
  connected: () => void;
  aborted: boolean;
}

function harness(lists: Array<Obj[] | Error>, listRv: string[]) {
  const listCalls: RawRequest[] = [];
  const watches: WatchCall[] = [];
  let listIndex = 0;
  const raw = async (req: RawRequest) => {
    listCalls.push(req);
    const i = listIndex++;
    const items = lists[Math.min(i, lists.length - 1)];
    if (items instanceof Error) throw items;
    return {
      apiVersion: 'v1',
      kind: 'ConfigMapList',
      metadata: { resourceVersion: listRv[Math.min(i, listRv.length - 1)] },
      items: structuredClone(items),
    };
  };
  const watch: WatchFn = async (_path, query, onEvent, onDone, onConnected) => {
    const ctrl = new AbortController();
    const call: WatchCall = {
      query,
      emit: onEvent,
      done: onDone,
      connected: () => onConnected?.(),
      aborted: false,
    };
    ctrl.signal.addEventListener('abort', () => {
      call.aborted = true;
    });
    watches.push(call);
    return ctrl;
  };
  const informer = (extra: Partial<InformerOptions<Obj>> = {}) =>
    new Informer<Obj>({ name: 't', host, raw, watch, path: '/p', log, ...extra });
  return { raw, watch, listCalls, watches, informer };
}

async function until(cond: () => boolean, ms = 2000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
}

const fastBackoff = { baseMs: 1, maxMs: 5, jitter: 0 };

describe('objectKey and collectionPath', () => {
  it('keys namespaced and cluster objects like client-go', () => {
    expect(objectKey({ metadata: { name: 'a', namespace: 'n' } })).toBe('n/a');
    expect(objectKey({ metadata: { name: 'node-a' } })).toBe('node-a');
    expect(objectKey({ metadata: {} })).toBeUndefined();
  });
  it('builds core, group and namespaced paths', () => {
    expect(collectionPath({ version: 'v1', plural: 'nodes' })).toBe('/api/v1/nodes');
    expect(
      collectionPath({ group: 'harouter.dev', version: 'v1alpha1', plural: 'harouters', namespace: 'x' }),
    ).toBe('/apis/harouter.dev/v1alpha1/namespaces/x/harouters');
  });
});

describe('Informer', () => {
  it('lists, syncs, stamps kind, then watches from the list resourceVersion with bookmarks', async () => {
    const h = harness([[cm('a', '5')]], ['10']);
    const inf = h.informer();
    const added: string[] = [];
    inf.addEventHandler({ add: (o) => added.push(objectKey(o) as string) });
    inf.start();
    expect(await inf.waitForSync()).toBe(true);
    expect(inf.hasSynced()).toBe(true);
    expect(inf.get('ns/a')?.kind).toBe('ConfigMap');
    expect(inf.get('ns/a')?.apiVersion).toBe('v1');
    expect(added).toEqual(['ns/a']);
    await until(() => h.watches.length === 1);
    const q = h.watches[0]?.query ?? {};
    expect(q.resourceVersion).toBe('10');
    expect(q.allowWatchBookmarks).toBe(true);
    expect(q.timeoutSeconds).toBeLessThan(30);
    await inf.stop();
  });

  it('resumes from the last event or bookmark resourceVersion after a clean close', async () => {
    const h = harness([[]], ['10']);
    const inf = h.informer({ backoff: fastBackoff });
    inf.start();
    await until(() => h.watches.length === 1);
    h.watches[0]?.emit('ADDED', cm('b', '11'));
    h.watches[0]?.emit('BOOKMARK', { metadata: { resourceVersion: '15' } });
    h.watches[0]?.done(null);
    await until(() => h.watches.length === 2);
    expect(h.watches[1]?.query.resourceVersion).toBe('15');
    expect(h.listCalls.length).toBe(1);
    expect(inf.get('ns/b')).toBeDefined();
    await inf.stop();
  });

  it('relists on 410 and delivers the changes and deletions it missed', async () => {
    const h = harness(
      [
        [cm('a', '5'), cm('b', '6')],
        [cm('a', '20', { v: '2' }), cm('c', '21')],
      ],
      ['10', '22'],
    );
    const inf = h.informer({ backoff: fastBackoff });
    const events: string[] = [];
    inf.addEventHandler({
      add: (o) => events.push(`add ${o.metadata?.name}`),
      update: (old, o) =>
        events.push(
          `update ${o.metadata?.name} ${old.metadata?.resourceVersion}->${o.metadata?.resourceVersion}`,
        ),
      delete: (o) => events.push(`delete ${o.metadata?.name}`),
    });
    inf.start();
    await until(() => h.watches.length === 1);
    events.length = 0;
    h.watches[0]?.emit('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
    await until(() => h.watches.length === 2);
    expect(h.watches[0]?.aborted).toBe(true);
    expect(events).toEqual(['update a 5->20', 'add c', 'delete b']);
    expect(inf.keys().sort()).toEqual(['ns/a', 'ns/c']);
    expect(inf.stats.gone).toBe(1);
    expect(h.watches[1]?.query.resourceVersion).toBe('22');
    await inf.stop();
  });

  it('also relists when the watch request itself fails with 410', async () => {
    const h = harness([[cm('a', '5')], [cm('a', '5')]], ['10', '30']);
    const inf = h.informer({ backoff: fastBackoff });
    inf.start();
    await until(() => h.watches.length === 1);
    h.watches[0]?.done(Object.assign(new Error('Gone'), { statusCode: 410 }));
    await until(() => h.watches.length === 2);
    expect(h.listCalls.length).toBe(2);
    expect(h.watches[1]?.query.resourceVersion).toBe('30');
    await inf.stop();
  });

  it('retries failed lists and watches forever with backoff, then resumes', async () => {
    const h = harness(
      [
        new KubeRequestError(503, { reason: 'ServiceUnavailable' }),
        new Error('ECONNREFUSED'),
        [cm('a', '1')],
      ],
      ['', '', '7'],
    );
    const inf = h.informer({ backoff: fastBackoff });
    inf.start();
    expect(await inf.waitForSync()).toBe(true);
    expect(h.listCalls.length).toBe(3);
    await until(() => h.watches.length === 1);
    h.watches[0]?.done(new Error('socket hang up'));
    await until(() => h.watches.length === 2);
    h.watches[1]?.emit('ERROR', { kind: 'Status', code: 500, reason: 'InternalError' });
    await until(() => h.watches.length === 3);
    expect(h.watches[2]?.query.resourceVersion).toBe('7');
    expect(h.listCalls.length).toBe(3);
    expect(inf.stats.errors).toBeGreaterThanOrEqual(4);
    await inf.stop();
  });

  it("waits the server's Retry-After instead of a backoff grown through an outage", async () => {
    const initializing = new KubeRequestError(429, {
      kind: 'Status',
      code: 429,
      reason: 'TooManyRequests',
      message: 'storage is (re)initializing',
      details: { retryAfterSeconds: 1 },
    });
    // Without the Retry-After each retry here would wait 20 s.
    const h = harness([initializing, [cm('a', '1')]], ['', '7']);
    const inf = h.informer({ backoff: { baseMs: 20_000, maxMs: 30_000, jitter: 0 } });
    const started = performance.now();
    inf.start();
    expect(await inf.waitForSync()).toBe(true);
    await until(() => h.watches.length === 1);
    h.watches[0]?.done(initializing);
    await until(() => h.watches.length === 2, 5000);
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(1900);
    expect(elapsed).toBeLessThan(5000);
    await inf.stop();
  });

  it('a throwing handler never stops the stream or other handlers', async () => {
    const h = harness([[]], ['1']);
    const inf = h.informer();
    const seen: string[] = [];
    inf.addEventHandler({
      add: () => {
        throw new Error('handler bug');
      },
    });
    inf.addEventHandler({ add: (o) => seen.push(o.metadata?.name as string) });
    inf.start();
    await until(() => h.watches.length === 1);
    h.watches[0]?.emit('ADDED', cm('a', '2'));
    h.watches[0]?.emit('ADDED', cm('b', '3'));
    expect(seen).toEqual(['a', 'b']);
    expect(inf.keys().sort()).toEqual(['ns/a', 'ns/b']);
    expect(h.watches.length).toBe(1);
    await inf.stop();
  });

  it('skips objects that fail the schema, removes their stale cached version, keeps the stream going', async () => {
    const schema = z.looseObject({
      metadata: z.looseObject({ name: z.string(), namespace: z.string(), resourceVersion: z.string() }),
      data: z.object({ v: z.string().regex(/^[0-9]+$/) }),
    });
    const h = harness([[cm('a', '1', { v: '1' }), cm('bad', '2', { v: 'x' })]], ['3']);
    const inf = h.informer({ schema });
    const deleted: string[] = [];
    inf.addEventHandler({ delete: (o) => deleted.push(o.metadata?.name as string) });
    inf.start();
    await inf.waitForSync();
    expect(inf.keys()).toEqual(['ns/a']);
    await until(() => h.watches.length === 1);
    h.watches[0]?.emit('MODIFIED', cm('a', '4', { v: 'oops' }));
    h.watches[0]?.emit('ADDED', cm('c', '5', { v: '5' }));
    expect(deleted).toEqual(['a']);
    expect(inf.keys()).toEqual(['ns/c']);
    expect(inf.stats.skipped).toBe(2);
    await inf.stop();
  });

  it('relists periodically and replays the cache to late handlers', async () => {
    const h = harness([[cm('a', '1')], [cm('a', '1')]], ['2', '3']);
    const inf = h.informer({ resyncPeriodMs: 1 });
    inf.start();
    await until(() => h.watches.length === 1);
    const updates: string[] = [];
    inf.addEventHandler({
      add: (o) => updates.push(`add ${o.metadata?.name}`),
      update: (_o, n) => updates.push(`update ${n.metadata?.name}`),
    });
    expect(updates).toEqual(['add a']);
    h.watches[0]?.done(null);
    await until(() => h.listCalls.length === 2);
    await until(() => updates.length === 2);
    expect(updates).toEqual(['add a', 'update a']);
    await inf.stop();
  });

  it('stop ends a pending waitForSync with false', async () => {
    const h = harness([new Error('down')], ['']);
    const inf = h.informer({ backoff: { baseMs: 50, maxMs: 50 } });
    inf.start();
    const waiting = inf.waitForSync();
    await inf.stop();
    expect(await waiting).toBe(false);
  });

  it('refuses a watch timeout of 30 s or more', () => {
    expect(
      () =>
        new Informer<Obj>({
          name: 't',
          raw: async () => ({}),
          watch: async () => new AbortController(),
          path: '/p',
          log,
          watchTimeoutSeconds: 30,
        }),
    ).toThrow(RangeError);
  });
});

describe('Informer watch metrics', () => {
  it('counts each watch in rest_client_requests_total by outcome', async () => {
    const { createMetrics } = await import('../../src/metrics.ts');
    const metrics = createMetrics({ processMetrics: false });
    const h = harness([[]], ['1']);
    const inf = h.informer({ metrics, backoff: fastBackoff });
    inf.start();
    await until(() => h.watches.length === 1);
    h.watches[0]?.emit('ADDED', cm('a', '2'));
    h.watches[0]?.done(null);
    await until(() => h.watches.length === 2);
    h.watches[1]?.done(Object.assign(new Error('Forbidden'), { statusCode: 403 }));
    await until(() => h.watches.length === 3);
    h.watches[2]?.done(new Error('socket hang up'));
    await until(() => h.watches.length === 4);
    await inf.stop();
    const values =
      (await metrics.registry.getSingleMetric('rest_client_requests_total')?.get())?.values ?? [];
    const byCode = Object.fromEntries(values.map((v) => [String(v.labels.code), v.value]));
    expect(byCode).toMatchObject({ '200': 1, '403': 1, '<error>': 1 });
    expect(values.every((v) => v.labels.method === 'GET' && v.labels.host === '127.0.0.1:1')).toBe(true);
  });
});

describe('informer transform and indexes', () => {
  const byValue = (o: Obj) => (o.data?.router ? [o.data.router] : []);

  it('stores transformed objects and keeps the index in step with lists, updates and deletes', async () => {
    const h = harness([[cm('a', '1', { router: 'r1', big: 'x' }), cm('b', '1', { router: 'r1' })]], ['10']);
    const informer = h.informer({
      transform: (o) => ({ ...o, data: { router: o.data?.router ?? '' } }),
      indexers: { router: byValue },
    });
    informer.start();
    await until(() => informer.hasSynced() && h.watches.length === 1);
    expect(informer.get('ns/a')?.data).toEqual({ router: 'r1' });
    expect(
      informer
        .byIndex('router', 'r1')
        .map((o) => o.metadata?.name)
        .sort(),
    ).toEqual(['a', 'b']);

    h.watches[0]?.emit('MODIFIED', cm('a', '11', { router: 'r2', big: 'y' }));
    expect(informer.byIndex('router', 'r1').map((o) => o.metadata?.name)).toEqual(['b']);
    expect(informer.byIndex('router', 'r2')).toEqual([cm('a', '11', { router: 'r2' })]);
    h.watches[0]?.emit('DELETED', cm('b', '12', { router: 'r1' }));
    expect(informer.byIndex('router', 'r1')).toEqual([]);
    expect(informer.byIndex('unknown', 'r1')).toEqual([]);
    await informer.stop();
  });

  it('an index function that throws indexes nothing and breaks nothing', async () => {
    const h = harness([[cm('a', '1', { router: 'r1' })]], ['10']);
    const informer = h.informer({
      indexers: {
        router: (o) => {
          if (o.metadata?.name === 'bad') throw new Error('boom');
          return byValue(o);
        },
      },
    });
    informer.start();
    await until(() => informer.hasSynced() && h.watches.length === 1);
    h.watches[0]?.emit('ADDED', cm('bad', '11', { router: 'r1' }));
    expect(informer.get('ns/bad')).toBeDefined();
    expect(informer.byIndex('router', 'r1').map((o) => o.metadata?.name)).toEqual(['a']);
    await informer.stop();
  });

  it('is fresh from a list or an established watch until a watch fails or expires', async () => {
    const h = harness([[cm('a', '5')], [cm('a', '30')]], ['10', '31']);
    const fresh: number[] = [];
    const inf = h.informer({ backoff: fastBackoff, onFresh: () => fresh.push(Date.now()) });
    expect(inf.isFresh()).toBe(false);
    inf.start();
    await inf.waitForSync();
    expect(inf.isFresh()).toBe(true);
    expect(fresh.length).toBe(1);
    await until(() => h.watches.length === 1);
    // The watch breaks (the API server went away): stale, still serving its objects.
    h.watches[0]?.done(new Error('socket hang up'));
    await until(() => !inf.isFresh());
    expect(inf.hasSynced()).toBe(true);
    expect(inf.get('ns/a')).toBeDefined();
    let waited = false;
    const waiting = inf.waitUntilFresh().then((v) => {
      waited = v;
    });
    // The next watch is accepted: fresh once it has stayed up a moment with nothing to say.
    await until(() => h.watches.length === 2);
    h.watches[1]?.connected();
    expect(inf.isFresh()).toBe(false);
    await until(() => inf.isFresh(), FRESH_AFTER_CONNECT_MS + 500);
    await waiting;
    expect(waited).toBe(true);
    // Accepted, then answered 410 Gone at once: never fresh until the relist lands.
    h.watches[1]?.done(new Error('socket hang up'));
    await until(() => h.watches.length === 3);
    h.watches[2]?.connected();
    h.watches[2]?.emit('ERROR', { code: 410 });
    await until(() => h.listCalls.length === 2);
    await until(() => inf.isFresh());
    expect(inf.get('ns/a')?.metadata?.resourceVersion).toBe('30');
    // An event on an established watch is fresh at once.
    await until(() => h.watches.length === 4);
    h.watches[3]?.done(new Error('reset'));
    await until(() => h.watches.length === 5);
    expect(inf.isFresh()).toBe(false);
    h.watches[4]?.emit('MODIFIED', cm('a', '40'));
    expect(inf.isFresh()).toBe(true);
    await inf.stop();
  });

  it('retryNow ends a backoff pause at once', async () => {
    const h = harness([[]], ['10']);
    const inf = h.informer({ backoff: { baseMs: 60_000, maxMs: 60_000, jitter: 0 } });
    inf.start();
    await until(() => h.watches.length === 1);
    h.watches[0]?.done(new Error('connection refused'));
    await new Promise((r) => setTimeout(r, 50));
    expect(h.watches.length).toBe(1);
    inf.retryNow();
    await until(() => h.watches.length === 2, 1000);
    await inf.stop();
  });
});
