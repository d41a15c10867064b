/**
 * What the caches keep of each object (client-go's informer `TransformFunc`):
 * only what the reconciler, the event mapping and the webhook read, and with
 * their strings interned (`src/runtime/intern.ts`: the namespace, node and router
 * names and the like are stored once, not once per object). Never
 * `metadata.managedFields` (on a server-side-applied report it is about half of
 * the object) nor annotations (up to 256 KiB per object, read by no decision);
 * labels only where a decision reads them (the EndpointSlices' ownership labels,
 * the Services' opt-in label); for Nodes, not the status a kubelet fills with
 * images, capacity and daemon endpoints. At 10,000 routers the caches hold about
 * 60,000 objects: every byte trimmed here is 60,000 bytes of heap.
 */
import { z } from 'zod';
import { ROUTER_LABEL } from '../api/index.ts';
import { internStrings } from '../runtime/intern.ts';

interface WithMetadata {
  metadata?: object;
}

/** A copy of the object's top and metadata without the metadata fields `drop`, strings interned (in place below metadata). */
function withoutMetadata<T extends WithMetadata>(obj: T, drop: readonly string[]): T {
  if (!obj.metadata) return internStrings(obj);
  const metadata: Record<string, unknown> = { ...obj.metadata };
  for (const field of drop) delete metadata[field];
  return internStrings({ ...obj, metadata });
}

/**
 * A HARouter or a report as cached: without `metadata.managedFields`,
 * annotations and labels (no decision reads them).
 */
export function trimRouterObject<T extends WithMetadata>(obj: T): T {
  return withoutMetadata(obj, ['managedFields', 'annotations', 'labels']);
}

/**
 * An EndpointSlice as cached: without `metadata.managedFields` and annotations;
 * its labels stay (`endpointslice.kubernetes.io/managed-by` and `service-name`
 * decide whether the operator owns it).
 */
export function trimSlice<T extends WithMetadata>(obj: T): T {
  return withoutMetadata(obj, ['managedFields', 'annotations']);
}

interface NodeLike extends WithMetadata {
  status?: { conditions?: { type?: string; status?: string }[]; addresses?: unknown };
}

/**
 * A Node as the operator reads it: metadata without managedFields, annotations
 * and labels, its conditions' type and status, its addresses.
 */
export function trimNode<T extends NodeLike>(node: T): T {
  const conditions = node.status?.conditions;
  return withoutMetadata(
    {
      ...node,
      status: {
        ...(Array.isArray(conditions)
          ? { conditions: conditions.map((c) => ({ type: c?.type, status: c?.status })) }
          : {}),
        ...(node.status?.addresses !== undefined ? { addresses: node.status.addresses } : {}),
      },
    } as T,
    ['managedFields', 'annotations', 'labels'],
  );
}

/**
 * A Service as the operator caches and reads it (API.md, "The Service must opt
 * in"): its identity, the value of its `harouter.dev/router` label, and whether
 * it has a selector. Nothing else of the Service is kept.
 */
export interface ServiceFacts {
  metadata: {
    name: string;
    namespace: string;
    uid?: string;
    resourceVersion?: string;
    /** Only `harouter.dev/router`, when the Service carries it. */
    labels?: { [ROUTER_LABEL]?: string };
  };
  /** Whether `spec.selector` has at least one entry (the operator drives only selector-less Services). */
  hasSelector: boolean;
}

const stringMap = z.record(z.string(), z.string()).nullish();

/**
 * Parses a Service (a watch event or a GET answer) into its {@link ServiceFacts}
 * (the informer's `schema`: what fails it is logged and skipped, like any
 * malformed object). Strings are interned.
 */
export const serviceFactsSchema = z
  .object({
    metadata: z.object({
      name: z.string(),
      namespace: z.string(),
      uid: z.string().optional(),
      resourceVersion: z.string().optional(),
      labels: stringMap,
    }),
    spec: z.object({ selector: stringMap }).nullish(),
  })
  .transform(({ metadata, spec }): ServiceFacts => {
    const label = metadata.labels?.[ROUTER_LABEL];
    return internStrings({
      metadata: {
        name: metadata.name,
        namespace: metadata.namespace,
        ...(metadata.uid !== undefined ? { uid: metadata.uid } : {}),
        ...(metadata.resourceVersion !== undefined ? { resourceVersion: metadata.resourceVersion } : {}),
        ...(label !== undefined ? { labels: { [ROUTER_LABEL]: label } } : {}),
      },
      hasSelector: Object.keys(spec?.selector ?? {}).length > 0,
    });
  });

/**
 * A VRID claim Lease as cached: without `metadata.managedFields` and annotations; its labels
 * stay (they name the claim's segment and VRID).
 */
export const trimClaim = trimSlice;
