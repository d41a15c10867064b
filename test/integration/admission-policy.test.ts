/**
 * The shared admission table against the real API server with the
 * ValidatingAdmissionPolicy (the chart's policy mode): the policy, binding and
 * parameter ConfigMap from src/webhook/manifests.ts, the same objects the chart's
 * files/policy/*.yaml hold. Same cases, same answers as the webhook, except the
 * clock rule (CEL has no clock), which the table marks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMISSION_CASES,
  type ClusterFixture,
  collectionPath,
  installTestPolicy,
  intruderCreate,
  kubeRequest,
  NODE_A,
  report,
  runClusterCase,
  setUpAdmissionCluster,
  waitFor,
  waitUntilIntercepting,
} from '../support/admission-cases.ts';

let fx: ClusterFixture;
let policy: Awaited<ReturnType<typeof installTestPolicy>> | undefined;

beforeAll(async () => {
  fx = await setUpAdmissionCluster('adm-policy');
  policy = await installTestPolicy(fx);
  await waitUntilIntercepting(fx);
});

afterAll(async () => {
  await policy?.uninstall();
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
    await policy?.setParams({ ...fx.config, allowedGroups: ['system:masters'] });
    await waitFor('the new parameters to apply', async () => {
      const res = await kubeRequest(
        fx.admin,
        'POST',
        `${collectionPath(fx.namespace)}?dryRun=All`,
        report(crypto.randomUUID(), NODE_A),
      );
      return res.status === 201 ? true : undefined;
    });
    await policy?.setParams(fx.config);
    await waitUntilIntercepting(fx);
  });
});
