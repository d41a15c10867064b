/**
 * The VRID claim: a `coordination.k8s.io` Lease `harouter-vrid-<segment>-<vrid>` in the operator's
 * namespace, held by `<namespace>/<routerId>` (API.md, "Driving keepalived"). Creating it is the
 * claim, so that two operators (or a leader and its successor) never give one VRID to two routers.
 */
import { vridHolder, vridLeaseName } from './vrrp.ts';

/** Labels on every VRID claim Lease (the claim informer selects on the first). */
export const VRID_CLAIM_LABELS = {
  claim: 'harouter.dev/vrid-claim',
  segment: 'harouter.dev/vrrp-segment',
  vrid: 'harouter.dev/vrid',
} as const;
/** The label selector of the claim informer. */
export const VRID_CLAIM_SELECTOR = `${VRID_CLAIM_LABELS.claim}=true`;

/** One VRID claim, read from its Lease. */
export interface VRIDClaim {
  /** The Lease name, `harouter-vrid-<segment>-<vrid>`. */
  readonly name: string;
  readonly uid: string | undefined;
  readonly segment: string;
  readonly vrid: number;
  /** `<namespace>/<routerId>`: the reconcile key of the router holding it. */
  readonly holder: string;
}

/** The part of a Lease a claim is read from (raw JSON, as a watch delivers it). */
export interface LeaseObject {
  metadata?: { name?: string; namespace?: string; uid?: string; labels?: Record<string, string> };
  spec?: { holderIdentity?: string | null };
}

/** A claim from its Lease, or undefined when the Lease is not a well-formed claim (ignored). */
export function claimOf(lease: LeaseObject | undefined): VRIDClaim | undefined {
  const labels = lease?.metadata?.labels;
  const segment = labels?.[VRID_CLAIM_LABELS.segment];
  const vrid = Number(labels?.[VRID_CLAIM_LABELS.vrid]);
  const holder = lease?.spec?.holderIdentity;
  const name = lease?.metadata?.name;
  if (!segment || !Number.isInteger(vrid) || typeof holder !== 'string' || !holder.includes('/'))
    return undefined;
  if (name !== vridLeaseName(segment, vrid)) return undefined;
  return { name, uid: lease?.metadata?.uid, segment, vrid, holder };
}

/** The Lease that claims `vrid` of `segment` for the router `namespace/routerId`. */
export function claimLease(segment: string, vrid: number, namespace: string, routerId: string): LeaseObject {
  return {
    metadata: {
      name: vridLeaseName(segment, vrid),
      labels: {
        [VRID_CLAIM_LABELS.claim]: 'true',
        [VRID_CLAIM_LABELS.segment]: segment,
        [VRID_CLAIM_LABELS.vrid]: String(vrid),
      },
    },
    spec: { holderIdentity: vridHolder(namespace, routerId) },
  };
}
