import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SERVICE_ACCOUNT_DIR } from '../kube/kubeconfig.ts';
import { UsageError } from './usage-error.ts';

/** A DNS-1123 label: the shape of a namespace name. */
export const NAMESPACE_PATTERN = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Where the in-cluster service account's namespace is mounted. */
export const SERVICE_ACCOUNT_NAMESPACE_FILE = join(SERVICE_ACCOUNT_DIR, 'namespace');

/**
 * The namespace to report in: `--namespace`, then `POD_NAMESPACE` (both already
 * in `explicit`), then the kubeconfig context's namespace, then the service
 * account's namespace file, then `default`. Throws {@link UsageError}. Pure.
 */
export function resolveNamespace(
  explicit: string | undefined,
  contextNamespace: string | undefined,
  serviceAccountNamespace: string | undefined,
): string {
  const candidates = [explicit, contextNamespace, serviceAccountNamespace?.trim()];
  const namespace = candidates.find((value) => value !== undefined && value !== '') ?? 'default';
  if (!NAMESPACE_PATTERN.test(namespace)) {
    throw new UsageError('the namespace from the kubeconfig or service account is not a namespace name');
  }
  return namespace;
}

/** The service account's namespace file, or undefined when there is none (outside a Pod). */
export function serviceAccountNamespace(path = SERVICE_ACCOUNT_NAMESPACE_FILE): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
