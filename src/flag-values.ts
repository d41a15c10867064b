/**
 * Flag values shared by the operator's configuration and harouterctl: listen
 * addresses and durations. No imports, so a command can read its flags without
 * loading the operator's configuration (zod and the webhook's rules).
 */

/** A listen address `host:port`, `:port` or `[v6]:port`; `null` when disabled with `0`. */
export interface BindAddress {
  /** undefined: all interfaces. */
  host: string | undefined;
  port: number;
  /** As given on the command line. */
  text: string;
}

/** Reads a listen address (`host:port`, `:port`, `[v6]:port`; `0` disables when allowed). Throws with the rule. */
export function parseBind(value: string, allowDisable: boolean): BindAddress | null {
  if (allowDisable && value === '0') return null;
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port > 65535) {
    throw new Error(`must be host:port, :port or [ipv6]:port${allowDisable ? ' (or 0 to disable)' : ''}`);
  }
  const host = match[1] ?? match[2];
  return { host: host === '' ? undefined : host, port, text: value };
}

/** Durations: `15s`, `1500ms`, `2m`, `1h`, or plain seconds. */
export function parseDuration(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) return undefined;
  const n = Number(match[1]);
  const unit = match[2] ?? 's';
  const factor = unit === 'ms' ? 1 : unit === 's' ? 1000 : unit === 'm' ? 60_000 : 3_600_000;
  return Math.round(n * factor);
}
