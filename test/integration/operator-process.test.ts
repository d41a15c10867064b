/**
 * The operator as a process: `bin/harouter-operator.js` spawned with a
 * kubeconfig against the real API server. Probes, metrics, --help, graceful
 * shutdown with lease release, and two replicas where only the leader
 * reconciles and a killed leader is replaced within the lease duration.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FLAGS } from '../../src/config.ts';
import { base64File, freePort, issueServingCert } from '../../src/local/controlplane/index.ts';
import { webhookConfiguration } from '../../src/webhook/manifests.ts';
import {
  applyObject,
  collectionPath,
  kubeRequest,
  onlyNamespaces,
  report,
} from '../support/admission-cases.ts';
import { adminKubeConfig, controlPlaneInfo, createTestNamespace } from '../support/index.ts';
import { NODE, REPO } from '../support/paths.ts';
import { at, Cluster, installCrds, waitFor } from './reconcile-harness.ts';

const BIN = join(REPO, 'bin', 'harouter-operator.js');

let ns: string;
let dir: string;
let cluster: Cluster;
const children: ChildProcess[] = [];

interface Running {
  child: ChildProcess;
  metricsPort: number;
  probePort: number;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  logs: string[];
}

async function startOperator(identity: string, extra: string[] = []): Promise<Running> {
  const metricsPort = await freePort();
  const probePort = await freePort();
  const child = spawn(
    NODE,
    [
      BIN,
      `--kubeconfig=${controlPlaneInfo().kubeconfigPath}`,
      `--namespace=${ns}`,
      `--metrics-bind-address=127.0.0.1:${metricsPort}`,
      '--metrics-secure=false',
      `--health-probe-bind-address=127.0.0.1:${probePort}`,
      `--leader-election-namespace=${ns}`,
      `--identity=${identity}`,
      '--log-level=info',
      ...extra,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
  );
  children.push(child);
  const logs: string[] = [];
  child.stderr?.on('data', (d: Buffer) => logs.push(d.toString()));
  child.stdout?.on('data', (d: Buffer) => logs.push(d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  return { child, metricsPort, probePort, exit, logs };
}

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`);
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 0, body: '' };
  }
}

/** One sample of a metric from the /metrics text, summed over series matching `labels`. */
async function metric(op: Running, name: string, labels: Record<string, string> = {}): Promise<number> {
  const { body } = await get(op.metricsPort, '/metrics');
  let sum = 0;
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const series = m[2] ?? '';
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

async function writes(op: Running): Promise<number> {
  let sum = 0;
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE'])
    sum += await metric(op, 'rest_client_requests_total', { method });
  return sum;
}

const leading = async (op: Running) => (await metric(op, 'leader_election_master_status')) === 1;

beforeAll(async () => {
  const kc = adminKubeConfig();
  await installCrds(kc);
  ns = await createTestNamespace('opproc');
  cluster = new Cluster(kc, ns);
  dir = await mkdtemp(join(tmpdir(), 'harouter-opproc-'));
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await rm(dir, { recursive: true, force: true });
});

describe('harouter-operator process', () => {
  it('--help lists every flag with its variable; bad values exit 2 with the flag named', () => {
    const help = spawnSync(NODE, [BIN, '--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    for (const f of FLAGS) expect(help.stdout).toContain(`--${f.name}`);
    expect(help.stdout).toContain('HAROUTER_LEADER_ELECT');
    const bad = spawnSync(NODE, [BIN, '--workers=zero'], { encoding: 'utf8' });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--workers');
    const badEnv = spawnSync(NODE, [BIN], {
      encoding: 'utf8',
      env: { ...process.env, HAROUTER_LOG_LEVEL: 'chatty' },
    });
    expect(badEnv.status).toBe(2);
    expect(badEnv.stderr).toContain('HAROUTER_LOG_LEVEL');
  });

  it('serves probes and metrics, is ready only with caches and webhook, and releases the lease on SIGTERM', async () => {
    const certDir = join(dir, 'certs');
    const webhookPort = await freePort();
    const op = await startOperator('solo', [
      `--cert-dir=${certDir}`,
      `--webhook-bind-address=127.0.0.1:${webhookPort}`,
      '--leader-election-id=solo-lease',
    ]);
    await waitFor(async () => (await get(op.probePort, '/healthz')).status === 200, 30_000);
    // No certificate yet: alive, caches sync, but not ready.
    await waitFor(
      async () => (await get(op.probePort, '/readyz?verbose')).body.includes('[+]informers ok'),
      30_000,
    );
    const notReady = await get(op.probePort, '/readyz');
    expect(notReady.status).toBe(500);
    expect(notReady.body).toContain('[-]webhook failed');
    // The certificate appears (as when the Secret is mounted): the webhook starts, the replica is ready.
    const info = controlPlaneInfo();
    const issued = await issueServingCert({
      ca: { certPath: info.caCertPath, keyPath: info.caKeyPath },
      dir: join(dir, 'issued'),
      name: 'tls',
    });
    await rm(certDir, { recursive: true, force: true });
    await rename(join(dir, 'issued'), certDir);
    expect(issued.certPath.endsWith('tls.crt')).toBe(true);
    await waitFor(async () => (await get(op.probePort, '/readyz')).status === 200, 30_000);
    expect((await get(op.probePort, '/readyz?verbose')).body).toContain('[+]webhook ok');

    await waitFor(() => leading(op), 30_000);
    const { body } = await get(op.metricsPort, '/metrics');
    for (const name of [
      'controller_runtime_reconcile_total',
      'controller_runtime_reconcile_time_seconds',
      'controller_runtime_reconcile_errors_total',
      'workqueue_depth',
      'workqueue_adds_total',
      'workqueue_queue_duration_seconds',
      'workqueue_work_duration_seconds',
      'workqueue_retries_total',
      'rest_client_requests_total',
      'leader_election_master_status',
      'controller_runtime_webhook_requests_total',
      'controller_runtime_webhook_latency_seconds',
      'harouter_reports_total',
      'harouter_admission_decisions_total',
      'harouter_active_changes_total',
      'harouter_routers',
      'harouter_report_to_route_seconds',
      'process_resident_memory_bytes',
    ]) {
      expect(body, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
    expect(body).toContain('leader_election_master_status{name="solo-lease"} 1');
    expect((await get(op.probePort, '/nope')).status).toBe(404);

    op.child.kill('SIGTERM');
    expect(await op.exit).toEqual({ code: 0, signal: null });
    const lease = await adminKubeConfig()
      .makeApiClient(CoordinationV1Api)
      .readNamespacedLease({ namespace: ns, name: 'solo-lease' });
    expect(lease.spec?.holderIdentity ?? '').toBe('');
  });

  it("a stopping replica does not wait on the API server's kept-alive webhook connections", async () => {
    // Found by the chaos run (docs/reliability.md): a replica that lost its Lease during a storm kept
    // "shutting down" for minutes, because closing the webhook server waited until the API server
    // stopped sending admission requests on its kept-alive connections; with both replicas stuck so,
    // nothing reconciled. Here the API server keeps calling the webhook while the replica stops.
    const certDir = join(dir, 'keepalive-certs');
    const info = controlPlaneInfo();
    await issueServingCert({
      ca: { certPath: info.caCertPath, keyPath: info.caKeyPath },
      dir: certDir,
      name: 'tls',
    });
    const webhookPort = await freePort();
    const op = await startOperator('keepalive', [
      `--cert-dir=${certDir}`,
      `--webhook-bind-address=127.0.0.1:${webhookPort}`,
      '--leader-election-id=keepalive-lease',
    ]);
    await waitFor(async () => (await get(op.probePort, '/readyz')).status === 200, 60_000);
    const admin = adminKubeConfig();
    const configPath = `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/keepalive-${ns}`;
    await applyObject(
      admin,
      configPath,
      webhookConfiguration({
        name: `keepalive-${ns}`,
        url: `https://127.0.0.1:${webhookPort}/validate`,
        caBundle: await base64File(info.caCertPath),
        namespaceSelector: onlyNamespaces(ns),
      }),
    );
    // A steady stream of dry-run creates, each sent through the webhook (the admin is no reporter: denied).
    let streaming = true;
    const path = `${collectionPath(ns)}?dryRun=All`;
    const stream = Promise.all(
      Array.from({ length: 4 }, async () => {
        while (streaming)
          await kubeRequest(admin, 'POST', path, report(randomUUID(), 'node-a')).catch(() => undefined);
      }),
    );
    try {
      await waitFor(async () => (await metric(op, 'controller_runtime_webhook_requests_total')) > 20, 60_000);
      op.child.kill('SIGTERM');
      const stoppedAt = Date.now();
      const exit = await Promise.race([
        op.exit,
        new Promise<'hung'>((r) => setTimeout(() => r('hung'), 30_000)),
      ]);
      expect(exit).toEqual({ code: 0, signal: null });
      expect(Date.now() - stoppedAt).toBeLessThan(15_000);
    } finally {
      streaming = false;
      await stream;
      await kubeRequest(admin, 'DELETE', configPath);
    }
  });

  it('a leader that cannot renew (the Lease taken by someone else) stops and exits 1', async () => {
    const op = await startOperator('doomed', [
      '--webhook=false',
      '--leader-election-id=stolen-lease',
      '--leader-election-lease-duration=4s',
      '--leader-election-renew-deadline=2s',
      '--leader-election-retry-period=500ms',
    ]);
    await waitFor(() => leading(op), 30_000);
    const leases = adminKubeConfig().makeApiClient(CoordinationV1Api);
    // Another holder writes the Lease (as a split network could let happen): to the leader the
    // record is now someone else's and valid, so its renewals fail until the renew deadline.
    // The leader renews every 500 ms, so the read-and-replace retries when a renewal lands between.
    let stolenAt = 0;
    for (let attempt = 1; stolenAt === 0; attempt++) {
      const lease = await leases.readNamespacedLease({ namespace: ns, name: 'stolen-lease' });
      try {
        await leases.replaceNamespacedLease({
          namespace: ns,
          name: 'stolen-lease',
          body: { ...lease, spec: { ...lease.spec, holderIdentity: 'intruder', leaseDurationSeconds: 60 } },
        });
        stolenAt = Date.now();
      } catch (error) {
        if ((error as { code?: number }).code !== 409 || attempt >= 10) throw error;
      }
    }
    const exit = await op.exit;
    expect(exit.code).toBe(1);
    expect(Date.now() - stolenAt).toBeLessThan(2000 + 500 + 3000);
    expect(op.logs.join('')).toContain('leader election lost');
  });

  it('two replicas: only the leader reconciles; a killed leader is replaced within the lease duration', async () => {
    const timings = [
      '--webhook=false',
      '--leader-election-id=pair-lease',
      '--leader-election-lease-duration=4s',
      '--leader-election-renew-deadline=3s',
      '--leader-election-retry-period=500ms',
    ];
    const first = await startOperator('replica-1', timings);
    await waitFor(() => leading(first), 30_000);
    const second = await startOperator('replica-2', timings);
    await waitFor(async () => (await get(second.probePort, '/readyz')).status === 200, 30_000);

    const node = `${ns}-n1`;
    const other = `${ns}-n2`;
    await cluster.setNode(node, true, '198.51.100.61');
    await cluster.setNode(other, true, '198.51.100.62');
    const id = randomUUID();
    await cluster.createRouter(id, { agents: [{ name: node }, { name: other }] });
    await cluster.report(id, node, 'Primary', at(1));
    await waitFor(async () => (await cluster.getRouter(id)).status?.activeAgent === node, 30_000);

    // Both replicas cache everything and answer probes; only the leader reconciled and wrote.
    expect(await leading(second)).toBe(false);
    expect(await metric(first, 'controller_runtime_reconcile_total')).toBeGreaterThan(0);
    expect(await metric(second, 'controller_runtime_reconcile_total')).toBe(0);
    expect(await metric(second, 'workqueue_adds_total')).toBe(0);
    expect(await writes(second)).toBe(0);
    expect(await writes(first)).toBeGreaterThan(0);

    // Kill the leader: no release. The follower takes over once the lease expires by its clock.
    first.child.kill('SIGKILL');
    await first.exit;
    const killedAt = Date.now();
    await waitFor(() => leading(second), 20_000, 100);
    const takeover = Date.now() - killedAt;
    expect(takeover).toBeLessThan(4000 + 2.2 * 500 + 1500);

    // The new leader reconciles what happens next.
    await cluster.report(id, other, 'Primary', at(2));
    await cluster.report(id, node, 'Backup', at(3));
    await waitFor(async () => (await cluster.getRouter(id)).status?.activeAgent === other, 30_000);
    expect(await metric(second, 'controller_runtime_reconcile_total')).toBeGreaterThan(0);
    expect(await writes(second)).toBeGreaterThan(0);

    second.child.kill('SIGTERM');
    expect((await second.exit).code).toBe(0);
    await cluster.deleteNode(node);
    await cluster.deleteNode(other);
  });
});
