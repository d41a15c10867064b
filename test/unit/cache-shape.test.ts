import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { nodeFacts } from '../../src/controller/event-keys.ts';
import { reportRouterIndex, sliceRouterIndex } from '../../src/controller/indexes.ts';
import {
  serviceFactsSchema,
  trimNode,
  trimRouterObject,
  trimSlice,
} from '../../src/controller/transforms.ts';

const bulky = {
  managedFields: [{ manager: 'harouterctl', fieldsV1: { 'f:spec': {} } }],
  annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', note: 'x'.repeat(10_000) },
};

describe('cache transforms', () => {
  it('trimRouterObject drops managedFields, annotations and labels, keeps the rest', () => {
    const obj = {
      metadata: {
        name: 'x',
        namespace: 'ns',
        resourceVersion: '5',
        deletionTimestamp: '2026-01-01T00:00:00Z',
        ...bulky,
        labels: { a: 'b' },
      },
      spec: { agents: [{ name: 'node-a' }] },
      status: { activeAgent: 'node-a' },
    };
    expect(trimRouterObject(obj)).toEqual({
      metadata: {
        name: 'x',
        namespace: 'ns',
        resourceVersion: '5',
        deletionTimestamp: '2026-01-01T00:00:00Z',
      },
      spec: { agents: [{ name: 'node-a' }] },
      status: { activeAgent: 'node-a' },
    });
    expect(obj.metadata.managedFields).toHaveLength(1);
    expect(obj.metadata.labels).toEqual({ a: 'b' });
  });

  it('trimSlice keeps the labels and owner references that decide ownership, drops the rest', () => {
    const owner = { kind: 'HARouter', name: 'r', controller: true };
    const labels = { 'endpointslice.kubernetes.io/managed-by': 'harouter.dev' };
    expect(
      trimSlice({ metadata: { name: 's', namespace: 'ns', ownerReferences: [owner], labels, ...bulky } }),
    ).toEqual({ metadata: { name: 's', namespace: 'ns', ownerReferences: [owner], labels } });
  });

  it('a Service keeps its identity, the opt-in label and whether it has a selector, nothing else', () => {
    const service = {
      metadata: {
        name: 'web',
        namespace: 'ns',
        uid: 'u',
        resourceVersion: '7',
        labels: { 'harouter.dev/router': 'r', team: 'a' },
        ...bulky,
      },
      spec: { selector: { app: 'web' }, ports: [{ port: 80 }], clusterIP: '10.0.0.1' },
      status: { loadBalancer: {} },
    };
    expect(serviceFactsSchema.parse(service)).toEqual({
      metadata: {
        name: 'web',
        namespace: 'ns',
        uid: 'u',
        resourceVersion: '7',
        labels: { 'harouter.dev/router': 'r' },
      },
      hasSelector: true,
    });
    expect(serviceFactsSchema.parse({ metadata: { name: 'web', namespace: 'ns' } })).toEqual({
      metadata: { name: 'web', namespace: 'ns' },
      hasSelector: false,
    });
    expect(serviceFactsSchema.safeParse({ metadata: { name: 'web' } }).success).toBe(false);
  });

  it('trimNode keeps exactly what nodeFacts reads', () => {
    const node: V1Node = {
      metadata: { name: 'n', managedFields: [{ manager: 'kubelet' }] },
      status: {
        conditions: [
          { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'long text' },
          { type: 'MemoryPressure', status: 'False' },
        ],
        addresses: [{ type: 'InternalIP', address: '198.51.100.1' }],
        images: [{ names: ['registry/image:tag'], sizeBytes: 1 }],
      },
    };
    const trimmed = trimNode(node);
    expect(nodeFacts(trimmed)).toEqual(nodeFacts(node));
    expect(trimmed.status?.images).toBeUndefined();
    expect(trimmed.metadata?.managedFields).toBeUndefined();
    expect(trimNode({ metadata: { name: 'n', labels: { a: 'b' }, ...bulky } })).toEqual({
      metadata: { name: 'n' },
      status: {},
    });
  });
});

describe('cache indexes', () => {
  it('reports are indexed by namespace/routerId, nothing for malformed ones', () => {
    expect(reportRouterIndex({ metadata: { namespace: 'ns' }, spec: { routerId: 'r' } })).toEqual(['ns/r']);
    expect(reportRouterIndex({ metadata: { namespace: 'ns' }, spec: { routerId: 7 } })).toEqual([]);
    expect(reportRouterIndex({ spec: { routerId: 'r' } })).toEqual([]);
  });

  it('slices are indexed by their controlling HARouter only', () => {
    const owner = (kind: string, controller: boolean) => ({
      metadata: { namespace: 'ns', ownerReferences: [{ kind, name: 'r', controller }] },
    });
    expect(sliceRouterIndex(owner('HARouter', true))).toEqual(['ns/r']);
    expect(sliceRouterIndex(owner('HARouter', false))).toEqual([]);
    expect(sliceRouterIndex(owner('Service', true))).toEqual([]);
  });
});
