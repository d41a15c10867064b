import { afterEach, describe, expect, it } from 'vitest';
import { formatMicroTime } from '../../src/api/index.ts';
import type { RawRequest } from '../../src/kube/client.ts';
import { KubeRequestError } from '../../src/kube/errors.ts';
import { LeaderElector, validateTimings } from '../../src/kube/leader-election.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';

// The elector against an in-memory Lease endpoint with the API server's
// optimistic concurrency; the real server is in test/integration/leader.test.ts.

const log = createLogger('silent');
const timings = { leaseDurationMs: 1000, renewDeadlineMs: 250, retryPeriodMs: 50 };

function fakeLeases() {
  let stored: { metadata: Record<string, unknown>; spec: Record<string, unknown> } | undefined;
  let rv = 0;
  const state = { down: false, writes: [] as Array<Record<string, unknown>> };
  const raw = async (req: RawRequest): Promise<unknown> => {
    await new Promise((r) => setTimeout(r, 1));
    if (state.down) throw new KubeRequestError(503, { reason: 'ServiceUnavailable', code: 503 });
    const method = req.method ?? 'GET';
    if (method === 'GET') {
      if (!stored) throw new KubeRequestError(404, { reason: 'NotFound', code: 404 });
      return structuredClone(stored);
    }
    const body = structuredClone(req.body) as {
      metadata: Record<string, unknown>;
      spec: Record<string, unknown>;
    };
    for (const t of ['acquireTime', 'renewTime']) {
      if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/.test(String(body.spec[t]))) {
        throw new KubeRequestError(400, { reason: 'BadRequest', code: 400 });
      }
    }
    if (method === 'POST') {
      if (stored) throw new KubeRequestError(409, { reason: 'AlreadyExists', code: 409 });
    } else if (!stored || body.metadata.resourceVersion !== stored.metadata.resourceVersion) {
      throw new KubeRequestError(409, { reason: 'Conflict', code: 409 });
    }
    rv++;
    stored = { ...body, metadata: { ...body.metadata, resourceVersion: String(rv) } };
    state.writes.push(structuredClone(stored.spec));
    return structuredClone(stored);
  };
  return { raw, state, holder: () => stored?.spec.holderIdentity as string | undefined };
}

async function until(cond: () => boolean, ms = 3000): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 5));
  }
  return performance.now() - start;
}

const stops: AbortController[] = [];
afterEach(() => {
  for (const s of stops) s.abort();
});

function candidate(raw: (r: RawRequest) => Promise<unknown>, identity: string, extra = {}) {
  const events: string[] = [];
  const elector = new LeaderElector({
    raw,
    namespace: 'ns',
    name: 'harouter-operator',
    identity,
    log,
    ...timings,
    onStartedLeading: () => events.push('started'),
    onStoppedLeading: () => events.push('stopped'),
    ...extra,
  });
  const stop = new AbortController();
  stops.push(stop);
  return { elector, events, stop };
}

describe('formatMicroTime', () => {
  it('writes exactly six fractional digits in UTC', () => {
    expect(formatMicroTime(Date.UTC(2026, 0, 2, 3, 4, 5, 67))).toBe('2026-01-02T03:04:05.067000Z');
  });
});

describe('validateTimings', () => {
  it("refuses client-go's invalid combinations and accepts its defaults", () => {
    expect(() =>
      validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ).not.toThrow();
    expect(() =>
      validateTimings({ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }),
    ).toThrow();
    expect(() =>
      validateTimings({ leaseDurationMs: 15_000, renewDeadlineMs: 2_000, retryPeriodMs: 2_000 }),
    ).toThrow();
  });
});

describe('LeaderElector', () => {
  it('only one of two candidates leads, and it keeps renewing', async () => {
    const server = fakeLeases();
    const metrics = createMetrics({ processMetrics: false });
    const a = candidate(server.raw, 'a', { metrics });
    const b = candidate(server.raw, 'b');
    const runA = a.elector.run(a.stop.signal);
    const runB = b.elector.run(b.stop.signal);
    await until(() => a.elector.isLeader() || b.elector.isLeader());
    await new Promise((r) => setTimeout(r, 1500)); // one and a half lease durations
    expect([a.elector.isLeader(), b.elector.isLeader()].filter(Boolean)).toHaveLength(1);
    const leader = a.elector.isLeader() ? 'a' : 'b';
    expect(server.holder()).toBe(leader);
    expect(server.state.writes.length).toBeGreaterThan(5); // renewals
    const status = (await metrics.registry.getSingleMetric('leader_election_master_status')?.get())
      ?.values[0];
    expect(status?.value).toBe(leader === 'a' ? 1 : 0);
    a.stop.abort();
    b.stop.abort();
    await Promise.all([runA, runB]);
  });

  it('release hands over at the follower next retry, not after the lease expires', async () => {
    const server = fakeLeases();
    const a = candidate(server.raw, 'a');
    const runA = a.elector.run(a.stop.signal);
    await until(() => a.elector.isLeader());
    const b = candidate(server.raw, 'b');
    const runB = b.elector.run(b.stop.signal);
    await new Promise((r) => setTimeout(r, 100));
    expect(b.elector.isLeader()).toBe(false);
    a.stop.abort();
    expect(await runA).toBe('stopped');
    expect(a.events).toEqual(['started', 'stopped']);
    expect(server.holder()).toBe('');
    const took = await until(() => b.elector.isLeader());
    expect(took).toBeLessThan(timings.leaseDurationMs);
    expect(server.state.writes.at(-1)?.leaseTransitions).toBe(1);
    b.stop.abort();
    await runB;
  });

  it('a candidate that dies without releasing is replaced once the lease expires by the follower clock', async () => {
    const server = fakeLeases();
    const a = candidate(server.raw, 'a');
    const runA = a.elector.run(a.stop.signal, { release: false });
    await until(() => a.elector.isLeader());
    const b = candidate(server.raw, 'b');
    const runB = b.elector.run(b.stop.signal);
    await new Promise((r) => setTimeout(r, 60));
    a.stop.abort(); // "killed": no release
    await runA;
    expect(server.holder()).toBe('a');
    const took = await until(() => b.elector.isLeader());
    expect(took).toBeGreaterThan(timings.leaseDurationMs - 150);
    expect(took).toBeLessThan(timings.leaseDurationMs + 2.2 * timings.retryPeriodMs + 200);
    b.stop.abort();
    await runB;
  });

  it('loses leadership when it cannot renew within the renew deadline', async () => {
    const server = fakeLeases();
    const a = candidate(server.raw, 'a');
    const runA = a.elector.run(a.stop.signal);
    await until(() => a.elector.isLeader());
    server.state.down = true;
    const started = performance.now();
    expect(await runA).toBe('lost');
    const elapsed = performance.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(timings.renewDeadlineMs - 20);
    expect(elapsed).toBeLessThan(timings.renewDeadlineMs + 2 * timings.retryPeriodMs + 100);
    expect(a.elector.isLeader()).toBe(false);
    expect(a.events).toEqual(['started', 'stopped']);
  });

  it('never takes a lease another holder keeps renewing, even if the clocks disagree', async () => {
    const server = fakeLeases();
    // 'a' writes renewTimes an hour in the past: validity must not depend on them.
    const a = candidate(server.raw, 'a', { wallClock: () => Date.now() - 3_600_000 });
    const runA = a.elector.run(a.stop.signal);
    await until(() => a.elector.isLeader());
    const b = candidate(server.raw, 'b');
    const runB = b.elector.run(b.stop.signal);
    await new Promise((r) => setTimeout(r, 2 * timings.leaseDurationMs));
    expect(b.elector.isLeader()).toBe(false);
    expect(b.elector.getLeader()).toBe('a');
    a.stop.abort();
    b.stop.abort();
    await Promise.all([runA, runB]);
  });
});
