import { describe, expect, it } from 'vitest';
import { ROUTER_LABEL } from '../../src/api/index.ts';
import { serviceFactsSchema } from '../../src/controller/transforms.ts';
import { serviceRefusal } from '../../src/reconcile/service-opt-in.ts';
import { ROUTER_ID, router } from './reconcile-fixtures.ts';

const withEndpoint = router({ endpoint: { serviceName: 'web', ports: [{ port: 80 }] } });
const meta = { name: 'web', namespace: 'ns' };
/** What the cache would hold of a Service as the API server returns it. */
const facts = (service: object) => serviceFactsSchema.parse(service);
const optedIn = { metadata: { ...meta, labels: { [ROUTER_LABEL]: ROUTER_ID } }, spec: {} };

describe('serviceRefusal: the Service must opt in', () => {
  it('a selector-less Service labelled with this router id may be driven', () => {
    expect(serviceRefusal(withEndpoint, facts(optedIn))).toBeUndefined();
  });

  it('a router without spec.endpoint needs no Service', () => {
    expect(serviceRefusal(router(), undefined)).toBeUndefined();
  });

  it.each<[string, object | undefined, string]>([
    ['missing', undefined, 'ServiceNotFound'],
    [
      'with a selector, even when labelled',
      { ...optedIn, spec: { selector: { app: 'web' } } },
      'ServiceHasSelector',
    ],
    ['without the label', { metadata: meta, spec: {} }, 'ServiceNotOptedIn'],
    ['with null labels and spec', { metadata: { ...meta, labels: null }, spec: null }, 'ServiceNotOptedIn'],
    [
      'with only the annotation (no longer read)',
      { metadata: { ...meta, annotations: { [ROUTER_LABEL]: ROUTER_ID } }, spec: {} },
      'ServiceNotOptedIn',
    ],
    [
      'labelled for another router',
      { metadata: { ...meta, labels: { [ROUTER_LABEL]: '00000000-0000-4000-8000-000000000000' } } },
      'ServiceNotOptedIn',
    ],
    [
      'labelled with the id in another case',
      { metadata: { ...meta, labels: { [ROUTER_LABEL]: ROUTER_ID.toUpperCase() } } },
      'ServiceNotOptedIn',
    ],
  ])('a Service %s is refused: %s', (_what, service, reason) => {
    expect(serviceRefusal(withEndpoint, service && facts(service))?.reason).toBe(reason);
  });

  it('an empty selector map is no selector (the API server omits it)', () => {
    expect(serviceRefusal(withEndpoint, facts({ ...optedIn, spec: { selector: {} } }))).toBeUndefined();
  });
});
