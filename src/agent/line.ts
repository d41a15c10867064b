/**
 * keepalived's notify FIFO lines, read into what the agent does with them.
 * Pure: a line in, a verdict out; never throws.
 */
import type { ReportedState } from '../api/index.ts';
import { isPrintable } from '../api/validation.ts';
import { type KeepalivedType, stateFromKeepalived } from '../report/keepalived.ts';

/** The longest line the agent reads, in bytes, its newline excluded (API.md: "A line is at most 4 KiB"). */
export const MAX_LINE_BYTES = 4096;

/**
 * Events keepalived writes to the FIFO that are not transitions
 * (keepalived.conf(5): `MASTER_RX_LOWER_PRI` instead of a state, and
 * `MASTER_PRIORITY` / `BACKUP_PRIORITY` with `notify_priority_changes`).
 */
export const NON_TRANSITION_EVENTS: ReadonlySet<string> = new Set([
  'MASTER_RX_LOWER_PRI',
  'MASTER_PRIORITY',
  'BACKUP_PRIORITY',
]);

/** What one line means. */
export type NotifyLine =
  | {
      kind: 'transition';
      type: KeepalivedType;
      name: string;
      state: ReportedState;
      /** keepalived's own word (`MASTER`, `DELETED`, ...), kept for the report's message. */
      keepalivedState: string;
      priority?: number;
    }
  /** A well-formed event that is not a transition. */
  | { kind: 'ignored'; type: KeepalivedType; name: string; event: string }
  /** Not of keepalived's forms; `problem` is a constant text, safe as a log message field. */
  | { kind: 'malformed'; problem: string };

// TYPE, then a name in double quotes (keepalived always quotes it; it may hold
// spaces) or a bare word, then the state or event word, then an optional priority.
const LINE = /^(INSTANCE|GROUP) (?:"([^"]*)"|([^\s"]+)) ([A-Z_]+)(?: ([0-9]{1,3}))?$/;

/**
 * Reads one line (without its newline). Forms, from keepalived.conf(5):
 * `INSTANCE "VI_1" MASTER 100`, `GROUP "VG_1" BACKUP`, states `MASTER BACKUP
 * FAULT STOP DELETED`, and the non-transition events in {@link NON_TRANSITION_EVENTS}.
 * Names must be printable (no control or bidirectional characters); priorities
 * are 0 to 255.
 */
export function parseNotifyLine(line: string): NotifyLine {
  const match = LINE.exec(line);
  if (!match)
    return { kind: 'malformed', problem: 'not of the form INSTANCE|GROUP "<name>" <STATE> [<priority>]' };
  const type = match[1] as KeepalivedType;
  const name = match[2] ?? match[3] ?? '';
  const word = match[4] ?? '';
  const priorityText = match[5];
  if (name === '') return { kind: 'malformed', problem: 'the name is empty' };
  if (!isPrintable(name))
    return { kind: 'malformed', problem: 'the name has control or bidirectional characters' };
  let priority: number | undefined;
  if (priorityText !== undefined) {
    priority = Number(priorityText);
    if (priority > 255) return { kind: 'malformed', problem: 'the priority is over 255' };
  }
  if (NON_TRANSITION_EVENTS.has(word)) return { kind: 'ignored', type, name, event: word };
  const state = stateFromKeepalived(word);
  if (state === undefined) return { kind: 'malformed', problem: 'unknown state' };
  return {
    kind: 'transition',
    type,
    name,
    state,
    keepalivedState: word,
    ...(priority !== undefined ? { priority } : {}),
  };
}

/** Bytes that are not UTF-8 shown as hex, at most `max` bytes, for a log field. */
export function hexForLog(bytes: Uint8Array, max = 64): string {
  const shown = Buffer.from(bytes.subarray(0, max)).toString('hex');
  return bytes.length > max ? `${shown}...` : shown;
}
