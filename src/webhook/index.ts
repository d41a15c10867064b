/**
 * The admission webhook for HARouterStates.
 *
 * - `startWebhookServer({ bindAddress, certDir, config, routers, logger, metrics })` serves
 *   `POST /validate` over HTTPS and returns `{ port, reloadCertificate(), close() }`.
 * - `admit(request, config, nowMs, routers)` is the pure policy (Identity, NodeBinding,
 *   Shape with the reporter metadata limits, Clock, Membership; spec-unchanged writes and
 *   DELETE rules), usable without a server; `routers` gives a HARouter's agents.
 * - `webhookConfiguration({ url | service, caBundle })` is the ValidatingWebhookConfiguration;
 *   `validatingAdmissionPolicy()`, `validatingAdmissionPolicyBinding()` and
 *   `admissionParamsConfigMap()` are the same rules as a ValidatingAdmissionPolicy.
 */
export * from './config.ts';
export * from './manifests.ts';
export * from './metadata-limits.ts';
export * from './policy.ts';
export * from './review.ts';
export * from './server.ts';
