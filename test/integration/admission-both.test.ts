/**
 * The chart's `admission.mode: both`: the webhook and the policy on the same
 * writes. The shared table must give the webhook's answers (the policy runs first
 * and words each rule the same way; the webhook adds the clock rule).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ADMISSION_CASES,
  type ClusterFixture,
  installTestPolicy,
  installTestWebhook,
  runClusterCase,
  setUpAdmissionCluster,
  type TestWebhook,
  waitUntilIntercepting,
} from '../support/admission-cases.ts';

let fx: ClusterFixture;
let webhook: TestWebhook | undefined;
let policy: Awaited<ReturnType<typeof installTestPolicy>> | undefined;

beforeAll(async () => {
  fx = await setUpAdmissionCluster('adm-both');
  webhook = await installTestWebhook(fx);
  policy = await installTestPolicy(fx);
  // The policy runs before webhooks: wait until it is the one answering, with its parameters loaded.
  await waitUntilIntercepting(fx, { source: /ValidatingAdmissionPolicy/ });
});

afterAll(async () => {
  await policy?.uninstall();
  await webhook?.uninstall();
});

describe('admission table, both modes at once', () => {
  it.each(ADMISSION_CASES)('$name', async (c) => {
    const outcome = await runClusterCase(fx, c);
    expect(outcome.allowed, `${outcome.status} ${outcome.message}`).toBe(c.expect.allowed);
    if (!c.expect.allowed) expect(outcome.message).toMatch(c.expect.message ?? /./);
  });
});
