/**
 * End to end with the real `harouter-operator` process: a router's life seen
 * through what a user sees (`kubectl get har`, the EndpointSlice) and what
 * Prometheus scrapes (`/metrics`): the domain metrics follow each change, a
 * failover costs three API writes, and a deleted router's series disappear.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, HAROUTER, VERSION } from '../../src/api/index.ts';
import { freePort } from '../../src/local/controlplane/index.ts';
import { adminKubeConfig, controlPlaneInfo, createTestNamespace } from '../support/index.ts';
import { NODE, REPO } from '../support/paths.ts';
import { at, Cluster, conditionOf, installCrds, waitFor } from './reconcile-harness.ts';

const BIN = join(REPO, 'bin', 'harouter-operator.js');

let cluster: Cluster;
let ns: string;
let child: ChildProcess | undefined;
let metricsPort = 0;
const logs: string[] = [];
let p: string;
let q: string;

/** The samples of `/metrics` whose name is `name` and whose labels include `labels`. */
async function samples(
  name: string,
  labels: Record<string, string> = {},
): Promise<{ labels: Record<string, string>; value: number }[]> {
  const body = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got: Record<string, string> = {};
    for (const pair of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      got[pair[1] as string] = pair[2] as string;
    if (Object.entries(labels).every(([k, v]) => got[k] === v))
      out.push({ labels: got, value: Number(m[3]) });
  }
  return out;
}

const sum = async (name: string, labels: Record<string, string> = {}) =>
  (await samples(name, labels)).reduce((s, x) => s + x.value, 0);

async function apiWrites(): Promise<number> {
  let total = 0;
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'])
    total += await sum('rest_client_requests_total', { method });
  return total;
}

/** Waits until the operator has made no API write for `quietMs`; returns the write count. */
async function quiescent(quietMs = 1000): Promise<number> {
  let last = await apiWrites();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    const now = await apiWrites();
    if (now !== last) {
      last = now;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return now;
  }
}

function kubectl(...args: string[]): string {
  return execFileSync(
    controlPlaneInfo().binaries.kubectl,
    [`--kubeconfig=${controlPlaneInfo().kubeconfigPath}`, ...args],
    {
      encoding: 'utf8',
    },
  );
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  await installCrds(kc);
  ns = await createTestNamespace('scenario');
  cluster = new Cluster(kc, ns);
  [p, q] = [`${ns}-p`, `${ns}-q`];
  await cluster.setNode(p, true, '198.51.100.61');
  await cluster.setNode(q, true, '198.51.100.62');
  metricsPort = await freePort();
  const probePort = await freePort();
  child = spawn(
    NODE,
    [
      BIN,
      `--kubeconfig=${controlPlaneInfo().kubeconfigPath}`,
      `--namespace=${ns}`,
      '--webhook=false',
      '--leader-elect=false',
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      '--metrics-secure=false',
      `--health-probe-bind-address=127.0.0.1:${probePort}`,
      '--identity=scenario',
      '--log-level=info',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
  );
  child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
  await waitFor(async () => {
    try {
      return (await fetch(`http://127.0.0.1:${probePort}/readyz`)).status === 200;
    } catch {
      return false;
    }
  }, 60_000).catch(() => {
    throw new Error(`operator not ready; logs:\n${logs.join('').slice(-4000)}`);
  });
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child?.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
  await cluster?.deleteNode(p);
  await cluster?.deleteNode(q);
});

describe('the operator process, end to end', () => {
  it('a router seen through kubectl, the EndpointSlice and /metrics, from first report to deletion', async () => {
    const id = randomUUID();
    const router = { namespace: ns, router: id };
    await cluster.createService('edge', 80, false, id);
    await cluster.createRouter(id, {
      displayName: 'edge router',
      agents: [{ name: p }, { name: q }],
      endpoint: { serviceName: 'edge', ports: [{ name: 'http', port: 80 }] },
    });
    await cluster.report(id, p, 'Primary', at(1));
    await cluster.report(id, q, 'Backup', at(1));
    await waitFor(async () => (await cluster.getRouter(id)).status?.activeAgent === p);
    await waitFor(async () => (await cluster.sliceAddresses('edge'))?.join() === '198.51.100.61');

    // kubectl get har: active agent, readiness and split brain at a glance.
    const table = kubectl('get', 'har', '-n', ns).trim().split('\n');
    expect(table[0]?.split(/\s{2,}/)).toEqual([
      'NAME',
      'DISPLAY NAME',
      'ACTIVE',
      'READY',
      'SPLIT BRAIN',
      'LIVE',
      'AGE',
    ]);
    expect(table[1]?.split(/\s{2,}/).slice(0, 6)).toEqual([id, 'edge router', p, 'True', 'False', '2']);

    await waitFor(async () => (await sum('harouter_router_info', { ...router, active_agent: p })) === 1);
    expect(await sum('harouter_router_transitions_total', router)).toBe(1);
    expect(await sum('harouter_routers', { condition: 'ready' })).toBe(1);
    expect(await sum('harouter_routers', { condition: 'no_primary' })).toBe(0);
    expect(await sum('harouter_active_changes_total')).toBe(1);
    expect(await sum('harouter_reports_total', { state: 'Primary' })).toBeGreaterThanOrEqual(1);
    expect(await sum('harouter_reports_total', { state: 'Backup' })).toBeGreaterThanOrEqual(1);
    expect(await sum('harouter_report_to_route_seconds_count')).toBe(1);

    // Split brain, then one change moves the traffic: exactly slice + status + one Event.
    await cluster.report(id, q, 'Primary', at(2));
    await waitFor(async () => conditionOf(await cluster.getRouter(id), 'SplitBrain')?.status === 'True');
    await waitFor(async () => (await sum('harouter_routers', { condition: 'split_brain' })) === 1);
    expect(
      kubectl('get', 'har', id, '-n', ns, '--no-headers')
        .split(/\s{2,}/)
        .slice(2, 5),
    ).toEqual([p, 'True', 'True']);
    const before = await quiescent();
    await cluster.report(id, p, 'Backup', at(3));
    await waitFor(async () => (await cluster.sliceAddresses('edge'))?.join() === '198.51.100.62');
    await waitFor(async () => (await cluster.getRouter(id)).status?.activeAgent === q);
    expect((await quiescent()) - before).toBe(3);

    // The router's old info series is gone, the new one is there; counters follow status.transitions.
    expect(await samples('harouter_router_info', router)).toEqual([
      { labels: { ...router, active_agent: q }, value: 1 },
    ]);
    expect(await sum('harouter_router_transitions_total', router)).toBe(2);
    expect(await sum('harouter_active_changes_total')).toBe(2);
    expect(await sum('harouter_routers', { condition: 'split_brain' })).toBe(0);

    // Deleting the router removes its series.
    await cluster.custom.deleteNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: HAROUTER.plural,
      name: id,
    });
    await waitFor(async () => (await samples('harouter_router_info', router)).length === 0);
    expect(await samples('harouter_router_transitions_total', router)).toEqual([]);
    expect(await sum('harouter_routers', { condition: 'ready' })).toBe(0);
  });
});
