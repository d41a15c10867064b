/**
 * The chart on a real node. The operator image is built from the unchanged Dockerfile
 * (`npm run image`), imported into the node's containerd, and `helm install`ed with
 * `pullPolicy: Never` on a kubelet registered against the suite's kind of control
 * plane. Then, as a user would see it: both replicas run Ready with one holding the
 * Lease; metrics over HTTPS through their Service; the API server calling the webhook
 * through its Service; the agent DaemonSet reading a real keepalived's FIFO on the host
 * and moving an EndpointSlice to the node; `helm upgrade` rolling both replicas with no
 * report refused; a killed leader handing the Lease over; `helm uninstall` removing the
 * admission objects before the operator. The scenarios run in order on one release.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AdmissionregistrationV1Api,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  RbacAuthorizationV1Api,
  type V1Pod,
  Watch,
} from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitUntil } from '../../src/local/controlplane/index.ts';
import { type Keepalived, keepalivedOn } from '../../src/local/nodes/keepalived.ts';
import { createNetwork, type Network, newRunId } from '../../src/local/nodes/network.ts';
import { OPERATOR_IMAGE as IMAGE } from '../../src/local/realnode/image.ts';
import type { RealNode } from '../../src/local/realnode/index.ts';
import { chartDir, helm } from '../unit/chart-helpers.ts';
import { httpsRequest, startNodeCluster } from './real-cluster.ts';

const RELEASE = 'harouter';
const NAMESPACE = 'harouter-system';
/** The chart's namespace of the reporter ServiceAccount and the agent DaemonSet (`reporter.serviceAccount.namespace`). */
const AGENT_NAMESPACE = 'harouter-reporters';
const FULLNAME = 'harouter-harouter-operator';
const FIFO_DIR = '/run/harouter-node-tier';
const STATE_DIR = '/var/lib/harouter-node-tier';
const GROUP = 'harouter.dev';
const VERSION = 'v1alpha1';
/** The router keepalived runs (its instance is named by the router id: no mapping needed). */
const ROUTER = randomUUID();
/** A second router, reported on continuously during the upgrade. */
const ROLL_ROUTER = randomUUID();
const GHOST = 'ghost-node';

let node: RealNode;
let admin: KubeConfig;
let core: CoreV1Api;
let dir: string;
let network: Network | undefined;
let keepalived: Keepalived | undefined;
const figures: string[] = [];

function figure(line: string) {
  figures.push(line);
  process.stdout.write(`node tier: ${line}\n`);
}

async function helmIn(args: string[]) {
  const result = await helm(args, { kubeconfig: node.controlPlane.kubeconfigPath });
  if (result.code !== 0) throw new Error(`helm ${args[0]} failed (${result.code}): ${result.stderr}`);
  return result;
}

async function operatorPods(): Promise<V1Pod[]> {
  const pods = await core.listNamespacedPod({
    namespace: NAMESPACE,
    labelSelector: 'app.kubernetes.io/component=operator',
  });
  return pods.items.filter((p) => !p.metadata?.deletionTimestamp);
}

const ready = (pod: V1Pod) =>
  pod.status?.phase === 'Running' &&
  pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');

async function leaseHolder(): Promise<string | undefined> {
  const lease = await admin
    .makeApiClient(CoordinationV1Api)
    .readNamespacedLease({ namespace: NAMESPACE, name: 'harouter-operator' });
  return lease.spec?.holderIdentity ?? undefined;
}

/** The host pid of a pod's first container, from containerd. */
async function containerPid(pod: V1Pod): Promise<number> {
  const id = pod.status?.containerStatuses?.[0]?.containerID?.replace(/^containerd:\/\//, '');
  if (!id) throw new Error(`pod ${pod.metadata?.name} has no container id`);
  const line = (await node.ctr(['tasks', 'list'])).split('\n').find((l) => l.startsWith(`${id} `));
  const pid = Number(line?.trim().split(/\s+/)[1]);
  if (!pid) throw new Error(`containerd has no task ${id}`);
  return pid;
}

async function token(namespace: string, serviceAccount: string, pod?: V1Pod): Promise<string> {
  const answer = await core.createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: {
      spec: {
        audiences: [],
        expirationSeconds: 3600,
        ...(pod
          ? {
              boundObjectRef: {
                apiVersion: 'v1',
                kind: 'Pod',
                name: pod.metadata?.name,
                uid: pod.metadata?.uid,
              },
            }
          : {}),
      },
    },
  });
  const value = answer.status?.token;
  if (!value) throw new Error('TokenRequest returned no token');
  return value;
}

/** Server-side applies a report with `bearer` through the API server; the answer as it came. */
async function report(bearer: string, router: string, agent: string, state: string, observedAt: Date) {
  const name = `${router}.${agent}`;
  const url = `${node.controlPlane.server}/apis/${GROUP}/${VERSION}/namespaces/${NAMESPACE}/harouterstates/${name}?fieldManager=node-tier&force=true`;
  const body = JSON.stringify({
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'HARouterState',
    metadata: { name, namespace: NAMESPACE },
    spec: { routerId: router, agent, state, observedAt: observedAt.toISOString(), message: 'node tier' },
  });
  return httpsRequest(url, {
    method: 'PATCH',
    token: bearer,
    ca: await readFile(node.controlPlane.ca.certPath),
    body,
    contentType: 'application/apply-patch+yaml',
  });
}

async function agentPod(): Promise<V1Pod> {
  const pods = await core.listNamespacedPod({
    namespace: AGENT_NAMESPACE,
    labelSelector: 'app.kubernetes.io/component=agent',
  });
  const pod = pods.items.find((p) => !p.metadata?.deletionTimestamp && ready(p));
  if (!pod) throw new Error('no Ready agent pod');
  return pod;
}

async function createRouter(id: string, service: string) {
  await core.createNamespacedService({
    namespace: NAMESPACE,
    body: {
      metadata: { name: service, labels: { 'harouter.dev/router': id } },
      spec: { ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    },
  });
  await admin.makeApiClient(CustomObjectsApi).createNamespacedCustomObject({
    group: GROUP,
    version: VERSION,
    namespace: NAMESPACE,
    plural: 'harouters',
    body: {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'HARouter',
      metadata: { name: id, namespace: NAMESPACE },
      spec: {
        agents: [
          { name: node.name, priority: 150 },
          { name: GHOST, priority: 100 },
        ],
        endpoint: { serviceName: service, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
      },
    },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'harouter-node-tier-'));
  const started = performance.now();
  node = await startNodeCluster((line) => process.stdout.write(`${line}\n`));
  figure(
    `cluster up in ${Math.round((performance.now() - started) / 1000)} s (control plane ${node.timings.controlPlane} s, containerd ${node.timings.containerd} s, image import ${node.timings.images} s, kubelet to Node Ready ${node.timings.nodeReady} s)`,
  );
  admin = new KubeConfig();
  admin.loadFromFile(node.controlPlane.kubeconfigPath);
  core = admin.makeApiClient(CoreV1Api);
});

afterAll(async () => {
  await keepalived?.stop().catch(() => {});
  network?.removeSync();
  await node?.stop();
  for (const path of [FIFO_DIR, STATE_DIR]) await rm(path, { recursive: true, force: true });
  await rm(dir, { recursive: true, force: true });
  if (figures.length > 0) process.stdout.write(`node tier figures:\n  ${figures.join('\n  ')}\n`);
});

describe('the chart on a real node', () => {
  it('helm install with the local image: both operator replicas Running and Ready as 65532 on a read-only root, one holding the Lease', async () => {
    const values = join(dir, 'values.yaml');
    await writeFile(
      values,
      JSON.stringify({
        image: { repository: IMAGE.repository, tag: IMAGE.tag, pullPolicy: 'Never' },
        reporter: { agent: { enabled: true, fifoDir: FIFO_DIR, stateDir: STATE_DIR } },
      }),
    );
    const started = performance.now();
    await helmIn([
      'install',
      RELEASE,
      chartDir,
      '--namespace',
      NAMESPACE,
      '--create-namespace',
      '-f',
      values,
      '--wait',
      '--timeout',
      '5m',
    ]);
    // helm's --wait counts a DaemonSet with maxUnavailable 1 and one node as ready with no pod Ready.
    const apps = admin.makeApiClient(AppsV1Api);
    await waitUntil('the agent DaemonSet Ready', 120_000, async () => {
      const status = (
        await apps.readNamespacedDaemonSet({ namespace: AGENT_NAMESPACE, name: `${FULLNAME}-agent` })
      ).status;
      return (
        (status?.desiredNumberScheduled ?? 0) >= 1 && status?.numberReady === status?.desiredNumberScheduled
      );
    });
    figure(`helm install to all pods Ready: ${Math.round((performance.now() - started) / 100) / 10} s`);

    const pods = await operatorPods();
    expect(pods).toHaveLength(2);
    for (const pod of pods) {
      expect(ready(pod), `${pod.metadata?.name} Ready`).toBe(true);
      expect(pod.spec?.nodeName).toBe(node.name);
      expect(pod.spec?.containers[0]?.image).toBe(`${IMAGE.repository}:${IMAGE.tag}`);
      // The data plane: the container's process as the kernel sees it.
      const pid = await containerPid(pod);
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      expect(status).toMatch(/^Uid:\s+65532\s+65532\s+65532\s+65532$/m);
      const rootMount = (await readFile(`/proc/${pid}/mountinfo`, 'utf8'))
        .split('\n')
        .find((l) => l.split(' ')[4] === '/');
      expect(rootMount?.split(' ')[5]?.split(',')).toContain('ro');
    }
    let holder: string | undefined;
    await waitUntil('a Lease holder', 60_000, async () => {
      holder = await leaseHolder();
      return holder !== undefined && holder !== '';
    });
    expect(pods.map((p) => p.metadata?.name)).toContain(holder);

    const pid = await containerPid(pods[0] as V1Pod);
    const cgroup = (await readFile(`/proc/${pid}/cgroup`, 'utf8'))
      .split('\n')
      .map((l) => l.split(':'))
      .find((parts) => parts[1]?.split(',').includes('memory'))?.[2];
    const memory = join('/sys/fs/cgroup/memory', cgroup ?? '/');
    const usage = Number(await readFile(join(memory, 'memory.usage_in_bytes'), 'utf8'));
    const limit = Number(await readFile(join(memory, 'memory.limit_in_bytes'), 'utf8'));
    const stat = await readFile(join(memory, 'memory.stat'), 'utf8');
    const inactiveFile = Number(/^total_inactive_file (\d+)$/m.exec(stat)?.[1] ?? 0);
    const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
    figure(
      `operator pod memory (cgroup): working set ${mib(usage - inactiveFile)} MiB, usage ${mib(usage)} MiB, limit ${mib(limit)} MiB`,
    );
    expect(usage).toBeLessThan(limit);
  });

  it('metrics over HTTPS through the Service: 200 with a permitted token, 401 without one, 403 without the right', async () => {
    const service = await core.readNamespacedService({ namespace: NAMESPACE, name: `${FULLNAME}-metrics` });
    const port = service.spec?.ports?.[0]?.port;
    const url = `https://${service.spec?.clusterIP}:${port}/metrics`;
    for (const name of ['scraper', 'bystander'])
      await core.createNamespacedServiceAccount({ namespace: NAMESPACE, body: { metadata: { name } } });
    await admin.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: 'node-tier-scraper' },
        roleRef: {
          apiGroup: 'rbac.authorization.k8s.io',
          kind: 'ClusterRole',
          name: `${FULLNAME}-metrics-reader`,
        },
        subjects: [{ kind: 'ServiceAccount', name: 'scraper', namespace: NAMESPACE }],
      },
    });
    const permitted = await token(NAMESPACE, 'scraper');
    const other = await token(NAMESPACE, 'bystander');
    // RBAC bindings reach the operator's SubjectAccessReviews at once; the Service balances the replicas.
    await waitUntil(
      '200 with the scraper token',
      30_000,
      async () => (await httpsRequest(url, { token: permitted })).status === 200,
    );
    for (let i = 0; i < 4; i++) {
      const ok = await httpsRequest(url, { token: permitted });
      expect(ok.status).toBe(200);
      expect(ok.body).toMatch(/^harouter_/m);
      expect((await httpsRequest(url, {})).status).toBe(401);
      expect((await httpsRequest(url, { token: other })).status).toBe(403);
    }
  });

  it('the API server calls the webhook through its Service: a wrong-node report is denied, a right one admitted', async () => {
    await createRouter(ROUTER, 'edge');
    await createRouter(ROLL_ROUTER, 'roll');
    const agent = await agentPod();
    const bound = await token(AGENT_NAMESPACE, 'harouter-reporter', agent);
    const earlier = new Date(Date.now() - 3_600_000);
    const wrong = await report(bound, ROUTER, GHOST, 'Primary', earlier);
    expect(wrong.status).toBe(403);
    const denial = JSON.parse(wrong.body) as { message?: string };
    expect(denial.message).toContain('admission webhook "harouterstates.harouter.dev" denied the request');
    expect(denial.message).toContain('NodeBinding');
    const right = await report(bound, ROUTER, node.name, 'Backup', earlier);
    expect(right.status, right.body).toBeLessThan(300);
  });

  it('the agent DaemonSet, Ready with its default security context, reports a real keepalived transition and the EndpointSlice moves to the node', async () => {
    const daemonSet = await admin
      .makeApiClient(AppsV1Api)
      .readNamespacedDaemonSet({ namespace: AGENT_NAMESPACE, name: `${FULLNAME}-agent` });
    expect(daemonSet.status?.numberReady).toBe(1);
    const agent = await agentPod();
    const context = agent.spec?.containers[0]?.securityContext;
    expect(context?.capabilities?.drop).toEqual(['ALL']);
    expect(context?.capabilities?.add ?? []).toEqual([]);
    const status = await readFile(`/proc/${await containerPid(agent)}/status`, 'utf8');
    expect(status).toMatch(/^CapEff:\s+0+$/m);

    network = await createNetwork(newRunId('hr-node-tier'), ['vrrp']);
    const namespace = network.node('vrrp').namespace;
    keepalived = keepalivedOn(namespace, dir, {
      routerId: 'node-tier',
      interface: 'eth0',
      fifo: `${FIFO_DIR}/notify.fifo`,
      instances: [{ name: ROUTER, virtualRouterId: 51, priority: 150 }],
    });
    await keepalived.start();
    const objects = admin.makeApiClient(CustomObjectsApi);
    await waitUntil('the agent reports Primary', 60_000, async () => {
      const state = (await objects.getNamespacedCustomObject({
        group: GROUP,
        version: VERSION,
        namespace: NAMESPACE,
        plural: 'harouterstates',
        name: `${ROUTER}.${node.name}`,
      })) as { spec?: { state?: string } };
      return state.spec?.state === 'Primary';
    });
    const discovery = admin.makeApiClient(DiscoveryV1Api);
    await waitUntil('the EndpointSlice points at the node', 60_000, async () => {
      const slices = await discovery.listNamespacedEndpointSlice({
        namespace: NAMESPACE,
        labelSelector: 'kubernetes.io/service-name=edge',
      });
      return slices.items.some((s) => s.endpoints?.some((e) => e.addresses.includes(node.address)));
    });
    // The agent's own count, on its pod address: the line read from the FIFO and the report applied.
    const metrics = await (await fetch(`http://${agent.status?.podIP}:8090/metrics`)).text();
    expect(
      Number(/^harouter_agent_lines_total\{kind="transition"\} (\d+)$/m.exec(metrics)?.[1]),
    ).toBeGreaterThanOrEqual(1);
    expect(
      Number(/^harouter_agent_reports_total\{result="applied"\} (\d+)$/m.exec(metrics)?.[1]),
    ).toBeGreaterThanOrEqual(1);
    // Its log, read through the API server from the kubelet (the kubelet client credentials).
    const log = await core.readNamespacedPodLog({
      namespace: AGENT_NAMESPACE,
      name: agent.metadata?.name ?? '',
    });
    expect(log).toContain('agent started');
  });

  it('helm upgrade with a changed value rolls both replicas, and no report sent during the roll is refused', async () => {
    const before = new Set((await operatorPods()).map((p) => p.metadata?.name));
    const bound = await token(AGENT_NAMESPACE, 'harouter-reporter', await agentPod());
    const counts = { sent: 0, admitted: 0, refused: [] as string[] };
    let rolling = true;
    const sender = (async () => {
      while (rolling) {
        const answer = await report(
          bound,
          ROLL_ROUTER,
          node.name,
          counts.sent % 2 ? 'Primary' : 'Backup',
          new Date(),
        );
        counts.sent++;
        if (answer.status < 300) counts.admitted++;
        else counts.refused.push(`${answer.status} ${answer.body.slice(0, 300)}`);
      }
    })();
    const started = performance.now();
    try {
      await helmIn([
        'upgrade',
        RELEASE,
        chartDir,
        '--namespace',
        NAMESPACE,
        '--reuse-values',
        '--set',
        'admission.mode=both',
        '--set',
        'operator.logLevel=debug',
        '--wait',
        '--timeout',
        '5m',
      ]);
      await waitUntil('both replicas replaced and Ready', 120_000, async () => {
        const pods = await operatorPods();
        return pods.length === 2 && pods.every((p) => ready(p) && !before.has(p.metadata?.name));
      });
    } finally {
      rolling = false;
      await sender;
    }
    figure(
      `helm upgrade roll: ${Math.round((performance.now() - started) / 1000)} s, ${counts.sent} reports sent, ${counts.admitted} admitted, ${counts.refused.length} refused`,
    );
    expect(counts.refused).toEqual([]);
    expect(counts.sent).toBeGreaterThan(20);
    expect(counts.admitted).toBe(counts.sent);
  });

  it('killing the leader pod hands the Lease over to another replica', async () => {
    // After a roll the old leader has released the Lease; a new replica takes it at its next retry.
    let holder: string | undefined;
    await waitUntil('a Lease holder', 60_000, async () => {
      holder = await leaseHolder();
      return holder !== undefined && holder !== '';
    });
    const started = performance.now();
    await core.deleteNamespacedPod({ namespace: NAMESPACE, name: holder as string, gracePeriodSeconds: 0 });
    let next: string | undefined;
    await waitUntil('a new Lease holder', 60_000, async () => {
      next = await leaseHolder();
      return next !== undefined && next !== '' && next !== holder;
    });
    figure(
      `leader pod killed: Lease handed over in ${Math.round((performance.now() - started) / 100) / 10} s`,
    );
    expect((await operatorPods()).map((p) => p.metadata?.name)).toContain(next);
  });

  it('helm uninstall removes the webhook configuration and the policy while the operator still serves, and no report is refused', async () => {
    const deleted = new Map<string, number>();
    const watch = new Watch(admin);
    const watches = await Promise.all(
      [
        ['/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations', 'webhook'],
        ['/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies', 'policy'],
        [`/apis/apps/v1/namespaces/${NAMESPACE}/deployments`, 'deployment'],
        [`/api/v1/namespaces/${NAMESPACE}/pods`, 'operator pod'],
      ].map(([path, kind]) =>
        watch.watch(
          path as string,
          kind === 'operator pod' ? { labelSelector: 'app.kubernetes.io/component=operator' } : {},
          (type, object: { metadata?: { resourceVersion?: string } }) => {
            if (type === 'DELETED' && !deleted.has(kind as string))
              deleted.set(kind as string, Number(object.metadata?.resourceVersion));
          },
          () => {},
        ),
      ),
    );
    // Reports keep coming during the uninstall, as the old reporter would send them (admin: the
    // release's reporter account goes with it); none may be refused.
    const counts = { sent: 0, refused: [] as string[] };
    let sending = true;
    const bearer = await token(NAMESPACE, 'scraper');
    await admin.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: 'node-tier-writer' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin' },
        subjects: [{ kind: 'ServiceAccount', name: 'scraper', namespace: NAMESPACE }],
      },
    });
    const sender = (async () => {
      while (sending) {
        const answer = await report(bearer, ROLL_ROUTER, GHOST, 'Backup', new Date());
        counts.sent++;
        // The admission rules deny the scraper (no reporter) while they run, 403 from the webhook and
        // 422 from the policy; a refusal is a write that nobody judged (a webhook nobody answers).
        if (answer.status >= 500 || answer.body.includes('failed calling webhook'))
          counts.refused.push(`${answer.status} ${answer.body.slice(0, 300)}`);
      }
    })();
    try {
      await helmIn(['uninstall', RELEASE, '--namespace', NAMESPACE, '--wait', '--timeout', '5m']);
      await waitUntil('the deletions seen', 60_000, async () => deleted.size === 4);
    } finally {
      sending = false;
      await sender;
      for (const w of watches) w.abort();
    }
    figure(
      `helm uninstall: deletion revisions webhook ${deleted.get('webhook')}, policy ${deleted.get('policy')}, Deployment ${deleted.get('deployment')}, first operator pod gone ${deleted.get('operator pod')}; ${counts.sent} reports sent during it, ${counts.refused.length} refused`,
    );
    // One etcd: a deletion's resourceVersion is its revision, comparable across kinds.
    expect(deleted.get('webhook')).toBeLessThan(deleted.get('operator pod') as number);
    expect(deleted.get('policy')).toBeLessThan(deleted.get('operator pod') as number);
    expect(counts.refused).toEqual([]);
    const webhooks = await admin
      .makeApiClient(AdmissionregistrationV1Api)
      .listValidatingWebhookConfiguration();
    expect(webhooks.items.map((w) => w.metadata?.name)).not.toContain(FULLNAME);
    const after = await report(bearer, ROLL_ROUTER, GHOST, 'Primary', new Date());
    expect(after.status, after.body).toBeLessThan(300);
  });
});
