/**
 * The chart against the real API server of the run's control plane:
 * - every object of every scenario is accepted by a server-side dry run (`dryRun=All`, strict
 *   field validation), with stand-in CRDs for other operators' kinds (see chart-standins.ts);
 * - `helm install` in webhook mode: the webhook configuration points at the Service with the CA
 *   of the Secret the operator mounts, RBAC grants exactly what it should (SubjectAccessReviews),
 *   and with no operator Pod running (no kubelet here) HARouterState writes fail closed;
 * - `helm upgrade` keeps the certificate, and a deleted Secret is regenerated consistently;
 * - `helm install` in policy mode: the ValidatingAdmissionPolicy and its binding are installed
 *   and really admit the reporter on its own node and deny the others; the reporter's token may
 *   write only in `reporter.namespaces` (RBAC refuses it elsewhere);
 * - the reporter account lives in a namespace of its own that the chart creates, where the agent
 *   Pod is admitted (its host paths are refused under `baseline`);
 * - `helm uninstall` keeps the CRDs.
 * The webhook configuration and the policy binding are limited to this file's namespaces with
 * namespace selectors, so that they never refuse other test files' writes (the control plane is
 * shared by the whole run).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  AdmissionregistrationV1Api,
  ApiextensionsV1Api,
  AppsV1Api,
  AuthorizationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import {
  adminKubeConfig,
  controlPlaneInfo,
  createTestNamespace,
  kubeConfigForToken,
  mintServiceAccountToken,
} from '../support/index.ts';
import {
  chartDir,
  findObject,
  helm,
  type KubeObject,
  renderChart,
  SCENARIOS,
} from '../unit/chart-helpers.ts';
import { STAND_IN_CRDS } from './chart-standins.ts';
import { waitFor } from './reconcile-harness.ts';

const CRD_NAMES = ['harouters.harouter.dev', 'harouterstates.harouter.dev'];
const ROUTER = '6f1c2a4e-8b3d-4c5e-9f00-1a2b3c4d5e6f';

let admin: KubeConfig;
let kubeconfigPath: string;

async function kubectl(
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const run = promisify(execFile);
  const child = run(controlPlaneInfo().binaries.kubectl, args, {
    env: { ...process.env, KUBECONFIG: kubeconfigPath },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (input !== undefined) {
    child.child.stdin?.end(input);
  }
  try {
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

/** Server-side apply, dry run (`dryRun=All`), strict field validation: what the API server thinks. */
async function serverDryRun(objects: KubeObject[]) {
  const manifest = objects.map((o) => `---\n${stringify(o)}`).join('');
  return kubectl(
    [
      'apply',
      '--server-side',
      '--dry-run=server',
      '--force-conflicts',
      '--field-manager=harouter-chart-test',
      '--validate=strict',
      '-f',
      '-',
    ],
    manifest,
  );
}

async function helmIn(args: string[]) {
  return helm(args, { kubeconfig: kubeconfigPath });
}

/** Applies the chart's CRDs as the other test files do, then marks them adoptable by a release. */
async function adoptCrds(release: string, namespace: string): Promise<void> {
  const crds = (await renderChart({ namespace })).filter((o) => o.kind === 'CustomResourceDefinition');
  const applied = await kubectl(
    ['apply', '--server-side', '--force-conflicts', '--field-manager=harouter-tests', '-f', '-'],
    crds
      .map(
        (o) =>
          `---\n${stringify({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name }, spec: o.spec })}`,
      )
      .join(''),
  );
  expect(applied.code, applied.stderr).toBe(0);
  for (const name of CRD_NAMES) {
    const label = await kubectl(['label', 'crd', name, 'app.kubernetes.io/managed-by=Helm', '--overwrite']);
    expect(label.code, label.stderr).toBe(0);
    const annotate = await kubectl([
      'annotate',
      'crd',
      name,
      `meta.helm.sh/release-name=${release}`,
      `meta.helm.sh/release-namespace=${namespace}`,
      '--overwrite',
    ]);
    expect(annotate.code, annotate.stderr).toBe(0);
  }
}

function reportBody(namespace: string, agent: string) {
  return {
    apiVersion: 'harouter.dev/v1alpha1',
    kind: 'HARouterState',
    metadata: { name: `${ROUTER}.${agent}`, namespace },
    spec: { routerId: ROUTER, agent, state: 'Primary', observedAt: new Date().toISOString() },
  };
}

async function createReport(kc: KubeConfig, namespace: string, agent: string): Promise<unknown> {
  return kc.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: 'harouter.dev',
    version: 'v1alpha1',
    namespace,
    plural: 'harouterstates',
    body: reportBody(namespace, agent),
  });
}

/** The error text of a refused request (the API server's Status message), or undefined when it succeeded. */
async function refusal(request: Promise<unknown>): Promise<string | undefined> {
  try {
    await request;
    return undefined;
  } catch (error) {
    const body = (error as { body?: unknown }).body;
    if (typeof body !== 'string') return JSON.stringify(body ?? String(error));
    try {
      return (JSON.parse(body) as { message?: string }).message ?? body;
    } catch {
      return body;
    }
  }
}

async function can(
  user: string,
  attributes: { verb: string; group: string; resource: string; subresource?: string; namespace?: string },
): Promise<boolean> {
  const review = await admin.makeApiClient(AuthorizationV1Api).createSubjectAccessReview({
    body: {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user,
        groups: ['system:serviceaccounts', 'system:authenticated'],
        resourceAttributes: attributes,
      },
    },
  });
  return review.status?.allowed === true;
}

beforeAll(async () => {
  admin = adminKubeConfig();
  kubeconfigPath = controlPlaneInfo().kubeconfigPath;
  const ext = admin.makeApiClient(ApiextensionsV1Api);
  for (const crd of STAND_IN_CRDS) {
    try {
      await ext.createCustomResourceDefinition({ body: crd });
    } catch (error) {
      if ((error as { code?: number }).code !== 409) throw error;
    }
  }
  for (const crd of STAND_IN_CRDS) {
    await waitFor(async () => {
      const current = await ext.readCustomResourceDefinition({ name: crd.metadata.name });
      return (
        current.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') === true
      );
    });
  }
});

describe('every rendered object is accepted by the API server (server-side dry run)', () => {
  let namespace: string;
  beforeAll(async () => {
    namespace = await createTestNamespace('chart-dry');
    // The networkpolicy scenario watches one namespace (operator.watchNamespace: routers), where the
    // chart puts the operator's and the reporter's RoleBindings: like a user's, that namespace
    // exists before the install. The reporter namespace the chart creates does not exist in a dry
    // run, so the objects in it would be refused: it is made here.
    for (const name of ['routers', 'harouter-reporters']) {
      try {
        await admin.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name } } });
      } catch (error) {
        if ((error as { code?: number }).code !== 409) throw error;
      }
    }
  });

  it.each(SCENARIOS)('%s values', async (scenario) => {
    const objects = await renderChart({ release: `dry-${scenario}`, namespace, scenario });
    const result = await serverDryRun(objects);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines).toHaveLength(objects.length);
    for (const line of lines) expect(line).toMatch(/serverside-applied \(server dry run\)$/);
  });

  it('the dry run does refuse what the API server would refuse (strict fields, bad values)', async () => {
    const objects = await renderChart({ release: 'dry-bad', namespace });
    const deployment = structuredClone(objects.find((o) => o.kind === 'Deployment') as KubeObject);
    deployment.spec.template.spec.containers[0].securityContext.runAsUsr = 65532;
    const strict = await serverDryRun([deployment]);
    expect(strict.code).not.toBe(0);
    expect(strict.stderr).toMatch(/runAsUsr/);
    const webhook = structuredClone(
      objects.find((o) => o.kind === 'ValidatingWebhookConfiguration') as KubeObject,
    );
    webhook.webhooks[0].timeoutSeconds = 31;
    const invalid = await serverDryRun([webhook]);
    expect(invalid.code).not.toBe(0);
    expect(invalid.stderr).toMatch(/timeoutSeconds/);
    const monitor = (await renderChart({ release: 'dry-bad', namespace, scenario: 'monitoring' })).find(
      (o) => o.kind === 'ServiceMonitor',
    ) as KubeObject;
    monitor.spec.endpoints[0].honorLabel = true;
    const standIn = await serverDryRun([monitor]);
    expect(standIn.code).not.toBe(0);
    expect(standIn.stderr).toMatch(/honorLabel/);
  });
});

describe('the operator Pod meets the restricted Pod Security Standard', () => {
  it.each(['default', 'networkpolicy'] as const)(
    '%s values: a Pod from the template is admitted under enforce=restricted',
    async (scenario) => {
      const namespace = await createTestNamespace('chart-pss');
      const core = admin.makeApiClient(CoreV1Api);
      await core.patchNamespace(
        {
          name: namespace,
          body: { metadata: { labels: { 'pod-security.kubernetes.io/enforce': 'restricted' } } },
        },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
      const deployment = (await renderChart({ namespace, scenario })).find(
        (o) => o.kind === 'Deployment',
      ) as KubeObject;
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'operator-0', namespace, labels: deployment.spec.template.metadata.labels },
        spec: deployment.spec.template.spec,
      };
      expect(
        await refusal(core.createNamespacedPod({ namespace, body: pod, dryRun: 'All' })),
      ).toBeUndefined();
      // And the check bites: the same Pod with a capability added is refused.
      const privileged = structuredClone(pod);
      privileged.spec.containers[0].securityContext.capabilities = { add: ['NET_ADMIN'] };
      expect(await refusal(core.createNamespacedPod({ namespace, body: privileged, dryRun: 'All' }))).toMatch(
        /violates PodSecurity "restricted/,
      );
    },
  );
});

describe("the agent Pod needs its namespace's privileged level, kept out of the operator's", () => {
  it('a Pod from the agent template is admitted in the reporter namespace as the chart labels it, refused under baseline', async () => {
    const objects = await renderChart({ scenario: 'agent' });
    const labels = findObject(objects, 'Namespace', 'harouter-reporters').metadata.labels as Record<
      string,
      string
    >;
    const namespace = await createTestNamespace('chart-agent-pss');
    const core = admin.makeApiClient(CoreV1Api);
    const podSecurity = Object.fromEntries(
      Object.entries(labels).filter(([key]) => key.startsWith('pod-security.kubernetes.io/')),
    );
    expect(podSecurity['pod-security.kubernetes.io/enforce']).toBe('privileged');
    const label = (values: Record<string, string>) =>
      core.patchNamespace(
        { name: namespace, body: { metadata: { labels: values } } },
        setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
      );
    await label(podSecurity);
    const daemonSet = findObject(objects, 'DaemonSet');
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'agent-0', namespace, labels: daemonSet.spec.template.metadata.labels },
      spec: daemonSet.spec.template.spec,
    };
    expect(await refusal(core.createNamespacedPod({ namespace, body: pod, dryRun: 'All' }))).toBeUndefined();
    await label({ 'pod-security.kubernetes.io/enforce': 'baseline' });
    expect(await refusal(core.createNamespacedPod({ namespace, body: pod, dryRun: 'All' }))).toMatch(
      /violates PodSecurity "baseline.*hostPath/,
    );
  });
});

describe('helm install, upgrade and uninstall in webhook mode', () => {
  const release = 'hr';
  const fullname = 'hr-harouter-operator';
  let namespace: string;
  let reporterNamespace: string;
  let installOutput: string;
  let selectorArgs: string[];

  beforeAll(async () => {
    namespace = await createTestNamespace('chart-webhook');
    // The chart creates the reporter's namespace: a name of this run's own (the default is shared).
    reporterNamespace = `${namespace}-reporters`;
    selectorArgs = [
      '--set-string',
      `admission.webhook.namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=${namespace}`,
      '--set-string',
      `reporter.serviceAccount.namespace=${reporterNamespace}`,
    ];
    await adoptCrds(release, namespace);
    const result = await helmIn(['install', release, chartDir, '--namespace', namespace, ...selectorArgs]);
    expect(result.code, result.stderr).toBe(0);
    installOutput = result.stdout;
  }, 120_000);

  it('installs the release and prints the notes', async () => {
    const status = await helmIn(['status', release, '--namespace', namespace, '-o', 'json']);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).info.status).toBe('deployed');
    expect(installOutput).toContain('Admission mode: webhook');
    expect(installOutput).toContain(`${reporterNamespace}/harouter-reporter`);
  });

  it("creates the reporter account in a namespace of its own, the identity the operator's webhook is given", async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const created = await core.readNamespace({ name: reporterNamespace });
    expect(created.metadata?.labels?.['pod-security.kubernetes.io/enforce']).toBe('privileged');
    await core.readNamespacedServiceAccount({ name: 'harouter-reporter', namespace: reporterNamespace });
    expect(
      await refusal(core.readNamespacedServiceAccount({ name: 'harouter-reporter', namespace })),
    ).toMatch(/not found/);
    const deployment = await admin
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ name: fullname, namespace });
    expect(deployment.spec?.template.spec?.containers[0]?.args).toContain(
      `--reporter-service-accounts=${reporterNamespace}/harouter-reporter`,
    );
  });

  it('the webhook configuration points at the Service, with the CA that signed the mounted certificate', async () => {
    const config = await admin
      .makeApiClient(AdmissionregistrationV1Api)
      .readValidatingWebhookConfiguration({ name: fullname });
    const webhook = config.webhooks?.[0];
    expect(webhook?.failurePolicy).toBe('Fail');
    expect(webhook?.clientConfig.service).toMatchObject({
      name: `${fullname}-webhook`,
      namespace,
      path: '/validate',
      port: 443,
    });
    const core = admin.makeApiClient(CoreV1Api);
    const service = await core.readNamespacedService({ name: `${fullname}-webhook`, namespace });
    expect(service.spec?.ports?.[0]).toMatchObject({ port: 443, targetPort: 'webhook' });
    const deployment = await admin
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ name: fullname, namespace });
    const pod = deployment.spec?.template;
    expect(pod?.metadata?.labels).toMatchObject(service.spec?.selector ?? { missing: 'selector' });
    const secretName = pod?.spec?.volumes?.find((v) => v.name === 'serving-certs')?.secret?.secretName;
    expect(secretName).toBe(`${fullname}-webhook-tls`);
    const secret = await core.readNamespacedSecret({ name: secretName as string, namespace });
    const caBundle = webhook?.clientConfig.caBundle;
    expect(caBundle).toBeTruthy();
    expect(caBundle).toBe(secret.data?.['ca.crt']);
    const ca = new X509Certificate(Buffer.from(caBundle as string, 'base64'));
    const leaf = new X509Certificate(Buffer.from(secret.data?.['tls.crt'] as string, 'base64'));
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.subjectAltName).toContain(`DNS:${fullname}-webhook.${namespace}.svc`);
  });

  it('RBAC: the operator may do what it needs and nothing more', async () => {
    const operator = `system:serviceaccount:${namespace}:${fullname}`;
    const h = 'harouter.dev';
    for (const [verb, group, resource, subresource] of [
      ['watch', h, 'harouters', undefined],
      ['list', h, 'harouterstates', undefined],
      ['patch', h, 'harouters', 'status'],
      ['update', h, 'harouterstates', 'status'],
      ['watch', '', 'nodes', undefined],
      ['get', '', 'services', undefined],
      ['delete', 'discovery.k8s.io', 'endpointslices', undefined],
      ['create', '', 'events', undefined],
      ['patch', 'events.k8s.io', 'events', undefined],
    ] as const) {
      expect(
        await can(operator, { verb, group, resource, subresource, namespace: 'anywhere' }),
        `${verb} ${resource}`,
      ).toBe(true);
    }
    for (const [verb, group, resource, subresource] of [
      ['create', h, 'harouters', undefined],
      ['update', h, 'harouterstates', undefined],
      ['delete', h, 'harouterstates', undefined],
      ['update', '', 'services', undefined],
      ['get', '', 'secrets', undefined],
      ['patch', '', 'nodes', undefined],
      ['create', '', 'pods', undefined],
    ] as const) {
      expect(
        await can(operator, { verb, group, resource, subresource, namespace: 'anywhere' }),
        `${verb} ${resource}`,
      ).toBe(false);
    }
    const lease = { group: 'coordination.k8s.io', resource: 'leases' };
    // Leader election (get, create, update) and VRID claims (list, watch, create, delete), in its own namespace only.
    for (const verb of ['get', 'create', 'update', 'list', 'watch', 'delete']) {
      expect(await can(operator, { verb, ...lease, namespace }), `${verb} lease`).toBe(true);
      expect(
        await can(operator, { verb, ...lease, namespace: 'kube-system' }),
        `${verb} lease elsewhere`,
      ).toBe(false);
    }
  });

  it('RBAC: the reporter may write HARouterStates and read HARouters in the release namespace only, never a status or anything else', async () => {
    const reporter = `system:serviceaccount:${reporterNamespace}:harouter-reporter`;
    const states = { group: 'harouter.dev', resource: 'harouterstates', namespace };
    for (const verb of ['get', 'create', 'patch', 'update', 'delete']) {
      expect(await can(reporter, { verb, ...states }), verb).toBe(true);
      expect(await can(reporter, { verb, ...states, namespace: 'routers' }), `${verb} elsewhere`).toBe(false);
    }
    expect(await can(reporter, { verb: 'list', ...states })).toBe(false);
    expect(await can(reporter, { verb: 'patch', ...states, subresource: 'status' })).toBe(false);
    expect(await can(reporter, { verb: 'update', ...states, resource: 'harouters' })).toBe(false);
    // The node agent renders keepalived's configuration from HARouters: reads only.
    for (const verb of ['get', 'list', 'watch']) {
      expect(await can(reporter, { verb, ...states, resource: 'harouters' }), verb).toBe(true);
    }
    expect(
      await can(reporter, { verb: 'patch', ...states, resource: 'harouters', subresource: 'status' }),
    ).toBe(false);
  });

  it('with no operator replica serving, writes in the selected namespace fail closed; others are not intercepted', async () => {
    const denied = await refusal(createReport(admin, namespace, 'node-a'));
    expect(denied).toMatch(/failed calling webhook "harouterstates\.harouter\.dev"/);
    const other = await createTestNamespace('chart-other');
    expect(await refusal(createReport(admin, other, 'node-a'))).toBeUndefined();
  });

  it('the metrics certificate: its own CA, for the metrics Service, in the Secret mounted at --metrics-cert-dir', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const secret = await core.readNamespacedSecret({ name: `${fullname}-metrics-tls`, namespace });
    const ca = new X509Certificate(Buffer.from(secret.data?.['ca.crt'] as string, 'base64'));
    const leaf = new X509Certificate(Buffer.from(secret.data?.['tls.crt'] as string, 'base64'));
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(leaf.checkHost(`${fullname}-metrics.${namespace}.svc`)).toBe(
      `${fullname}-metrics.${namespace}.svc`,
    );
    const pod = (await admin.makeApiClient(AppsV1Api).readNamespacedDeployment({ name: fullname, namespace }))
      .spec?.template.spec;
    expect(pod?.volumes?.find((v) => v.name === 'metrics-certs')?.secret?.secretName).toBe(
      secret.metadata?.name,
    );
    const mount = pod?.containers[0]?.volumeMounts?.find((m) => m.name === 'metrics-certs');
    expect(pod?.containers[0]?.args).toContain(`--metrics-cert-dir=${mount?.mountPath}`);
  });

  it('helm upgrade keeps the certificates and the CA bundle', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const metricsBefore = await core.readNamespacedSecret({ name: `${fullname}-metrics-tls`, namespace });
    const before = await core.readNamespacedSecret({ name: `${fullname}-webhook-tls`, namespace });
    const result = await helmIn([
      'upgrade',
      release,
      chartDir,
      '--namespace',
      namespace,
      '--reuse-values',
      '--set',
      'operator.logLevel=debug',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const after = await core.readNamespacedSecret({ name: `${fullname}-webhook-tls`, namespace });
    expect(after.data).toEqual(before.data);
    const metricsAfter = await core.readNamespacedSecret({ name: `${fullname}-metrics-tls`, namespace });
    expect(metricsAfter.data).toEqual(metricsBefore.data);
    const config = await admin
      .makeApiClient(AdmissionregistrationV1Api)
      .readValidatingWebhookConfiguration({ name: fullname });
    expect(config.webhooks?.[0]?.clientConfig.caBundle).toBe(before.data?.['ca.crt']);
    const deployment = await admin
      .makeApiClient(AppsV1Api)
      .readNamespacedDeployment({ name: fullname, namespace });
    expect(deployment.spec?.template.spec?.containers[0]?.args).toContain('--log-level=debug');
    // The namespace selector survived --reuse-values: the webhook still fails closed only here.
    expect(config.webhooks?.[0]?.namespaceSelector?.matchLabels).toEqual({
      'kubernetes.io/metadata.name': namespace,
    });
  });

  it('deleting the Secret and upgrading rotates the certificate, Secret and CA bundle together', async () => {
    const core = admin.makeApiClient(CoreV1Api);
    const before = await core.readNamespacedSecret({ name: `${fullname}-webhook-tls`, namespace });
    await core.deleteNamespacedSecret({ name: `${fullname}-webhook-tls`, namespace });
    const result = await helmIn(['upgrade', release, chartDir, '--namespace', namespace, '--reuse-values']);
    expect(result.code, result.stderr).toBe(0);
    const after = await core.readNamespacedSecret({ name: `${fullname}-webhook-tls`, namespace });
    expect(after.data?.['tls.crt']).not.toBe(before.data?.['tls.crt']);
    const config = await admin
      .makeApiClient(AdmissionregistrationV1Api)
      .readValidatingWebhookConfiguration({ name: fullname });
    expect(config.webhooks?.[0]?.clientConfig.caBundle).toBe(after.data?.['ca.crt']);
  });

  it('helm uninstall removes the release but keeps the CRDs', async () => {
    const result = await helmIn(['uninstall', release, '--namespace', namespace]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout + result.stderr).toMatch(/kept due to the resource policy/);
    const ext = admin.makeApiClient(ApiextensionsV1Api);
    for (const name of CRD_NAMES) {
      const crd = await ext.readCustomResourceDefinition({ name });
      expect(crd.metadata?.deletionTimestamp).toBeUndefined();
    }
    const gone = await refusal(
      admin.makeApiClient(AdmissionregistrationV1Api).readValidatingWebhookConfiguration({ name: fullname }),
    );
    expect(gone).toMatch(/NotFound|not found/);
  });
});

describe('helm install in policy mode', () => {
  const release = 'hp';
  const fullname = 'hp-harouter-operator';
  const policyName = `${fullname}-admission.harouter.dev`;
  const maxReports = 3;
  let namespace: string;
  let quotaNamespace: string;
  let reporterNamespace: string;

  beforeAll(async () => {
    namespace = await createTestNamespace('chart-policy');
    quotaNamespace = await createTestNamespace('chart-quota');
    reporterNamespace = `${namespace}-reporters`;
    const valuesDir = await mkdtemp(join(tmpdir(), 'harouter-chart-'));
    const values = join(valuesDir, 'values.yaml');
    await writeFile(
      values,
      stringify({
        admission: {
          mode: 'policy',
          policy: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } },
        },
        reporter: {
          serviceAccount: { namespace: reporterNamespace },
          namespaces: [namespace, quotaNamespace],
          quota: { maxReports },
        },
        // The CRDs belong to another release (or to other tests) in this shared control plane.
        crds: { install: false },
      }),
    );
    const result = await helmIn(['install', release, chartDir, '--namespace', namespace, '-f', values]);
    expect(result.code, result.stderr).toBe(0);
    // Both reporter namespaces get the quota; until it is counted every create there is refused.
    await Promise.all([waitForQuota(namespace), waitForQuota(quotaNamespace)]);
  }, 240_000);

  /**
   * ResourceQuota admission refuses every create ("status unknown for quota") until the quota
   * controller has counted the resource: it watches a custom resource only once its discovery
   * (every 30 s) has seen the CRD, and counts for an existing quota at its next sync (10 s here).
   */
  async function waitForQuota(where: string): Promise<void> {
    const resource = 'count/harouterstates.harouter.dev';
    await waitFor(
      async () => {
        const quota = await admin
          .makeApiClient(CoreV1Api)
          .readNamespacedResourceQuota({ name: `${fullname}-reports`, namespace: where });
        return (
          quota.status?.hard?.[resource] === String(maxReports) && quota.status?.used?.[resource] === '0'
        );
      },
      150_000,
      250,
    );
  }

  it('installs the ValidatingAdmissionPolicy and its binding, with parameters in the release namespace', async () => {
    const api = admin.makeApiClient(AdmissionregistrationV1Api);
    const policy = await api.readValidatingAdmissionPolicy({ name: policyName });
    const binding = await api.readValidatingAdmissionPolicyBinding({ name: policyName });
    expect(binding.spec?.policyName).toBe(policy.metadata?.name);
    expect(binding.spec?.paramRef).toMatchObject({ name: `${fullname}-admission`, namespace });
    const params = await admin
      .makeApiClient(CoreV1Api)
      .readNamespacedConfigMap({ name: `${fullname}-admission`, namespace });
    expect(params.data?.reporterServiceAccounts).toBe(`${reporterNamespace}/harouter-reporter`);
    expect(params.data?.operatorServiceAccount).toBe(`${namespace}/${fullname}`);
    const webhooks = await api.listValidatingWebhookConfiguration();
    expect(webhooks.items.map((w) => w.metadata?.name)).not.toContain(fullname);
  });

  it("the policy admits the chart's reporter on its own node and denies the rest", async () => {
    // The policy is enforced a moment after it is created: wait until the admin is refused.
    // Each attempt uses another agent name: an attempt admitted before that must not collide.
    let adminDenied: string | undefined;
    let attempt = 0;
    await waitFor(
      async () => {
        adminDenied = await refusal(createReport(admin, namespace, `node-z${attempt++}`));
        return adminDenied?.includes('ValidatingAdmissionPolicy') === true;
      },
      20_000,
      250,
    );
    expect(adminDenied).toMatch(/Identity/);

    const token = await mintServiceAccountToken({
      namespace: reporterNamespace,
      serviceAccount: 'harouter-reporter',
      pod: { name: 'reporter-node-a', nodeName: 'node-a' },
    });
    const reporter = kubeConfigForToken(token, namespace);
    expect(await refusal(createReport(reporter, namespace, 'node-a'))).toBeUndefined();
    const otherNode = await refusal(createReport(reporter, namespace, 'node-b'));
    expect(otherNode).toMatch(/ValidatingAdmissionPolicy/);
    expect(otherNode).toMatch(/node/i);
  });

  it('reporter.quota bounds how many HARouterStates a node token can create in a listed namespace', async () => {
    const token = await mintServiceAccountToken({
      namespace: reporterNamespace,
      serviceAccount: 'harouter-reporter',
      pod: { name: 'reporter-quota-node-a', nodeName: 'node-a' },
    });
    const reporter = kubeConfigForToken(token, quotaNamespace);
    const outcomes: (string | undefined)[] = [];
    for (let i = 0; i <= maxReports; i++) {
      outcomes.push(await refusal(createReport(reporter, quotaNamespace, `node-q${i}`)));
    }
    expect(outcomes.slice(0, maxReports)).toEqual(Array(maxReports).fill(undefined));
    expect(outcomes[maxReports]).toMatch(/exceeded quota/);
  }, 120_000);

  it("a reporter's token writes reports only in reporter.namespaces: RBAC refuses it in any other", async () => {
    const token = await mintServiceAccountToken({
      namespace: reporterNamespace,
      serviceAccount: 'harouter-reporter',
      pod: { name: 'reporter-rbac-node-r', nodeName: 'node-r' },
    });
    // Neither the policy (its binding selects `namespace` only) nor a quota guards this namespace:
    // only the reporter's RBAC stands between a node's token and the reports written here.
    const unlisted = await createTestNamespace('chart-unlisted');
    const reporter = kubeConfigForToken(token, unlisted);
    expect(await refusal(createReport(reporter, unlisted, 'node-r'))).toMatch(
      new RegExp(
        `harouterstates.harouter.dev is forbidden: User "system:serviceaccount:${reporterNamespace}:harouter-reporter" cannot create resource "harouterstates"`,
      ),
    );
    // The same token in a listed namespace: RBAC, the policy and the quota all admit it.
    expect(await refusal(createReport(reporter, namespace, 'node-r'))).toBeUndefined();
  });

  it('helm uninstall removes the policy and its binding', async () => {
    const result = await helmIn(['uninstall', release, '--namespace', namespace]);
    expect(result.code, result.stderr).toBe(0);
    const api = admin.makeApiClient(AdmissionregistrationV1Api);
    expect(await refusal(api.readValidatingAdmissionPolicy({ name: policyName }))).toMatch(
      /NotFound|not found/,
    );
    expect(await refusal(api.readValidatingAdmissionPolicyBinding({ name: policyName }))).toMatch(
      /NotFound|not found/,
    );
  });
});
