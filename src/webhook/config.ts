import { DNS_LABEL_PATTERN, DNS_SUBDOMAIN_PATTERN } from '../api/index.ts';

/**
 * Who may write HARouterStates. The operator process builds this from its flags
 * (`--reporter-service-accounts`, `--allowed-users`, `--allowed-groups`,
 * `--operator-service-account`, `--require-node-binding`); the policy mode reads
 * the same values from its parameter ConfigMap.
 */
export interface AdmissionConfig {
  /** Reporter service accounts, each `namespace/name`. */
  reporterServiceAccounts: string[];
  /** Extra user names allowed to report (empty by default). */
  allowedUsers: string[];
  /** Extra groups allowed to report (empty by default). */
  allowedGroups: string[];
  /** The operator's own service account, `namespace/name`: it may delete reports. */
  operatorServiceAccount: string;
  /** Deny reporter service accounts whose token is not bound to a node (default true). */
  requireNodeBinding: boolean;
}

/** The operator's defaults (API.md): the contract's reporter and operator service accounts, node binding on. */
export const DEFAULT_ADMISSION_CONFIG: Readonly<AdmissionConfig> = Object.freeze({
  reporterServiceAccounts: ['harouter-system/harouter-reporter'],
  allowedUsers: [],
  allowedGroups: [],
  operatorServiceAccount: 'harouter-system/harouter-operator',
  requireNodeBinding: true,
});

/**
 * Kubernetes' own cleanup identities: they delete HARouterStates when a namespace
 * goes or an owner is garbage-collected. They may always delete, and the webhook
 * configuration and the policy exclude them with `matchConditions`, so that
 * deleting a namespace never depends on the webhook being up.
 */
export const CLEANUP_USERNAMES = [
  'system:serviceaccount:kube-system:namespace-controller',
  'system:serviceaccount:kube-system:generic-garbage-collector',
  'system:kube-controller-manager',
] as const;

const DNS_LABEL = new RegExp(DNS_LABEL_PATTERN);
const DNS_SUBDOMAIN = new RegExp(DNS_SUBDOMAIN_PATTERN);

/** `namespace/name` -> `system:serviceaccount:namespace:name`. Throws RangeError when malformed. */
export function serviceAccountUsername(ref: string): string {
  const parts = ref.split('/');
  const [namespace, name] = parts;
  if (
    parts.length !== 2 ||
    !namespace ||
    !name ||
    namespace.length > 63 ||
    !DNS_LABEL.test(namespace) ||
    name.length > 253 ||
    !DNS_SUBDOMAIN.test(name)
  ) {
    throw new RangeError(`service account must be "namespace/name", got ${JSON.stringify(ref)}`);
  }
  return `system:serviceaccount:${namespace}:${name}`;
}

/** Problems with a configuration (empty when it is usable). */
export function checkAdmissionConfig(config: AdmissionConfig): string[] {
  const problems: string[] = [];
  for (const ref of [...config.reporterServiceAccounts, config.operatorServiceAccount]) {
    try {
      serviceAccountUsername(ref);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return problems;
}

/** Splits a comma-separated flag value: trims items, drops empty ones. */
export function splitList(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}
