/**
 * keepalived's configuration for routers driven by their HARouter (API.md, "Driving
 * keepalived"), rendered from plain data. Pure: the node agent writes these files and
 * the local-mode harness can render the same text.
 *
 * One file per router (`<routerId>.conf`: its fence's `track_file` and one
 * `vrrp_instance` named by the router id), `harouter-global.conf` (the `global_defs`
 * the agent needs) and, when the agent runs keepalived itself, a main file made of
 * two `include` lines.
 */
import { INTERFACE_PATTERN, isRouterId, parseCIDR, virtualIPsRefusal } from '../api/index.ts';

/** One router as keepalived on one node runs it. */
export interface VrrpRouterConfig {
  /** The router id (canonical UUID): the instance's name, so reports need no mapping. */
  routerId: string;
  /** `interface`: the link VRRP runs on, the same name on every agent. */
  interface: string;
  /** `virtual_router_id`, 1 to 254 (`status.vrrp.vrid`). */
  vrid: number;
  /** This agent's priority, 1 to 254. */
  priority: number;
  /** `advert_int`, 100 to 40950 ms in steps of 10 (VRRPv3 counts centiseconds). */
  advertIntervalMs: number;
  /** 1 to 16 addresses with a prefix length, one family: the first is advertised, the others excluded. */
  virtualIPs: readonly string[];
}

/** The file that holds the agent's `global_defs`. */
export const GLOBAL_FILE = 'harouter-global.conf';

/**
 * The glob that matches router files (`<uuid>.conf`: four dashes) and neither the
 * global file nor a main file named `keepalived.conf` in the same directory.
 */
export const ROUTER_FILE_GLOB = '*-*-*-*-*.conf';

/** The file of one router in the configuration directory. */
export function routerFileName(routerId: string): string {
  return `${routerId}.conf`;
}

/** The name of a router's fence `track_file` (keepalived 2.2's name for `vrrp_track_file`). */
export function fenceTrackName(routerId: string): string {
  return `harouter_fence_${routerId}`;
}

/** The router id of a router file's name, or undefined for any other name. */
export function routerIdOfFile(fileName: string): string | undefined {
  if (!fileName.endsWith('.conf')) return undefined;
  const id = fileName.slice(0, -'.conf'.length);
  return isRouterId(id) ? id : undefined;
}

/** A value that keepalived would misread; the message names the field and the rule. */
export class RenderError extends Error {
  override name = 'RenderError';
}

const INTERFACE = new RegExp(INTERFACE_PATTERN);
/** Paths written into the configuration: absolute, no space, quote, brace or `#`. */
const SAFE_PATH = /^\/[A-Za-z0-9_./@+-]*$/;

function checkPath(what: string, path: string): void {
  if (!SAFE_PATH.test(path) || path.includes('..'))
    throw new RenderError(`${what} must be an absolute path of letters, digits and _./@+- (no "..")`);
}

/** `advert_int` in seconds, exactly: 1000 -> `1`, 1500 -> `1.5`, 100 -> `0.1`, 40950 -> `40.95`. */
export function advertIntSeconds(ms: number): string {
  const whole = Math.floor(ms / 1000);
  const fraction = String(ms % 1000)
    .padStart(3, '0')
    .replace(/0+$/, '');
  return fraction === '' ? String(whole) : `${whole}.${fraction}`;
}

/**
 * Renders one router's file. Every instance is `state BACKUP` with `nopreempt`
 * (a recovered agent never takes the router back by itself), VRRPv3, the first
 * virtual IP advertised and the others in `virtual_ipaddress_excluded` (so changing
 * them never changes what peers compare), and the fence file tracked with weight 0
 * (a non-zero value forces FAULT; a missing file counts as 0). Throws
 * {@link RenderError} rather than write something keepalived would read otherwise.
 */
export function renderRouterConfig(router: VrrpRouterConfig, fenceDir: string): string {
  const id = router.routerId;
  if (!isRouterId(id)) throw new RenderError('routerId must be a canonical lower-case UUID');
  checkPath('the fence directory', fenceDir);
  if (!INTERFACE.test(router.interface))
    throw new RenderError(`router ${id}: interface must be a network interface name (at most 15 characters)`);
  if (!Number.isInteger(router.vrid) || router.vrid < 1 || router.vrid > 254)
    throw new RenderError(`router ${id}: vrid must be an integer from 1 to 254`);
  if (!Number.isInteger(router.priority) || router.priority < 1 || router.priority > 254)
    throw new RenderError(`router ${id}: priority must be an integer from 1 to 254`);
  const ms = router.advertIntervalMs;
  if (!Number.isInteger(ms) || ms < 100 || ms > 40950 || ms % 10 !== 0)
    throw new RenderError(`router ${id}: advertIntervalMs must be 100 to 40950, a multiple of 10`);
  const vips = router.virtualIPs;
  if (vips.length < 1 || vips.length > 16)
    throw new RenderError(`router ${id}: 1 to 16 virtual IPs are needed`);
  for (const vip of vips) {
    if (parseCIDR(vip) === undefined)
      throw new RenderError(
        `router ${id}: virtual IP ${JSON.stringify(vip)} is not an address with its prefix length`,
      );
  }
  const refusal = virtualIPsRefusal(vips);
  if (refusal !== undefined) throw new RenderError(`router ${id}: ${refusal}`);
  const [advertised, ...excluded] = vips;
  const track = fenceTrackName(id);
  const lines = [
    `# harouter ${id}: written by harouterctl agent from the HARouter; do not edit.`,
    `track_file ${track} {`,
    `  file "${fenceDir.replace(/\/+$/, '')}/${id}"`,
    '  weight 0',
    '}',
    '',
    `vrrp_instance ${id} {`,
    '  state BACKUP',
    '  nopreempt',
    `  interface ${router.interface}`,
    `  virtual_router_id ${router.vrid}`,
    `  priority ${router.priority}`,
    `  advert_int ${advertIntSeconds(ms)}`,
    '  version 3',
    '  virtual_ipaddress {',
    `    ${advertised}`,
    '  }',
  ];
  if (excluded.length > 0) {
    lines.push('  virtual_ipaddress_excluded {', ...excluded.map((vip) => `    ${vip}`), '  }');
  }
  lines.push('  track_file {', `    ${track} weight 0`, '  }', '}');
  return `${lines.join('\n')}\n`;
}

/**
 * Renders `harouter-global.conf`: the notify FIFO the agent reads, and
 * `fifo_write_vrrp_states_on_reload` (keepalived 2.2.7's name) so that every
 * instance's state is written again after a reload and no transition is missed.
 */
export function renderGlobalConfig(options: { fifo: string }): string {
  checkPath('the notify FIFO', options.fifo);
  return [
    '# harouter: written by harouterctl agent; do not edit.',
    'global_defs {',
    `  vrrp_notify_fifo ${options.fifo}`,
    '  fifo_write_vrrp_states_on_reload',
    '}',
    '',
  ].join('\n');
}

/**
 * The two `include` lines that load the agent's files from `dir` into keepalived's
 * main configuration (what an administrator adds to `/etc/keepalived/keepalived.conf`).
 */
export function includeLines(dir: string): string[] {
  checkPath('the keepalived configuration directory', dir);
  const base = dir.replace(/\/+$/, '');
  return [`include ${base}/${GLOBAL_FILE}`, `include ${base}/${ROUTER_FILE_GLOB}`];
}

/** The main file of a keepalived run by the agent (`--run-keepalived`): the include lines only. */
export function renderMainConfig(dir: string): string {
  return ['# harouter: keepalived run by harouterctl agent; do not edit.', ...includeLines(dir), ''].join(
    '\n',
  );
}
