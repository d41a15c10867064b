/**
 * Which reconcile keys (`namespace/routerId`) an informer event affects. Called
 * by the runtime from every informer's handlers: cheap, and never throws (a
 * malformed object yields no key rather than an exception).
 *
 * - a HARouter: its own key (also on delete, so that its metrics are removed);
 * - a HARouterState: the router it names (`spec.routerId`, in its namespace);
 * - a Node: every router listing it in `spec.agents` (the `ROUTERS_BY_AGENT`
 *   index), only when its readiness or its InternalIP changed (kubelet
 *   heartbeats change neither); those routed through it are also urgent
 *   (`urgentKeysForEvent`);
 * - an EndpointSlice the operator owns: its controller owner HARouter;
 * - a Service: the routers in its namespace whose `spec.endpoint` names it
 *   (the `ROUTERS_BY_SERVICE` index);
 * - a VRID claim Lease: the router holding it (a claim whose router is gone is then
 *   released), and when it goes, the routers of its segment still waiting for a VRID
 *   (`VRIDConflict`, `NoVRIDAvailable`: no `status.vrrp` yet).
 */
import type { V1Node } from '@kubernetes/client-node';
import { claimOf, HAROUTER, type HARouter, type LeaseObject } from '../api/index.ts';
import { ROUTERS_BY_AGENT, ROUTERS_BY_SEGMENT, ROUTERS_BY_SERVICE } from './indexes.ts';
import { routerKey } from './router-key.ts';
import type { CacheName, CacheObject, Caches, InformerEvent, KeysForEvent } from './types.ts';

interface Meta {
  metadata?: {
    name?: string;
    namespace?: string;
    ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
  };
}

function objectsOf<T>(event: InformerEvent<T>): T[] {
  return event.type === 'update' ? [event.obj, event.oldObj] : [event.obj];
}

/** What of a Node matters to decisions: its readiness and its first IPv4 InternalIP. */
export function nodeFacts(node: V1Node | undefined): { ready: boolean; internalIP: string | undefined } {
  const conditions = node?.status?.conditions;
  const ready =
    Array.isArray(conditions) && conditions.some((c) => c?.type === 'Ready' && c.status === 'True');
  const addresses = node?.status?.addresses;
  const internal = Array.isArray(addresses)
    ? addresses.find(
        (a) =>
          a?.type === 'InternalIP' && typeof a.address === 'string' && /^\d+\.\d+\.\d+\.\d+$/.test(a.address),
      )
    : undefined;
  return { ready, internalIP: internal?.address };
}

function keysOf(routers: HARouter[]): string[] {
  const keys: string[] = [];
  for (const router of routers) {
    const { namespace, name } = router?.metadata ?? {};
    if (namespace && name) keys.push(routerKey(namespace, name));
  }
  return keys;
}

function keysUnsafe<K extends CacheName>(
  cache: K,
  event: InformerEvent<CacheObject<K>>,
  caches: Caches,
): string[] {
  const keys = new Set<string>();
  switch (cache) {
    case 'harouters':
    case 'harouterStates':
      for (const obj of objectsOf(event) as (Meta & { spec?: { routerId?: unknown } })[]) {
        const namespace = obj?.metadata?.namespace;
        const routerId = cache === 'harouters' ? obj?.metadata?.name : obj?.spec?.routerId;
        if (namespace && typeof routerId === 'string' && routerId) keys.add(routerKey(namespace, routerId));
      }
      break;
    case 'nodes': {
      if (event.type === 'update') {
        const before = nodeFacts(event.oldObj as V1Node);
        const after = nodeFacts(event.obj as V1Node);
        if (before.ready === after.ready && before.internalIP === after.internalIP) break;
      }
      const names = new Set<string>();
      for (const obj of objectsOf(event) as Meta[]) if (obj?.metadata?.name) names.add(obj.metadata.name);
      for (const name of names) {
        for (const key of keysOf(caches.harouters.byIndex(ROUTERS_BY_AGENT, name))) keys.add(key);
      }
      break;
    }
    case 'endpointSlices':
      for (const obj of objectsOf(event) as Meta[]) {
        const owner = obj?.metadata?.ownerReferences?.find((o) => o?.controller === true);
        if (obj?.metadata?.namespace && owner?.kind === HAROUTER.kind && owner.name) {
          keys.add(routerKey(obj.metadata.namespace, owner.name));
        }
      }
      break;
    case 'services':
      for (const obj of objectsOf(event) as Meta[]) {
        const { namespace, name } = obj?.metadata ?? {};
        if (!namespace || !name) continue;
        for (const key of keysOf(caches.harouters.byIndex(ROUTERS_BY_SERVICE, `${namespace}/${name}`))) {
          keys.add(key);
        }
      }
      break;
    case 'vridClaims':
      for (const obj of objectsOf(event) as LeaseObject[]) {
        const claim = claimOf(obj);
        if (!claim) continue;
        keys.add(claim.holder);
        if (event.type !== 'delete') continue;
        const waiting = caches.harouters
          .byIndex(ROUTERS_BY_SEGMENT, claim.segment)
          .filter((r) => r?.spec?.vrrp !== undefined && r.status?.vrrp === undefined);
        for (const key of keysOf(waiting)) keys.add(key);
      }
      break;
  }
  return [...keys];
}

/** The keys an informer event affects (see the module comment). Never throws. */
export const keysForEvent: KeysForEvent = (cache, event, caches) => {
  try {
    return keysUnsafe(cache, event, caches);
  } catch {
    return [];
  }
};

/**
 * The keys an event makes urgent (`KeyQueue.addUrgent`): the routers routed
 * through a Node (`status.activeAgent`) that stopped being Ready, changed its
 * address or was deleted. Their traffic has to move now (withdrawn, or to a live
 * Primary), while a storm keeps hundreds of other keys waiting: in the chaos run,
 * with the operator saturated, the withdrawal from a NotReady node waited a median
 * 5-7 s behind them. Never throws.
 */
export const urgentKeysForEvent: KeysForEvent = (cache, event, caches) => {
  try {
    if (cache !== 'nodes') return [];
    const name = (event.obj as Meta)?.metadata?.name;
    if (!name) return [];
    if (event.type === 'add') return [];
    if (event.type === 'update') {
      const before = nodeFacts(event.oldObj as V1Node);
      const after = nodeFacts(event.obj as V1Node);
      const lost = before.ready && !after.ready;
      if (!lost && before.internalIP === after.internalIP) return [];
    }
    const routedHere = caches.harouters
      .byIndex(ROUTERS_BY_AGENT, name)
      .filter((r) => r?.status?.activeAgent === name);
    return keysOf(routedHere);
  } catch {
    return [];
  }
};
