import type { V1Node } from '@kubernetes/client-node';
import { describe, expect, it } from 'vitest';
import { nodeFacts } from '../../src/controller/event-keys.ts';
import { reportRouterIndex, sliceRouterIndex } from '../../src/controller/indexes.ts';
import { trimMetadata, trimNode } from '../../src/controller/transforms.ts';

describe('cache transforms', () => {
  it('trimMetadata drops managedFields and the last-applied annotation, keeps the rest', () => {
    const obj = {
      metadata: {
        name: 'x',
        namespace: 'ns',
        resourceVersion: '5',
        managedFields: [{ manager: 'harouterctl', fieldsV1: { 'f:spec': {} } }],
        annotations: { 'kubectl.kubernetes.io/last-applied-configuration': '{}', 'harouter.dev/router': 'r' },
        labels: { a: 'b' },
      },
      spec: { selector: { app: 'x' } },
    };
    expect(trimMetadata(obj)).toEqual({
      metadata: {
        name: 'x',
        namespace: 'ns',
        resourceVersion: '5',
        annotations: { 'harouter.dev/router': 'r' },
        labels: { a: 'b' },
      },
      spec: { selector: { app: 'x' } },
    });
    expect(obj.metadata.managedFields).toHaveLength(1);
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
