/**
 * Which routers a node's keepalived runs, and the text of each one's file: the
 * HARouters that list the agent and have `spec.vrrp` with a VRID recorded in
 * `status.vrrp.vrid`. Pure: the agent's watch feeds it and writes what it returns.
 */
import { effectivePriority, type HARouter, parseCIDR, VRRP_DEFAULTS } from '../api/index.ts';
import { RenderError, renderRouterConfig } from './render.ts';

/** One router's files on this node. */
export interface DesiredRouter {
  routerId: string;
  namespace: string;
  /** The text of `<routerId>.conf`. */
  config: string;
  /** `status.agents[<this agent>].fenced`: the fence file holds `1`, else `0`. */
  fenced: boolean;
}

/** Why a router that lists the agent is not rendered. */
export type SkipReason = 'VRIDConflict' | 'DuplicateVRID' | 'Invalid';

/** A router left out, with the reason (logged by the agent as fields). */
export interface SkippedRouter {
  routerId: string;
  namespace: string;
  reason: SkipReason;
  detail?: string;
}

const creation = (router: HARouter): string => {
  const value = (router.metadata as { creationTimestamp?: unknown }).creationTimestamp;
  return typeof value === 'string' ? value : '';
};

/** keepalived refuses (or merges) two instances with one VRID on one interface and family. */
function vridKey(router: HARouter, vrid: number): string {
  const vrrp = router.spec.vrrp;
  return `${vrrp?.interface}/${parseCIDR(vrrp?.virtualIPs[0] ?? '')?.family}/${vrid}`;
}

/**
 * The routers `agent` runs, oldest first, and those it leaves out: a router the
 * operator marked `Ready=False` with reason `VRIDConflict`, a router whose VRID an
 * older router already uses on the same interface and family here (one such pair
 * in a reload would make keepalived drop an instance), and a router keepalived
 * would misread (the message of the {@link RenderError}).
 */
export function desiredRouters(
  routers: readonly HARouter[],
  agent: string,
  fenceDir: string,
): { routers: DesiredRouter[]; skipped: SkippedRouter[] } {
  const members = routers
    .filter((r) => r.spec.vrrp !== undefined && r.status?.vrrp?.vrid !== undefined)
    .filter((r) => r.spec.agents.some((a) => a.name === agent))
    .sort(
      (a, b) =>
        creation(a).localeCompare(creation(b)) ||
        (a.metadata.namespace ?? '').localeCompare(b.metadata.namespace ?? '') ||
        a.metadata.name.localeCompare(b.metadata.name),
    );
  const out: DesiredRouter[] = [];
  const skipped: SkippedRouter[] = [];
  const used = new Map<string, string>();
  const seen = new Set<string>();
  for (const router of members) {
    const routerId = router.metadata.name;
    const namespace = router.metadata.namespace ?? '';
    const vrrp = router.spec.vrrp;
    const vrid = router.status?.vrrp?.vrid;
    if (vrrp === undefined || vrid === undefined || seen.has(routerId)) continue;
    const ready = router.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status === 'False' && ready.reason === 'VRIDConflict') {
      skipped.push({ routerId, namespace, reason: 'VRIDConflict' });
      continue;
    }
    const key = vridKey(router, vrid);
    const holder = used.get(key);
    if (holder !== undefined) {
      skipped.push({
        routerId,
        namespace,
        reason: 'DuplicateVRID',
        detail: `VRID ${vrid} is used by ${holder}`,
      });
      continue;
    }
    let config: string;
    try {
      config = renderRouterConfig(
        {
          routerId,
          interface: vrrp.interface,
          vrid,
          priority: effectivePriority(router.spec.agents, agent) ?? 0,
          advertIntervalMs: vrrp.advertIntervalMs ?? VRRP_DEFAULTS.advertIntervalMs,
          virtualIPs: vrrp.virtualIPs,
        },
        fenceDir,
      );
    } catch (error) {
      if (!(error instanceof RenderError)) throw error;
      skipped.push({ routerId, namespace, reason: 'Invalid', detail: error.message });
      continue;
    }
    used.set(key, routerId);
    seen.add(routerId);
    const fenced = router.status?.agents?.find((a) => a.name === agent)?.fenced === true;
    out.push({ routerId, namespace, config, fenced });
  }
  return { routers: out, skipped };
}
