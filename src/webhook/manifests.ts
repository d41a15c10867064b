/**
 * The admission objects installed in a cluster, defined once in code: the
 * ValidatingWebhookConfiguration (used by local mode and tests; the chart
 * templates the same shape), and the ValidatingAdmissionPolicy, its binding and
 * its parameter ConfigMap (written as YAML to `charts/harouter-operator/files/policy/`
 * by `npm run generate:crds`). The policy's CEL expresses the webhook's rules, in
 * the same order and with the same messages, except the clock and membership rules (CEL has
 * no clock and cannot look up other objects).
 */
import { GROUP, HAROUTER_STATE, STALE_REPORT_MESSAGE, VERSION } from '../api/index.ts';
import {
  AGENT_MAX_LENGTH,
  DNS_SUBDOMAIN_PATTERN,
  FORBIDDEN_TEXT_CLASS,
  MESSAGE_MAX_CODE_POINTS,
  UUID_PATTERN,
} from '../api/validation.ts';
import { type AdmissionConfig, CLEANUP_USERNAMES } from './config.ts';
import { REPORTER_METADATA_LIMITS } from './metadata-limits.ts';
import { MESSAGES } from './policy.ts';

/** Name of the webhook inside the configuration (shown in denials: `admission webhook "<name>" denied`). */
export const WEBHOOK_NAME = `${HAROUTER_STATE.plural}.${GROUP}`;
/** Path the operator serves the webhook on. */
export const WEBHOOK_PATH = '/validate';
/** Name of the ValidatingAdmissionPolicy and of its binding. */
export const POLICY_NAME = `harouter-admission.${GROUP}`;
/** Name of the parameter ConfigMap, in the operator's namespace. */
export const POLICY_PARAMS_NAME = 'harouter-admission';
/** The namespace the static binding YAML names; the chart replaces it with the release namespace. */
export const DEFAULT_OPERATOR_NAMESPACE = 'harouter-system';

const celList = (items: readonly string[]) => `[${items.map((i) => `'${i}'`).join(', ')}]`;

/** CEL: the request is an UPDATE that leaves `spec` as it was (not a report: RBAC decides). */
const SPEC_UNCHANGED =
  "request.operation == 'UPDATE' && has(object.spec) && has(oldObject.spec) && object.spec == oldObject.spec";

/**
 * The matchCondition shared by the webhook and the policy: Kubernetes' cleanup
 * (namespace deletion, garbage collection) never waits for admission when it
 * deletes a report or updates its metadata; a change of `spec` by the same
 * identities is judged like anyone else's.
 */
export const EXCLUDE_CLEANUP_CONDITION = {
  name: 'exclude-kubernetes-cleanup',
  expression:
    `!(request.userInfo.username in ${celList(CLEANUP_USERNAMES)} && ` +
    `(request.operation == 'DELETE' || (${SPEC_UNCHANGED})))`,
} as const;

/** CEL: a string map (labels, annotations) within the reporter limits. */
const celMapWithin = (field: 'labels' | 'annotations', max: number) =>
  `(!has(object.metadata.${field}) || (size(object.metadata.${field}) <= ${max} && ` +
  `object.metadata.${field}.all(k, size(bytes(k)) + size(bytes(object.metadata.${field}[k])) <= ` +
  `${REPORTER_METADATA_LIMITS.entryBytes})))`;

/** CEL: the reporter metadata limits of `metadata-limits.ts`. */
const METADATA_WITHIN_LIMITS = [
  '(!has(object.metadata.finalizers) || size(object.metadata.finalizers) == 0)',
  '(!has(object.metadata.ownerReferences) || size(object.metadata.ownerReferences) == 0)',
  celMapWithin('labels', REPORTER_METADATA_LIMITS.labels),
  celMapWithin('annotations', REPORTER_METADATA_LIMITS.annotations),
].join(' && ');

const RULE = {
  apiGroups: [GROUP],
  apiVersions: [VERSION],
  resources: [HAROUTER_STATE.plural],
  operations: ['CREATE', 'UPDATE', 'DELETE'],
  scope: 'Namespaced',
};

/** A `metav1.LabelSelector`, as the webhook's and the binding's `namespaceSelector`. */
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/** Options of {@link webhookConfiguration}: exactly one of `url` and `service`. */
export interface WebhookConfigurationOptions {
  /** Object name (default `harouter-operator`). */
  name?: string;
  /** `https://host:port/validate`: for local mode and tests (the API server calls the URL directly). */
  url?: string;
  /** The operator's Service, in a real cluster. */
  service?: { namespace: string; name: string; port?: number };
  /** Base64 PEM of the CA that signed the serving certificate. */
  caBundle: string;
  /** Limit the webhook to some namespaces (tests scope it to their own). */
  namespaceSelector?: LabelSelector;
  /** Default 5 s. */
  timeoutSeconds?: number;
}

/**
 * The ValidatingWebhookConfiguration of the operator's webhook: fail closed,
 * no side effects, a short timeout, `harouterstates` only (not `/status`), and the
 * cleanup identities excluded by `matchConditions`.
 */
export function webhookConfiguration(options: WebhookConfigurationOptions) {
  if ((options.url === undefined) === (options.service === undefined)) {
    throw new Error('webhookConfiguration needs exactly one of url and service');
  }
  const clientConfig = options.url
    ? { url: options.url, caBundle: options.caBundle }
    : {
        service: {
          namespace: options.service?.namespace,
          name: options.service?.name,
          path: WEBHOOK_PATH,
          port: options.service?.port ?? 443,
        },
        caBundle: options.caBundle,
      };
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingWebhookConfiguration',
    metadata: { name: options.name ?? 'harouter-operator' },
    webhooks: [
      {
        name: WEBHOOK_NAME,
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        failurePolicy: 'Fail',
        matchPolicy: 'Equivalent',
        timeoutSeconds: options.timeoutSeconds ?? 5,
        rules: [RULE],
        matchConditions: [EXCLUDE_CLEANUP_CONDITION],
        ...(options.namespaceSelector ? { namespaceSelector: options.namespaceSelector } : {}),
        clientConfig,
      },
    ],
  };
}

const param = (key: string) => `(has(params.data) && '${key}' in params.data ? params.data['${key}'] : '')`;
const paramList = (key: string) => `${param(key)}.split(',').map(s, s.trim()).filter(s, s != '')`;
const NODE_EXTRA = "request.userInfo.extra['authentication.kubernetes.io/node-name']";

/** One CEL validation, with the webhook's rule name as a comment. */
function check(
  expression: string,
  message: string,
  reason: 'Forbidden' | 'Invalid',
  messageExpression?: string,
) {
  return { expression, message, reason, ...(messageExpression ? { messageExpression } : {}) };
}

const shapeCheck = (condition: string, path: string, message: string) =>
  check(`!variables.isWrite || (${condition})`, `Shape: ${path}: ${message}`, 'Invalid');

/**
 * The ValidatingAdmissionPolicy: the webhook's rules in CEL. Parameters come from
 * a ConfigMap (`data`: comma-separated `reporterServiceAccounts` (`ns/name`),
 * `allowedUsers`, `allowedGroups`, `operatorServiceAccount`, `requireNodeBinding`).
 */
export function validatingAdmissionPolicy(name = POLICY_NAME) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicy',
    metadata: { name },
    spec: {
      failurePolicy: 'Fail',
      paramKind: { apiVersion: 'v1', kind: 'ConfigMap' },
      matchConstraints: { matchPolicy: 'Equivalent', resourceRules: [RULE] },
      matchConditions: [EXCLUDE_CLEANUP_CONDITION],
      variables: [
        { name: 'username', expression: "has(request.userInfo.username) ? request.userInfo.username : ''" },
        { name: 'groups', expression: 'has(request.userInfo.groups) ? request.userInfo.groups : []' },
        {
          name: 'reporters',
          expression: `${paramList('reporterServiceAccounts')}.map(s, 'system:serviceaccount:' + s.replace('/', ':'))`,
        },
        { name: 'allowedUsers', expression: paramList('allowedUsers') },
        { name: 'allowedGroups', expression: paramList('allowedGroups') },
        {
          name: 'operator',
          expression: `'system:serviceaccount:' + ${param('operatorServiceAccount')}.trim().replace('/', ':')`,
        },
        {
          name: 'requireNodeBinding',
          expression: `${param('requireNodeBinding')}.trim().lowerAscii() != 'false'`,
        },
        { name: 'isWrite', expression: "request.operation in ['CREATE', 'UPDATE']" },
        // A report: a CREATE, or an UPDATE that changes spec (a spec-unchanged write is left to RBAC).
        {
          name: 'isReport',
          expression: `request.operation == 'CREATE' || (request.operation == 'UPDATE' && !(${SPEC_UNCHANGED}))`,
        },
        {
          name: 'isReporter',
          expression: "variables.username != '' && variables.username in variables.reporters",
        },
        {
          name: 'isAllowed',
          expression:
            "(variables.username != '' && variables.username in variables.allowedUsers) || " +
            'variables.groups.exists(g, g in variables.allowedGroups)',
        },
        // Any write by a reporter identity, report or not: node binding and the limits apply to it.
        {
          name: 'isReporterWrite',
          expression: 'variables.isWrite && (variables.isReporter || variables.isAllowed)',
        },
        {
          name: 'hasNode',
          expression: `has(request.userInfo.extra) && 'authentication.kubernetes.io/node-name' in request.userInfo.extra`,
        },
        { name: 'node', expression: `variables.hasNode && size(${NODE_EXTRA}) == 1 ? ${NODE_EXTRA}[0] : ''` },
        {
          name: 'agent',
          expression:
            "variables.isWrite && has(object.spec) && has(object.spec.agent) ? object.spec.agent : ''",
        },
        {
          name: 'oldAgent',
          expression:
            "request.operation == 'DELETE' && oldObject != null && has(oldObject.spec) && has(oldObject.spec.agent) ? oldObject.spec.agent : ''",
        },
      ],
      validations: [
        // 1. Identity.
        check(
          '!variables.isReport || variables.isReporter || variables.isAllowed',
          MESSAGES.identity,
          'Forbidden',
        ),
        // 2. Node binding: for reports, and for every other write by a reporter identity.
        check(
          '!(variables.isReport || variables.isReporterWrite) || !variables.hasNode || variables.agent == variables.node',
          MESSAGES.nodeMismatch('<node>'),
          'Forbidden',
          `'NodeBinding: spec.agent must be the node the reporter\\'s token is bound to ("' + variables.node + '"); a reporter may only report for its own node.'`,
        ),
        check(
          '!(variables.isReport || variables.isReporterWrite) || variables.hasNode || !variables.requireNodeBinding || variables.isAllowed',
          MESSAGES.nodeBindingRequired,
          'Forbidden',
        ),
        // 3. Shape: the reporter metadata limits (spec-unchanged writes included), the CRD's rules
        // again (defence in depth), then the update rules, then the name.
        check(`!variables.isReporterWrite || (${METADATA_WITHIN_LIMITS})`, MESSAGES.metadata, 'Invalid'),
        // The size rule: CEL cannot measure an object's bytes; it bounds managedFields, the part
        // that is not otherwise bounded, by its entries (the webhook measures the bytes).
        check(
          '!variables.isReporterWrite || !has(object.metadata.managedFields) || ' +
            `size(object.metadata.managedFields) <= ${REPORTER_METADATA_LIMITS.managedFieldsEntries}`,
          MESSAGES.size,
          'Invalid',
        ),
        shapeCheck(
          `object.spec.routerId.matches(r'${UUID_PATTERN}')`,
          'spec.routerId',
          'router id rule: routerId must be a lower-case canonical UUID',
        ),
        shapeCheck(
          `size(object.spec.agent) <= ${AGENT_MAX_LENGTH} && object.spec.agent.matches(r'${DNS_SUBDOMAIN_PATTERN}')`,
          'spec.agent',
          'agent name rule: must be a node name (DNS-1123 subdomain)',
        ),
        shapeCheck(
          "object.spec.state in ['Primary', 'Backup', 'Fault', 'Stopped']",
          'spec.state',
          'state rule: must be one of Primary, Backup, Fault, Stopped',
        ),
        shapeCheck(
          `!has(object.spec.message) || size(object.spec.message) <= ${MESSAGE_MAX_CODE_POINTS}`,
          'spec.message',
          `length rule: message must be at most ${MESSAGE_MAX_CODE_POINTS} characters`,
        ),
        shapeCheck(
          `!has(object.spec.message) || !object.spec.message.matches(r'${FORBIDDEN_TEXT_CLASS}')`,
          'spec.message',
          'printable rule: message must not contain control or bidirectional-control characters',
        ),
        check(
          "request.operation != 'UPDATE' || object.spec.routerId == oldObject.spec.routerId",
          MESSAGES.immutable('routerId'),
          'Invalid',
        ),
        check(
          "request.operation != 'UPDATE' || object.spec.agent == oldObject.spec.agent",
          MESSAGES.immutable('agent'),
          'Invalid',
        ),
        check(
          "request.operation != 'UPDATE' || timestamp(object.spec.observedAt) >= timestamp(oldObject.spec.observedAt)",
          STALE_REPORT_MESSAGE,
          'Invalid',
        ),
        shapeCheck(
          "object.metadata.name == object.spec.routerId + '.' + object.spec.agent",
          'metadata.name',
          'name rule: metadata.name must be <spec.routerId>.<spec.agent>',
        ),
        // 4. Clock and 5. Membership: not expressible (CEL has no clock and cannot look up
        // HARouters); the webhook alone enforces them (the chart's reporter.quota bounds the damage).
        // DELETE: a reporter only for its own node; anyone else as RBAC allows.
        check(
          "request.operation != 'DELETE' || variables.username in " +
            `${celList(CLEANUP_USERNAMES)} || variables.username == variables.operator || ` +
            '!(variables.isReporter || variables.isAllowed) || (variables.hasNode ? variables.oldAgent == variables.node : ' +
            '(!variables.requireNodeBinding || variables.isAllowed))',
          MESSAGES.delete,
          'Forbidden',
        ),
      ],
    },
  };
}

/** Options of {@link validatingAdmissionPolicyBinding}. */
export interface PolicyBindingOptions {
  /** Binding name (default {@link POLICY_NAME}). */
  name?: string;
  /** The policy it binds (default {@link POLICY_NAME}). */
  policyName?: string;
  /** Namespace of the parameter ConfigMap: the operator's namespace. */
  paramsNamespace?: string;
  /** Limit the policy to some namespaces (tests scope it to their own). */
  namespaceSelector?: LabelSelector;
}

/** The binding: the policy with its parameter ConfigMap; a missing ConfigMap denies (fail closed). */
export function validatingAdmissionPolicyBinding(options: PolicyBindingOptions = {}) {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'ValidatingAdmissionPolicyBinding',
    metadata: { name: options.name ?? POLICY_NAME },
    spec: {
      policyName: options.policyName ?? POLICY_NAME,
      validationActions: ['Deny'],
      paramRef: {
        name: POLICY_PARAMS_NAME,
        namespace: options.paramsNamespace ?? DEFAULT_OPERATOR_NAMESPACE,
        parameterNotFoundAction: 'Deny',
      },
      ...(options.namespaceSelector
        ? { matchResources: { namespaceSelector: options.namespaceSelector } }
        : {}),
    },
  };
}

/** The policy's parameter ConfigMap for a configuration. */
export function admissionParamsConfigMap(
  config: AdmissionConfig,
  namespace = DEFAULT_OPERATOR_NAMESPACE,
  name = POLICY_PARAMS_NAME,
) {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace, labels: { 'app.kubernetes.io/name': 'harouter-operator' } },
    data: {
      reporterServiceAccounts: config.reporterServiceAccounts.join(','),
      allowedUsers: config.allowedUsers.join(','),
      allowedGroups: config.allowedGroups.join(','),
      operatorServiceAccount: config.operatorServiceAccount,
      requireNodeBinding: String(config.requireNodeBinding),
    },
  };
}
