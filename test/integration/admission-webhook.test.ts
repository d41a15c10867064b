/**
 * The shared admission table against the real API server with the operator's
 * webhook, served in-process over TLS (certificate signed by the run's CA) and
 * registered with `clientConfig.url`, from the same `webhookConfiguration()` the
 * local mode uses. Real TokenRequest tokens, pod-bound to nodes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64File } from '../../src/local/controlplane/index.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import { webhookConfiguration } from '../../src/webhook/manifests.ts';
import { startWebhookServer, type WebhookServer } from '../../src/webhook/server.ts';
import {
  ADMISSION_CASES,
  applyObject,
  type ClusterFixture,
  collectionPath,
  intruderCreate,
  kubeRequest,
  NODE_A,
  onlyNamespaces,
  report,
  runClusterCase,
  setUpAdmissionCluster,
  waitFor,
  waitUntilIntercepting,
} from '../support/admission-cases.ts';
import { controlPlaneInfo, createTestNamespace, issueServingCert } from '../support/index.ts';

let fx: ClusterFixture;
let server: WebhookServer | undefined;
let dir = '';
let configName = '';
let cleanupNamespace = '';
const metrics = createMetrics({ processMetrics: false });

beforeAll(async () => {
  fx = await setUpAdmissionCluster('adm-webhook');
  cleanupNamespace = await createTestNamespace('adm-webhook-cleanup');
  dir = await mkdtemp(join(tmpdir(), 'admission-webhook-'));
  const info = controlPlaneInfo();
  await issueServingCert({ ca: { certPath: info.caCertPath, keyPath: info.caKeyPath }, dir, name: 'tls' });
  server = await startWebhookServer({
    bindAddress: '127.0.0.1:0',
    certDir: dir,
    config: fx.config,
    logger: createLogger('silent'),
    metrics,
  });
  configName = `harouter-test-${fx.namespace}`;
  await applyObject(
    fx.admin,
    `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${configName}`,
    webhookConfiguration({
      name: configName,
      url: `https://127.0.0.1:${server.port}/validate`,
      caBundle: await base64File(info.caCertPath),
      namespaceSelector: onlyNamespaces(fx.namespace, cleanupNamespace),
    }),
  );
  await waitUntilIntercepting(fx);
});

afterAll(async () => {
  if (configName) {
    await kubeRequest(
      fx.admin,
      'DELETE',
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${configName}`,
    );
  }
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('admission table, webhook mode', () => {
  it.each(ADMISSION_CASES)('$name', async (c) => {
    const outcome = await runClusterCase(fx, c);
    expect(outcome.allowed, `${outcome.status} ${outcome.message}`).toBe(c.expect.allowed);
    if (!c.expect.allowed) expect(outcome.message).toMatch(c.expect.message ?? /./);
  });

  it('a denial names the webhook and the rule, and is counted by reason', async () => {
    const res = await intruderCreate(fx);
    expect(res.status).toBe(403);
    expect(res.body.message).toMatch(
      /^admission webhook "harouterstates\.harouter\.dev" denied the request: Identity: /,
    );
    const text = await metrics.registry.metrics();
    expect(text).toMatch(
      /harouter_admission_decisions_total\{decision="denied",reason="NotAReporter"\} [1-9]/,
    );
    expect(text).toMatch(/harouter_admission_decisions_total\{decision="allowed",reason="Reporter"\} [1-9]/);
  });
});

describe('fail closed, but never in the way of cleanup', () => {
  it('with the webhook down, reports are refused and namespace deletion still completes', async () => {
    // A report in a second namespace the webhook also guards, by a reporter allowed there.
    const res = await kubeRequest(
      fx.admin,
      'POST',
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${cleanupNamespace}/rolebindings`,
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'writer' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name: 'harouter-reporter', namespace: fx.namespace }],
      },
    );
    expect(res.status).toBe(201);
    const created = await kubeRequest(
      fx.clients.reporterA,
      'POST',
      collectionPath(cleanupNamespace),
      report(crypto.randomUUID(), NODE_A),
    );
    expect(created.status, created.body.message).toBe(201);

    await server?.close();
    server = undefined;
    const refused = await kubeRequest(
      fx.clients.reporterA,
      'POST',
      collectionPath(fx.namespace),
      report(crypto.randomUUID(), NODE_A),
    );
    expect(refused.status).toBeGreaterThanOrEqual(500);
    expect(refused.body.message).toMatch(/failed calling webhook/);

    const ns = `/api/v1/namespaces/${cleanupNamespace}`;
    expect((await kubeRequest(fx.admin, 'DELETE', ns)).status).toBeLessThan(300);
    await waitFor(
      'the namespace to finish deleting',
      async () => ((await kubeRequest(fx.admin, 'GET', ns)).status === 404 ? true : undefined),
      90_000,
    );
  }, 120_000);
});
