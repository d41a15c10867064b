import { describe, expect, it } from 'vitest';
import { ROUTER_ANNOTATION } from '../../src/api/index.ts';
import { type ServiceFacts, serviceRefusal } from '../../src/reconcile/service-opt-in.ts';
import { ROUTER_ID, router } from './reconcile-fixtures.ts';

const withEndpoint = router({ endpoint: { serviceName: 'web', ports: [{ port: 80 }] } });
const optedIn: ServiceFacts = { metadata: { annotations: { [ROUTER_ANNOTATION]: ROUTER_ID } }, spec: {} };

describe('serviceRefusal: the Service must opt in', () => {
  it('a selector-less Service annotated with this router id may be driven', () => {
    expect(serviceRefusal(withEndpoint, optedIn)).toBeUndefined();
  });

  it('a router without spec.endpoint needs no Service', () => {
    expect(serviceRefusal(router(), undefined)).toBeUndefined();
  });

  it.each<[string, ServiceFacts | undefined, string]>([
    ['missing', undefined, 'ServiceNotFound'],
    [
      'with a selector, even when annotated',
      { ...optedIn, spec: { selector: { app: 'web' } } },
      'ServiceHasSelector',
    ],
    ['without the annotation', { metadata: {}, spec: {} }, 'ServiceNotOptedIn'],
    ['with null metadata', { metadata: null, spec: null }, 'ServiceNotOptedIn'],
    [
      'annotated for another router',
      { metadata: { annotations: { [ROUTER_ANNOTATION]: '00000000-0000-4000-8000-000000000000' } } },
      'ServiceNotOptedIn',
    ],
    [
      'annotated with the id in another case',
      { metadata: { annotations: { [ROUTER_ANNOTATION]: ROUTER_ID.toUpperCase() } } },
      'ServiceNotOptedIn',
    ],
  ])('a Service %s is refused: %s', (_what, service, reason) => {
    expect(serviceRefusal(withEndpoint, service)?.reason).toBe(reason);
  });

  it('an empty selector map is no selector (the API server omits it)', () => {
    expect(serviceRefusal(withEndpoint, { ...optedIn, spec: { selector: {} } })).toBeUndefined();
  });
});
