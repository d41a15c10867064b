import { readFile } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { get as httpsGet, type RequestOptions } from 'node:https';
import { AuthenticationV1Api, CoreV1Api, RbacAuthorizationV1Api, VersionApi } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adminKubeConfig,
  controlPlaneInfo,
  createTestNamespace,
  kubeConfigForToken,
  mintServiceAccountToken,
} from '../support/index.ts';

describe('the local control plane', () => {
  let namespace: string;

  beforeAll(async () => {
    namespace = await createTestNamespace('foundation');
  });

  it('is a real kube-apiserver of the built version', async () => {
    const version = await adminKubeConfig().makeApiClient(VersionApi).getCode();
    expect(version.gitVersion).toBe('v1.36.3');
  });

  it('creates a namespace and a service account', async () => {
    const core = adminKubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespacedServiceAccount({ namespace, body: { metadata: { name: 'probe' } } });
    const sa = await core.readNamespacedServiceAccount({ namespace, name: 'probe' });
    expect(sa.metadata?.namespace).toBe(namespace);
  });

  it('denies a TokenRequest-issued token by RBAC until a RoleBinding allows it', async () => {
    const token = await mintServiceAccountToken({ namespace, serviceAccount: 'reader' });
    const asReader = kubeConfigForToken(token, namespace).makeApiClient(CoreV1Api);
    await expect(asReader.listNamespacedConfigMap({ namespace })).rejects.toMatchObject({ code: 403 });

    const rbac = adminKubeConfig().makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace,
      body: {
        metadata: { name: 'configmap-reader' },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['list'] }],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'reader' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'configmap-reader' },
        subjects: [{ kind: 'ServiceAccount', name: 'reader', namespace }],
      },
    });
    await expect
      .poll(async () => {
        try {
          await asReader.listNamespacedConfigMap({ namespace });
          return 'allowed';
        } catch (error) {
          return `denied ${(error as { code?: number }).code}`;
        }
      })
      .toBe('allowed');
  });

  it('gives a pod-bound token the node name in its identity', async () => {
    const token = await mintServiceAccountToken({
      namespace,
      serviceAccount: 'agent',
      pod: { name: 'agent-on-node-a', nodeName: 'node-a' },
    });
    const review = await kubeConfigForToken(token)
      .makeApiClient(AuthenticationV1Api)
      .createSelfSubjectReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
      });
    const user = review.status?.userInfo;
    expect(user?.username).toBe(`system:serviceaccount:${namespace}:agent`);
    expect(user?.extra?.['authentication.kubernetes.io/node-name']).toEqual(['node-a']);
    expect(user?.extra?.['authentication.kubernetes.io/pod-name']).toEqual(['agent-on-node-a']);
  });

  it('runs kube-controller-manager: namespaces get their default service account', async () => {
    const core = adminKubeConfig().makeApiClient(CoreV1Api);
    await expect
      .poll(
        async () => {
          try {
            return (await core.readNamespacedServiceAccount({ namespace, name: 'default' })).metadata?.name;
          } catch {
            return undefined;
          }
        },
        { timeout: 20_000 },
      )
      .toBe('default');
  });
});

/** etcd's `/health` answer: the HTTP status, or the error code when no HTTP exchange happened. */
function etcdHealth(url: string, tls: RequestOptions = {}): Promise<number | string> {
  return new Promise((resolve) => {
    const get = url.startsWith('https:') ? httpsGet : httpGet;
    const req = get(`${url}/health`, { ...tls, timeout: 10_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe("the local control plane's etcd", () => {
  it('answers only clients with a certificate from its own CA, and only over TLS', async () => {
    const { etcdUrl, etcdPki, caCertPath, kubeconfigPath } = controlPlaneInfo();
    const ca = await readFile(etcdPki.caCertPath);
    const client = {
      cert: await readFile(etcdPki.clientCertPath),
      key: await readFile(etcdPki.clientKeyPath),
    };
    expect(await etcdHealth(etcdUrl, { ca, ...client })).toBe(200);

    const noCertificate = await etcdHealth(etcdUrl, { ca });
    expect(typeof noCertificate, `no client certificate: ${noCertificate}`).toBe('string');

    // The cluster admin's client certificate is valid for kube-apiserver, not for etcd (another CA).
    const admin = adminKubeConfig().getCurrentUser();
    expect(admin?.certData, `${kubeconfigPath} has the admin's certificate`).toBeTruthy();
    expect(await readFile(caCertPath)).not.toEqual(ca);
    const otherCa = await etcdHealth(etcdUrl, {
      ca,
      cert: Buffer.from(admin?.certData ?? '', 'base64'),
      key: Buffer.from(admin?.keyData ?? '', 'base64'),
    });
    expect(typeof otherCa, `the Kubernetes CA's client certificate: ${otherCa}`).toBe('string');

    const plain = await etcdHealth(etcdUrl.replace(/^https:/, 'http:'));
    expect(typeof plain, `plain HTTP: ${plain}`).toBe('string');
  });
});
