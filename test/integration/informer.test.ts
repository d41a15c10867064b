import { CoreV1Api, type V1ConfigMap } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients, type KubeClients } from '../../src/kube/client.ts';
import {
  collectionPath,
  Informer,
  type InformerOptions,
  objectKey,
  type WatchFn,
} from '../../src/kube/informer.ts';
import { kubeConfigConnection } from '../../src/kube/kubeconfig.ts';
import { createLogger } from '../../src/log.ts';
import { adminKubeConfig, createTestNamespace } from '../support/index.ts';

const log = createLogger(process.env.TEST_LOG_LEVEL === 'debug' ? 'debug' : 'silent');

// The operator's own transport: lists and watches over its kept-alive connections.
let clients: KubeClients;
let core: CoreV1Api;
let namespace: string;
const informers: Informer<V1ConfigMap>[] = [];

beforeAll(async () => {
  const kc = adminKubeConfig();
  clients = createKubeClients(kubeConfigConnection(kc));
  core = kc.makeApiClient(CoreV1Api);
  namespace = await createTestNamespace('informer');
});

afterAll(async () => {
  await Promise.all(informers.map((i) => i.stop()));
  await clients.close();
});

/** A watch the test can cut, hold back and point at an expired resourceVersion. */
function controllableWatch() {
  let release: () => void = () => {};
  const state = {
    gate: Promise.resolve(),
    current: undefined as AbortController | undefined,
    expireNext: false,
    queries: [] as Array<Record<string, unknown>>,
    hold() {
      state.gate = new Promise<void>((r) => {
        release = r;
      });
    },
    release: () => release(),
    cut() {
      state.current?.abort();
    },
  };
  const watch: WatchFn = async (path, query, onEvent, onDone) => {
    await state.gate;
    state.queries.push({ ...query });
    if (state.expireNext) {
      state.expireNext = false;
      // What the API server streams when the resourceVersion has left its watch
      // window (after a long disconnection). A fresh test cluster keeps every event
      // in its watch cache, even past an etcd compaction, so the expiry itself is
      // played here; the relist and everything after it go to the real server.
      onEvent('ERROR', {
        kind: 'Status',
        apiVersion: 'v1',
        status: 'Failure',
        message: `too old resource version: ${query.resourceVersion}`,
        reason: 'Expired',
        code: 410,
      });
      onDone(null);
      return new AbortController();
    }
    const ctrl = await clients.watch(path, query, onEvent, onDone);
    state.current = ctrl;
    return ctrl;
  };
  return { watch, state };
}

function startInformer(extra: Partial<InformerOptions<V1ConfigMap>> = {}) {
  const informer = new Informer<V1ConfigMap>({
    name: 'configmaps',
    raw: clients.raw,
    watch: clients.watch,
    host: clients.host,
    path: collectionPath({ version: 'v1', plural: 'configmaps', namespace }),
    log,
    backoff: { baseMs: 50, maxMs: 500 },
    ...extra,
  });
  informers.push(informer);
  const events: string[] = [];
  informer.addEventHandler({
    add: (o) => events.push(`add ${o.metadata?.name} ${o.data?.v ?? ''}`.trim()),
    update: (old, o) => {
      if (old.metadata?.resourceVersion !== o.metadata?.resourceVersion) {
        events.push(`update ${o.metadata?.name} ${o.data?.v ?? ''}`.trim());
      }
    },
    delete: (o) => events.push(`delete ${o.metadata?.name}`),
  });
  informer.start();
  return { informer, events };
}

async function until(cond: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function serverState(labelSelector?: string): Promise<Record<string, string | undefined>> {
  const list = await core.listNamespacedConfigMap({ namespace, labelSelector });
  return Object.fromEntries(
    list.items
      .filter((c) => c.metadata?.name !== 'kube-root-ca.crt')
      .map((c) => [`${namespace}/${c.metadata?.name}`, c.data?.v]),
  );
}

function cacheState(informer: Informer<V1ConfigMap>): Record<string, string | undefined> {
  return Object.fromEntries(
    informer
      .list()
      .filter((c) => c.metadata?.name !== 'kube-root-ca.crt')
      .map((c) => [objectKey(c) as string, c.data?.v]),
  );
}

const put = (name: string, v: string, labels?: Record<string, string>) =>
  core.createNamespacedConfigMap({ namespace, body: { metadata: { name, labels }, data: { v } } });
const set = (name: string, v: string, labels?: Record<string, string>) =>
  core.replaceNamespacedConfigMap({
    namespace,
    name,
    body: { metadata: { name, labels }, data: { v } },
  });
const del = (name: string) => core.deleteNamespacedConfigMap({ namespace, name });

describe('informer against the real API server', () => {
  it('lists, syncs, and follows adds, updates and deletes with raw JSON objects', async () => {
    await put('basic-a', '1');
    const { informer, events } = startInformer({ labelSelector: undefined });
    expect(await informer.waitForSync()).toBe(true);
    const a = informer.get(`${namespace}/basic-a`);
    expect(a?.data?.v).toBe('1');
    expect(a?.kind).toBe('ConfigMap');
    expect(typeof a?.metadata?.creationTimestamp).toBe('string');
    await put('basic-b', '1');
    await set('basic-a', '2');
    await del('basic-b');
    await until(() => events.includes('delete basic-b'));
    expect(events.filter((e) => e.includes('basic-'))).toEqual([
      'add basic-a 1',
      'add basic-b 1',
      'update basic-a 2',
      'delete basic-b',
    ]);
    expect(typeof informer.get(`${namespace}/basic-a`)?.metadata?.creationTimestamp).toBe('string');
    await informer.stop();
  });

  it('a watch the server ends (timeoutSeconds) resumes from the last resourceVersion without losing events', async () => {
    const { informer, events } = startInformer({ watchTimeoutSeconds: 1, labelSelector: 'suite=timeout' });
    await informer.waitForSync();
    const started = informer.stats.watches;
    for (let i = 0; i < 6; i++) {
      await put(`timeout-${i}`, String(i), { suite: 'timeout' });
      await new Promise((r) => setTimeout(r, 400));
    }
    await set('timeout-0', 'changed', { suite: 'timeout' });
    await del('timeout-1');
    await until(() => events.includes('delete timeout-1'));
    // Several watches came and went while objects changed; none of the changes was missed,
    // and the informer never needed to relist.
    expect(informer.stats.watches - started).toBeGreaterThanOrEqual(2);
    expect(informer.stats.lists).toBe(1);
    expect(events.filter((e) => e.startsWith('add'))).toHaveLength(6);
    expect(events).toContain('update timeout-0 changed');
    expect(cacheState(informer)).toEqual(await serverState('suite=timeout'));
    await informer.stop();
  });

  it('a cut connection resumes from the last resourceVersion and delivers what happened meanwhile', async () => {
    const { watch, state } = controllableWatch();
    await put('cut-a', '1', { suite: 'cut' });
    await put('cut-b', '1', { suite: 'cut' });
    const { informer, events } = startInformer({ watch, labelSelector: 'suite=cut' });
    await informer.waitForSync();
    await until(() => state.current !== undefined);
    const rvBefore = informer.lastResourceVersion();
    state.hold();
    state.cut();
    await put('cut-c', '1', { suite: 'cut' });
    await set('cut-a', '2', { suite: 'cut' });
    await del('cut-b');
    state.release();
    await until(() => events.includes('delete cut-b'));
    expect(state.queries.at(-1)?.resourceVersion).toBe(rvBefore);
    expect(informer.stats.lists).toBe(1);
    expect(informer.stats.gone).toBe(0);
    expect(events.filter((e) => !e.startsWith('add cut-a') && !e.startsWith('add cut-b'))).toEqual([
      'add cut-c 1',
      'update cut-a 2',
      'delete cut-b',
    ]);
    expect(cacheState(informer)).toEqual(await serverState('suite=cut'));
    await informer.stop();
  });

  it('an expired watch (410 Gone injected in-process; the relist is real) relists and still delivers every change, deletions included', async () => {
    const { watch, state } = controllableWatch();
    await put('gone-a', '1', { suite: 'gone' });
    await put('gone-b', '1', { suite: 'gone' });
    const { informer, events } = startInformer({ watch, labelSelector: 'suite=gone' });
    await informer.waitForSync();
    await until(() => state.current !== undefined);
    state.hold();
    state.cut();
    await put('gone-c', '1', { suite: 'gone' });
    await set('gone-a', '2', { suite: 'gone' });
    await del('gone-b');
    state.expireNext = true;
    state.release();
    await until(() => events.includes('delete gone-b'));
    expect(informer.stats.gone).toBe(1);
    expect(informer.stats.lists).toBe(2);
    expect(new Set(events.slice(2))).toEqual(new Set(['add gone-c 1', 'update gone-a 2', 'delete gone-b']));
    expect(cacheState(informer)).toEqual(await serverState('suite=gone'));
    // After the relist it watches again from the new list's resourceVersion and keeps following.
    await put('gone-d', '1', { suite: 'gone' });
    await until(() => events.includes('add gone-d 1'));
    await informer.stop();
  });

  it('a label selector limits the cache to the matching objects', async () => {
    await put('sel-yes', '1', { 'endpointslice.kubernetes.io/managed-by': 'harouter.dev' });
    await put('sel-no', '1', { 'endpointslice.kubernetes.io/managed-by': 'someone-else' });
    const { informer, events } = startInformer({
      labelSelector: 'endpointslice.kubernetes.io/managed-by=harouter.dev',
    });
    await informer.waitForSync();
    await put('sel-later', '1', { 'endpointslice.kubernetes.io/managed-by': 'harouter.dev' });
    await until(() => events.includes('add sel-later 1'));
    expect(Object.keys(cacheState(informer)).sort()).toEqual([
      `${namespace}/sel-later`,
      `${namespace}/sel-yes`,
    ]);
    await informer.stop();
  });
});
