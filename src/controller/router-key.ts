/**
 * The reconcile key of a router, `namespace/routerId` (a HARouter's name is its
 * router ID): what the work queue holds, what the indexes return, what the
 * reconciler is called with.
 */

/** The reconcile key of a router. */
export function routerKey(namespace: string, routerId: string): string {
  return `${namespace}/${routerId}`;
}

/** Splits a key `namespace/routerId`; undefined when malformed. */
export function parseRouterKey(key: string): { namespace: string; routerId: string } | undefined {
  const slash = key.indexOf('/');
  if (slash <= 0 || slash !== key.lastIndexOf('/') || slash === key.length - 1) return undefined;
  return { namespace: key.slice(0, slash), routerId: key.slice(slash + 1) };
}
