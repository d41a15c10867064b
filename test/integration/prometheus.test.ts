/**
 * The dashboard and the alerts against a real operator scraped by a real Prometheus.
 * `bin/harouter-operator.js` runs as its own process with the Deployment's arguments from the
 * chart (bind addresses, certificate directory and kubeconfig changed for the test) and the
 * identity and RBAC the chart gives it (a TokenRequest token of the chart's ServiceAccount, bound by
 * the chart's ClusterRole and Role), watching this file's namespace only. Prometheus (built like the
 * other binaries) scrapes it every second with the chart's job label and evaluates the chart's alert
 * rules file as it ships. Scenarios drive the operator: a failover, a split brain, a flapping router,
 * a router without a primary, denied reports (AdmissionReviews sent to the webhook as the API server
 * would, with the chart's CA bundle and the Service's DNS name). Then, through Prometheus's HTTP API:
 * every alert rule is loaded and evaluates, the split-brain and flapping alerts become pending, every
 * dashboard query runs with its variables substituted, the panels about routers, admission,
 * reconciles and report-to-route return data, and every metric and label the dashboard and the
 * alerts select has series.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, prometheusBinary } from '../../src/local/controlplane/index.ts';
import {
  instantQuery,
  OPERATOR_JOB,
  type RunningPrometheus,
  rangeQuery,
} from '../../src/local/prometheus.ts';
import {
  adminKubeConfig,
  createTestNamespace,
  kubeConfigForToken,
  mintServiceAccountToken,
} from '../support/index.ts';
import {
  alertQueries,
  alertRules,
  dashboard,
  dashboardPanels,
  dashboardQueries,
  exportedMetricNames,
  type Query,
  renderChart,
  repoRoot,
  substituteGrafanaVariables,
  vectorSelectors,
} from '../unit/chart-helpers.ts';
import { elect, failover, flap, splitBrain, startScenarioPrometheus } from './monitoring-scenarios.ts';
import { Cluster, installCrds, waitFor } from './reconcile-harness.ts';

const RELEASE = 'metrics';
const FULLNAME = 'metrics-harouter-operator';
/** The routers of the scenarios. */
const FAILOVER = '11111111-2222-4333-8444-555555555555';
const ORPHAN = '66666666-7777-4888-9999-aaaaaaaaaaaa';
const SPLIT = '22222222-3333-4444-8555-666666666666';
const FLAPPING = '33333333-4444-4555-8666-777777777777';
/** Failovers of the flapping router: above HARouterFlapping's 8 a day, with margin for increase()'s first sample. */
const FLAPS = 12;

let admin: KubeConfig;
let namespace: string;
let dir: string;
let operator: ChildProcess | undefined;
let output = '';
let ports: { metrics: number; health: number; webhook: number };
let caPem: string;
let nodes: string[] = [];
let prometheus: RunningPrometheus | undefined;
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

/** The Deployment's arguments with the test's addresses, certificate directory, kubeconfig and namespace. */
function operatorArgs(chartArgs: string[], kubeconfig: string): string[] {
  const replaced: Record<string, string> = {
    'metrics-bind-address': `127.0.0.1:${ports.metrics}`,
    // Plain HTTP for this Prometheus; the secure metrics are tested in metrics-secure.test.ts.
    'metrics-secure': 'false',
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
  await prometheusBinary();
}, 1_200_000);

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

  prometheus = await startScenarioPrometheus(dir, ports.metrics);
}, 120_000);

afterAll(async () => {
  await prometheus?.stop();
  if (operator && operator.exitCode === null) {
    const exited = new Promise((resolve) => operator?.once('exit', resolve));
    operator.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    if (operator.exitCode === null) operator.kill('SIGKILL');
  }
  const client = admin.makeApiClient(KubernetesObjectApi);
  for (const object of created.filter((o) => !o.metadata?.namespace))
    await client.delete(object).catch(() => undefined);
  for (const node of nodes) await new Cluster(admin, namespace).deleteNode(node);
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

/** Prometheus's URL (set by the setup). */
function prom(): string {
  if (!prometheus) throw new Error('Prometheus did not start');
  return prometheus.url;
}

async function api<T>(path: string): Promise<T> {
  const response = await fetch(`${prom()}${path}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await response.json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`${path}: ${body.error}`);
  return body.data;
}

interface ActiveAlert {
  labels: Record<string, string>;
  state: string;
}

const activeAlerts = async () => (await api<{ alerts: ActiveAlert[] }>('/api/v1/alerts')).alerts;

/** An AdmissionReview for a report, from a service account that is not a reporter: denied (NotAReporter). */
function intruderReview(router: string, node: string, uid: number) {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: `00000000-0000-4000-8000-${String(uid).padStart(12, '0')}`,
      kind: { group: 'harouter.dev', version: 'v1alpha1', kind: 'HARouterState' },
      resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
      namespace,
      name: `${router}.${node}`,
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:elsewhere:intruder', groups: ['system:authenticated'] },
      object: {
        apiVersion: 'harouter.dev/v1alpha1',
        kind: 'HARouterState',
        metadata: { name: `${router}.${node}`, namespace },
        spec: { routerId: router, agent: node, state: 'Primary', observedAt: new Date().toISOString() },
      },
    },
  };
}

/** Prometheus's own series for every scrape target, not the operator's. */
const SCRAPE_SERIES = new Set([
  'up',
  'scrape_duration_seconds',
  'scrape_samples_scraped',
  'scrape_samples_post_metric_relabeling',
  'scrape_series_added',
]);

describe('a real Prometheus scraping the operator through a failover, a split brain, flapping and denied reports', () => {
  let started: number;
  /** The dashboard's variables as a person picks them: this job, this namespace. */
  let variables: Record<string, string>;

  beforeAll(async () => {
    started = Date.now() / 1000;
    variables = { job: OPERATOR_JOB, namespace, interval: '30s' };
    const cluster = new Cluster(admin, namespace);
    const suffix = randomBytes(3).toString('hex');
    const [a, b] = [`prom-${suffix}-a`, `prom-${suffix}-b`];
    nodes = [a, b];
    await cluster.setNode(a, true, '198.51.100.41');
    await cluster.setNode(b, true, '198.51.100.42');
    await cluster.createService('edge');
    const pair = [{ name: a }, { name: b }];
    await cluster.createRouter(FAILOVER, {
      agents: pair,
      endpoint: { serviceName: 'edge', ports: [{ name: 'http', port: 80 }] },
    });
    await cluster.createRouter(SPLIT, { agents: pair });
    await cluster.createRouter(FLAPPING, { agents: pair });
    await cluster.createRouter(ORPHAN, { agents: [{ name: a }] });
    for (const router of [FAILOVER, SPLIT, FLAPPING]) await elect(cluster, router, a, [b]);
    // increase() counts from the first sample Prometheus has: flap once it has one.
    await waitFor(
      async () =>
        (await instantQuery(prom(), `harouter_router_transitions_total{router="${FLAPPING}"}`)).length > 0,
      30_000,
    );

    await failover(cluster, FAILOVER, a, b);
    await splitBrain(cluster, SPLIT, a, b);
    await flap(cluster, FLAPPING, a, b, FLAPS);
    for (let i = 1; i <= 3; i++) {
      const review = await admissionReview(intruderReview(FAILOVER, a, i));
      expect(review.status).toBe(200);
      expect(JSON.parse(review.body).response.allowed).toBe(false);
    }

    // rate() needs two samples in its window at the points a panel evaluates, and a range query's
    // last point may fall a step (2 s) before its end: wait until two scrapes since the webhook's
    // first request are 4 s old, or the panel may run on a single sample (it did, on a fast run).
    await waitFor(
      async () =>
        (
          await instantQuery(
            prom(),
            `count_over_time(controller_runtime_webhook_requests_total{job="${OPERATOR_JOB}", webhook="/validate"}[30s] offset 4s) >= 2`,
          )
        ).length > 0,
      30_000,
    );
    try {
      await waitFor(async () => {
        const alerts = await activeAlerts();
        return (
          alerts.some((x) => x.labels.alertname === 'HARouterSplitBrain') &&
          alerts.some((x) => x.labels.alertname === 'HARouterFlapping' && x.labels.router === FLAPPING)
        );
      }, 60_000);
    } catch (error) {
      throw new Error(
        `the alerts did not become pending: ${(error as Error).message}\n${JSON.stringify(await activeAlerts())}`,
      );
    }
  }, 240_000);

  it('loads every alert rule of the shipped file, and every rule evaluates without error', async () => {
    type Rule = { name: string; type: string; health: string; lastError?: string };
    let rules: Rule[] = [];
    await waitFor(async () => {
      const groups = (await api<{ groups: { rules: Rule[] }[] }>('/api/v1/rules')).groups;
      rules = groups.flatMap((g) => g.rules);
      return rules.length > 0 && rules.every((r) => r.health !== 'unknown');
    }, 30_000);
    expect(rules.map((r) => r.name).sort()).toEqual(
      alertRules()
        .map((r) => r.alert ?? r.record)
        .sort(),
    );
    expect(rules.filter((r) => r.health !== 'ok')).toEqual([]);
  });

  it('the split-brain and flapping alerts become pending for the routers they are about, and only those', async () => {
    const alerts = await activeAlerts();
    const splitBrainAlert = alerts.find((x) => x.labels.alertname === 'HARouterSplitBrain');
    expect(splitBrainAlert?.state).toMatch(/^(pending|firing)$/);
    const flapping = alerts.filter((x) => x.labels.alertname === 'HARouterFlapping');
    expect(flapping.map((x) => [x.labels.namespace, x.labels.router])).toEqual([[namespace, FLAPPING]]);
    expect(flapping[0]?.state).toMatch(/^(pending|firing)$/);
  });

  const panels = dashboardPanels().filter((p) => (p.targets ?? []).length > 0);

  /** Runs a panel's queries as Grafana would: time series over the scenario, stats and tables now. */
  async function panelData(
    panel: (typeof panels)[number],
  ): Promise<{ refId: string; expr: string; series: number }[]> {
    const results: { refId: string; expr: string; series: number }[] = [];
    for (const target of panel.targets) {
      const expr = substituteGrafanaVariables(target.expr, variables);
      const series =
        panel.type === 'timeseries'
          ? (await rangeQuery(prom(), expr, { start: started, end: Date.now() / 1000, stepSeconds: 2 }))
              .length
          : (await instantQuery(prom(), expr)).length;
      results.push({ refId: target.refId, expr, series });
    }
    return results;
  }

  it('every dashboard query runs with its variables substituted (panels and variables)', async () => {
    const failures: string[] = [];
    for (const panel of panels) {
      await panelData(panel).catch((error) => failures.push(`${panel.title}: ${(error as Error).message}`));
    }
    for (const variable of dashboard().templating.list.filter((v: { type: string }) => v.type === 'query')) {
      const query: string = variable.query.query ?? variable.query;
      const selector = /^label_values\((.*),\s*\w+\)$/.exec(query)?.[1] ?? query;
      await instantQuery(prom(), substituteGrafanaVariables(selector, variables)).then(
        (result) => {
          if (result.length === 0) failures.push(`variable ${variable.name}: no values`);
        },
        (error) => failures.push(`variable ${variable.name}: ${(error as Error).message}`),
      );
    }
    expect(failures).toEqual([]);
  });

  it.each([
    'Routers',
    'Ready',
    'Split brain',
    'No primary',
    'Degraded',
    'Active changes (24h)',
    'Routers by condition',
    'Routers without a primary',
    'Active agent per router',
    'Split brain: recently changed routers',
    'Active changes',
    'Flapping routers (24h)',
    'Report-to-route latency',
    'Reports by state',
    'Admission decisions by reason',
    'Webhook requests by code',
    'Webhook latency',
    'Reconcile latency',
    'Reconciles and errors',
    'Work queue depth',
    'Leader',
  ])('the panel "%s" returns data for every query', async (title) => {
    const panel = panels.find((p) => p.title === title);
    expect(panel, title).toBeDefined();
    const results = await panelData(panel);
    expect(results.filter((r) => r.series === 0)).toEqual([]);
  });

  it('every metric and equality label matcher the dashboard and the alerts use selects series of this job', async () => {
    const queries: Query[] = [...dashboardQueries(dashboard(), variables), ...alertQueries()];
    const missing: string[] = [];
    for (const query of queries) {
      for (const selector of vectorSelectors(query.expr)) {
        const matchers = selector.matchers
          .filter((m) => m.op === '=' && m.name !== 'job')
          .map((m) => `${m.name}=${JSON.stringify(m.value)}`);
        const expr = `${selector.metric}{${[`job="${OPERATOR_JOB}"`, ...matchers].join(', ')}}`;
        if ((await instantQuery(prom(), `count(${expr})`)).length === 0)
          missing.push(`${query.where}: ${expr}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it("the operator is the leader of the chart's Lease name", async () => {
    const leader = await instantQuery(prom(), 'leader_election_master_status{name="harouter-operator"}');
    expect(leader.map((s) => [s.metric.job, s.value])).toEqual([[OPERATOR_JOB, 1]]);
  });

  it('everything the operator serves is declared by createMetrics() (and so documented)', async () => {
    const served = await instantQuery(prom(), `group by (__name__) ({job="${OPERATOR_JOB}"})`);
    const names = served.map((s) => s.metric.__name__ as string).filter((n) => !SCRAPE_SERIES.has(n));
    expect(names.length).toBeGreaterThan(20);
    const declared = await exportedMetricNames();
    expect(names.filter((n) => !declared.has(n))).toEqual([]);
  });
});
