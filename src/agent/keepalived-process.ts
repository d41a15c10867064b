/**
 * The agent's hands on keepalived: a reload is SIGHUP to the pid in the pid file
 * (checked to be a keepalived process first: a stale pid file must not signal
 * whatever process reused its pid), and with `--run-keepalived` a supervised
 * keepalived child (`keepalived --dont-fork --log-console --vrrp -f <main file>`),
 * restarted with backoff when it exits and stopped with SIGTERM (it then sends
 * priority-0 adverts and drops its VIPs, so a backup takes over at once).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Logger } from '../log.ts';
import { Backoff } from '../runtime/backoff.ts';
import { escapeForLog } from '../runtime/log-text.ts';

/** How keepalived is found and, optionally, run. */
export interface KeepalivedProcessOptions {
  /** keepalived's main pid file (`-p` when the agent runs it). */
  pidFile: string;
  /** When set, the agent runs keepalived with this main configuration file. */
  run?: { mainConfig: string; binary?: string };
  log: Logger;
}

/** Restart delays of a keepalived that exited: 1 s doubling to 30 s. */
const RESTART_BACKOFF = { baseMs: 1000, maxMs: 30_000, jitter: 0.2 } as const;
/** A keepalived that ran this long before exiting restarts after the first delay again. */
const HEALTHY_RUN_MS = 60_000;
const STOP_GRACE_MS = 10_000;

/** keepalived's arguments when the agent runs it. Pure. */
export function keepalivedArgs(mainConfig: string, pidFile: string): string[] {
  return [
    '--dont-fork',
    '--log-console',
    '--vrrp',
    '-f',
    mainConfig,
    '-p',
    pidFile,
    '-r',
    join(dirname(pidFile), 'keepalived-vrrp.pid'),
  ];
}

/** The pid a pid file names when that process is keepalived; undefined otherwise. */
export function keepalivedPid(pidFile: string): number | undefined {
  let pid: number;
  try {
    const text = readFileSync(pidFile, 'utf8').trim();
    if (!/^[1-9][0-9]{0,9}$/.test(text)) return undefined;
    pid = Number(text);
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() !== 'keepalived') return undefined;
  } catch {
    return undefined;
  }
  return pid;
}

/** Reloads keepalived and, in run mode, keeps it running; see the module comment. */
export class KeepalivedProcess {
  readonly #options: KeepalivedProcessOptions;
  readonly #log: Logger;
  readonly #backoff = new Backoff(RESTART_BACKOFF);
  #child: ChildProcess | undefined;
  #exited: Promise<void> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #stopping = false;
  #starts = 0;

  constructor(options: KeepalivedProcessOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: 'keepalived' });
  }

  /** How many times the agent has started keepalived. */
  get starts(): number {
    return this.#starts;
  }

  /** The running child's pid (run mode). */
  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
  }

  /**
   * Sends SIGHUP to keepalived; false when none runs (nothing to reload: a keepalived
   * started later reads the files as they are).
   */
  reload(): boolean {
    const pid = this.pid ?? keepalivedPid(this.#options.pidFile);
    if (pid === undefined) {
      this.#log.info({ pidFile: this.#options.pidFile }, 'no keepalived runs; nothing to reload');
      return false;
    }
    try {
      process.kill(pid, 'SIGHUP');
      return true;
    } catch (error) {
      this.#log.warn({ pid, code: (error as NodeJS.ErrnoException).code }, 'keepalived reload failed');
      return false;
    }
  }

  /** Starts keepalived (run mode only; idempotent). */
  start(): void {
    const run = this.#options.run;
    if (!run || this.#stopping || this.#child) return;
    const binary = run.binary ?? 'keepalived';
    const args = keepalivedArgs(run.mainConfig, this.#options.pidFile);
    const startedAt = performance.now();
    this.#starts++;
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    for (const stream of [child.stdout, child.stderr]) {
      if (stream)
        createInterface({ input: stream }).on('line', (line) =>
          this.#log.info({ line: escapeForLog(line) }, 'keepalived'),
        );
    }
    this.#log.info({ binary, args }, 'keepalived started');
    this.#exited = new Promise((done) => {
      child.once('error', (error) => {
        this.#log.error(
          { binary, code: (error as NodeJS.ErrnoException).code },
          'keepalived could not be started',
        );
      });
      child.once('close', (code, signal) => {
        this.#child = undefined;
        done();
        if (this.#stopping) return;
        if (performance.now() - startedAt >= HEALTHY_RUN_MS) this.#backoff.reset();
        const delayMs = this.#backoff.next();
        this.#log.warn({ code, signal, restartInMs: delayMs }, 'keepalived exited; restarting');
        this.#restartTimer = setTimeout(() => {
          this.#restartTimer = undefined;
          this.start();
        }, delayMs);
      });
    });
  }

  /** Stops keepalived (SIGTERM, SIGKILL after 10 s) and any pending restart. */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child) return;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), STOP_GRACE_MS);
    await this.#exited;
    clearTimeout(killer);
    this.#log.info({}, 'keepalived stopped');
  }
}
