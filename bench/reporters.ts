/**
 * The storm's reporters as a cluster has them: one reporter Pod bound to each
 * benchmark Node, under the reporter service account, and a pod-bound token of
 * each minted through TokenRequest, so that every report the benchmark writes
 * carries its node's identity through RBAC and admission, as `harouterctl agent`
 * does on that node. The Pods never run (there is no kubelet).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { kubeConfigConnection } from '../src/kube/kubeconfig.ts';
import { ApiTransport, type RawRequester } from '../src/kube/transport.ts';
import { REPORTER_SERVICE_ACCOUNT, SYSTEM_NAMESPACE } from '../src/local/sample.ts';

/** A reporter's transport: its own kept-alive connections and in-flight bound. */
export interface Reporter {
  node: string;
  transport: ApiTransport;
}

/** Creates a reporter Pod on `node` and returns a token bound to it (valid a day). */
export async function mintNodeToken(admin: RawRequester, node: string): Promise<string> {
  const name = `bench-reporter-${node}`;
  const pod = (await admin({
    method: 'POST',
    path: `/api/v1/namespaces/${SYSTEM_NAMESPACE}/pods`,
    body: {
      metadata: { name },
      spec: {
        nodeName: node,
        serviceAccountName: REPORTER_SERVICE_ACCOUNT,
        automountServiceAccountToken: false,
        containers: [{ name: 'reporter', image: 'example.invalid/harouter-reporter:bench' }],
      },
    },
  })) as { metadata: { uid: string } };
  const request = (await admin({
    method: 'POST',
    path: `/api/v1/namespaces/${SYSTEM_NAMESPACE}/serviceaccounts/${REPORTER_SERVICE_ACCOUNT}/token`,
    body: {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: {
        audiences: [],
        expirationSeconds: 86_400,
        boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name, uid: pod.metadata.uid },
      },
    },
  })) as { status: { token: string } };
  return request.status.token;
}

/** Deletes the reporter Pod of `node` (its tokens stop working). */
export async function deleteNodeReporter(admin: RawRequester, node: string): Promise<void> {
  await admin({
    method: 'DELETE',
    path: `/api/v1/namespaces/${SYSTEM_NAMESPACE}/pods/bench-reporter-${node}`,
  }).catch(() => undefined);
}

/** A transport that speaks to `adminConfig`'s API server with `token` and at most `maxInFlight` requests. */
export function tokenTransport(adminConfig: KubeConfig, token: string, maxInFlight: number): ApiTransport {
  const cluster = adminConfig.getCurrentCluster();
  if (!cluster) throw new Error('the admin kubeconfig has no cluster');
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [cluster],
    users: [{ name: 'reporter', token }],
    contexts: [{ name: 'reporter', cluster: cluster.name, user: 'reporter' }],
    currentContext: 'reporter',
  });
  return new ApiTransport(kubeConfigConnection(kc), { maxInFlight, qps: 0 });
}
