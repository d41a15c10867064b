import { evaluate } from '@marcbachmann/cel-js';
import { describe, expect, it } from 'vitest';
import { DEFAULT_ADMISSION_CONFIG } from '../../src/webhook/config.ts';
import {
  admissionParamsConfigMap,
  EXCLUDE_CLEANUP_CONDITION,
  validatingAdmissionPolicy,
  validatingAdmissionPolicyBinding,
  webhookConfiguration,
} from '../../src/webhook/manifests.ts';
import { MESSAGES } from '../../src/webhook/policy.ts';

/**
 * Whether a request goes through admission under `conditions`, as the API server decides: every
 * matchCondition's CEL expression, evaluated on the request, must be true.
 */
function admits(
  conditions: readonly { expression: string }[],
  username: string,
  operation: 'CREATE' | 'UPDATE' | 'DELETE',
  specChanged: boolean,
): boolean {
  const stored = { apiVersion: 'harouter.dev/v1alpha1', kind: 'HARouterState', spec: { state: 'Backup' } };
  const sent = { ...stored, spec: { state: specChanged ? 'Primary' : 'Backup' } };
  const context = {
    request: { operation, userInfo: { username, groups: ['system:authenticated'] } },
    object: operation === 'DELETE' ? null : sent,
    oldObject: operation === 'CREATE' ? null : stored,
  };
  return conditions.every((c) => {
    const result = evaluate(c.expression, context);
    if (typeof result !== 'boolean') throw new Error(`matchCondition ${c.expression} gave ${String(result)}`);
    return result;
  });
}

/** Kubernetes' cleanup identities, as the contract (API.md, "Who may report") names them. */
const CONTRACT_CLEANUP = [
  'system:serviceaccount:kube-system:namespace-controller',
  'system:serviceaccount:kube-system:generic-garbage-collector',
  'system:kube-controller-manager',
];

/** What the contract exempts the cleanup identities from: deletes and updates that leave spec alone. */
const CLEANUP_SKIPS = CONTRACT_CLEANUP.flatMap((username) => [
  { username, operation: 'DELETE' as const, specChanged: false },
  { username, operation: 'UPDATE' as const, specChanged: false },
]);

/** Identities that must always go through admission, near misses of the cleanup names included. */
const NOT_CLEANUP = [
  'system:serviceaccount:harouter-system:harouter-reporter',
  'system:serviceaccount:harouter-system:harouter-operator',
  'kubernetes-admin',
  '',
  'system:serviceaccount:default:namespace-controller',
  'system:serviceaccount:kube-system:namespace-controller-x',
  'system:serviceaccount:kube-system:generic-garbage',
  'System:kube-controller-manager',
  'system:kube-controller-manager ',
];

describe('webhookConfiguration', () => {
  const config = webhookConfiguration({ url: 'https://127.0.0.1:9443/validate', caBundle: 'Q0E=' });
  const webhook = config.webhooks[0];

  it('fails closed, has no side effects, a short timeout and Equivalent matching', () => {
    expect(webhook).toMatchObject({
      name: 'harouterstates.harouter.dev',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      failurePolicy: 'Fail',
      matchPolicy: 'Equivalent',
      timeoutSeconds: 5,
      clientConfig: { url: 'https://127.0.0.1:9443/validate', caBundle: 'Q0E=' },
    });
  });

  it('guards harouterstates (not the status subresource) on CREATE, UPDATE and DELETE', () => {
    expect(webhook?.rules).toEqual([
      {
        apiGroups: ['harouter.dev'],
        apiVersions: ['v1alpha1'],
        resources: ['harouterstates'],
        operations: ['CREATE', 'UPDATE', 'DELETE'],
        scope: 'Namespaced',
      },
    ]);
  });

  it('excludes the cleanup identities, like the policy', () => {
    const policy = validatingAdmissionPolicy();
    for (const [owner, conditions] of [
      ['webhook', webhook?.matchConditions ?? []],
      ['policy', policy.spec.matchConditions],
    ] as const) {
      expect(conditions.map((c) => c.name)).toEqual([EXCLUDE_CLEANUP_CONDITION.name]);
      for (const { username, operation, specChanged } of CLEANUP_SKIPS) {
        const what = `${owner}: ${username} ${operation}${operation === 'UPDATE' ? ' (spec unchanged)' : ''}`;
        expect(admits(conditions, username, operation, specChanged), what).toBe(false);
      }
      for (const username of NOT_CLEANUP) {
        for (const operation of ['CREATE', 'UPDATE', 'DELETE'] as const) {
          expect(admits(conditions, username, operation, true), `${owner}: ${username} ${operation}`).toBe(
            true,
          );
        }
      }
    }
  });

  it('takes a Service instead of a URL, and exactly one of them', () => {
    const svc = webhookConfiguration({ service: { namespace: 'ns', name: 'op-webhook' }, caBundle: 'Q0E=' });
    expect(svc.webhooks[0]?.clientConfig).toEqual({
      service: { namespace: 'ns', name: 'op-webhook', path: '/validate', port: 443 },
      caBundle: 'Q0E=',
    });
    expect(() => webhookConfiguration({ caBundle: '' })).toThrow();
  });
});

describe('ValidatingAdmissionPolicy', () => {
  const policy = validatingAdmissionPolicy();

  it('fails closed and takes its parameters from a ConfigMap', () => {
    expect(policy.spec.failurePolicy).toBe('Fail');
    expect(policy.spec.paramKind).toEqual({ apiVersion: 'v1', kind: 'ConfigMap' });
    const binding = validatingAdmissionPolicyBinding();
    expect(binding.spec.paramRef).toMatchObject({
      name: 'harouter-admission',
      parameterNotFoundAction: 'Deny',
    });
    expect(binding.spec.validationActions).toEqual(['Deny']);
  });

  it('words each rule as the webhook does, in the same order', () => {
    const messages = policy.spec.validations.map((v) => v.message);
    const order = [
      MESSAGES.identity,
      MESSAGES.nodeBindingRequired,
      MESSAGES.immutable('routerId'),
      MESSAGES.immutable('agent'),
      MESSAGES.delete,
    ].map((m) => messages.indexOf(m));
    expect(order.every((i) => i >= 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(messages[0]).toBe(MESSAGES.identity);
  });

  it('parameters hold the configuration as comma-separated lists', () => {
    expect(admissionParamsConfigMap(DEFAULT_ADMISSION_CONFIG).data).toEqual({
      reporterServiceAccounts: 'harouter-system/harouter-reporter',
      allowedUsers: '',
      allowedGroups: '',
      operatorServiceAccount: 'harouter-system/harouter-operator',
      requireNodeBinding: 'true',
    });
  });
});
