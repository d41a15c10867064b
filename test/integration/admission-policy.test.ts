/**
 * The shared admission table against the real API server with the
 * ValidatingAdmissionPolicy (the chart's policy mode): the policy, binding and
 * parameter ConfigMap from src/webhook/manifests.ts, the same objects the chart's
 * files/policy/*.yaml hold. Same cases, same answers as the webhook, except the
 * clock rule (CEL has no clock), which the table marks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  admissionParamsConfigMap,
  POLICY_PARAMS_NAME,
  validatingAdmissionPolicy,
  validatingAdmissionPolicyBinding,
} from '../../src/webhook/manifests.ts';
import {
  ADMISSION_CASES,
  applyObject,
  type ClusterFixture,
  collectionPath,
  intruderCreate,
  kubeRequest,
  NODE_A,
  onlyNamespaces,
  report,
  runClusterCase,
  setUpAdmissionCluster,
  waitFor,
  waitUntilIntercepting,
} from '../support/admission-cases.ts';

let fx: ClusterFixture;
let policyName = '';
const ADMISSION = '/apis/admissionregistration.k8s.io/v1';

async function setParams(config: ClusterFixture['config']) {
  await applyObject(
    fx.admin,
    `/api/v1/namespaces/${fx.namespace}/configmaps/${POLICY_PARAMS_NAME}`,
    admissionParamsConfigMap(config, fx.namespace),
  );
}

beforeAll(async () => {
  fx = await setUpAdmissionCluster('adm-policy');
  policyName = `harouter-admission-${fx.namespace}`;
  await setParams(fx.config);
  await applyObject(
    fx.admin,
    `${ADMISSION}/validatingadmissionpolicies/${policyName}`,
    validatingAdmissionPolicy(policyName),
  );
  await applyObject(
    fx.admin,
    `${ADMISSION}/validatingadmissionpolicybindings/${policyName}`,
    validatingAdmissionPolicyBinding({
      name: policyName,
      policyName,
      paramsNamespace: fx.namespace,
      namespaceSelector: onlyNamespaces(fx.namespace),
    }),
  );
  await waitUntilIntercepting(fx);
});

afterAll(async () => {
  if (!policyName) return;
  await kubeRequest(fx.admin, 'DELETE', `${ADMISSION}/validatingadmissionpolicybindings/${policyName}`);
  await kubeRequest(fx.admin, 'DELETE', `${ADMISSION}/validatingadmissionpolicies/${policyName}`);
});

describe('admission table, policy mode', () => {
  it.each(ADMISSION_CASES)('$name', async (c) => {
    const outcome = await runClusterCase(fx, c);
    const expected = c.policyExpect?.allowed ?? c.expect.allowed;
    expect(outcome.allowed, `${outcome.status} ${outcome.message}`).toBe(expected);
    if (!expected) expect(outcome.message).toMatch(c.expect.message ?? /./);
  });

  it('a denial names the policy and the rule', async () => {
    const res = await intruderCreate(fx);
    expect(res.status).toBe(403);
    expect(res.body.message).toMatch(
      /ValidatingAdmissionPolicy '.*' with binding '.*' denied request: Identity: /,
    );
  });

  it('the cluster admin is allowed once configured (allowedGroups), through the parameters', async () => {
    await setParams({ ...fx.config, allowedGroups: ['system:masters'] });
    await waitFor('the new parameters to apply', async () => {
      const res = await kubeRequest(
        fx.admin,
        'POST',
        `${collectionPath(fx.namespace)}?dryRun=All`,
        report(crypto.randomUUID(), NODE_A),
      );
      return res.status === 201 ? true : undefined;
    });
    await setParams(fx.config);
    await waitUntilIntercepting(fx);
  });
});
