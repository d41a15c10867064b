/**
 * VRID allocation, the pure part (API.md, "Driving keepalived", `spec.vrrp.vrid`): what a
 * claim Lease says, which VRID to try next, and what a router ends up with. The shell
 * (`vrid-allocator.ts`) creates and deletes the claims; nothing here does I/O.
 */
import { type VRIDClaim, VRRP_LIMITS, VRRP_READY_REASONS } from '../api/index.ts';

/**
 * The lowest VRID (1-254) that is neither taken nor reserved; undefined when none is left.
 * Pure and total: the shell calls it again with the VRID added to `taken` when its claim
 * turns out to exist already.
 */
export function lowestFreeVRID(
  taken: ReadonlySet<number>,
  reserved: ReadonlySet<number>,
): number | undefined {
  for (let vrid = VRRP_LIMITS.vrid.min; vrid <= VRRP_LIMITS.vrid.max; vrid++) {
    if (!taken.has(vrid) && !reserved.has(vrid)) return vrid;
  }
  return undefined;
}

/**
 * What a router with `spec.vrrp` has: a recorded VRID (written to `status.vrrp`, rendered by the
 * agents), or a reason why it has none (`Ready=False`, not rendered).
 */
export type VRIDOutcome =
  | { readonly kind: 'recorded'; readonly segment: string; readonly vrid: number }
  | { readonly kind: 'conflict'; readonly segment: string; readonly vrid: number; readonly holder: string }
  | { readonly kind: 'exhausted'; readonly segment: string };

/** The `Ready=False` facts of an outcome without a VRID, or undefined when it has one. */
export function vridRefusal(
  outcome: VRIDOutcome | undefined,
): { reason: string; message: string } | undefined {
  if (!outcome || outcome.kind === 'recorded') return undefined;
  if (outcome.kind === 'conflict') {
    return {
      reason: VRRP_READY_REASONS.vridConflict,
      message: `VRID ${outcome.vrid} of segment ${outcome.segment} is held by HARouter ${outcome.holder}; no agent renders this router`,
    };
  }
  return {
    reason: VRRP_READY_REASONS.noVRIDAvailable,
    message: `every VRID of segment ${outcome.segment} is claimed or reserved`,
  };
}

/**
 * The VRID a router keeps without asking the API server, if any: its recorded one (same segment,
 * and `spec.vrrp.vrid`, when set, unchanged), else the lowest claim it already holds in the segment
 * that fits `spec.vrrp.vrid` (a claim created before a status write that did not happen).
 */
export function keptVRID(
  spec: { segment: string; vrid?: number | undefined },
  recorded: { segment: string; vrid: number } | undefined,
  held: readonly VRIDClaim[],
): number | undefined {
  const fits = (segment: string, vrid: number) =>
    segment === spec.segment && (spec.vrid === undefined || spec.vrid === vrid);
  if (recorded && fits(recorded.segment, recorded.vrid)) return recorded.vrid;
  const candidates = held.filter((c) => fits(c.segment, c.vrid)).map((c) => c.vrid);
  return candidates.length > 0 ? Math.min(...candidates) : undefined;
}

/** The claims a router holds and no longer needs: all of them but the one of `keep` (in `segment`). */
export function claimsToRelease(
  held: readonly VRIDClaim[],
  keep: { segment: string; vrid: number } | undefined,
): VRIDClaim[] {
  return held.filter((c) => !(keep && c.segment === keep.segment && c.vrid === keep.vrid));
}
