import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKubeClients } from '../../src/kube/client.ts';
import { kubeConfigConnection } from '../../src/kube/kubeconfig.ts';
import { LeaderElector } from '../../src/kube/leader-election.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import { adminKubeConfig, createTestNamespace } from '../support/index.ts';

// Lease durations are whole seconds in the API: 2 s lease, 1.5 s renew deadline, 250 ms retry.
const timings = { leaseDurationMs: 2000, renewDeadlineMs: 1500, retryPeriodMs: 250 };
const log = createLogger('silent');
let namespace: string;
const stops: AbortController[] = [];

beforeAll(async () => {
  namespace = await createTestNamespace('leader');
});
afterAll(() => {
  for (const s of stops) s.abort();
});

function candidate(identity: string, leaseName: string) {
  const clients = createKubeClients(kubeConfigConnection(adminKubeConfig()));
  const metrics = createMetrics({ processMetrics: false });
  const events: string[] = [];
  const elector = new LeaderElector({
    raw: clients.raw,
    namespace,
    name: leaseName,
    identity,
    log,
    metrics,
    ...timings,
    onStartedLeading: () => events.push('started'),
    onStoppedLeading: () => events.push('stopped'),
  });
  const stop = new AbortController();
  stops.push(stop);
  return { elector, events, stop, metrics };
}

async function until(cond: () => boolean, ms = 20_000): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
  return performance.now() - start;
}

async function readLease(name: string) {
  return adminKubeConfig().makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace, name });
}

describe('leader election on a real Lease', () => {
  it('two candidates: exactly one leads and the Lease names it, with MicroTime renewals', async () => {
    const a = candidate('a', 'one-leader');
    const b = candidate('b', 'one-leader');
    const runs = [a.elector.run(a.stop.signal), b.elector.run(b.stop.signal)];
    await until(() => a.elector.isLeader() || b.elector.isLeader());
    for (let i = 0; i < 6; i++) {
      await new Promise((r) => setTimeout(r, 500));
      expect([a.elector.isLeader(), b.elector.isLeader()].filter(Boolean)).toHaveLength(1);
    }
    const leader = a.elector.isLeader() ? a : b;
    const lease = await readLease('one-leader');
    expect(lease.spec?.holderIdentity).toBe(leader === a ? 'a' : 'b');
    expect(lease.spec?.leaseDurationSeconds).toBe(2);
    // Renewed recently (the server accepted our six-digit MicroTime).
    expect(Date.now() - new Date(lease.spec?.renewTime as unknown as string).getTime()).toBeLessThan(2000);
    const gauge = await leader.metrics.registry.getSingleMetric('leader_election_master_status')?.get();
    expect(gauge?.values[0]?.value).toBe(1);
    a.stop.abort();
    b.stop.abort();
    await Promise.all(runs);
  });

  it('release: the follower takes over at its next retry', async () => {
    const a = candidate('a', 'release');
    const runA = a.elector.run(a.stop.signal);
    await until(() => a.elector.isLeader());
    const b = candidate('b', 'release');
    const runB = b.elector.run(b.stop.signal);
    await new Promise((r) => setTimeout(r, 600));
    expect(b.elector.isLeader()).toBe(false);
    a.stop.abort();
    expect(await runA).toBe('stopped');
    const took = await until(() => b.elector.isLeader());
    // At the next retry (retryPeriod * up to 2.2 plus a request), far below the lease duration.
    expect(took).toBeLessThan(timings.retryPeriodMs * 2.2 + 500);
    const lease = await readLease('release');
    expect(lease.spec?.holderIdentity).toBe('b');
    expect(lease.spec?.leaseTransitions).toBe(1);
    b.stop.abort();
    await runB;
  });

  it('kill without release: the follower takes over once the lease expired by its own clock', async () => {
    const a = candidate('a', 'kill');
    const runA = a.elector.run(a.stop.signal, { release: false });
    await until(() => a.elector.isLeader());
    const b = candidate('b', 'kill');
    const runB = b.elector.run(b.stop.signal);
    await new Promise((r) => setTimeout(r, 600));
    a.stop.abort();
    await runA;
    expect((await readLease('kill')).spec?.holderIdentity).toBe('a');
    const took = await until(() => b.elector.isLeader());
    expect(took).toBeGreaterThan(timings.leaseDurationMs - 2 * timings.retryPeriodMs - 100);
    expect(took).toBeLessThan(timings.leaseDurationMs + 2.2 * timings.retryPeriodMs + 1000);
    b.stop.abort();
    await runB;
  });
});
