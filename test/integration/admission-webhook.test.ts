/**
 * The shared admission table against the real API server with the operator's
 * webhook, served in-process over TLS (certificate signed by the run's CA) and
 * registered with `clientConfig.url`, from the same `webhookConfiguration()` the
 * local mode uses. Real TokenRequest tokens, pod-bound to nodes.
 */
import { request as httpsRequest } from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMISSION_CASES,
  type ClusterFixture,
  collectionPath,
  createRouter,
  entries,
  installTestWebhook,
  intruderCreate,
  kubeRequest,
  managedFieldsBulk,
  managedFieldsEntry,
  NODE_A,
  NODE_B,
  report,
  runClusterCase,
  setUpAdmissionCluster,
  type TestWebhook,
  waitFor,
  waitUntilIntercepting,
} from '../support/admission-cases.ts';
import { createTestNamespace } from '../support/index.ts';

let fx: ClusterFixture;
let webhook: TestWebhook | undefined;
let cleanupNamespace = '';
let pinNamespace = '';

/** Lets the fixture's reporter write reports in `namespace` too (RBAC only: admission still decides). */
async function allowReporterIn(namespace: string): Promise<void> {
  const res = await kubeRequest(
    fx.admin,
    'POST',
    `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings`,
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'writer' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
      subjects: [{ kind: 'ServiceAccount', name: 'harouter-reporter', namespace: fx.namespace }],
    },
  );
  expect(res.status).toBe(201);
}

beforeAll(async () => {
  fx = await setUpAdmissionCluster('adm-webhook');
  cleanupNamespace = await createTestNamespace('adm-webhook-cleanup');
  pinNamespace = await createTestNamespace('adm-webhook-pin');
  webhook = await installTestWebhook(fx, [fx.namespace, cleanupNamespace, pinNamespace]);
  await waitUntilIntercepting(fx);
});

afterAll(async () => {
  await webhook?.uninstall();
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
    const text = await webhook?.metrics.registry.metrics();
    expect(text).toMatch(
      /harouter_admission_decisions_total\{decision="denied",reason="NotAReporter"\} [1-9]/,
    );
    expect(text).toMatch(/harouter_admission_decisions_total\{decision="allowed",reason="Reporter"\} [1-9]/);
  });
});

describe("a node cannot freeze another node's reports (issue 23, item 7)", () => {
  it("node B's token cannot label, annotate or inflate node A's report, and node A keeps reporting", async () => {
    const routerId = crypto.randomUUID();
    await createRouter(fx.admin, fx.namespace, routerId, [NODE_A, NODE_B]);
    const path = `${collectionPath(fx.namespace)}/${routerId}.${NODE_A}`;
    let second = 0;
    const applyAsA = () => {
      second++;
      const observedAt = new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
      return kubeRequest(
        fx.clients.reporterA,
        'PATCH',
        `${path}?fieldManager=harouterctl&force=true`,
        report(routerId, NODE_A, { observedAt }),
        'application/apply-patch+yaml',
      );
    };
    await waitFor('the router to reach the webhook cache', async () =>
      (await applyAsA()).status === 200 ? true : undefined,
    );
    const merge = (body: unknown) =>
      kubeRequest(fx.clients.reporterB, 'PATCH', path, body, 'application/merge-patch+json');
    const stored = await kubeRequest(fx.admin, 'GET', path);
    const attempts = {
      labels: await merge({ metadata: { labels: entries(8) } }),
      annotations: await merge({ metadata: { annotations: entries(8, 1024) } }),
      managedFieldsBulk: await merge({ metadata: { managedFields: managedFieldsBulk(400) } }),
      oneHugeEntry: await merge({ metadata: { managedFields: [managedFieldsEntry('bloat', 8000)] } }),
      applyManyManagers: await kubeRequest(
        fx.clients.reporterB,
        'PATCH',
        `${path}?fieldManager=${'b'.repeat(120)}&force=true`,
        {
          ...report(routerId, NODE_A, { observedAt: '2026-06-01T00:00:00Z' }),
          metadata: { name: `${routerId}.${NODE_A}`, labels: entries(1) },
        },
        'application/apply-patch+yaml',
      ),
      replace: await kubeRequest(fx.clients.reporterB, 'PUT', path, {
        ...(stored.body as object),
        metadata: {
          ...(stored.body.metadata as object),
          managedFields: [managedFieldsEntry('bloat', 8000)],
        },
      }),
    };
    for (const [what, res] of Object.entries(attempts)) {
      expect(res.status, `${what}: ${res.body.message}`).toBe(403);
      expect(res.body.message, what).toMatch(/NodeBinding: spec\.agent must be the node/);
    }
    const after = await kubeRequest(fx.admin, 'GET', `${path}?showManagedFields=true`);
    expect(Buffer.byteLength(JSON.stringify(after.body))).toBeLessThan(16 * 1024);
    expect(after.body.metadata).not.toHaveProperty('labels');
    // Node A's own inflation is refused too (the size rule), and its reports keep landing.
    const inflate = await kubeRequest(
      fx.clients.reporterA,
      'PATCH',
      path,
      { metadata: { managedFields: [managedFieldsEntry('bloat', 8000)] } },
      'application/merge-patch+json',
    );
    expect(inflate.status, inflate.body.message).toBe(422);
    expect(inflate.body.message).toMatch(/size rule/);
    for (let i = 0; i < 3; i++) expect((await applyAsA()).status).toBe(200);
  }, 120_000);
});

describe('only the API server reaches the webhook (issue 23, item 2)', () => {
  it('a forged review without the client certificate is refused at TLS and changes no metric', async () => {
    const port = webhook?.server.port as number;
    const before = await webhook?.metrics.registry.metrics();
    const forged = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: crypto.randomUUID(),
        resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
        name: 'n'.repeat(900 * 1024),
        namespace: fx.namespace,
        operation: 'CREATE',
        userInfo: {
          username: `system:serviceaccount:${fx.namespace}:harouter-reporter`,
          extra: { 'authentication.kubernetes.io/node-name': [NODE_A] },
        },
        object: report(crypto.randomUUID(), NODE_B),
      },
    });
    const outcome = await new Promise<string>((resolve) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/validate',
          method: 'POST',
          rejectUnauthorized: false,
          agent: false,
          headers: { 'Content-Type': 'application/json' },
        },
        (res) => resolve(`answered ${res.statusCode}`),
      );
      req.on('error', (err) => resolve(`refused: ${err.message}`));
      req.end(forged);
    });
    expect(outcome).toMatch(/^refused: .*(certificate|socket hang up|ECONNRESET)/i);
    expect(await webhook?.metrics.registry.metrics()).toBe(before);
    // The API server, with its client certificate, still reaches the webhook: its denial is the webhook's.
    const res = await intruderCreate(fx);
    expect(res.body.message).toMatch(/^admission webhook "harouterstates\.harouter\.dev" denied the request/);
  });
});

describe("a node's token cannot pin a namespace", () => {
  it('its finalizer is refused, so deleting the namespace with its report completes', async () => {
    await allowReporterIn(pinNamespace);
    const routerId = crypto.randomUUID();
    await createRouter(fx.admin, pinNamespace, routerId, [NODE_A]);
    const path = `${collectionPath(pinNamespace)}/${routerId}.${NODE_A}`;
    await waitFor('the router to reach the webhook cache', async () => {
      const res = await kubeRequest(fx.clients.reporterA, 'POST', collectionPath(pinNamespace), {
        ...report(routerId, NODE_A),
        metadata: { name: `${routerId}.${NODE_A}` },
      });
      return res.status === 201 ? true : undefined;
    });
    const pinned = await kubeRequest(
      fx.clients.reporterA,
      'PATCH',
      path,
      { metadata: { finalizers: ['example.com/keep'] } },
      'application/merge-patch+json',
    );
    expect(pinned.status, pinned.body.message).toBe(422);
    expect(pinned.body.message).toMatch(/metadata rule/);
    const owned = await kubeRequest(
      fx.clients.reporterA,
      'PATCH',
      path,
      {
        metadata: {
          ownerReferences: [{ apiVersion: 'v1', kind: 'Namespace', name: 'x', uid: crypto.randomUUID() }],
        },
      },
      'application/merge-patch+json',
    );
    expect(owned.status, owned.body.message).toBe(422);

    const ns = `/api/v1/namespaces/${pinNamespace}`;
    expect((await kubeRequest(fx.admin, 'DELETE', ns)).status).toBeLessThan(300);
    await waitFor(
      'the namespace to finish deleting',
      async () => ((await kubeRequest(fx.admin, 'GET', ns)).status === 404 ? true : undefined),
      90_000,
    );
  }, 120_000);
});

describe('fail closed, but never in the way of cleanup', () => {
  it('with the webhook down, reports are refused and namespace deletion still completes', async () => {
    // A report in a second namespace the webhook also guards, by a reporter allowed there.
    await allowReporterIn(cleanupNamespace);
    const routerId = crypto.randomUUID();
    await createRouter(fx.admin, cleanupNamespace, routerId, [NODE_A]);
    const created = await waitFor('the router to reach the webhook cache', async () => {
      const res = await kubeRequest(
        fx.clients.reporterA,
        'POST',
        collectionPath(cleanupNamespace),
        report(routerId, NODE_A),
      );
      return res.status === 201 ? res : undefined;
    });
    expect(created.status, created.body.message).toBe(201);

    await webhook?.stop();
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
