/**
 * The cache indexes, so that a reconcile is O(agents), not O(objects in the
 * cluster), and so that a Node or Service event finds its routers without a
 * scan (a scan per event made start-up O(routers x nodes + routers x Services)):
 * reports by the router they name, EndpointSlices by the HARouter that controls
 * them (values: reconcile keys `namespace/routerId`), HARouters by the nodes
 * they list and by the Service their endpoint names.
 */
import { claimOf, HAROUTER, type LeaseObject } from '../api/index.ts';
import { routerKey } from './router-key.ts';

/** Index of `harouterStates`: the report's `namespace/spec.routerId`. */
export const REPORTS_BY_ROUTER = 'router';
/** Index of `endpointSlices`: the `namespace/name` of the HARouter that is the slice's controller owner. */
export const SLICES_BY_ROUTER = 'router';

/** Index of `harouters`: each node name in `spec.agents`. */
export const ROUTERS_BY_AGENT = 'agent';
/** Index of `harouters`: `namespace/spec.endpoint.serviceName`. */
export const ROUTERS_BY_SERVICE = 'service';

interface Indexable {
  metadata?: {
    name?: string;
    namespace?: string;
    ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
  };
  spec?: { routerId?: unknown; agents?: unknown; endpoint?: { serviceName?: unknown } };
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

/** The nodes a router lists as its agents. */
export function routerAgentIndex(obj: Indexable): string[] {
  const agents = obj?.spec?.agents;
  if (!Array.isArray(agents)) return [];
  const names = agents.map((agent) => (agent as { name?: unknown })?.name);
  return [...new Set(names.filter((name): name is string => typeof name === 'string' && name !== ''))];
}

/** The Service a router's endpoint names, as `namespace/name`. */
export function routerServiceIndex(obj: Indexable): string[] {
  const namespace = obj?.metadata?.namespace;
  const service = obj?.spec?.endpoint?.serviceName;
  return namespace && typeof service === 'string' && service ? [`${namespace}/${service}`] : [];
}

/** Index of `harouters`: `spec.vrrp.segment`, for routers with `spec.vrrp`. */
export const ROUTERS_BY_SEGMENT = 'segment';
/** Index of `vridClaims`: the claim's holder, `namespace/routerId` (a reconcile key). */
export const CLAIMS_BY_HOLDER = 'holder';
/** Index of `vridClaims`: the claim's segment. */
export const CLAIMS_BY_SEGMENT = 'segment';

/** The segment of a router's `spec.vrrp`. */
export function routerSegmentIndex(obj: { spec?: { vrrp?: { segment?: unknown } } }): string[] {
  const segment = obj?.spec?.vrrp?.segment;
  return typeof segment === 'string' && segment ? [segment] : [];
}

/** The router holding a VRID claim Lease. */
export function claimHolderIndex(obj: LeaseObject): string[] {
  const claim = claimOf(obj);
  return claim ? [claim.holder] : [];
}

/** The segment of a VRID claim Lease. */
export function claimSegmentIndex(obj: LeaseObject): string[] {
  const claim = claimOf(obj);
  return claim ? [claim.segment] : [];
}
