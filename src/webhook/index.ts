/**
 * The admission webhook for HARouterStates.
 *
 * - `startWebhookServer({ bindAddress, certDir, config, logger, metrics })` serves
 *   `POST /validate` over HTTPS and returns `{ port, reloadCertificate(), close() }`.
 * - `admit(request, config, nowMs)` is the pure policy (Identity, NodeBinding, Shape,
 *   Clock; DELETE rules), usable without a server.
 * - `webhookConfiguration({ url | service, caBundle })` is the ValidatingWebhookConfiguration;
 *   `validatingAdmissionPolicy()`, `validatingAdmissionPolicyBinding()` and
 *   `admissionParamsConfigMap()` are the same rules as a ValidatingAdmissionPolicy.
 */
export * from './config.ts';
export * from './manifests.ts';
export * from './policy.ts';
export * from './review.ts';
export * from './server.ts';
