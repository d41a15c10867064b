import { randomBytes } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { inject } from 'vitest';
import { base64File, issueServingCert } from '../../src/local/controlplane/index.ts';

/** Paths of the run's control plane, as the global setup provided them. */
export function controlPlaneInfo() {
  return inject('controlPlane');
}

/** A KubeConfig for the admin (`system:masters`) of the run's control plane. */
export function adminKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(controlPlaneInfo().kubeconfigPath);
  return kc;
}

/** A KubeConfig that authenticates with a bearer token against the run's control plane. */
export function kubeConfigForToken(token: string, namespace?: string, userName = 'token-user'): KubeConfig {
  const admin = adminKubeConfig();
  const cluster = admin.getCurrentCluster();
  if (!cluster) throw new Error('admin kubeconfig has no cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: userName, token }],
    contexts: [{ name: 'ctx', cluster: cluster.name, user: userName, ...(namespace ? { namespace } : {}) }],
    currentContext: 'ctx',
  });
  return kc;
}

/** Creates a namespace with a unique name for one test file and returns its name. */
export async function createTestNamespace(prefix = 'test'): Promise<string> {
  const name = `${prefix}-${randomBytes(4).toString('hex')}`.slice(0, 63);
  await adminKubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name } } });
  return name;
}

/** Options of {@link mintServiceAccountToken}. */
export interface TokenOptions {
  namespace: string;
  serviceAccount: string;
  /** Bind the token to this Pod, created on `nodeName` when missing: the token then carries the node. */
  pod?: { name: string; nodeName: string };
  expirationSeconds?: number;
}

function isNotFound(error: unknown): boolean {
  return (error as { code?: number }).code === 404;
}

function isConflict(error: unknown): boolean {
  return (error as { code?: number }).code === 409;
}

/**
 * Mints a real service-account token through TokenRequest, creating the
 * ServiceAccount (and the Pod, for a pod-bound token) when missing. A pod-bound
 * token's identity carries `extra["authentication.kubernetes.io/node-name"]`.
 */
export async function mintServiceAccountToken(options: TokenOptions): Promise<string> {
  const core = adminKubeConfig().makeApiClient(CoreV1Api);
  const { namespace, serviceAccount } = options;
  try {
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: serviceAccount } } });
  } catch (error) {
    if (!isConflict(error)) throw error;
  }
  let boundObjectRef: { apiVersion: string; kind: string; name: string; uid?: string } | undefined;
  if (options.pod) {
    let pod: Awaited<ReturnType<CoreV1Api['readNamespacedPod']>>;
    try {
      pod = await core.readNamespacedPod({ namespace, name: options.pod.name });
    } catch (error) {
      if (!isNotFound(error)) throw error;
      pod = await core.createNamespacedPod({
        namespace,
        body: {
          metadata: { name: options.pod.name },
          spec: {
            serviceAccountName: serviceAccount,
            nodeName: options.pod.nodeName,
            automountServiceAccountToken: false,
            containers: [{ name: 'reporter', image: 'example.invalid/reporter:none' }],
          },
        },
      });
    }
    boundObjectRef = { apiVersion: 'v1', kind: 'Pod', name: options.pod.name, uid: pod.metadata?.uid };
  }
  const response = await core.createNamespacedServiceAccountToken({
    namespace,
    name: serviceAccount,
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: [],
        expirationSeconds: options.expirationSeconds ?? 3600,
        ...(boundObjectRef ? { boundObjectRef } : {}),
      },
    },
  });
  const token = response.status?.token;
  if (!token) throw new Error('TokenRequest returned no token');
  return token;
}

/**
 * Issues a serving certificate for 127.0.0.1/localhost signed by the run's CA,
 * so that the API server trusts a webhook the test serves in-process. Returns the
 * paths and the CA bundle (base64) for the webhook configuration.
 */
export async function issueTestServingCert(dir: string) {
  const info = controlPlaneInfo();
  const pair = await issueServingCert({ ca: { certPath: info.caCertPath, keyPath: info.caKeyPath }, dir });
  return { ...pair, caBundle: await base64File(info.caCertPath) };
}
