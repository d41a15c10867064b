import type { V1EndpointSlice, V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { claimLease, type HARouter, type HARouterState, type LeaseObject } from '../../src/api/index.ts';
import { keysForEvent, nodeFacts, urgentKeysForEvent } from '../../src/controller/event-keys.ts';
import {
  ROUTERS_BY_AGENT,
  ROUTERS_BY_SEGMENT,
  ROUTERS_BY_SERVICE,
  routerAgentIndex,
  routerSegmentIndex,
  routerServiceIndex,
} from '../../src/controller/indexes.ts';
import { parseRouterKey } from '../../src/controller/router-key.ts';
import type { ServiceFacts } from '../../src/controller/transforms.ts';
import type { Caches } from '../../src/controller/types.ts';
import type { IndexedStore } from '../../src/runtime/store.ts';
import { NAMESPACE, ROUTER_ID, report, router, T0 } from './reconcile-fixtures.ts';

/** A store answering index lookups with the operator's own index functions (by scanning). */
function store<T>(items: T[], indexers: Record<string, (obj: T) => readonly string[]> = {}): IndexedStore<T> {
  return {
    get: () => undefined,
    list: () => items,
    byIndex: (index, value) => items.filter((obj) => indexers[index]?.(obj).includes(value)),
  };
}

const OTHER = 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee';
const r1 = router({ agents: ['node-a', 'node-b'], endpoint: { serviceName: 'web', ports: [{ port: 80 }] } });
const r2: HARouter = {
  ...router({ agents: ['node-b', 'node-c'] }),
  metadata: { ...r1.metadata, name: OTHER },
};
const r3: HARouter = { ...r1, metadata: { ...r1.metadata, namespace: 'elsewhere' } };

const caches: Caches = {
  harouters: store([r1, r2, r3], {
    [ROUTERS_BY_AGENT]: routerAgentIndex,
    [ROUTERS_BY_SERVICE]: routerServiceIndex,
  }),
  harouterStates: store<HARouterState>([]),
  nodes: store<V1Node>([]),
  endpointSlices: store<V1EndpointSlice>([]),
  services: store<ServiceFacts>([]),
  vridClaims: store<LeaseObject>([]),
};

function node(name: string, ready: string, ip = '198.51.100.11'): V1Node {
  return {
    metadata: { name },
    status: {
      conditions: [{ type: 'Ready', status: ready }],
      addresses: [
        { type: 'Hostname', address: name },
        { type: 'InternalIP', address: ip },
      ],
    },
  };
}

const key1 = `${NAMESPACE}/${ROUTER_ID}`;
const key2 = `${NAMESPACE}/${OTHER}`;

describe('keysForEvent', () => {
  it('a router maps to itself, on add, update and delete', () => {
    expect([...keysForEvent('harouters', { type: 'add', obj: r1 }, caches)]).toEqual([key1]);
    expect([...keysForEvent('harouters', { type: 'delete', obj: r2 }, caches)]).toEqual([key2]);
  });

  it('a report maps to the router it names in its own namespace, even before the router exists', () => {
    const orphan = report('node-a', 'Primary', T0, { routerId: '12345678-1234-4234-8234-123456789012' });
    expect([...keysForEvent('harouterStates', { type: 'add', obj: orphan }, caches)]).toEqual([
      `${NAMESPACE}/12345678-1234-4234-8234-123456789012`,
    ]);
  });

  it('a Node readiness change maps to every router listing it, in every namespace', () => {
    const keys = [
      ...keysForEvent(
        'nodes',
        { type: 'update', obj: node('node-b', 'False'), oldObj: node('node-b', 'True') },
        caches,
      ),
    ];
    expect(keys.sort()).toEqual([`elsewhere/${ROUTER_ID}`, key1, key2].sort());
  });

  it('a Node heartbeat that changes neither readiness nor address maps to nothing', () => {
    const before = node('node-b', 'True');
    const after = { ...node('node-b', 'True'), metadata: { name: 'node-b', resourceVersion: '9' } };
    expect([...keysForEvent('nodes', { type: 'update', obj: after, oldObj: before }, caches)]).toEqual([]);
  });

  it('a Node address change, add or delete maps to its routers', () => {
    const changed = keysForEvent(
      'nodes',
      { type: 'update', obj: node('node-c', 'True', '198.51.100.99'), oldObj: node('node-c', 'True') },
      caches,
    );
    expect([...changed]).toEqual([key2]);
    expect(
      [...keysForEvent('nodes', { type: 'delete', obj: node('node-a', 'True') }, caches)].sort(),
    ).toEqual([`elsewhere/${ROUTER_ID}`, key1].sort());
  });

  it('an owned EndpointSlice maps to its controller owner router; others to nothing', () => {
    const slice: V1EndpointSlice = {
      addressType: 'IPv4',
      endpoints: [],
      metadata: {
        name: 'web-harouter',
        namespace: NAMESPACE,
        ownerReferences: [
          {
            apiVersion: 'harouter.dev/v1alpha1',
            kind: 'HARouter',
            name: ROUTER_ID,
            uid: 'u',
            controller: true,
          },
        ],
      },
    };
    expect([...keysForEvent('endpointSlices', { type: 'delete', obj: slice }, caches)]).toEqual([key1]);
    const unowned = { ...slice, metadata: { name: 'x', namespace: NAMESPACE } };
    expect([...keysForEvent('endpointSlices', { type: 'add', obj: unowned }, caches)]).toEqual([]);
  });

  it('a Service maps to the routers of its namespace whose endpoint names it', () => {
    const svc: ServiceFacts = { metadata: { name: 'web', namespace: NAMESPACE }, hasSelector: false };
    expect([...keysForEvent('services', { type: 'add', obj: svc }, caches)]).toEqual([key1]);
    const other: ServiceFacts = { metadata: { name: 'db', namespace: NAMESPACE }, hasSelector: false };
    expect([...keysForEvent('services', { type: 'add', obj: other }, caches)]).toEqual([]);
  });

  it('a malformed object yields no key and never throws', () => {
    const bad = { metadata: {} } as unknown as HARouterState;
    expect([...keysForEvent('harouterStates', { type: 'add', obj: bad }, caches)]).toEqual([]);
    const broken = {
      harouters: {
        list: () => {
          throw new Error('boom');
        },
        byIndex: () => {
          throw new Error('boom');
        },
        get: () => undefined,
      },
    };
    expect([
      ...keysForEvent('nodes', { type: 'add', obj: node('node-a', 'True') }, {
        ...caches,
        ...broken,
      } as Caches),
    ]).toEqual([]);
  });

  it('nodeFacts: Ready only when the Ready condition is True; the first IPv4 InternalIP', () => {
    expect(nodeFacts(node('n', 'True'))).toEqual({ ready: true, internalIP: '198.51.100.11' });
    expect(nodeFacts(node('n', 'Unknown', 'fd00::1'))).toEqual({ ready: false, internalIP: undefined });
    expect(nodeFacts({ metadata: { name: 'n' } })).toEqual({ ready: false, internalIP: undefined });
  });

  it('parseRouterKey splits namespace/routerId and refuses anything else', () => {
    expect(parseRouterKey(key1)).toEqual({ namespace: NAMESPACE, routerId: ROUTER_ID });
    expect(parseRouterKey('no-slash')).toBeUndefined();
    expect(parseRouterKey('a/b/c')).toBeUndefined();
  });
});

describe('router indexes', () => {
  it('index a router by each distinct agent name, ignoring malformed entries', () => {
    const r = router({ agents: ['node-a', 'node-b'] });
    const odd = {
      ...r,
      spec: { ...r.spec, agents: [{ name: 'node-a' }, { name: 'node-a' }, {}, null, { name: 7 }] },
    };
    expect(routerAgentIndex(r)).toEqual(['node-a', 'node-b']);
    expect(routerAgentIndex(odd as unknown as HARouter)).toEqual(['node-a']);
    expect(routerAgentIndex({} as HARouter)).toEqual([]);
  });

  it('index a router by namespace/Service of its endpoint, none without an endpoint', () => {
    expect(routerServiceIndex(r1)).toEqual([`${NAMESPACE}/web`]);
    expect(routerServiceIndex(r2)).toEqual([]);
  });
});

describe('urgentKeysForEvent', () => {
  const routedThroughB = (r: HARouter, namespace: string): HARouter => ({
    ...r,
    metadata: { ...r.metadata, namespace },
    status: { activeAgent: 'node-b' },
  });
  const withRouted: Caches = {
    ...caches,
    harouters: store([r1, r2, routedThroughB(r1, 'routed-1'), routedThroughB(r2, 'routed-2')], {
      [ROUTERS_BY_AGENT]: routerAgentIndex,
    }),
  };
  const urgent = (event: Parameters<typeof urgentKeysForEvent>[1]) => [
    ...urgentKeysForEvent('nodes', event as never, withRouted),
  ];

  it('a Node that stops being Ready, changes address or is deleted makes the routers routed through it urgent', () => {
    const routed = [`routed-1/${ROUTER_ID}`, `routed-2/${OTHER}`];
    expect(urgent({ type: 'update', obj: node('node-b', 'False'), oldObj: node('node-b', 'True') })).toEqual(
      routed,
    );
    expect(
      urgent({
        type: 'update',
        obj: node('node-b', 'True', '198.51.100.99'),
        oldObj: node('node-b', 'True'),
      }),
    ).toEqual(routed);
    expect(urgent({ type: 'delete', obj: node('node-b', 'True') })).toEqual(routed);
  });

  it('nothing is urgent when a Node becomes Ready, appears or only heartbeats, nor for other kinds', () => {
    expect(urgent({ type: 'update', obj: node('node-b', 'True'), oldObj: node('node-b', 'False') })).toEqual(
      [],
    );
    expect(urgent({ type: 'add', obj: node('node-b', 'False') })).toEqual([]);
    expect(urgent({ type: 'update', obj: node('node-b', 'True'), oldObj: node('node-b', 'True') })).toEqual(
      [],
    );
    expect([...urgentKeysForEvent('harouters', { type: 'add', obj: r1 }, withRouted)]).toEqual([]);
  });
});

describe('keysForEvent: VRID claims', () => {
  const VRRP = {
    segment: 'edge',
    interface: 'eth0',
    virtualIPs: ['192.0.2.1/24'],
    advertIntervalMs: 1000,
    fenceHoldSeconds: 60,
    failbackDelaySeconds: 30,
  };
  const waiting: HARouter = { ...r2, spec: { ...r2.spec, vrrp: VRRP } };
  const recorded: HARouter = {
    ...r3,
    spec: { ...r3.spec, vrrp: VRRP },
    status: { vrrp: { vrid: 2, segment: 'edge' } },
  };
  const claimCaches: Caches = {
    ...caches,
    harouters: store([r1, waiting, recorded], { [ROUTERS_BY_SEGMENT]: routerSegmentIndex }),
  };
  const lease = claimLease('edge', 1, NAMESPACE, ROUTER_ID);

  it('a claim maps to its holder', () => {
    expect([...keysForEvent('vridClaims', { type: 'add', obj: lease }, claimCaches)]).toEqual([key1]);
  });

  it("a claim that goes also maps to the segment's routers still waiting for a VRID (not those with one)", () => {
    expect([...keysForEvent('vridClaims', { type: 'delete', obj: lease }, claimCaches)].sort()).toEqual(
      [key1, key2].sort(),
    );
  });

  it('a Lease that is not a claim maps to nothing', () => {
    const other = { metadata: { name: 'harouter-operator' }, spec: { holderIdentity: 'pod-1' } };
    expect([...keysForEvent('vridClaims', { type: 'delete', obj: other }, claimCaches)]).toEqual([]);
  });
});
