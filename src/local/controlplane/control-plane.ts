import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join, resolve } from 'node:path';
import { type Binaries, type BuildProgress, ensureBinaries, ensureNodeBinaries } from './binaries.ts';
import { base64File, createPki, type KeyPair, type Pki } from './pki.ts';
import { freePort, type ManagedProcess, startProcess, tailLog, waitUntil } from './process.ts';

/** A running local control plane: real etcd, kube-apiserver and kube-controller-manager. */
export interface ControlPlane {
  readonly dir: string;
  /** `https://127.0.0.1:<port>` (with `servesNode`: `https://<its address>:<port>`) */
  readonly server: string;
  /** Admin kubeconfig (client certificate in `system:masters`), credentials embedded. */
  readonly kubeconfigPath: string;
  readonly ca: KeyPair;
  readonly pki: Pki;
  readonly binaries: Binaries;
  /** etcd's client URL (`https://127.0.0.1:<port>`; client certificates only, see `etcdRequest`). */
  readonly etcdUrl: string;
  /** One JSON request to etcd's gRPC gateway with the client certificate (compaction in the chaos run). */
  etcdRequest(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }>;
  /**
   * Fault injection, for the chaos run (`test/chaos/`) only: sends `signal` to a
   * running component (SIGSTOP and SIGCONT freeze and thaw it).
   */
  signal(component: Component, signal: NodeJS.Signals): void;
  /**
   * Fault injection, for the chaos run only: SIGKILLs the component (when still
   * running) and starts it again with the same flags, data directory and ports;
   * resolves once it answers its health check again (etcd `/health`,
   * kube-apiserver `/readyz`).
   */
  restart(component: 'etcd' | 'kube-apiserver'): Promise<void>;
  /** Stops kube-scheduler (when it runs), kube-controller-manager, kube-apiserver and etcd, in that order. */
  stop(): Promise<void>;
}

/** The processes of a local control plane. */
export type Component = 'etcd' | 'kube-apiserver' | 'kube-controller-manager' | 'kube-scheduler';

/**
 * What a control plane needs to serve a real node (a kubelet running pods): the
 * node tier and `npm run local -- --node`. Every other user gets a control plane
 * for nodes that do not exist, which these settings would disturb (pods would get
 * tokens mounted, the node-lifecycle controller would mark fake Nodes NotReady).
 */
export interface NodeServing {
  /** An address of this machine that pods reach (on an interface of the caller's, not 127.0.0.1). */
  address: string;
  /** The Services' range; its first address is the `kubernetes` Service's. */
  serviceCidr: string;
  /** The pods' range (kube-controller-manager's `--cluster-cidr`). */
  podCidr: string;
}

/** Options of {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** Working directory; its previous content (data, PKI, logs) is replaced. */
  dir: string;
  /** Run kube-controller-manager's cheap controllers (default true). */
  controllerManager?: boolean;
  /** Fixed API server port (default: a free one). */
  apiServerPort?: number;
  /** Longest wait for each component to become ready (default 90 s). */
  readyTimeoutMs?: number;
  /** Where the binaries' build (first run on a machine) reports its progress (default: stderr). */
  buildProgress?: BuildProgress;
  /** Serve a real node (see {@link NodeServing}); default: nodes that are only objects. */
  servesNode?: NodeServing;
}

/** The first address of an IPv4 CIDR (`198.18.64.0/24` gives `198.18.64.1`): the `kubernetes` Service's. */
export function firstServiceIp(cidr: string): string {
  const [network] = cidr.split('/');
  const octets = (network ?? '').split('.').map(Number);
  if (octets.length !== 4 || octets.some((o) => !Number.isInteger(o) || o < 0 || o > 255))
    throw new Error(`not an IPv4 CIDR: ${cidr}`);
  const value =
    (((octets[0] ?? 0) << 24) | ((octets[1] ?? 0) << 16) | ((octets[2] ?? 0) << 8) | (octets[3] ?? 0)) + 1;
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join('.');
}

/**
 * kube-apiserver's flags that differ when it serves a real node. Pure. Pods reach it
 * on `address` through the `kubernetes` Service, whose endpoints the lease reconciler
 * keeps; the ServiceAccount admission plugin mounts their tokens (it is disabled for
 * object-only nodes, whose pods have no ServiceAccount to mount); it reaches the
 * kubelet (logs, exec) with the admin's client certificate on the node's InternalIP.
 */
export function apiServerNodeFlags(
  serving: NodeServing | undefined,
  kubeletClient: { certPath: string; keyPath: string },
): string[] {
  if (!serving)
    return [
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--disable-admission-plugins=ServiceAccount',
      '--endpoint-reconciler-type=none',
    ];
  return [
    `--bind-address=${serving.address}`,
    `--advertise-address=${serving.address}`,
    `--service-cluster-ip-range=${serving.serviceCidr}`,
    '--endpoint-reconciler-type=lease',
    `--kubelet-client-certificate=${kubeletClient.certPath}`,
    `--kubelet-client-key=${kubeletClient.keyPath}`,
    '--kubelet-preferred-address-types=InternalIP',
  ];
}

/**
 * The controllers kube-controller-manager runs here: namespaces really delete,
 * owned objects are garbage-collected, every namespace gets its `default`
 * ServiceAccount and `kube-root-ca.crt`, the aggregated roles get their rules, and
 * ResourceQuotas get the usage their admission checks (the chart's `reporter.quota`).
 * Left out on purpose: node-lifecycle (with no kubelet it would mark every Node
 * NotReady) and pod-garbage-collector (it deletes pods bound to absent nodes,
 * which would invalidate pod-bound tokens mid-test).
 */
export const CONTROLLERS = [
  'namespace-controller',
  'garbage-collector-controller',
  'serviceaccount-controller',
  'clusterrole-aggregation-controller',
  'root-ca-certificate-publisher-controller',
  'resourcequota-controller',
];

const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/**
 * Writes kube-apiserver's admission configuration: both webhook plugins get a
 * kubeconfig whose default user (`*`, every webhook host) is the API server's
 * client certificate for webhooks, so that a webhook may require it
 * (`--webhook-client-ca`); webhooks that ask for no certificate are unaffected.
 * Returns the path of the configuration file.
 */
export async function writeAdmissionConfig(dir: string, client: KeyPair): Promise<string> {
  const kubeconfigPath = join(dir, 'webhook-client.kubeconfig');
  await writeFile(
    kubeconfigPath,
    `${JSON.stringify(
      {
        apiVersion: 'v1',
        kind: 'Config',
        users: [
          {
            name: '*',
            user: {
              'client-certificate-data': await base64File(client.certPath),
              'client-key-data': await base64File(client.keyPath),
            },
          },
        ],
      },
      null,
      2,
    )}\n`,
    { mode: 0o600 },
  );
  await chmod(kubeconfigPath, 0o600);
  const webhookAdmission = {
    apiVersion: 'apiserver.config.k8s.io/v1',
    kind: 'WebhookAdmissionConfiguration',
    kubeConfigFile: kubeconfigPath,
  };
  const configPath = join(dir, 'admission-config.json');
  await writeFile(
    configPath,
    `${JSON.stringify(
      {
        apiVersion: 'apiserver.config.k8s.io/v1',
        kind: 'AdmissionConfiguration',
        plugins: ['ValidatingAdmissionWebhook', 'MutatingAdmissionWebhook'].map((name) => ({
          name,
          configuration: webhookAdmission,
        })),
      },
      null,
      2,
    )}\n`,
  );
  return configPath;
}

const LOCAL_ADDRESSES = '127.0.0.1,localhost,.svc,.cluster.local';

/**
 * The components' environment: a proxy set for the machine must never see the
 * control plane's own traffic (webhook calls to 127.0.0.1 or to `*.svc`).
 */
function componentEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of ['NO_PROXY', 'no_proxy'])
    env[name] = [env[name], LOCAL_ADDRESSES].filter(Boolean).join(',');
  return env;
}

/** A kubeconfig with its credentials embedded, for a user given by certificate or token. */
export async function writeKubeconfig(options: {
  path: string;
  server: string;
  caCertPath: string;
  user: { certPath: string; keyPath: string } | { token: string };
  namespace?: string;
  userName?: string;
}): Promise<void> {
  const user =
    'token' in options.user
      ? { token: options.user.token }
      : {
          'client-certificate-data': await base64File(options.user.certPath),
          'client-key-data': await base64File(options.user.keyPath),
        };
  const userName = options.userName ?? 'admin';
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: 'local',
        cluster: {
          server: options.server,
          'certificate-authority-data': await base64File(options.caCertPath),
        },
      },
    ],
    users: [{ name: userName, user }],
    contexts: [
      {
        name: 'local',
        context: {
          cluster: 'local',
          user: userName,
          ...(options.namespace ? { namespace: options.namespace } : {}),
        },
      },
    ],
    'current-context': 'local',
  };
  await writeFile(options.path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // `mode` applies only when the file is created: a file left by an earlier run keeps its own.
  await chmod(options.path, 0o600);
}

interface HttpsProbe {
  status: number;
  body: string;
}

function httpsGet(url: string, ca: Buffer, client?: { cert: Buffer; key: Buffer }): Promise<HttpsProbe> {
  return new Promise((resolveProbe, reject) => {
    const req = request(url, { ca, ...client, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        body += chunk;
      });
      res.on('end', () => resolveProbe({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Names the first of `processes` that has exited, for {@link waitUntil}'s `abort`. */
function firstExited(processes: ManagedProcess[]): () => string | undefined {
  return () => {
    const dead = processes.find((p) => p.exited() !== undefined);
    return dead ? `${dead.name} exited (${dead.exited()})` : undefined;
  };
}

/** One JSON request over TLS with a client certificate; never throws on an HTTP status. */
function jsonRequest(
  url: string,
  method: 'GET' | 'POST',
  body: unknown,
  tls: { ca: Buffer; cert: Buffer; key: Buffer },
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolveRequest, reject) => {
    const req = request(url, { method, ...tls, timeout: 5000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // not JSON: the text as it is
        }
        resolveRequest({ status: res.statusCode ?? 0, body: parsed });
      });
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/**
 * Starts a real control plane on free loopback ports: etcd (no fsync: the data is
 * throw-away), kube-apiserver with RBAC, service-account token issuing
 * (TokenRequest, pod-bound tokens carrying the node name), admission webhooks (the
 * API server presents its client certificate for webhooks, `pki.webhookClient`, to
 * every webhook) and ValidatingAdmissionPolicy, and kube-controller-manager's cheap
 * controllers.
 * Resolves once `/readyz` answers `ok`, the `default` namespace exists and (with
 * the controller manager) its `default` ServiceAccount has been created. When a
 * component fails to start, everything started is stopped and the error carries
 * the tail of every log.
 */
export async function startControlPlane(options: ControlPlaneOptions): Promise<ControlPlane> {
  const dir = resolve(options.dir);
  const timeout = options.readyTimeoutMs ?? 90_000;
  const binaries = await ensureBinaries(options.buildProgress);
  const serving = options.servesNode;
  const scheduler = serving ? (await ensureNodeBinaries(options.buildProgress)).kubeScheduler : undefined;
  for (const sub of ['etcd', 'pki', 'logs', 'apiserver-certs'])
    await rm(join(dir, sub), { recursive: true, force: true });
  await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  await mkdir(join(dir, 'etcd'), { recursive: true, mode: 0o700 });
  const pki = await createPki(
    join(dir, 'pki'),
    serving ? [firstServiceIp(serving.serviceCidr), serving.address] : undefined,
  );
  const admissionConfigPath = await writeAdmissionConfig(pki.dir, pki.webhookClient.client);
  const [etcdPort, peerPort] = [await freePort(), await freePort()];
  const apiPort = options.apiServerPort ?? (await freePort());
  const server = `https://${serving?.address ?? '127.0.0.1'}:${apiPort}`;
  const kubeconfigPath = join(dir, 'admin.kubeconfig');
  const processes: ManagedProcess[] = [];
  const stop = async () => {
    for (const p of [...processes].reverse()) await p.stop();
  };
  // TLS with client certificates from etcd's own CA, clients and peers alike: on plain HTTP any
  // local user could read and write the cluster's data, bypassing RBAC and admission.
  const etcdUrl = `https://127.0.0.1:${etcdPort}`;
  const peerUrl = `https://127.0.0.1:${peerPort}`;
  const etcdTls = pki.etcd;
  const etcdClient = {
    ca: await readFile(etcdTls.ca.certPath),
    cert: await readFile(etcdTls.client.certPath),
    key: await readFile(etcdTls.client.keyPath),
  };
  const etcdRequest = (method: 'GET' | 'POST', path: string, body?: unknown) =>
    jsonRequest(`${etcdUrl}${path}`, method, body, etcdClient);
  const startEtcd = () =>
    startProcess(
      'etcd',
      binaries.etcd,
      [
        '--name=default',
        `--data-dir=${join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
        `--cert-file=${etcdTls.server.certPath}`,
        `--key-file=${etcdTls.server.keyPath}`,
        `--trusted-ca-file=${etcdTls.ca.certPath}`,
        '--client-cert-auth=true',
        `--peer-cert-file=${etcdTls.server.certPath}`,
        `--peer-key-file=${etcdTls.server.keyPath}`,
        `--peer-trusted-ca-file=${etcdTls.ca.certPath}`,
        '--peer-client-cert-auth=true',
        '--unsafe-no-fsync=true',
        '--log-level=warn',
      ],
      join(dir, 'logs', 'etcd.log'),
      { env: componentEnv() },
    );
  const etcdHealthy = () =>
    waitUntil(
      'etcd /health',
      timeout,
      async () => {
        const res = await etcdRequest('GET', '/health');
        return res.status === 200 && (res.body as { health?: string }).health === 'true';
      },
      firstExited(processes),
    );
  const startApiServer = () =>
    startProcess(
      'kube-apiserver',
      binaries.kubeApiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        `--etcd-cafile=${etcdTls.ca.certPath}`,
        `--etcd-certfile=${etcdTls.client.certPath}`,
        `--etcd-keyfile=${etcdTls.client.keyPath}`,
        ...apiServerNodeFlags(serving, pki.admin),
        `--secure-port=${apiPort}`,
        `--cert-dir=${join(dir, 'apiserver-certs')}`,
        `--tls-cert-file=${pki.apiserver.certPath}`,
        `--tls-private-key-file=${pki.apiserver.keyPath}`,
        `--client-ca-file=${pki.ca.certPath}`,
        '--authorization-mode=Node,RBAC',
        `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
        `--service-account-key-file=${pki.serviceAccountKeyPath}`,
        `--service-account-signing-key-file=${pki.serviceAccountKeyPath}`,
        `--api-audiences=${SERVICE_ACCOUNT_ISSUER}`,
        '--allow-privileged=true',
        `--admission-control-config-file=${admissionConfigPath}`,
        '--profiling=false',
        '--v=1',
      ],
      join(dir, 'logs', 'kube-apiserver.log'),
      { env: componentEnv() },
    );
  const ca = await readFile(pki.ca.certPath);
  const admin = { cert: await readFile(pki.admin.certPath), key: await readFile(pki.admin.keyPath) };
  const apiServerReady = () =>
    waitUntil(
      'kube-apiserver /readyz',
      timeout,
      async () => {
        const probe = await httpsGet(`${server}/readyz`, ca);
        return probe.status === 200 && probe.body.trim() === 'ok';
      },
      firstExited(processes),
    );

  try {
    processes.push(startEtcd());
    await etcdHealthy();

    processes.push(startApiServer());
    await apiServerReady();
    await waitUntil(
      'the default namespace',
      timeout,
      async () => {
        return (await httpsGet(`${server}/api/v1/namespaces/default`, ca, admin)).status === 200;
      },
      firstExited(processes),
    );
    await writeKubeconfig({ path: kubeconfigPath, server, caCertPath: pki.ca.certPath, user: pki.admin });

    if (options.controllerManager ?? true) {
      processes.push(
        startProcess(
          'kube-controller-manager',
          binaries.kubeControllerManager,
          [
            `--kubeconfig=${kubeconfigPath}`,
            `--authentication-kubeconfig=${kubeconfigPath}`,
            `--authorization-kubeconfig=${kubeconfigPath}`,
            '--leader-elect=false',
            '--secure-port=0',
            '--use-service-account-credentials=true',
            `--service-account-private-key-file=${pki.serviceAccountKeyPath}`,
            `--root-ca-file=${pki.ca.certPath}`,
            // A real node gets every controller: Deployments, ReplicaSets, DaemonSets, EndpointSlices,
            // node lifecycle and pod garbage collection all act on its pods.
            ...(serving
              ? [
                  '--controllers=*',
                  `--cluster-cidr=${serving.podCidr}`,
                  `--service-cluster-ip-range=${serving.serviceCidr}`,
                ]
              : [`--controllers=${CONTROLLERS.join(',')}`]),
            // A ResourceQuota created before the quota controller watched its custom resource (it
            // rediscovers resources every 30 s) gets its usage at the next full sync: 10 s, not 5 min.
            '--resource-quota-sync-period=10s',
            '--v=1',
          ],
          join(dir, 'logs', 'kube-controller-manager.log'),
          { env: componentEnv() },
        ),
      );
      await waitUntil(
        'the default ServiceAccount (kube-controller-manager)',
        timeout,
        async () => {
          return (
            (await httpsGet(`${server}/api/v1/namespaces/default/serviceaccounts/default`, ca, admin))
              .status === 200
          );
        },
        firstExited(processes),
      );
    }
    if (scheduler) {
      processes.push(
        startProcess(
          'kube-scheduler',
          scheduler,
          [
            `--kubeconfig=${kubeconfigPath}`,
            `--authentication-kubeconfig=${kubeconfigPath}`,
            `--authorization-kubeconfig=${kubeconfigPath}`,
            '--leader-elect=false',
            '--secure-port=0',
            '--v=1',
          ],
          join(dir, 'logs', 'kube-scheduler.log'),
          { env: componentEnv() },
        ),
      );
    }
  } catch (error) {
    await stop();
    const logs = await Promise.all(
      processes.map(async (p) => `--- ${p.name} (${p.logPath}) ---\n${await tailLog(p.logPath)}`),
    );
    throw new Error(`the local control plane did not start: ${(error as Error).message}\n${logs.join('\n')}`);
  }

  const find = (component: Component) => {
    const found = processes.find((p) => p.name === component);
    if (!found) throw new Error(`${component} is not part of this control plane`);
    return found;
  };
  const restart = async (component: 'etcd' | 'kube-apiserver') => {
    const old = find(component);
    old.signal('SIGKILL');
    await old.done;
    await old.stop();
    const next = component === 'etcd' ? startEtcd() : startApiServer();
    processes[processes.indexOf(old)] = next;
    await (component === 'etcd' ? etcdHealthy() : apiServerReady());
  };
  return {
    dir,
    server,
    kubeconfigPath,
    ca: pki.ca,
    pki,
    binaries,
    etcdUrl,
    etcdRequest,
    signal: (component, signal) => find(component).signal(signal),
    restart,
    stop,
  };
}
