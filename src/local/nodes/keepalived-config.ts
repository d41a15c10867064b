/**
 * keepalived's configuration for one simulated node, rendered from data. Pure:
 * the process that runs it is in `keepalived.ts`.
 */

/** One `vrrp_instance`: a router as keepalived on one node sees it. */
export interface VrrpInstance {
  /** keepalived's instance name (what the notify FIFO and `notify` scripts name). */
  name: string;
  /** VRRP's `virtual_router_id`, 1 to 150: unique per network, it also picks the virtual address. */
  virtualRouterId: number;
  /** This node's priority for the instance, 1 to 254 (the highest becomes MASTER and preempts). */
  priority: number;
  /**
   * A `notify` command for the instance, which keepalived runs at each
   * transition with `INSTANCE <name> <STATE> <priority>` appended.
   */
  notify?: string;
}

/** What {@link renderKeepalivedConfig} renders. */
export interface KeepalivedConfig {
  /** `global_defs { router_id }`: the node's name, in keepalived's logs. */
  routerId: string;
  /** The interface the instances run on. */
  interface: string;
  /** `vrrp_notify_fifo`: the FIFO keepalived writes every transition to, or none. */
  fifo?: string;
  /** `advert_int` in seconds (keepalived takes a fraction), default 1. */
  advertInt?: number;
  instances: readonly VrrpInstance[];
  /**
   * `include` lines after `global_defs`: the files the node's agent renders from HARouters
   * (`includeLines(dir)` of `src/keepalived/render.ts`).
   */
  includes?: readonly string[];
}

/** The virtual address of a VRRP router id: 192.0.2.(100 + id), outside the nodes' 192.0.2.1-16. */
export function virtualAddress(virtualRouterId: number): string {
  return `192.0.2.${100 + virtualRouterId}`;
}

const NAME = /^[A-Za-z0-9_.:-]{1,64}$/;
const SAFE_PATH = /^\/[A-Za-z0-9_./@+-]*$/;

/**
 * Renders `keepalived.conf`. Every instance starts as BACKUP (keepalived elects
 * by priority) with preemption on. Throws on values keepalived would misread
 * (a name or path with spaces or quotes, a router id used twice, out-of-range
 * numbers) rather than writing a configuration that means something else.
 */
export function renderKeepalivedConfig(config: KeepalivedConfig): string {
  if (!NAME.test(config.routerId)) throw new Error('routerId: letters, digits and _.:- only');
  if (!NAME.test(config.interface)) throw new Error('interface: letters, digits and _.:- only');
  const advertInt = config.advertInt ?? 1;
  if (!(advertInt > 0 && advertInt <= 255)) throw new Error('advertInt must be in (0, 255] seconds');
  if (config.fifo !== undefined && !SAFE_PATH.test(config.fifo)) {
    throw new Error('fifo must be an absolute path without spaces or quotes');
  }
  const ids = new Set<number>();
  const names = new Set<string>();
  const lines = ['global_defs {', `  router_id ${config.routerId}`];
  if (config.fifo !== undefined) lines.push(`  vrrp_notify_fifo ${config.fifo}`);
  // Notify scripts run as root when no keepalived_script user exists; say so rather than warn.
  lines.push('  script_user root', '}');
  for (const include of config.includes ?? []) {
    if (!/^include \/[A-Za-z0-9_./@+*-]*$/.test(include))
      throw new Error('includes: "include /absolute/path" lines only (no space or quote)');
    lines.push(include);
  }
  for (const instance of config.instances) {
    if (!NAME.test(instance.name))
      throw new Error(`instance name ${JSON.stringify(instance.name)}: letters, digits and _.:- only`);
    if (names.has(instance.name)) throw new Error(`instance ${instance.name} appears twice`);
    names.add(instance.name);
    const id = instance.virtualRouterId;
    if (!Number.isInteger(id) || id < 1 || id > 150)
      throw new Error(`instance ${instance.name}: virtualRouterId must be 1 to 150`);
    if (ids.has(id)) throw new Error(`virtualRouterId ${id} is used twice`);
    ids.add(id);
    const p = instance.priority;
    if (!Number.isInteger(p) || p < 1 || p > 254)
      throw new Error(`instance ${instance.name}: priority must be 1 to 254`);
    lines.push(
      '',
      `vrrp_instance ${instance.name} {`,
      '  state BACKUP',
      `  interface ${config.interface}`,
      `  virtual_router_id ${id}`,
      `  priority ${p}`,
      `  advert_int ${advertInt}`,
      `  virtual_ipaddress {`,
      `    ${virtualAddress(id)}/24`,
      '  }',
    );
    if (instance.notify !== undefined) {
      if (/["\n\\]/.test(instance.notify))
        throw new Error(`instance ${instance.name}: notify must not contain quotes, backslashes or newlines`);
      lines.push(`  notify "${instance.notify}"`);
    }
    lines.push('}');
  }
  return `${lines.join('\n')}\n`;
}
