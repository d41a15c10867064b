import { type ChildProcess, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';

/** A child process whose output goes to a log file, stopped with SIGTERM then SIGKILL. */
export interface ManagedProcess {
  readonly name: string;
  readonly logPath: string;
  /** Set once the process has exited, with its code or signal. */
  exited(): string | undefined;
  /** Resolves with how the process exited (exit code, signal, or failure to start). */
  readonly done: Promise<string>;
  /** The child's process id (undefined when it failed to start). */
  readonly pid: number | undefined;
  /** Sends a signal to the running child (no-op once it has exited): fault injection for the chaos run. */
  signal(signal: NodeJS.Signals): void;
  stop(graceMs?: number): Promise<void>;
}

/** Options of {@link startProcess}. */
export interface ProcessOptions {
  /** Environment of the child (default: this process's). */
  env?: NodeJS.ProcessEnv;
  /** Receives each line the child prints, on stdout or stderr, as well as the log file. */
  onLine?: (line: string) => void;
}

/** Starts `binary args` with stdout and stderr appended to `logPath`. */
export function startProcess(
  name: string,
  binary: string,
  args: string[],
  logPath: string,
  options: ProcessOptions = {},
): ManagedProcess {
  const log = createWriteStream(logPath, { flags: 'a', mode: 0o600 });
  const child: ChildProcess = spawn(binary, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: options.env } : {}),
  });
  for (const stream of [child.stdout, child.stderr]) {
    if (!stream) continue;
    stream.pipe(log, { end: false });
    const onLine = options.onLine;
    if (onLine) createInterface({ input: stream }).on('line', onLine);
  }
  let exit: string | undefined;
  const done = new Promise<string>((resolve) => {
    child.on('exit', (code, signal) => {
      exit = signal ? `signal ${signal}` : `exit code ${code}`;
      resolve(exit);
    });
    child.on('error', (error) => {
      exit = `failed to start: ${error.message}`;
      resolve(exit);
    });
  });
  return {
    name,
    logPath,
    done,
    pid: child.pid,
    exited: () => exit,
    signal(signal) {
      if (exit === undefined) child.kill(signal);
    },
    async stop(graceMs = 10_000) {
      if (exit === undefined) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await done;
        clearTimeout(timer);
      }
      await new Promise<void>((resolve) => log.end(resolve));
    },
  };
}

/** How the process exited if it did within `ms` (a missing binary, bad flags), else undefined. */
export async function exitedWithin(process: ManagedProcess, ms: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((done) => {
    timer = setTimeout(() => done(undefined), ms);
  });
  const result = await Promise.race([process.done, timeout]);
  clearTimeout(timer);
  return result;
}

/**
 * Polls `check` every 250 ms until it returns true. Throws with the last error
 * seen after `timeoutMs`, or at once when `abort` returns a reason (a process
 * that died, say), so that a caller never waits out a timeout for nothing.
 */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  abort?: () => string | undefined,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const aborted = abort?.();
    if (aborted) throw new Error(`${what}: ${aborted}`);
    try {
      if (await check()) return;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(250);
  }
  throw new Error(
    `timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (last error: ${last})` : ''}`,
  );
}

/** The last `lines` lines of a log file, for error messages when start-up fails. */
export async function tailLog(path: string, lines = 40): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}
