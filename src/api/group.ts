/** The API group, version and resource names of the contract (`API.md`). */
export const GROUP = 'harouter.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const HAROUTER = { kind: 'HARouter', plural: 'harouters', shortName: 'har' } as const;
export const HAROUTER_STATE = { kind: 'HARouterState', plural: 'harouterstates', shortName: 'hars' } as const;

/** The field manager the operator uses for every write. */
export const OPERATOR_FIELD_MANAGER = 'harouter-operator';
/** The value of `endpointslice.kubernetes.io/managed-by` on the slices the operator owns. */
export const ENDPOINTSLICE_MANAGED_BY = 'harouter.dev';
/**
 * The label by which a Service opts in to being driven by one HARouter
 * (`harouter.dev/router: <routerId>`): without it the operator writes no slice
 * for the Service, so whoever may create a HARouter cannot steer a Service they
 * do not own (API.md, "The Service must opt in"). A label, not an annotation, so
 * that the operator watches only the Services carrying it (a label selector the
 * API server applies) and no namespace editor can fill its memory with others.
 */
export const ROUTER_LABEL = 'harouter.dev/router';
