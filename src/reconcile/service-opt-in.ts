/**
 * Whether the operator may drive a router's Service (API.md, HARouter, "The
 * Service must opt in"). The operator holds EndpointSlice write rights that
 * namespace editors deliberately lack (compare CVE-2021-25740), so a HARouter
 * alone must not be able to point a Service at a node: the Service itself must
 * have no selector and carry `harouter.dev/router: <routerId>`.
 *
 * Pure: the reconciler passes the cached Service (or undefined when missing).
 */
import { type HARouter, ROUTER_ANNOTATION } from '../api/index.ts';

/** The part of a Service the check reads (raw JSON, as a watch delivers it). */
export interface ServiceFacts {
  metadata?: { annotations?: Record<string, string> | null } | null;
  spec?: { selector?: Record<string, string> | null } | null;
}

/** Why a router's Service may not be driven: the `Ready=False` reason and its message. */
export interface ServiceRefusal {
  readonly reason: 'ServiceNotFound' | 'ServiceHasSelector' | 'ServiceNotOptedIn';
  readonly message: string;
}

/**
 * Undefined when the operator may write the slice of `router`'s Service (or the
 * router has no `spec.endpoint`); otherwise why not. A missing Service cannot have
 * opted in, so it is refused too (the slice appears once the Service does).
 */
export function serviceRefusal(
  router: HARouter,
  service: ServiceFacts | undefined,
): ServiceRefusal | undefined {
  const endpoint = router.spec.endpoint;
  if (!endpoint) return undefined;
  const name = endpoint.serviceName;
  if (!service) {
    return { reason: 'ServiceNotFound', message: `Service ${name} named by spec.endpoint does not exist` };
  }
  const selector = service.spec?.selector;
  if (selector && Object.keys(selector).length > 0) {
    return {
      reason: 'ServiceHasSelector',
      message: `Service ${name} has a selector; the operator drives only selector-less Services`,
    };
  }
  if (service.metadata?.annotations?.[ROUTER_ANNOTATION] !== router.metadata.name) {
    return {
      reason: 'ServiceNotOptedIn',
      message: `Service ${name} does not carry the annotation ${ROUTER_ANNOTATION}: ${router.metadata.name}`,
    };
  }
  return undefined;
}
