/**
 * The chaos run's cluster objects: namespaces, Nodes, the reporter, intruder
 * and operator service accounts with real TokenRequest tokens (pod-bound for
 * the reporters, one Pod per node), the contract's reporter RBAC, and the
 * admission objects (the operators' webhook configuration and the
 * ValidatingAdmissionPolicy with its parameters).
 */
import { base64File } from '../../src/local/controlplane/index.ts';
import { REPORTER_RULES } from '../../src/local/sample.ts';
import { DEFAULT_ADMISSION_CONFIG } from '../../src/webhook/config.ts';
import {
  admissionParamsConfigMap,
  validatingAdmissionPolicy,
  validatingAdmissionPolicyBinding,
  webhookConfiguration,
} from '../../src/webhook/manifests.ts';
import { type Answer, expectOk, type KubeHttp, waitFor } from './http.ts';

/** Where the identities live: the contract's defaults, so the operator runs with its default flags. */
export const SYSTEM_NAMESPACE = 'harouter-system';
export const REPORTER_SA = 'harouter-reporter';
export const INTRUDER_SA = 'intruder';
export const OPERATOR_SA = 'harouter-operator';
/** The namespace of the storm's routers. */
export const CHAOS_NAMESPACE = 'chaos';
/** One fuzz namespace per admission mode. */
export const FUZZ_NAMESPACES = { webhook: 'fuzz-webhook', policy: 'fuzz-policy', both: 'fuzz-both' } as const;

const apply = (admin: KubeHttp, path: string, object: unknown) =>
  admin
    .request(
      'PATCH',
      `${path}?fieldManager=harouter-chaos&force=true`,
      object,
      'application/apply-patch+yaml',
    )
    .then((a) => expectOk(`apply ${path}`, a));

/** Creates a namespace (idempotent). */
export async function createNamespace(admin: KubeHttp, name: string): Promise<void> {
  await apply(admin, `/api/v1/namespaces/${name}`, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name },
  });
}

/** Creates or updates a Node with a Ready condition (or not) and an InternalIP. */
export async function setNode(admin: KubeHttp, name: string, ready: boolean, ip: string): Promise<Answer> {
  const created = await admin.request('POST', '/api/v1/nodes', { metadata: { name } });
  expectOk(`create Node ${name}`, created, [409]);
  const now = `${new Date().toISOString().slice(0, 19)}Z`;
  return expectOk(
    `set Node ${name} ${ready ? 'Ready' : 'NotReady'}`,
    await admin.request(
      'PATCH',
      `/api/v1/nodes/${name}/status`,
      {
        status: {
          conditions: [
            {
              type: 'Ready',
              status: ready ? 'True' : 'False',
              reason: ready ? 'KubeletReady' : 'KubeletNotReady',
              message: 'set by the chaos run',
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
          addresses: [{ type: 'InternalIP', address: ip }],
        },
      },
      'application/merge-patch+json',
    ),
  );
}

/**
 * Mints a TokenRequest token for a service account (created when missing), bound
 * to a Pod on `node` when given (the token then carries the node name).
 */
export async function mintToken(
  admin: KubeHttp,
  namespace: string,
  serviceAccount: string,
  node?: string,
): Promise<string> {
  const sa = await admin.request('POST', `/api/v1/namespaces/${namespace}/serviceaccounts`, {
    metadata: { name: serviceAccount },
  });
  expectOk(`create ServiceAccount ${serviceAccount}`, sa, [409]);
  let boundObjectRef: Record<string, string> | undefined;
  if (node) {
    const podName = `${serviceAccount}-${node}`;
    let pod = await admin.request('GET', `/api/v1/namespaces/${namespace}/pods/${podName}`);
    if (pod.status === 404) {
      pod = await admin.request('POST', `/api/v1/namespaces/${namespace}/pods`, {
        metadata: { name: podName },
        spec: {
          serviceAccountName: serviceAccount,
          nodeName: node,
          automountServiceAccountToken: false,
          containers: [{ name: 'reporter', image: 'example.invalid/reporter:none' }],
        },
      });
    }
    expectOk(`Pod ${podName}`, pod);
    const uid = (pod.body.metadata as { uid: string }).uid;
    boundObjectRef = { apiVersion: 'v1', kind: 'Pod', name: podName, uid };
  }
  const answer = await admin.request(
    'POST',
    `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccount}/token`,
    {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenRequest',
      spec: { audiences: [], expirationSeconds: 86_400, ...(boundObjectRef ? { boundObjectRef } : {}) },
    },
  );
  const token = (expectOk(`TokenRequest for ${serviceAccount}`, answer).body.status as { token?: string })
    ?.token;
  if (!token) throw new Error(`TokenRequest for ${serviceAccount} returned no token`);
  return token;
}

/**
 * The contract's reporter RBAC (get, create, patch, update, delete on
 * harouterstates; get, list, watch on harouters; cluster-wide), bound to the reporter; the fuzzer binds the same
 * role to the intruder and the operator's account, so that admission alone
 * decides their requests.
 */
export async function installReporterRbac(admin: KubeHttp): Promise<void> {
  const rbac = '/apis/rbac.authorization.k8s.io/v1';
  await apply(admin, `${rbac}/clusterroles/harouter-chaos-reporter`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: 'harouter-chaos-reporter' },
    rules: REPORTER_RULES,
  });
  await apply(admin, `${rbac}/clusterrolebindings/harouter-chaos-reporter`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: 'harouter-chaos-reporter' },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'harouter-chaos-reporter' },
    subjects: [REPORTER_SA, INTRUDER_SA, OPERATOR_SA].map((name) => ({
      kind: 'ServiceAccount',
      name,
      namespace: SYSTEM_NAMESPACE,
    })),
  });
}

const ADMISSION = '/apis/admissionregistration.k8s.io/v1';
/** Name of the operators' webhook configuration. */
export const WEBHOOK_CONFIGURATION = 'harouter-chaos';

/** The webhook configuration: the operators' webhook (through the load balancer) for `namespaces`. */
export async function applyWebhookConfiguration(
  admin: KubeHttp,
  url: string,
  caBundle: string,
  namespaces: string[],
): Promise<void> {
  await apply(
    admin,
    `${ADMISSION}/validatingwebhookconfigurations/${WEBHOOK_CONFIGURATION}`,
    webhookConfiguration({
      name: WEBHOOK_CONFIGURATION,
      url,
      caBundle,
      namespaceSelector: {
        matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: namespaces }],
      },
    }),
  );
}

/** The caBundle of a CA certificate file. */
export const caBundleOf = (certPath: string) => base64File(certPath);

/** The ValidatingAdmissionPolicy, its parameters (the operator's defaults) and a binding for `namespaces`. */
export async function installPolicy(admin: KubeHttp, namespaces: string[]): Promise<void> {
  await apply(
    admin,
    `/api/v1/namespaces/${SYSTEM_NAMESPACE}/configmaps/harouter-admission`,
    admissionParamsConfigMap({ ...DEFAULT_ADMISSION_CONFIG }, SYSTEM_NAMESPACE),
  );
  const policy = validatingAdmissionPolicy();
  await apply(admin, `${ADMISSION}/validatingadmissionpolicies/${policy.metadata.name}`, policy);
  const binding = validatingAdmissionPolicyBinding({
    paramsNamespace: SYSTEM_NAMESPACE,
    namespaceSelector: {
      matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: namespaces }],
    },
  });
  await apply(admin, `${ADMISSION}/validatingadmissionpolicybindings/${binding.metadata.name}`, binding);
}

/**
 * Waits until admission guards `namespace`: a dry-run create by the admin is
 * refused by the Identity rule, and one by `reporter` on its node for a router
 * that lists it is allowed, three times in a row.
 */
export async function waitUntilGuarded(
  admin: KubeHttp,
  reporter: KubeHttp,
  namespace: string,
  report: (name: string) => Record<string, unknown>,
  timeoutMs: number,
): Promise<void> {
  let streak = 0;
  const path = `/apis/harouter.dev/v1alpha1/namespaces/${namespace}/harouterstates?dryRun=All`;
  let seen = '';
  try {
    await waitFor(
      `admission to guard HARouterState writes in ${namespace}`,
      async () => {
        const denied = await admin.request('POST', path, report('probe'));
        const allowed = await reporter.request('POST', path, report('probe'));
        seen = `admin ${denied.status} ${denied.body.message}; reporter ${allowed.status} ${allowed.body.message}`;
        const ok =
          denied.status === 403 && /Identity:/.test(denied.body.message ?? '') && allowed.status === 201;
        streak = ok ? streak + 1 : 0;
        return streak >= 3;
      },
      timeoutMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message} (last seen: ${seen})`);
  }
}
