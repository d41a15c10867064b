/**
 * `spec.vrrp`: the keepalived configuration a HARouter drives (API.md, "Driving keepalived"),
 * the rules the zod schema and the CRD share, and the pure helpers the operator and the node
 * agent both use (an agent's effective priority, the name of a VRID claim).
 */
import { z } from 'zod';
import { DNS_LABEL_PATTERN } from './validation.ts';

/** Defaults the API server fills in (the CRD's `default`s) and the zod schema applies alike. */
export const VRRP_DEFAULTS = {
  segment: 'default',
  advertIntervalMs: 1000,
  fenceHoldSeconds: 60,
  failbackDelaySeconds: 30,
} as const;

/** Bounds of the numeric fields, shared by zod and the CRD. */
export const VRRP_LIMITS = {
  vrid: { min: 1, max: 254 },
  advertIntervalMs: { min: 100, max: 40950, multipleOf: 10 },
  fenceHoldSeconds: { min: 1, max: 900 },
  failbackDelaySeconds: { min: 0, max: 3600 },
  virtualIPs: { min: 1, max: 16 },
  /** Longest text form of an address with its prefix (`ffff:...:255.255.255.255/128` is 49). */
  virtualIPMaxLength: 49,
  segmentMaxLength: 63,
} as const;

/**
 * A Linux interface name keepalived can be given verbatim: at most 15 characters (IFNAMSIZ - 1),
 * starting with a letter or digit, then letters, digits, `_`, `.`, `-` (VLANs like `eth0.100`).
 * Nothing that could break out of a keepalived configuration line (no space, quote, brace or `#`).
 */
export const INTERFACE_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$';

/** The priority of the agent at `position` in `spec.agents` when it sets none: 200, 190, 180... */
export function defaultPriority(position: number): number {
  return 200 - 10 * position;
}

/**
 * An agent's keepalived priority as rendered: its `spec.agents[].priority`, or
 * `200 - 10 x position` when it sets none. Undefined when `agent` is not a member. The node
 * agent renders this value and the operator shows it in `status.agents[].priority`, so both
 * call this one function.
 */
export function effectivePriority(
  agents: readonly { name: string; priority?: number | undefined }[],
  agent: string,
): number | undefined {
  const position = agents.findIndex((a) => a.name === agent);
  if (position < 0) return undefined;
  return agents[position]?.priority ?? defaultPriority(position);
}

/** The prefix of every VRID claim Lease. */
export const VRID_LEASE_PREFIX = 'harouter-vrid-';

/**
 * The name of the `coordination.k8s.io` Lease that claims `vrid` in `segment` (in the operator's
 * namespace): `harouter-vrid-<segment>-<vrid>`. Creating it is the claim; AlreadyExists means taken.
 */
export function vridLeaseName(segment: string, vrid: number): string {
  return `${VRID_LEASE_PREFIX}${segment}-${vrid}`;
}

/** The holder identity written into a VRID claim: `<namespace>/<routerId>`. */
export function vridHolder(namespace: string, routerId: string): string {
  return `${namespace}/${routerId}`;
}

/** An IP address family, as CEL's `ip().family()` numbers it. */
export type IPFamily = 4 | 6;

/** A parsed virtual IP: its family and its 4 or 16 address bytes (for comparisons). */
export interface ParsedCIDR {
  readonly family: IPFamily;
  readonly bytes: readonly number[];
  readonly prefix: number;
}

const IPV4_OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])$/;
const IPV6_GROUP = /^[0-9A-Fa-f]{1,4}$/;
const PREFIX_DIGITS = /^(0|[1-9][0-9]{0,2})$/;

function parseIPv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => IPV4_OCTET.test(p))) return undefined;
  return parts.map(Number);
}

function groupsToBytes(groups: readonly string[]): number[] | undefined {
  const bytes: number[] = [];
  for (const group of groups) {
    if (!IPV6_GROUP.test(group)) return undefined;
    const value = Number.parseInt(group, 16);
    bytes.push(value >> 8, value & 0xff);
  }
  return bytes;
}

/** Parses one side of `::`: hex groups, the last of which may be a dotted IPv4 address. */
function parseIPv6Side(text: string, allowIPv4Tail: boolean): number[] | undefined {
  if (text === '') return [];
  const groups = text.split(':');
  const last = groups[groups.length - 1] ?? '';
  if (allowIPv4Tail && last.includes('.')) {
    const v4 = parseIPv4(last);
    const head = groupsToBytes(groups.slice(0, -1));
    return v4 && head ? [...head, ...v4] : undefined;
  }
  return groupsToBytes(groups);
}

function parseIPv6(text: string): number[] | undefined {
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  if (halves.length === 1) {
    const bytes = parseIPv6Side(text, true);
    return bytes?.length === 16 ? bytes : undefined;
  }
  const left = parseIPv6Side(halves[0] ?? '', false);
  const right = parseIPv6Side(halves[1] ?? '', true);
  if (!left || !right || left.length + right.length > 14) return undefined;
  return [...left, ...new Array<number>(16 - left.length - right.length).fill(0), ...right];
}

/**
 * Parses `address/prefix` as the API server's CEL `isCIDR()` does (Go's `netip.ParsePrefix`):
 * dotted-quad IPv4 without leading zeros, IPv6 in any standard form (no zone), a decimal
 * prefix without leading zeros within the family's width; IPv4-mapped IPv6 refused.
 */
export function parseCIDR(value: string): ParsedCIDR | undefined {
  const slash = value.indexOf('/');
  if (slash < 0) return undefined;
  const address = value.slice(0, slash);
  const prefixText = value.slice(slash + 1);
  if (!PREFIX_DIGITS.test(prefixText)) return undefined;
  const prefix = Number(prefixText);
  if (address.includes(':')) {
    const bytes = parseIPv6(address);
    if (!bytes || prefix > 128) return undefined;
    const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
    return mapped ? undefined : { family: 6, bytes, prefix };
  }
  const bytes = parseIPv4(address);
  return bytes && prefix <= 32 ? { family: 4, bytes, prefix } : undefined;
}

const sameAddress = (a: ParsedCIDR, b: ParsedCIDR) =>
  a.family === b.family && a.bytes.every((byte, i) => byte === b.bytes[i]);

/**
 * Why a list of virtual IPs is refused (one family, each address once), or undefined. Entries
 * that do not parse are left to the per-item rule.
 */
export function virtualIPsRefusal(values: readonly string[]): string | undefined {
  const parsed = values.map(parseCIDR).filter((p): p is ParsedCIDR => p !== undefined);
  const first = values[0] === undefined ? undefined : parseCIDR(values[0]);
  if (first && parsed.some((p) => p.family !== first.family)) {
    return 'virtual IP family rule: every virtual IP must be of the family of the first';
  }
  if (parsed.some((p, i) => parsed.findIndex((q) => sameAddress(p, q)) !== i)) {
    return 'unique virtual IPs rule: each address may appear once';
  }
  return undefined;
}

/** `spec.vrrp`: the router's keepalived instance, rendered by the node agents. */
export const vrrpSchema = z.object({
  segment: z
    .string()
    .max(VRRP_LIMITS.segmentMaxLength)
    .regex(new RegExp(DNS_LABEL_PATTERN), { message: 'segment rule: must be a DNS-1123 label' })
    .default(VRRP_DEFAULTS.segment),
  vrid: z.number().int().min(VRRP_LIMITS.vrid.min).max(VRRP_LIMITS.vrid.max).optional(),
  interface: z.string().regex(new RegExp(INTERFACE_PATTERN), {
    message: 'interface rule: must be a network interface name (at most 15 characters)',
  }),
  virtualIPs: z
    .array(
      z
        .string()
        .max(VRRP_LIMITS.virtualIPMaxLength)
        .refine((v) => parseCIDR(v) !== undefined, {
          message: 'virtual IP rule: must be an address with its prefix length (CIDR)',
        }),
    )
    .min(VRRP_LIMITS.virtualIPs.min)
    .max(VRRP_LIMITS.virtualIPs.max)
    .superRefine((values, ctx) => {
      const refusal = virtualIPsRefusal(values);
      if (refusal) ctx.addIssue({ code: 'custom', message: refusal });
    }),
  advertIntervalMs: z
    .number()
    .int()
    .min(VRRP_LIMITS.advertIntervalMs.min)
    .max(VRRP_LIMITS.advertIntervalMs.max)
    .multipleOf(VRRP_LIMITS.advertIntervalMs.multipleOf)
    .default(VRRP_DEFAULTS.advertIntervalMs),
  fenceHoldSeconds: z
    .number()
    .int()
    .min(VRRP_LIMITS.fenceHoldSeconds.min)
    .max(VRRP_LIMITS.fenceHoldSeconds.max)
    .default(VRRP_DEFAULTS.fenceHoldSeconds),
  failbackDelaySeconds: z
    .number()
    .int()
    .min(VRRP_LIMITS.failbackDelaySeconds.min)
    .max(VRRP_LIMITS.failbackDelaySeconds.max)
    .default(VRRP_DEFAULTS.failbackDelaySeconds),
});

/** `status.vrrp`: the VRID the operator recorded for the router (never changed once set). */
export const vrrpStatusSchema = z.object({
  vrid: z.number().int().min(VRRP_LIMITS.vrid.min).max(VRRP_LIMITS.vrid.max),
  segment: z.string(),
});

export type VRRPSpec = z.infer<typeof vrrpSchema>;
export type VRRPStatus = z.infer<typeof vrrpStatusSchema>;

/** The HARouter condition of a switchover to `spec.preferredAgent` (True while moving). */
export const CONDITION_SWITCHOVER = 'Switchover';
/** The HARouter condition of a drain of the node its active agent runs on. */
export const CONDITION_DRAINING = 'Draining';

/** Reasons of the `Switchover` condition. */
export const SWITCHOVER_REASONS = {
  /** True: the other agents are fenced, waiting for the preferred agent's `Primary` report. */
  inProgress: 'InProgress',
  /** False: the preferred agent is active. */
  completed: 'Completed',
  /** False: the preferred agent did not report `Primary` in time; the fences were lifted. */
  targetDidNotTakeOver: 'TargetDidNotTakeOver',
  /** False: the preferred agent is not live (its state is in the message); nothing is moved. */
  targetNotLive: 'TargetNotLive',
  /** False: the preferred agent came back from a failure less than `failbackDelaySeconds` ago. */
  failbackDelay: 'FailbackDelay',
  /** False: no `spec.preferredAgent`. */
  noPreference: 'NoPreferredAgent',
} as const;

/** Reasons of the `Draining` condition. */
export const DRAINING_REASONS = {
  /** True: an agent of this router is on a draining node and fenced. */
  draining: 'NodeDraining',
  /** False: the router's only live agents are on draining nodes; it keeps its active agent. */
  noOtherAgent: 'NoOtherAgent',
  /** False: no agent of this router is on a draining node. */
  notDraining: 'NotDraining',
} as const;

/** `Ready=False` reasons that come from `spec.vrrp`. */
export const VRRP_READY_REASONS = {
  /** `spec.vrrp.vrid` is already claimed by another router of the segment; no agent renders this one. */
  vridConflict: 'VRIDConflict',
  /** Every VRID of the segment (1-254, minus `--vrrp-reserved-vrids`) is claimed. */
  noVRIDAvailable: 'NoVRIDAvailable',
} as const;

/** The Node label that drains a node (as a cordon does): `harouter.dev/drain: "true"`. */
export const DRAIN_LABEL = 'harouter.dev/drain';
