/**
 * The metadata a reporter's HARouterState may carry (API.md, "Who may report",
 * rule 3): no finalizers, no ownerReferences, at most 8 labels and 8 annotations,
 * each (key and value together) at most 1 KiB of UTF-8. A node's token must not be
 * able to store large objects (every operator replica caches every report), pin a
 * namespace in Terminating, or hand its report to the garbage collector.
 *
 * The webhook checks them here; the ValidatingAdmissionPolicy states the same
 * limits in CEL from these constants (the object's size approximately: see
 * `objectBytes`).
 */

/**
 * The limits; the CEL policy is generated from the same numbers. `objectBytes` bounds
 * the whole object a reporter's write leaves (its JSON, `managedFields` included), so
 * that no node can inflate a report past the webhook's body limit (an AdmissionReview
 * carries the object twice); CEL cannot measure bytes, so the policy bounds
 * `managedFields` to `managedFieldsEntries` entries instead.
 */
export const REPORTER_METADATA_LIMITS = Object.freeze({
  labels: 8,
  annotations: 8,
  entryBytes: 1024,
  objectBytes: 64 * 1024,
  managedFieldsEntries: 16,
});

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function mapWithinLimits(value: unknown, maxEntries: number): boolean {
  if (value === undefined || value === null) return true;
  if (!isRecord(value)) return false;
  const entries = Object.entries(value);
  if (entries.length > maxEntries) return false;
  return entries.every(
    ([key, v]) =>
      typeof v === 'string' &&
      Buffer.byteLength(key, 'utf8') + Buffer.byteLength(v, 'utf8') <= REPORTER_METADATA_LIMITS.entryBytes,
  );
}

const emptyOrAbsent = (value: unknown) =>
  value === undefined || value === null || (Array.isArray(value) && value.length === 0);

/** True when a raw object's metadata is within the reporter limits (a missing metadata is, trivially). */
export function metadataAllowed(object: unknown): boolean {
  if (!isRecord(object)) return true;
  const metadata = object.metadata;
  if (metadata === undefined) return true;
  if (!isRecord(metadata)) return false;
  return (
    emptyOrAbsent(metadata.finalizers) &&
    emptyOrAbsent(metadata.ownerReferences) &&
    mapWithinLimits(metadata.labels, REPORTER_METADATA_LIMITS.labels) &&
    mapWithinLimits(metadata.annotations, REPORTER_METADATA_LIMITS.annotations)
  );
}

/** True when a raw object, as JSON, is within the reporter's {@link REPORTER_METADATA_LIMITS}.objectBytes. */
export function objectSizeAllowed(object: unknown): boolean {
  const text = JSON.stringify(object ?? null);
  // A UTF-8 byte is at least one UTF-16 unit and at most three: skip the count when the answer is sure.
  if (text.length > REPORTER_METADATA_LIMITS.objectBytes) return false;
  if (text.length * 3 <= REPORTER_METADATA_LIMITS.objectBytes) return true;
  return Buffer.byteLength(text, 'utf8') <= REPORTER_METADATA_LIMITS.objectBytes;
}
