/**
 * The dashboard and the alerts against a real operator: `bin/harouter-operator.js` runs as its own
 * process with the Deployment's arguments from the chart (bind addresses, certificate directory and
 * kubeconfig changed for the test) and the identity and RBAC the chart gives it (a TokenRequest
 * token of the chart's ServiceAccount, bound by the chart's ClusterRole and Role), watching this
 * file's namespace only. Two routers (one with a primary, one without), one denied admission
 * request; then /metrics is scraped and every metric and every equality label matcher the
 * dashboard and the alert rules use must be found in what the operator really serves. The webhook
 * serves the certificate the chart generated and is called as the API server would call it (the
 * chart's CA bundle, the Service's DNS name).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/controlplane/index.ts';
import {
  adminKubeConfig,
  createTestNamespace,
  kubeConfigForToken,
  mintServiceAccountToken,
} from '../support/index.ts';
import {
  alertQueries,
  dashboardQueries,
  exportedMetricNames,
  type Query,
  renderChart,
  repoRoot,
  scrapedMetricNames,
  scrapedSeries,
  unknownMetrics,
  vectorSelectors,
} from '../unit/chart-helpers.ts';
import { Cluster, installCrds, waitFor } from './reconcile-harness.ts';

const RELEASE = 'metrics';
const FULLNAME = 'metrics-harouter-operator';
const ROUTED = '11111111-2222-4333-8444-555555555555';
const ORPHAN = '66666666-7777-4888-9999-aaaaaaaaaaaa';

let admin: KubeConfig;
let namespace: string;
let dir: string;
let operator: ChildProcess | undefined;
let output = '';
let ports: { metrics: number; health: number; webhook: number };
let caPem: string;
let node: string;
const created: KubernetesObject[] = [];

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: response.status, body: await response.text() };
}

/** POSTs an AdmissionReview to the operator's webhook over TLS, trusting the test CA. */
function admissionReview(body: unknown): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: ports.webhook,
        path: '/validate',
        method: 'POST',
        ca: caPem,
        // The name the API server verifies: the webhook Service's DNS name.
        servername: `${FULLNAME}-webhook.${namespace}.svc`,
        headers: { 'content-type': 'application/json' },
        timeout: 5_000,
      },
      (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

async function scrape(): Promise<string> {
  const response = await get(ports.metrics, '/metrics');
  expect(response.status).toBe(200);
  return response.body;
}

/** The Deployment's arguments with the test's addresses, certificate directory, kubeconfig and namespace. */
function operatorArgs(chartArgs: string[], kubeconfig: string): string[] {
  const replaced: Record<string, string> = {
    'metrics-bind-address': `127.0.0.1:${ports.metrics}`,
    'health-probe-bind-address': `127.0.0.1:${ports.health}`,
    'webhook-bind-address': `127.0.0.1:${ports.webhook}`,
    'cert-dir': dir,
  };
  const args = chartArgs.map((arg) => {
    const name = /^--([a-z-]+)=/.exec(arg)?.[1];
    return name && name in replaced ? `--${name}=${replaced[name]}` : arg;
  });
  for (const name of Object.keys(replaced)) expect(args).toContain(`--${name}=${replaced[name]}`);
  return [...args, `--kubeconfig=${kubeconfig}`, `--namespace=${namespace}`, '--identity=metrics-test-0'];
}

beforeAll(async () => {
  admin = adminKubeConfig();
  await installCrds(admin);
  namespace = await createTestNamespace('metrics');
  dir = await mkdtemp(join(tmpdir(), 'harouter-metrics-'));
  ports = { metrics: await freePort(), health: await freePort(), webhook: await freePort() };

  // The chart's ServiceAccounts and RBAC, for real: the operator runs with exactly these permissions.
  const objects = await renderChart({ release: RELEASE, namespace });
  const client = admin.makeApiClient(KubernetesObjectApi);
  const rbacKinds = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
  for (const object of objects.filter((o) => rbacKinds.has(o.kind))) {
    created.push(await client.create(object as KubernetesObject));
  }
  const token = await mintServiceAccountToken({ namespace, serviceAccount: FULLNAME });
  const kubeconfig = join(dir, 'operator.kubeconfig');
  await writeFile(kubeconfig, kubeConfigForToken(token, namespace).exportConfig(), { mode: 0o600 });

  // The webhook serves the certificate the chart generated (its Secret's files, as mounted in the
  // Pod); the test trusts the chart's CA (the webhook configuration's caBundle) for the Service name.
  const secret = objects.find((o) => o.kind === 'Secret');
  for (const file of ['tls.crt', 'tls.key']) {
    await writeFile(join(dir, file), Buffer.from(secret?.data[file], 'base64'), { mode: 0o600 });
  }
  caPem = Buffer.from(secret?.data['ca.crt'], 'base64').toString('utf8');
  const webhookConfig = objects.find((o) => o.kind === 'ValidatingWebhookConfiguration');
  expect(webhookConfig?.webhooks[0].clientConfig.caBundle).toBe(secret?.data['ca.crt']);

  const deployment = objects.find((o) => o.kind === 'Deployment');
  const container = deployment?.spec.template.spec.containers[0];
  operator = spawn(
    process.execPath,
    [join(repoRoot, 'bin', 'harouter-operator.js'), ...operatorArgs(container.args, kubeconfig)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, POD_NAME: 'metrics-test-0', POD_NAMESPACE: namespace },
    },
  );
  operator.stdout?.on('data', (chunk) => {
    output += chunk;
  });
  operator.stderr?.on('data', (chunk) => {
    output += chunk;
  });
  try {
    await waitFor(async () => {
      if (operator?.exitCode !== null) throw new Error(`operator exited with ${operator?.exitCode}`);
      return (await get(ports.health, '/readyz').catch(() => ({ status: 0 }))).status === 200;
    }, 30_000);
  } catch (error) {
    throw new Error(`the operator did not become ready: ${(error as Error).message}\n${output.slice(-4000)}`);
  }

  // One routed router, one without a primary.
  const cluster = new Cluster(admin, namespace);
  node = `metrics-${randomBytes(3).toString('hex')}-a`;
  await cluster.setNode(node, true, '198.51.100.41');
  await cluster.createRouter(ROUTED, { agents: [{ name: node }] });
  await cluster.createRouter(ORPHAN, { agents: [{ name: node }] });
  await cluster.report(ROUTED, node, 'Primary', new Date().toISOString());
}, 120_000);

afterAll(async () => {
  if (operator && operator.exitCode === null) {
    const exited = new Promise((resolve) => operator?.once('exit', resolve));
    operator.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    if (operator.exitCode === null) operator.kill('SIGKILL');
  }
  const client = admin.makeApiClient(KubernetesObjectApi);
  for (const object of created.filter((o) => !o.metadata?.namespace))
    await client.delete(object).catch(() => undefined);
  if (node) await new Cluster(admin, namespace).deleteNode(node);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('the dashboard and the alerts use only what a running operator serves', () => {
  let exposition: string;

  beforeAll(async () => {
    // A denied admission request, so that the webhook's and the admission metrics have series.
    const review = await admissionReview({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: '00000000-0000-4000-8000-000000000001',
        kind: { group: 'harouter.dev', version: 'v1alpha1', kind: 'HARouterState' },
        resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
        namespace,
        name: `${ROUTED}.${node}`,
        operation: 'CREATE',
        userInfo: { username: 'system:serviceaccount:elsewhere:intruder', groups: ['system:authenticated'] },
        object: {
          apiVersion: 'harouter.dev/v1alpha1',
          kind: 'HARouterState',
          metadata: { name: `${ROUTED}.${node}`, namespace },
          spec: { routerId: ROUTED, agent: node, state: 'Primary', observedAt: new Date().toISOString() },
        },
      },
    });
    expect(review.status).toBe(200);
    expect(JSON.parse(review.body).response.allowed).toBe(false);

    // Wait for the leader's view of both routers.
    try {
      await waitFor(async () => {
        const series = scrapedSeries(await scrape());
        const has = (name: string, labels: Record<string, string>) =>
          series.some((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
        return (
          has('leader_election_master_status', { name: 'harouter-operator' }) &&
          has('harouter_router_info', { router: ROUTED, active_agent: node }) &&
          has('harouter_router_info', { router: ORPHAN, active_agent: '' }) &&
          has('harouter_router_transitions_total', { router: ROUTED })
        );
      }, 30_000);
    } catch (error) {
      throw new Error(
        `${(error as Error).message}\n${(await scrape().catch(() => '')).slice(0, 3000)}\n${output.slice(-3000)}`,
      );
    }
    exposition = await scrape();
  }, 60_000);

  const queries: Query[] = [...dashboardQueries(), ...alertQueries()];

  it('every metric the dashboard and the alerts select is served', () => {
    expect(unknownMetrics(queries, scrapedMetricNames(exposition))).toEqual([]);
  });

  it('every equality label matcher they use matches a served series', () => {
    const series = scrapedSeries(exposition);
    const problems: string[] = [];
    for (const query of queries) {
      for (const selector of vectorSelectors(query.expr)) {
        const equal = selector.matchers.filter((m) => m.op === '=' && m.name !== 'job');
        const found = series.some(
          (s) => s.name === selector.metric && equal.every((m) => (s.labels[m.name] ?? '') === m.value),
        );
        if (!found)
          problems.push(
            `${query.where}: ${selector.metric}{${equal.map((m) => `${m.name}="${m.value}"`).join(',')}}`,
          );
      }
    }
    expect(problems).toEqual([]);
  });

  it("the leader serves leader_election_master_status 1 for the chart's Lease name", () => {
    const leader = scrapedSeries(exposition).find(
      (s) => s.name === 'leader_election_master_status' && s.labels.name === 'harouter-operator',
    );
    expect(leader).toBeDefined();
    expect(exposition).toMatch(/^leader_election_master_status\{name="harouter-operator"\} 1$/m);
  });

  it('everything it serves is declared by createMetrics() (and so documented)', async () => {
    const declared = await exportedMetricNames();
    expect([...scrapedMetricNames(exposition)].filter((n) => !declared.has(n))).toEqual([]);
  });
});
