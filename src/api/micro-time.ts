/**
 * Kubernetes' `metav1.MicroTime` (Lease times, `Event.eventTime`): RFC 3339 with
 * exactly six fractional digits. The API server answers 400 to any other shape.
 */

/** RFC 3339 with exactly six fractional digits (metav1.MicroTime), in UTC. */
export function formatMicroTime(epochMs: number): string {
  const iso = new Date(epochMs).toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
  return `${iso.slice(0, -1)}000Z`;
}
