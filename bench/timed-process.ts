/**
 * Runs a command and measures what it cost: wall time and CPU time (user +
 * system). Node reports no resource usage for its children, so the command runs
 * under a `sh` that, once the command has exited and been waited for, prints
 * its own `/proc/self/stat`: fields 16 and 17 (cutime, cstime) are then exactly
 * the command's CPU time, in clock ticks.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';

const TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** What one run of a command cost. */
export interface ProcessCost {
  code: number | null;
  wallMs: number;
  cpuMs: number;
}

/** A `/proc/<pid>/stat` line's fields from field 3 on (the name, which may hold spaces, cut off). */
function statFields(stat: string): string[] {
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** A running process's own CPU time (utime + stime, fields 14 and 15) in ms. */
export async function ownCpuMs(pid: number): Promise<number> {
  const fields = statFields(await readFile(`/proc/${pid}/stat`, 'utf8'));
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
}

/** The children's CPU time (cutime + cstime) in ms from a `/proc/<pid>/stat` line. */
export function childCpuMs(stat: string): number {
  const fields = statFields(stat);
  const ticks = Number(fields[13]) + Number(fields[14]);
  return (ticks * 1000) / TICKS_PER_SECOND;
}

/** Runs `command args` (stdin and stdout ignored) and resolves with its exit code, wall and CPU time. */
export function runTimed(command: string, args: readonly string[]): Promise<ProcessCost> {
  const started = performance.now();
  const child = spawn(
    'sh',
    ['-c', '"$@"; code=$?; cat /proc/$$/stat >&2; exit $code', 'sh', command, ...args],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise((done, fail) => {
    child.on('error', fail);
    child.on('exit', (code) => {
      const wallMs = performance.now() - started;
      const stat = stderr.trimEnd().split('\n').at(-1) ?? '';
      done({ code, wallMs, cpuMs: childCpuMs(stat) });
    });
  });
}
