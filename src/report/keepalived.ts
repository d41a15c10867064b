import type { ReportedState } from '../api/index.ts';

/** The object kinds keepalived names in its `notify` arguments. */
export const KEEPALIVED_TYPES = ['INSTANCE', 'GROUP'] as const;
export type KeepalivedType = (typeof KEEPALIVED_TYPES)[number];

/**
 * keepalived's VRRP states, as its `notify` script receives them, and the
 * contract's state each one reports. `DELETED` (an instance removed from the
 * configuration on reload) reports `Stopped`, as `STOP` does.
 */
export const KEEPALIVED_STATES: Readonly<Record<string, ReportedState>> = Object.freeze({
  MASTER: 'Primary',
  BACKUP: 'Backup',
  FAULT: 'Fault',
  STOP: 'Stopped',
  DELETED: 'Stopped',
});

/** The contract's state for a keepalived state word, or undefined for anything else (exact, upper case). */
export function stateFromKeepalived(word: string): ReportedState | undefined {
  return Object.hasOwn(KEEPALIVED_STATES, word) ? KEEPALIVED_STATES[word] : undefined;
}

/** keepalived's trailing `notify` arguments, once checked. */
export interface KeepalivedNotify {
  type: KeepalivedType;
  name: string;
  state: ReportedState;
  /** keepalived's word, kept for the default message. */
  keepalivedState: string;
  priority?: number;
}

/**
 * Reads keepalived's `notify` arguments: `INSTANCE|GROUP <name> <STATE> [<priority>]`.
 * keepalived always passes the priority for instances; it is optional here so
 * that a person can type the command by hand. Returns an error text on failure.
 */
export function parseKeepalivedArgs(args: readonly string[]): KeepalivedNotify | { error: string } {
  if (args.length < 3 || args.length > 4) {
    return {
      error: `expected keepalived's notify arguments INSTANCE|GROUP <name> MASTER|BACKUP|FAULT|STOP|DELETED [<priority>], got ${args.length} argument(s)`,
    };
  }
  const [type = '', name = '', word = '', priorityText] = args;
  if (!(KEEPALIVED_TYPES as readonly string[]).includes(type)) {
    return { error: 'the first notify argument must be INSTANCE or GROUP' };
  }
  if (name.length === 0) return { error: 'the instance or group name is empty' };
  const state = stateFromKeepalived(word);
  if (state === undefined) {
    return { error: 'the state argument must be one of MASTER, BACKUP, FAULT, STOP, DELETED' };
  }
  const notify: KeepalivedNotify = { type: type as KeepalivedType, name, state, keepalivedState: word };
  if (priorityText !== undefined) {
    if (!/^[0-9]{1,3}$/.test(priorityText) || Number(priorityText) > 255) {
      return { error: 'the priority argument must be an integer from 0 to 255' };
    }
    notify.priority = Number(priorityText);
  }
  return notify;
}
