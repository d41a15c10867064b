/**
 * The Helm chart, rendered by the real helm binary (`helm lint`, `helm template`) and read back:
 * what each admission mode installs, least-privilege RBAC, the Deployment's hardening and flags,
 * the webhook's wiring and certificate, the monitoring objects. What the API server says about
 * the objects is in test/integration/chart.test.ts.
 */
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FLAGS, type OperatorConfig, parseConfig } from '../../src/config.ts';
import { EXCLUDE_CLEANUP_CONDITION } from '../../src/webhook/manifests.ts';
import {
  alertRuleGroups,
  chartDir,
  dashboard,
  findObject,
  helm,
  helmBinary,
  KUBE_VERSION,
  type KubeObject,
  kindsOf,
  parseManifests,
  renderChart,
  SCENARIOS,
  scenarioValues,
  tlsSecretCertificates,
} from './chart-helpers.ts';

const NS = 'harouter-system';
const FULLNAME = 'harouter-operator';
/** The reporter account's own namespace (`reporter.serviceAccount.namespace`'s default). */
const REPORTER_NS = 'harouter-reporters';

/** The operator's flags, as its configuration parser declares them. */
const OPERATOR_FLAGS = new Set(FLAGS.map((f) => f.name));

/** Parses the Deployment's arguments with the operator's own parser, with the Pod's environment. */
function operatorConfig(args: string[], namespace = NS): OperatorConfig {
  const result = parseConfig(args, { POD_NAME: 'operator-0', POD_NAMESPACE: namespace });
  if (result.help) throw new Error('the chart passes --help');
  return result.config;
}

const CLEANUP_USERS = [
  'system:serviceaccount:kube-system:namespace-controller',
  'system:serviceaccount:kube-system:generic-garbage-collector',
  'system:kube-controller-manager',
];

function decode(value: string): string {
  return Buffer.from(value, 'base64').toString('utf8');
}

/** `--name=value` arguments as a map (flags without `=` map to "true"). */
function flags(args: string[]): Map<string, string> {
  const result = new Map<string, string>();
  for (const arg of args) {
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new Error(`not a --flag: ${arg}`);
    if (result.has(match[1] as string)) throw new Error(`flag given twice: ${arg}`);
    result.set(match[1] as string, match[2] ?? 'true');
  }
  return result;
}

/** RBAC rules as sorted `group/resource:verb` triples. */
function permissions(role: KubeObject): string[] {
  const triples: string[] = [];
  for (const rule of role.rules as {
    apiGroups?: string[];
    resources?: string[];
    nonResourceURLs?: string[];
    verbs: string[];
  }[]) {
    for (const url of rule.nonResourceURLs ?? [])
      for (const verb of rule.verbs) triples.push(`url:${url}:${verb}`);
    for (const group of rule.apiGroups ?? [])
      for (const resource of rule.resources ?? [])
        for (const verb of rule.verbs) triples.push(`${group || 'core'}/${resource}:${verb}`);
  }
  return triples.sort();
}

function expand(groups: Record<string, string[]>): string[] {
  return Object.entries(groups)
    .flatMap(([resource, verbs]) => verbs.map((v) => `${resource}:${v}`))
    .sort();
}

function operatorContainer(objects: KubeObject[], name = FULLNAME) {
  return findObject(objects, 'Deployment', name).spec.template.spec.containers[0];
}

const crdFiles = ['harouter.dev_harouters.yaml', 'harouter.dev_harouterstates.yaml'];

describe('helm lint', () => {
  beforeAll(() => {
    helmBinary();
  }, 300_000);

  it.each(SCENARIOS)('passes --strict with the %s values', async (scenario) => {
    const args = ['lint', '--strict', chartDir, '--namespace', NS];
    if (scenario !== 'default') args.push('-f', scenarioValues(scenario));
    const result = await helm(args);
    expect(result.stdout + result.stderr).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
    expect(result.code).toBe(0);
  });

  it.each([
    ['a misspelt top-level key', 'imagee.tag=x', /imagee/],
    ['a misspelt nested key', 'operator.leaderElection.enable=false', /enable/],
    ['an unknown admission mode', 'admission.mode=webhooks', /admission.mode|mode/],
    ['zero replicas', 'replicaCount=0', /replicaCount/],
    ['a bad reporter account', 'reporter.extraServiceAccounts[0]=no-slash', /extraServiceAccounts/],
    ['a webhook timeout above 30 s', 'admission.webhook.timeoutSeconds=31', /timeoutSeconds/],
  ])('the schema rejects %s', async (_what, set, message) => {
    const result = await helm(['template', 'x', chartDir, '--set', set]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(result.stderr).toMatch(message);
  });
});

describe("the project's helm", () => {
  // Built with Helm's Kubernetes-version link flags (test/tools/build-binaries.sh); without them
  // helm assumes Kubernetes 1.20 and refuses the chart's kubeVersion (>=1.30.0-0).
  it('renders the chart without --kube-version', async () => {
    const result = await helm(['template', 't', chartDir]);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  }, 60_000);

  it("assumes the Kubernetes minor version the tests' control plane runs", async () => {
    const probe = mkdtempSync(join(tmpdir(), 'harouter-helm-probe-'));
    mkdirSync(join(probe, 'templates'));
    writeFileSync(join(probe, 'Chart.yaml'), 'apiVersion: v2\nname: probe\nversion: 0.1.0\n');
    writeFileSync(
      join(probe, 'templates', 'version.yaml'),
      'kube: "{{ .Capabilities.KubeVersion.Version }}"\n',
    );
    const result = await helm(['template', 'p', probe]);
    rmSync(probe, { recursive: true, force: true });
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`kube: "${KUBE_VERSION.replace(/\.\d+$/, '.0')}"`);
  }, 60_000);
});

describe('helm template with default values', () => {
  let objects: KubeObject[];
  beforeAll(async () => {
    objects = await renderChart();
  }, 300_000);

  it("installs exactly the default set of objects (nothing needing other operators' CRDs)", () => {
    expect(kindsOf(objects).sort()).toEqual(
      [
        'ClusterRole',
        'ClusterRole',
        'ClusterRole',
        'ClusterRole',
        'ClusterRoleBinding',
        'ClusterRoleBinding',
        'ConfigMap',
        'CustomResourceDefinition',
        'CustomResourceDefinition',
        'Deployment',
        'Namespace',
        'PodDisruptionBudget',
        'Role',
        'Role',
        'RoleBinding',
        'RoleBinding',
        'RoleBinding',
        'Secret',
        'Secret',
        'Service',
        'Service',
        'ServiceAccount',
        'ServiceAccount',
        'ValidatingWebhookConfiguration',
      ].sort(),
    );
  });

  it('every object carries the chart labels, and namespaced ones the release namespace (the reporter its own)', () => {
    const clusterScoped = new Set([
      'Namespace',
      'ClusterRole',
      'ClusterRoleBinding',
      'CustomResourceDefinition',
      'ValidatingWebhookConfiguration',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
    ]);
    for (const o of objects) {
      expect(o.metadata.labels?.['app.kubernetes.io/managed-by'], `${o.kind} ${o.metadata.name}`).toBe(
        'Helm',
      );
      expect(o.metadata.labels?.['app.kubernetes.io/instance']).toBe('harouter-operator');
      const reporterAccount = o.kind === 'ServiceAccount' && o.metadata.name === 'harouter-reporter';
      if (clusterScoped.has(o.kind)) expect(o.metadata.namespace).toBeUndefined();
      else
        expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(reporterAccount ? REPORTER_NS : NS);
    }
  });

  it('installs the CRDs from files/crds unchanged, kept on uninstall', () => {
    for (const file of crdFiles) {
      const [source] = parseManifests(readFileSync(join(chartDir, 'files', 'crds', file), 'utf8'));
      const rendered = findObject(objects, 'CustomResourceDefinition', source?.metadata.name);
      expect(rendered.spec).toEqual(source?.spec);
      expect(rendered.metadata.annotations?.['helm.sh/resource-policy']).toBe('keep');
    }
    expect(
      objects
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['harouters.harouter.dev', 'harouterstates.harouter.dev']);
  });

  it('runs two replicas spread over nodes, with a PDB', () => {
    const deployment = findObject(objects, 'Deployment', FULLNAME);
    expect(deployment.spec.replicas).toBe(2);
    const anti = deployment.spec.template.spec.affinity.podAntiAffinity;
    const term = anti.preferredDuringSchedulingIgnoredDuringExecution[0].podAffinityTerm;
    expect(term.topologyKey).toBe('kubernetes.io/hostname');
    expect(term.labelSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    const pdb = findObject(objects, 'PodDisruptionBudget', FULLNAME);
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.template.metadata.labels).toMatchObject(deployment.spec.selector.matchLabels);
  });

  it('hardens the pod: non-root numeric user, read-only root, no capabilities, RuntimeDefault seccomp', () => {
    const pod = findObject(objects, 'Deployment', FULLNAME).spec.template.spec;
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 65532,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const container = pod.containers[0];
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      runAsNonRoot: true,
      runAsUser: 65532,
      runAsGroup: 65532,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(pod.serviceAccountName).toBe(FULLNAME);
    expect(container.resources.requests).toEqual({ cpu: '50m', memory: '256Mi' });
    expect(container.resources.limits.memory).toBe('512Mi');
  });

  it('probes /healthz and /readyz on :8081 and exposes the contract ports', () => {
    const container = operatorContainer(objects);
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(container.ports).toEqual([
      { name: 'metrics', containerPort: 8080, protocol: 'TCP' },
      { name: 'health', containerPort: 8081, protocol: 'TCP' },
      { name: 'webhook', containerPort: 9443, protocol: 'TCP' },
    ]);
  });

  it('passes the operator flags of the team conventions, and POD_NAME/POD_NAMESPACE', () => {
    const container = operatorContainer(objects);
    const f = flags(container.args);
    for (const name of f.keys()) expect(OPERATOR_FLAGS, name).toContain(name);
    expect(Object.fromEntries(f)).toEqual({
      'metrics-bind-address': ':8080',
      'metrics-secure': 'true',
      'metrics-cert-dir': '/tmp/k8s-metrics-server/metrics-certs',
      'health-probe-bind-address': ':8081',
      webhook: 'true',
      'webhook-bind-address': ':9443',
      'cert-dir': '/tmp/k8s-webhook-server/serving-certs',
      'leader-elect': 'true',
      'leader-election-id': 'harouter-operator',
      'leader-election-namespace': NS,
      'reporter-service-accounts': `${REPORTER_NS}/harouter-reporter`,
      'allowed-users': '',
      'allowed-groups': '',
      'operator-service-account': `${NS}/${FULLNAME}`,
      'require-node-binding': 'true',
      'log-level': 'info',
      workers: '4',
      'kube-api-max-inflight': '16',
      'kube-api-qps': '500',
      'kube-api-burst': '1000',
    });
    expect(container.env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      { name: 'NODE_OPTIONS', value: '--max-old-space-size=256 --max-semi-space-size=4' },
    ]);
    expect(container.image).toBe('ghcr.io/harouter/harouter-operator:0.1.0');
    expect(operatorConfig(container.args)).toMatchObject({
      namespace: undefined,
      webhook: true,
      certDir: '/tmp/k8s-webhook-server/serving-certs',
      metricsCertDir: '/tmp/k8s-metrics-server/metrics-certs',
      leaderElect: true,
      leaderElectionNamespace: NS,
      leaderElectionId: 'harouter-operator',
      identity: 'operator-0',
      reporterServiceAccounts: [`${REPORTER_NS}/harouter-reporter`],
      allowedUsers: [],
      allowedGroups: [],
      operatorServiceAccount: `${NS}/${FULLNAME}`,
      requireNodeBinding: true,
      logLevel: 'info',
      workers: 4,
      kubeApiMaxInflight: 16,
      kubeApiQps: 500,
      kubeApiBurst: 1000,
    });
  });

  it('mounts the serving certificate Secret read-only at --cert-dir, and /tmp as an emptyDir', () => {
    const pod = findObject(objects, 'Deployment', FULLNAME).spec.template.spec;
    const container = pod.containers[0];
    const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'serving-certs');
    expect(mount).toEqual({
      name: 'serving-certs',
      mountPath: '/tmp/k8s-webhook-server/serving-certs',
      readOnly: true,
    });
    const volume = pod.volumes.find((v: { name: string }) => v.name === 'serving-certs');
    expect(volume.secret.secretName).toBe(`${FULLNAME}-webhook-tls`);
    expect(pod.volumes.find((v: { name: string }) => v.name === 'tmp').emptyDir).toBeDefined();
    const secret = findObject(objects, 'Secret', `${FULLNAME}-webhook-tls`);
    expect(Object.keys(secret.data).sort()).toEqual(['ca.crt', 'tls.crt', 'tls.key']);
  });

  it('grants the operator exactly the verbs it uses, cluster-wide, and Leases only in its namespace', () => {
    expect(permissions(findObject(objects, 'ClusterRole', `${FULLNAME}-cluster`))).toEqual(
      expand({
        'core/nodes': ['get', 'list', 'watch'],
        'authentication.k8s.io/tokenreviews': ['create'],
        'authorization.k8s.io/subjectaccessreviews': ['create'],
      }),
    );
    expect(findObject(objects, 'ClusterRoleBinding', `${FULLNAME}-cluster`).subjects).toEqual([
      { kind: 'ServiceAccount', name: FULLNAME, namespace: NS },
    ]);
    expect(permissions(findObject(objects, 'ClusterRole', `${FULLNAME}-metrics-reader`))).toEqual([
      'url:/metrics:get',
    ]);
    expect(permissions(findObject(objects, 'ClusterRole', FULLNAME))).toEqual(
      expand({
        'harouter.dev/harouters': ['get', 'list', 'watch'],
        'harouter.dev/harouterstates': ['get', 'list', 'watch'],
        'harouter.dev/harouters/status': ['patch', 'update'],
        'harouter.dev/harouterstates/status': ['patch', 'update'],
        'core/services': ['get', 'list', 'watch'],
        'discovery.k8s.io/endpointslices': ['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'],
        'core/events': ['create', 'patch'],
        'events.k8s.io/events': ['create', 'patch'],
      }),
    );
    const role = findObject(objects, 'Role', `${FULLNAME}-leader-election`);
    expect(role.metadata.namespace).toBe(NS);
    expect(permissions(role)).toEqual(expand({ 'coordination.k8s.io/leases': ['get', 'create', 'update'] }));
    const binding = findObject(objects, 'ClusterRoleBinding', FULLNAME);
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: FULLNAME,
    });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: FULLNAME, namespace: NS }]);
    const roleBinding = findObject(objects, 'RoleBinding', `${FULLNAME}-leader-election`);
    expect(roleBinding.roleRef.name).toBe(role.metadata.name);
    expect(roleBinding.subjects).toEqual([{ kind: 'ServiceAccount', name: FULLNAME, namespace: NS }]);
  });

  it('operator.watchNamespace: the namespaced rights bound only there; metrics.readers bound to metrics-reader', async () => {
    const narrowed = await renderChart({
      set: ['operator.watchNamespace=tenant', 'metrics.readers={monitoring/prometheus}'],
    });
    const binding = findObject(narrowed, 'RoleBinding', FULLNAME);
    expect(binding.metadata.namespace).toBe('tenant');
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: FULLNAME,
    });
    expect(
      narrowed
        .filter((o) => o.kind === 'ClusterRoleBinding')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual([`${FULLNAME}-cluster`, `${FULLNAME}-metrics-reader`].sort());
    // Reporters are bound where the routers are: the watched namespace.
    expect(findObject(narrowed, 'RoleBinding', `${FULLNAME}-reporter`).metadata.namespace).toBe('tenant');
    expect(findObject(narrowed, 'ClusterRoleBinding', `${FULLNAME}-metrics-reader`).subjects).toEqual([
      { kind: 'ServiceAccount', namespace: 'monitoring', name: 'prometheus' },
    ]);
    const insecure = await renderChart({ set: ['metrics.secure=false'] });
    expect(permissions(findObject(insecure, 'ClusterRole', `${FULLNAME}-cluster`))).toEqual(
      expand({ 'core/nodes': ['get', 'list', 'watch'] }),
    );
  }, 60_000);

  it('lets reporters write HARouterStates only, never their status, read HARouters, and only in the release namespace', () => {
    expect(findObject(objects, 'ServiceAccount', 'harouter-reporter').metadata.namespace).toBe(REPORTER_NS);
    const role = findObject(objects, 'ClusterRole', `${FULLNAME}-reporter`);
    expect(permissions(role)).toEqual(
      expand({
        'harouter.dev/harouterstates': ['get', 'create', 'patch', 'update', 'delete'],
        'harouter.dev/harouters': ['get', 'list', 'watch'],
      }),
    );
    expect(objects.filter((o) => o.kind === 'ClusterRoleBinding').map((o) => o.metadata.name)).not.toContain(
      `${FULLNAME}-reporter`,
    );
    const binding = findObject(objects, 'RoleBinding', `${FULLNAME}-reporter`);
    expect(binding.metadata.namespace).toBe(NS);
    expect(binding.roleRef).toEqual({
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: role.metadata.name,
    });
    expect(binding.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'harouter-reporter', namespace: REPORTER_NS },
    ]);
    expect(kindsOf(objects)).not.toContain('ResourceQuota');
  });

  it("creates the reporter's own namespace at the privileged Pod Security level (the agent's host paths)", () => {
    const namespace = findObject(objects, 'Namespace', REPORTER_NS);
    expect(namespace.metadata.labels).toMatchObject({
      'pod-security.kubernetes.io/enforce': 'privileged',
      'app.kubernetes.io/component': 'reporter',
    });
    const f = flags(operatorContainer(objects).args);
    expect(f.get('reporter-service-accounts')).toBe(`${REPORTER_NS}/harouter-reporter`);
  });

  it('grants nobody secrets, impersonation, wildcards or escalation', () => {
    for (const role of objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'Role')) {
      for (const p of permissions(role)) {
        expect(p, role.metadata.name).not.toMatch(
          /\*|secrets|impersonate|escalate|bind|serviceaccounts\/token/,
        );
      }
    }
  });

  it('registers a fail-closed webhook for harouterstates that points at the Service, with the CA bundle', () => {
    const config = findObject(objects, 'ValidatingWebhookConfiguration', FULLNAME);
    expect(config.webhooks).toHaveLength(1);
    const webhook = config.webhooks[0];
    expect(webhook).toMatchObject({
      name: 'harouterstates.harouter.dev',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      matchPolicy: 'Equivalent',
      timeoutSeconds: 5,
      clientConfig: { service: { name: `${FULLNAME}-webhook`, namespace: NS, path: '/validate', port: 443 } },
      rules: [
        {
          apiGroups: ['harouter.dev'],
          apiVersions: ['*'],
          operations: ['CREATE', 'UPDATE', 'DELETE'],
          resources: ['harouterstates'],
          scope: 'Namespaced',
        },
      ],
    });
    expect(webhook.matchConditions).toHaveLength(1);
    for (const user of CLEANUP_USERS) expect(webhook.matchConditions[0].expression).toContain(`'${user}'`);
    // The same expression as the code's (the policy and local mode use that one).
    const squeeze = (text: string) => text.replace(/\s+/g, ' ').replace(/\[ /g, '[').trim();
    expect(squeeze(webhook.matchConditions[0].expression)).toBe(
      squeeze(EXCLUDE_CLEANUP_CONDITION.expression),
    );

    const service = findObject(objects, 'Service', `${FULLNAME}-webhook`);
    expect(service.spec.ports).toEqual([
      { name: 'webhook', port: 443, targetPort: 'webhook', protocol: 'TCP' },
    ]);
    const deployment = findObject(objects, 'Deployment', FULLNAME);
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);

    const secret = findObject(objects, 'Secret', `${FULLNAME}-webhook-tls`);
    expect(webhook.clientConfig.caBundle).toBe(secret.data['ca.crt']);
  });

  it('generates a CA and a serving certificate for the Service DNS names, signed by that CA', () => {
    const secret = findObject(objects, 'Secret', `${FULLNAME}-webhook-tls`);
    expect(secret.type).toBe('kubernetes.io/tls');
    const { ca, leaf, keyMatches } = tlsSecretCertificates(secret);
    expect(ca.ca).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(keyMatches).toBe(true);
    expect(leaf.subjectAltName).toContain(`DNS:${FULLNAME}-webhook.${NS}.svc`);
    const days = (Date.parse(leaf.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(3600);
  });

  it('ships the Grafana dashboard ConfigMap with the sidecar label', () => {
    const configMap = findObject(objects, 'ConfigMap', `${FULLNAME}-dashboard`);
    expect(configMap.metadata.labels.grafana_dashboard).toBe('1');
    expect(JSON.parse(configMap.data['harouter.json'])).toEqual(dashboard());
  });

  it('serves metrics through a Service on port 8080', () => {
    const service = findObject(objects, 'Service', `${FULLNAME}-metrics`);
    expect(service.spec.ports).toEqual([
      { name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' },
    ]);
  });
});

describe('helm template with other values', () => {
  it.each(SCENARIOS)(
    "the operator's own parser accepts the Deployment arguments (%s values)",
    async (scenario) => {
      const objects = await renderChart({ scenario });
      const container = operatorContainer(objects);
      const config = operatorConfig(container.args);
      const webhook = scenario !== 'policy';
      expect(config.webhook).toBe(webhook);
      expect(config.metricsBindAddress?.port).toBe(8080);
      expect(config.healthProbeBindAddress?.port).toBe(8081);
      expect(config.webhookBindAddress.port).toBe(9443);
      // The ports the container declares are the ones the process binds.
      const ports = Object.fromEntries(
        container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]),
      );
      expect(ports.metrics).toBe(config.metricsBindAddress?.port);
      expect(ports.health).toBe(config.healthProbeBindAddress?.port);
      if (webhook) expect(ports.webhook).toBe(config.webhookBindAddress.port);
    },
    30_000,
  );

  it('policy mode: the ValidatingAdmissionPolicy, its binding and parameters; no webhook, no webhook certificate', async () => {
    const objects = await renderChart({ scenario: 'policy' });
    expect(kindsOf(objects)).not.toContain('ValidatingWebhookConfiguration');
    expect(objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name)).toEqual([
      `${FULLNAME}-metrics-tls`,
    ]);
    expect(objects.filter((o) => o.kind === 'Service').map((o) => o.metadata.name)).toEqual([
      `${FULLNAME}-metrics`,
    ]);
    const policy = findObject(objects, 'ValidatingAdmissionPolicy', `${FULLNAME}-admission.harouter.dev`);
    const binding = findObject(
      objects,
      'ValidatingAdmissionPolicyBinding',
      `${FULLNAME}-admission.harouter.dev`,
    );
    expect(binding.spec.policyName).toBe(policy.metadata.name);
    expect(binding.spec.validationActions).toEqual(['Deny']);
    expect(binding.spec.matchResources).toBeUndefined();
    // The policy's rules are the generated ones, unchanged.
    const [sourcePolicy] = parseManifests(
      readFileSync(join(chartDir, 'files/policy/validating-admission-policy.yaml'), 'utf8'),
    );
    expect(policy.spec).toEqual(sourcePolicy?.spec);
    expect(binding.spec.paramRef).toMatchObject({ name: `${FULLNAME}-admission`, namespace: NS });
    const params = findObject(objects, 'ConfigMap', `${FULLNAME}-admission`);
    expect(params.data).toEqual({
      reporterServiceAccounts: `${REPORTER_NS}/harouter-reporter,agents/keepalived-reporter`,
      allowedUsers: '',
      allowedGroups: 'harouter-admins',
      operatorServiceAccount: `${NS}/${FULLNAME}`,
      requireNodeBinding: 'true',
    });
    // The parameters are the ones the generated policy reads.
    const [source] = parseManifests(
      readFileSync(join(chartDir, 'files/policy/params-configmap.yaml'), 'utf8'),
    );
    expect(Object.keys(params.data).sort()).toEqual(Object.keys(source?.data ?? {}).sort());

    const container = operatorContainer(objects);
    const f = flags(container.args);
    expect(f.get('webhook')).toBe('false');
    expect(f.has('cert-dir')).toBe(false);
    expect(container.ports.map((p: { name: string }) => p.name)).toEqual(['metrics', 'health']);
    expect(container.volumeMounts.map((m: { name: string }) => m.name)).toEqual(['tmp', 'metrics-certs']);
    expect(f.get('reporter-service-accounts')).toBe(params.data.reporterServiceAccounts);
    expect(f.get('allowed-groups')).toBe('harouter-admins');
    // The reporter ClusterRole is bound to every reporter account in each of reporter.namespaces.
    const reporterBindings = objects.filter(
      (o) => o.kind === 'RoleBinding' && o.metadata.name === `${FULLNAME}-reporter`,
    );
    expect(reporterBindings.map((o) => o.metadata.namespace)).toEqual(['default', 'routers']);
    for (const binding of reporterBindings) {
      expect(binding.subjects).toEqual([
        { kind: 'ServiceAccount', name: 'harouter-reporter', namespace: REPORTER_NS },
        { kind: 'ServiceAccount', name: 'keepalived-reporter', namespace: 'agents' },
      ]);
    }
    // reporter.quota: in policy mode nothing checks a report's router; a quota bounds the count.
    const quotas = objects.filter((o) => o.kind === 'ResourceQuota');
    expect(quotas.map((o) => [o.metadata.name, o.metadata.namespace])).toEqual([
      [`${FULLNAME}-reports`, 'default'],
      [`${FULLNAME}-reports`, 'routers'],
    ]);
    for (const quota of quotas) {
      expect(quota.spec).toEqual({ hard: { 'count/harouterstates.harouter.dev': '300' } });
    }
  });

  it('both mode: webhook and policy, agreeing on their configuration', async () => {
    const objects = await renderChart({ scenario: 'both' });
    findObject(objects, 'ValidatingAdmissionPolicy');
    const binding = findObject(objects, 'ValidatingAdmissionPolicyBinding');
    expect(binding.spec.validationActions).toEqual(['Deny', 'Audit']);
    expect(binding.spec.matchResources).toEqual({
      namespaceSelector: { matchLabels: { 'harouter.dev/routers': 'true' } },
    });
    const webhook = findObject(objects, 'ValidatingWebhookConfiguration', FULLNAME).webhooks[0];
    expect(webhook.timeoutSeconds).toBe(3);
    expect(webhook.namespaceSelector).toEqual({ matchLabels: { 'harouter.dev/routers': 'true' } });
    const params = findObject(objects, 'ConfigMap', `${FULLNAME}-admission`).data;
    const f = flags(operatorContainer(objects).args);
    expect(f.get('webhook')).toBe('true');
    expect(f.get('require-node-binding')).toBe('false');
    expect(params.requireNodeBinding).toBe('false');
    expect(f.get('allowed-users')).toBe('ops@example.com');
    expect(params.allowedUsers).toBe('ops@example.com');
    expect(f.get('operator-service-account')).toBe(params.operatorServiceAccount);
  });

  it('cert-manager: a Certificate from a self-signed Issuer, CA injected into the webhook', async () => {
    const objects = await renderChart({ scenario: 'cert-manager' });
    expect(kindsOf(objects)).not.toContain('Secret');
    const certificate = findObject(objects, 'Certificate', `${FULLNAME}-webhook`);
    const issuer = findObject(objects, 'Issuer');
    expect(issuer.spec).toEqual({ selfSigned: {} });
    expect(certificate.spec.issuerRef).toEqual({
      name: issuer.metadata.name,
      kind: 'Issuer',
      group: 'cert-manager.io',
    });
    expect(certificate.spec.secretName).toBe(`${FULLNAME}-webhook-tls`);
    expect(certificate.spec.dnsNames).toContain(`${FULLNAME}-webhook.${NS}.svc`);
    const config = findObject(objects, 'ValidatingWebhookConfiguration', FULLNAME);
    expect(config.metadata.annotations['cert-manager.io/inject-ca-from']).toBe(`${NS}/${FULLNAME}-webhook`);
    expect(config.webhooks[0].clientConfig.caBundle).toBeUndefined();
    const pod = findObject(objects, 'Deployment', FULLNAME).spec.template.spec;
    expect(pod.volumes.find((v: { name: string }) => v.name === 'serving-certs').secret.secretName).toBe(
      certificate.spec.secretName,
    );
  });

  it('admission.webhook.clientCA: a ConfigMap with the CA, mounted and passed as --webhook-client-ca', async () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
    const objects = await renderChart({ extraArgs: ['--set-string', `admission.webhook.clientCA=${pem}`] });
    const configMap = findObject(objects, 'ConfigMap', `${FULLNAME}-webhook-client-ca`);
    expect(configMap.data).toEqual({ 'ca.crt': pem });
    const pod = findObject(objects, 'Deployment', FULLNAME).spec.template.spec;
    const container = pod.containers[0];
    expect(container.args).toContain('--webhook-client-ca=/etc/harouter/webhook-client-ca/ca.crt');
    expect(container.volumeMounts).toContainEqual({
      name: 'webhook-client-ca',
      mountPath: '/etc/harouter/webhook-client-ca',
      readOnly: true,
    });
    expect(pod.volumes).toContainEqual({
      name: 'webhook-client-ca',
      configMap: { name: `${FULLNAME}-webhook-client-ca` },
    });
    // Without the value, no client certificate is asked for.
    const plain = findObject(await renderChart(), 'Deployment', FULLNAME).spec.template.spec.containers[0];
    expect(plain.args.some((a: string) => a.startsWith('--webhook-client-ca'))).toBe(false);
  });

  it('cert-manager with an existing ClusterIssuer creates no Issuer', async () => {
    const objects = await renderChart({
      scenario: 'cert-manager',
      set: ['certManager.issuerRef.name=corp-ca', 'certManager.issuerRef.kind=ClusterIssuer'],
    });
    expect(kindsOf(objects)).not.toContain('Issuer');
    expect(findObject(objects, 'Certificate', `${FULLNAME}-webhook`).spec.issuerRef).toEqual({
      name: 'corp-ca',
      kind: 'ClusterIssuer',
    });
  });

  it('monitoring: ServiceMonitor on the metrics Service, PrometheusRule from the rules file with overrides', async () => {
    const objects = await renderChart({ scenario: 'monitoring' });
    const monitor = findObject(objects, 'ServiceMonitor', FULLNAME);
    const service = findObject(objects, 'Service', `${FULLNAME}-metrics`);
    expect(service.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.endpoints).toEqual([
      {
        port: 'metrics',
        path: '/metrics',
        scheme: 'https',
        bearerTokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token',
        tlsConfig: {
          ca: { secret: { name: `${FULLNAME}-metrics-tls`, key: 'ca.crt' } },
          serverName: `${FULLNAME}-metrics.${NS}.svc`,
          insecureSkipVerify: false,
        },
        interval: '30s',
        scrapeTimeout: '10s',
        honorLabels: true,
      },
    ]);
    expect(monitor.metadata.labels.release).toBe('kube-prometheus-stack');

    const rule = findObject(objects, 'PrometheusRule', FULLNAME);
    expect(rule.metadata.labels.release).toBe('kube-prometheus-stack');
    const source = alertRuleGroups();
    expect(rule.spec.groups.map((g: { name: string }) => g.name)).toEqual(source.map((g) => g.name));
    const rendered = rule.spec.groups.flatMap((g: { rules: unknown[] }) => g.rules);
    const byName = new Map(rendered.map((r: { alert: string }) => [r.alert, r]));
    expect(byName.has('HARouterWebhookSlow')).toBe(false);
    expect(rendered).toHaveLength(source.flatMap((g) => g.rules).length - 1);
    for (const original of source.flatMap((g) => g.rules)) {
      if (original.alert === 'HARouterWebhookSlow') continue;
      const r = byName.get(original.alert) as typeof original;
      expect(r.labels).toMatchObject({ team: 'network' });
      expect(r.annotations).toEqual(original.annotations);
      if (original.alert === 'HARouterFlapping') {
        expect(r.expr).toBe(
          'sum by (namespace, router) (increase(harouter_router_transitions_total[1d])) > 4',
        );
        expect(r.labels?.severity).toBe('critical');
      } else {
        expect(r.expr).toBe(original.expr);
        expect(r.for).toBe(original.for);
        expect(r.labels?.severity).toBe(original.labels?.severity);
      }
    }
    const configMap = findObject(objects, 'ConfigMap', `${FULLNAME}-dashboard`);
    expect(configMap.metadata.annotations).toEqual({ grafana_folder: 'Networking' });
  });

  it('the leader alert follows the Lease name, and is left out without leader election', async () => {
    const renamed = await renderChart({
      set: ['metrics.prometheusRule.enabled=true', 'operator.leaderElection.id=edge-lease'],
    });
    const rules = findObject(renamed, 'PrometheusRule').spec.groups.flatMap(
      (g: { rules: unknown[] }) => g.rules,
    );
    const noLeader = rules.find((r: { alert: string }) => r.alert === 'HARouterOperatorNoLeader');
    expect(noLeader.expr).toContain('leader_election_master_status{name="edge-lease"}');
    expect(noLeader.expr).not.toContain('harouter-operator');
    expect(flags(operatorContainer(renamed).args).get('leader-election-id')).toBe('edge-lease');
    const single = await renderChart({
      set: ['metrics.prometheusRule.enabled=true', 'operator.leaderElection.enabled=false', 'replicaCount=1'],
    });
    const alerts = findObject(single, 'PrometheusRule').spec.groups.flatMap(
      (g: { rules: { alert: string }[] }) => g.rules.map((r) => r.alert),
    );
    expect(alerts).not.toContain('HARouterOperatorNoLeader');
    expect(alerts).toContain('HARouterSplitBrain');
  });

  it('PrometheusRule with default values equals the rules file', async () => {
    const objects = await renderChart({ set: ['metrics.prometheusRule.enabled=true'] });
    expect(findObject(objects, 'PrometheusRule').spec.groups).toEqual(alertRuleGroups());
  });

  it('networkpolicy: webhook, metrics and probe ingress; API server and DNS egress', async () => {
    const objects = await renderChart({ scenario: 'networkpolicy' });
    const policy = findObject(objects, 'NetworkPolicy', FULLNAME);
    const deployment = findObject(objects, 'Deployment', FULLNAME);
    expect(deployment.spec.template.metadata.labels).toMatchObject(policy.spec.podSelector.matchLabels);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    const ingressPorts = policy.spec.ingress.map((r: { ports: { port: number }[] }) => r.ports[0]?.port);
    expect(ingressPorts).toEqual([9443, 8080, 8081]);
    expect(policy.spec.ingress[0].from).toBeUndefined();
    expect(policy.spec.ingress[1].from).toEqual([
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
    expect(policy.spec.egress[0]).toEqual({
      ports: [{ port: 443, protocol: 'TCP' }],
      to: [{ ipBlock: { cidr: '10.0.0.1/32' } }],
    });
    expect(policy.spec.egress[1].ports.map((p: { port: number }) => p.port)).toEqual([53, 53]);
    const f = flags(deployment.spec.template.spec.containers[0].args);
    expect(f.get('namespace')).toBe('routers');
    expect(f.get('log-level')).toBe('debug');
    expect(
      deployment.spec.template.spec.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution,
    ).toHaveLength(1);
    expect(deployment.spec.template.spec.containers[0].image).toMatch(
      /^ghcr\.io\/harouter\/harouter-operator@sha256:/,
    );
  });

  it('release name and namespace flow into every reference', async () => {
    const objects = await renderChart({ release: 'edge', namespace: 'net-ha', scenario: 'both' });
    const name = 'edge-harouter-operator';
    const f = flags(operatorContainer(objects, name).args);
    expect(f.get('reporter-service-accounts')).toBe(`${REPORTER_NS}/harouter-reporter`);
    expect(f.get('operator-service-account')).toBe(`net-ha/${name}`);
    expect(f.get('leader-election-namespace')).toBe('net-ha');
    const webhook = findObject(objects, 'ValidatingWebhookConfiguration', name).webhooks[0];
    expect(webhook.clientConfig.service).toMatchObject({ name: `${name}-webhook`, namespace: 'net-ha' });
    const leaf = new X509Certificate(
      decode(findObject(objects, 'Secret', `${name}-webhook-tls`).data['tls.crt']),
    );
    expect(leaf.subjectAltName).toContain(`DNS:${name}-webhook.net-ha.svc`);
    const metricsLeaf = new X509Certificate(
      decode(findObject(objects, 'Secret', `${name}-metrics-tls`).data['tls.crt']),
    );
    expect(metricsLeaf.subjectAltName).toContain(`DNS:${name}-metrics.net-ha.svc`);
    expect(findObject(objects, 'ValidatingAdmissionPolicyBinding').spec.paramRef.namespace).toBe('net-ha');
    expect(findObject(objects, 'ConfigMap', `${name}-admission`).data.operatorServiceAccount).toBe(
      `net-ha/${name}`,
    );
  });

  it('a single replica gets no PodDisruptionBudget (it would block every drain)', async () => {
    expect(kindsOf(await renderChart({ set: ['replicaCount=1'] }))).not.toContain('PodDisruptionBudget');
    expect(kindsOf(await renderChart({ set: ['replicaCount=3'] }))).toContain('PodDisruptionBudget');
  });

  it('crds.install=false leaves the CRDs out; crds.keep=false drops the keep annotation', async () => {
    expect(kindsOf(await renderChart({ set: ['crds.install=false'] }))).not.toContain(
      'CustomResourceDefinition',
    );
    const crds = (await renderChart({ set: ['crds.keep=false'] })).filter(
      (o) => o.kind === 'CustomResourceDefinition',
    );
    expect(crds).toHaveLength(2);
    for (const crd of crds) expect(crd.metadata.annotations?.['helm.sh/resource-policy']).toBeUndefined();
  });
});
