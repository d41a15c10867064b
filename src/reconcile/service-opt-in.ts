/**
 * Whether the operator may drive a router's Service (API.md, HARouter, "The
 * Service must opt in"). The operator holds EndpointSlice write rights that
 * namespace editors deliberately lack (compare CVE-2021-25740), so a HARouter
 * alone must not be able to point a Service at a node: the Service itself must
 * have no selector and carry the label `harouter.dev/router: <routerId>`.
 *
 * Pure: the reconciler passes what it knows of the Service (undefined when missing).
 */
import { type HARouter, ROUTER_LABEL } from '../api/index.ts';
import type { ServiceFacts } from '../controller/transforms.ts';

export type { ServiceFacts };

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
  if (service.hasSelector) {
    return {
      reason: 'ServiceHasSelector',
      message: `Service ${name} has a selector; the operator drives only selector-less Services`,
    };
  }
  if (service.metadata.labels?.[ROUTER_LABEL] !== router.metadata.name) {
    return {
      reason: 'ServiceNotOptedIn',
      message: `Service ${name} does not carry the label ${ROUTER_LABEL}: ${router.metadata.name}`,
    };
  }
  return undefined;
}
