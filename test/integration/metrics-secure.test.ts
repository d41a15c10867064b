/**
 * Secure metrics on the real API server (API.md, "Metrics"): the operator
 * process, running with exactly the chart's RBAC and its own service-account
 * token, serves /metrics over HTTPS only to callers the API server authenticates
 * (TokenReview) and authorizes for get on /metrics (SubjectAccessReview).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../src/local/controlplane/index.ts';
import { installCrds, kubeRequest, waitFor } from '../support/admission-cases.ts';
import {
  adminKubeConfig,
  createTestNamespace,
  kubeConfigForToken,
  mintServiceAccountToken,
} from '../support/index.ts';
import { attackMetrics } from '../support/metrics-attack.ts';
import { NODE, REPO } from '../support/paths.ts';
import { renderChart } from '../unit/chart-helpers.ts';

const BIN = join(REPO, 'bin', 'harouter-operator.js');
const RELEASE = 'msec';
const FULLNAME = `${RELEASE}-harouter-operator`;

let namespace: string;
let dir: string;
let child: ChildProcess | undefined;
const created: KubernetesObject[] = [];
const ports = { metrics: 0, probes: 0 };

/** The sum of a Prometheus text exposition's samples of `name` whose labels include every one of `labels`. */
function sampleSum(text: string, name: string, labels: string[]): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) || !labels.every((l) => line.includes(l))) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

/** TokenReviews the API server has answered, from its own metrics (the admin may read them). */
async function apiServerTokenReviews(): Promise<number> {
  const res = await kubeRequest(adminKubeConfig(), 'GET', '/metrics');
  return sampleSum(String(res.body.message), 'apiserver_request_total', ['resource="tokenreviews"']);
}

/** GET /metrics over HTTPS (the certificate is self-signed), with an optional bearer token. */
function scrape(token?: string): Promise<{ status: number; body: string }> {
  return new Promise((resolveScrape, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: ports.metrics,
        path: '/metrics',
        rejectUnauthorized: false,
        headers: token ? { authorization: `Bearer ${token}` } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolveScrape({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  const admin = adminKubeConfig();
  await installCrds(admin);
  namespace = await createTestNamespace('metrics-secure');
  dir = await mkdtemp(join(tmpdir(), 'harouter-metrics-secure-'));
  // The chart's ServiceAccount and RBAC, for real: the operator asks the API server with these rights.
  const objects = await renderChart({
    release: RELEASE,
    namespace,
    set: [
      `operator.watchNamespace=${namespace}`,
      `metrics.readers={${namespace}/scraper}`,
      // The reporter account's own namespace (default harouter-reporters) in the test's namespace.
      `reporter.serviceAccount.namespace=${namespace}`,
    ],
  });
  const client = admin.makeApiClient(KubernetesObjectApi);
  const rbacKinds = new Set(['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding']);
  for (const object of objects.filter((o) => rbacKinds.has(o.kind))) {
    created.push(await client.create(object as KubernetesObject));
  }
  const token = await mintServiceAccountToken({ namespace, serviceAccount: FULLNAME });
  const kubeconfig = join(dir, 'operator.kubeconfig');
  await writeFile(kubeconfig, kubeConfigForToken(token, namespace).exportConfig(), { mode: 0o600 });
  ports.metrics = await freePort();
  ports.probes = await freePort();
  child = spawn(
    NODE,
    [
      BIN,
      `--kubeconfig=${kubeconfig}`,
      `--namespace=${namespace}`,
      `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
      `--health-probe-bind-address=127.0.0.1:${ports.probes}`,
      '--webhook=false',
      `--leader-election-namespace=${namespace}`,
      '--identity=metrics-secure-0',
    ],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { PATH: process.env.PATH ?? '' } },
  );
  await waitFor(
    'the operator to be ready',
    async () => {
      const res = await fetch(`http://127.0.0.1:${ports.probes}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    60_000,
  );
}, 120_000);

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  const client = adminKubeConfig().makeApiClient(KubernetesObjectApi);
  for (const object of created.filter((o) => !o.metadata?.namespace)) {
    await client.delete(object).catch(() => undefined);
  }
  await rm(dir, { recursive: true, force: true });
});

describe('secure metrics', () => {
  it('refuses a caller without a token (401) or with a token the API server does not know (401)', async () => {
    expect((await scrape()).status).toBe(401);
    expect((await scrape('not-a-token')).status).toBe(401);
  });

  it('refuses an authenticated caller that may not get /metrics (403)', async () => {
    const stranger = await mintServiceAccountToken({ namespace, serviceAccount: 'stranger' });
    expect((await scrape(stranger)).status).toBe(403);
  });

  it('serves an authorized service account (bound through metrics.readers) over HTTPS', async () => {
    const scraper = await mintServiceAccountToken({ namespace, serviceAccount: 'scraper' });
    const res = await scrape(scraper);
    expect(res.status).toBe(200);
    expect(res.body).toContain('harouter_admission_decisions_total');
    // Plain HTTP is not served on the secure port.
    const plain = await fetch(`http://127.0.0.1:${ports.metrics}/metrics`).catch(() => undefined);
    expect(plain?.status).not.toBe(200);
  });

  it('with operator.watchNamespace the operator has its rights there only (SubjectAccessReview)', async () => {
    const user = `system:serviceaccount:${namespace}:${FULLNAME}`;
    const can = async (verb: string, group: string, resource: string, ns?: string) => {
      const res = await kubeRequest(
        adminKubeConfig(),
        'POST',
        '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        {
          apiVersion: 'authorization.k8s.io/v1',
          kind: 'SubjectAccessReview',
          spec: {
            user,
            groups: ['system:serviceaccounts', 'system:authenticated'],
            resourceAttributes: { verb, group, resource, ...(ns ? { namespace: ns } : {}) },
          },
        },
      );
      return (res.body.status as { allowed?: boolean } | undefined)?.allowed === true;
    };
    expect(await can('watch', 'harouter.dev', 'harouters', namespace)).toBe(true);
    expect(await can('delete', 'discovery.k8s.io', 'endpointslices', namespace)).toBe(true);
    expect(await can('watch', 'harouter.dev', 'harouters', 'elsewhere')).toBe(false);
    expect(await can('delete', 'discovery.k8s.io', 'endpointslices', 'elsewhere')).toBe(false);
    expect(await can('watch', 'harouter.dev', 'harouters')).toBe(false);
    expect(await can('watch', '', 'nodes')).toBe(true);
    expect(await can('create', 'authentication.k8s.io', 'tokenreviews')).toBe(true);
    expect(await can('create', 'authorization.k8s.io', 'subjectaccessreviews')).toBe(true);
  });
});

describe('secure metrics under a flood of random tokens (issue 23, item 4)', () => {
  it("serves real scrapers, refuses the others, and the reconciler's client sends none of the reviews", async () => {
    const scraper = await mintServiceAccountToken({ namespace, serviceAccount: 'scraper' });
    const first = await scrape(scraper);
    expect(first.status).toBe(200);
    const posts = (body: string) => sampleSum(body, 'rest_client_requests_total', ['method="POST"']);
    const postsBefore = posts(first.body);
    const reviewsBefore = await apiServerTokenReviews();

    // 50 clients, each from its own loopback address, each sending a new random token per request.
    const attack = attackMetrics({ port: ports.metrics, clients: 50 });
    const known: Array<{ status: number; body: string }> = [];
    const fresh: number[] = [];
    const stranger: number[] = [];
    try {
      await new Promise((r) => setTimeout(r, 1000));
      // A token the operator has never seen, with the right (a rotated token) and without it.
      const rotated = await mintServiceAccountToken({ namespace, serviceAccount: 'scraper' });
      const other = await mintServiceAccountToken({ namespace, serviceAccount: 'stranger' });
      const until = performance.now() + 8000;
      while (performance.now() < until) {
        known.push(await scrape(scraper));
        if (fresh.at(-1) !== 200) fresh.push((await scrape(rotated)).status);
        if (stranger.at(-1) !== 403) stranger.push((await scrape(other)).status);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      const answers = await attack.stop();
      // The attack ran: thousands of answers, and no stranger got the metrics.
      const total = Object.values(answers).reduce((a, b) => a + b, 0);
      console.log(
        JSON.stringify({ attackAnswers: answers, total, known: known.map((k) => k.status), fresh, stranger }),
      );
      expect(total).toBeGreaterThan(500);
      expect(answers[200]).toBeUndefined();
    }
    // The scraper the operator knew was never refused by the check: served, or at worst refused by the
    // server's bound on concurrent requests (src/http/limits.ts, "too many requests"), most times served.
    expect(known.length).toBeGreaterThan(5);
    for (const { status, body } of known) {
      if (status !== 200) expect({ status, body }).toEqual({ status: 429, body: 'too many requests\n' });
    }
    expect(known.filter((k) => k.status === 200).length).toBeGreaterThan(known.length / 2);
    // New tokens compete with the flood for the reviews of strangers: answered 200/403, or refused
    // for now (503, 429); never served by mistake. (They may wait as long as the flood lasts.)
    expect(fresh.every((s) => s === 200 || s === 503 || s === 429)).toBe(true);
    expect(stranger.every((s) => s === 403 || s === 503 || s === 429)).toBe(true);

    // The API server answered the attack's reviews, and none went through the reconciler's client.
    const reviewed = (await apiServerTokenReviews()) - reviewsBefore;
    expect(reviewed).toBeGreaterThan(10);
    const last = await scrape(scraper);
    expect(last.status).toBe(200);
    expect(posts(last.body)).toBe(postsBefore);
  }, 60_000);
});
