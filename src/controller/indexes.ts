/**
 * The cache indexes the reconciler reads, so that a reconcile is O(agents), not
 * O(objects in the cluster): reports by the router they name, EndpointSlices by
 * the HARouter that controls them. Values are reconcile keys (`namespace/routerId`).
 */
import { HAROUTER } from '../api/index.ts';
import { routerKey } from './event-keys.ts';

/** Index of `harouterStates`: the report's `namespace/spec.routerId`. */
export const REPORTS_BY_ROUTER = 'router';
/** Index of `endpointSlices`: the `namespace/name` of the HARouter that is the slice's controller owner. */
export const SLICES_BY_ROUTER = 'router';

interface Indexable {
  metadata?: {
    namespace?: string;
    ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
  };
  spec?: { routerId?: unknown };
}

/** The router a report names. */
export function reportRouterIndex(obj: Indexable): string[] {
  const namespace = obj?.metadata?.namespace;
  const routerId = obj?.spec?.routerId;
  return namespace && typeof routerId === 'string' && routerId ? [routerKey(namespace, routerId)] : [];
}

/** The HARouter controlling a slice. */
export function sliceRouterIndex(obj: Indexable): string[] {
  const namespace = obj?.metadata?.namespace;
  const owner = obj?.metadata?.ownerReferences?.find((o) => o?.controller === true);
  return namespace && owner?.kind === HAROUTER.kind && owner.name ? [routerKey(namespace, owner.name)] : [];
}
