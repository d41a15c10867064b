import { describe, expect, it } from 'vitest';
import { CLEANUP_USERNAMES, DEFAULT_ADMISSION_CONFIG } from '../../src/webhook/config.ts';
import {
  admissionParamsConfigMap,
  EXCLUDE_CLEANUP_CONDITION,
  validatingAdmissionPolicy,
  validatingAdmissionPolicyBinding,
  webhookConfiguration,
} from '../../src/webhook/manifests.ts';
import { MESSAGES } from '../../src/webhook/policy.ts';

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
    expect(webhook?.matchConditions).toEqual([EXCLUDE_CLEANUP_CONDITION]);
    expect(validatingAdmissionPolicy().spec.matchConditions).toEqual([EXCLUDE_CLEANUP_CONDITION]);
    for (const user of CLEANUP_USERNAMES) expect(EXCLUDE_CLEANUP_CONDITION.expression).toContain(`'${user}'`);
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
