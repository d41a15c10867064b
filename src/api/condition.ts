import { z } from 'zod';

/** A standard `metav1.Condition`, as the operator writes and reads it. */
export const conditionSchema = z.object({
  type: z.string().min(1).max(316),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().min(1).max(1024),
  message: z.string().max(32768),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().min(0).optional(),
});
export type Condition = z.infer<typeof conditionSchema>;

/** The part of a condition that decides whether it changed (times excluded). */
export type ConditionFacts = Pick<Condition, 'type' | 'status' | 'reason' | 'message'>;

/**
 * Merges desired condition facts into existing conditions the way
 * `meta.SetStatusCondition` does: `lastTransitionTime` moves only when the
 * status flips. Pure: the caller gives the clock reading.
 */
export function mergeConditions(
  existing: readonly Condition[] | undefined,
  desired: readonly ConditionFacts[],
  now: string,
  observedGeneration?: number,
): Condition[] {
  return desired.map((want) => {
    const have = existing?.find((c) => c.type === want.type);
    const lastTransitionTime = have && have.status === want.status ? have.lastTransitionTime : now;
    return {
      ...want,
      lastTransitionTime,
      ...(observedGeneration !== undefined ? { observedGeneration } : {}),
    };
  });
}
