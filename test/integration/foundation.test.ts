import { AuthenticationV1Api, CoreV1Api, RbacAuthorizationV1Api, VersionApi } from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  adminKubeConfig,
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
