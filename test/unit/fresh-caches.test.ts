/** Decisions wait for fresh caches (src/controller/fresh-caches.ts). */
import { describe, expect, it } from 'vitest';
import { type FreshnessSource, holdUntilFresh } from '../../src/controller/fresh-caches.ts';
import { createLogger } from '../../src/log.ts';

const log = createLogger('silent');

function cache(name: string, fresh: boolean) {
  let waiters: Array<(v: boolean) => void> = [];
  const c = {
    name,
    fresh,
    isFresh: () => c.fresh,
    waitUntilFresh: (signal?: AbortSignal) =>
      new Promise<boolean>((resolve) => {
        if (c.fresh) return resolve(true);
        signal?.addEventListener('abort', () => resolve(false), { once: true });
        waiters.push(resolve);
      }),
    setFresh() {
      c.fresh = true;
      for (const w of waiters) w(true);
      waiters = [];
    },
  };
  return c satisfies FreshnessSource;
}

describe('holdUntilFresh', () => {
  it('reconciles at once on fresh caches, and waits while one is stale', async () => {
    const nodes = cache('nodes', false);
    const reports = cache('harouterstates', true);
    const seen: string[] = [];
    const reconciler = holdUntilFresh(
      { reconcile: async (key) => void seen.push(key) },
      [nodes, reports],
      new AbortController().signal,
      log,
    );
    const pending = reconciler.reconcile('ns/r1', log);
    await new Promise((r) => setTimeout(r, 20));
    expect(seen).toEqual([]);
    nodes.setFresh();
    await pending;
    expect(seen).toEqual(['ns/r1']);
    await reconciler.reconcile('ns/r2', log);
    expect(seen).toEqual(['ns/r1', 'ns/r2']);
  });

  it('skips the reconcile when the operator stops while waiting', async () => {
    const stop = new AbortController();
    const seen: string[] = [];
    const reconciler = holdUntilFresh(
      { reconcile: async (key) => void seen.push(key) },
      [cache('nodes', false)],
      stop.signal,
      log,
    );
    const pending = reconciler.reconcile('ns/r1', log);
    stop.abort();
    expect(await pending).toBeUndefined();
    expect(seen).toEqual([]);
  });
});
