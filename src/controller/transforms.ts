/**
 * What the caches keep of each object (client-go's informer `TransformFunc`):
 * everything the reconciler, the event mapping and the webhook read, without
 * `metadata.managedFields` (on a server-side-applied report it is about half of
 * the object) and, for Nodes, without the status a kubelet fills with images,
 * capacity and daemon endpoints; and with their strings interned
 * (`src/runtime/intern.ts`: the namespace, node and router names and the like are
 * stored once, not once per object). At 10,000 routers the caches hold about
 * 60,000 objects: every byte trimmed here is 60,000 bytes of heap.
 */
import { internStrings } from '../runtime/intern.ts';

interface WithMetadata {
  metadata?: object;
}

/**
 * Drops `metadata.managedFields` and kubectl's last-applied annotation and interns
 * the strings (a copy of the object's top and metadata; the rest is the parsed
 * object's own, interned in place).
 */
export function trimMetadata<T extends WithMetadata>(obj: T): T {
  return internStrings(withoutManagedFields(obj));
}

function withoutManagedFields<T extends WithMetadata>(obj: T): T {
  const metadata = obj.metadata;
  if (!metadata) return obj;
  const {
    managedFields: _managed,
    annotations,
    ...rest
  } = metadata as {
    managedFields?: unknown;
    annotations?: Record<string, string>;
  };
  let kept = annotations;
  if (annotations && 'kubectl.kubernetes.io/last-applied-configuration' in annotations) {
    const { 'kubectl.kubernetes.io/last-applied-configuration': _last, ...others } = annotations;
    kept = others;
  }
  return { ...obj, metadata: { ...rest, ...(kept !== undefined ? { annotations: kept } : {}) } };
}

interface NodeLike extends WithMetadata {
  status?: { conditions?: { type?: string; status?: string }[]; addresses?: unknown };
}

/** A Node as the operator reads it: metadata, its conditions' type and status, its addresses. */
export function trimNode<T extends NodeLike>(node: T): T {
  const trimmed = withoutManagedFields(node);
  const conditions = node.status?.conditions;
  return internStrings({
    ...trimmed,
    status: {
      ...(Array.isArray(conditions)
        ? { conditions: conditions.map((c) => ({ type: c?.type, status: c?.status })) }
        : {}),
      ...(node.status?.addresses !== undefined ? { addresses: node.status.addresses } : {}),
    },
  } as T);
}
