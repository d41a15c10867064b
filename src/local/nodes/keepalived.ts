/**
 * One node's keepalived process: started inside the node's network namespace in
 * the foreground (`-n`, so this process owns it), stopped, crashed, restarted
 * and reloaded on demand.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { exitedWithin, type ManagedProcess, startProcess } from '../controlplane/process.ts';
import { type KeepalivedConfig, renderKeepalivedConfig } from './keepalived-config.ts';
import { ip } from './network.ts';

/** Controls keepalived on one node; see {@link keepalivedOn}. */
export interface Keepalived {
  readonly configPath: string;
  /** The main process's pid file (`-p`), what the agent's `--keepalived-pid-file` names. */
  readonly pidPath: string;
  readonly logPath: string;
  /** The configuration it runs (or will run at the next start). */
  readonly config: KeepalivedConfig;
  /** The main process's pid while it runs. */
  pid(): number | undefined;
  running(): boolean;
  /** Writes the configuration and starts keepalived; throws when it already runs. */
  start(): Promise<void>;
  /**
   * SIGTERM and waits for the exit: keepalived writes `STOP` for each instance
   * to the FIFO and sends priority 0, so a backup takes over within a second.
   */
  stop(): Promise<void>;
  /**
   * SIGKILL to the VRRP process first, then the parent (a parent killed first
   * makes its child stop gracefully): a crash, with no `STOP` line and no
   * priority 0; the others take over after the master-down interval (about 3 s).
   */
  kill(): Promise<void>;
  /** Writes a new configuration and, when running, reloads it with SIGHUP. */
  reload(config: KeepalivedConfig): Promise<void>;
  /** Sets the configuration that the next start or reload writes. */
  configure(config: KeepalivedConfig): void;
}

/** keepalived's main pid file in a node's directory. */
const PID_FILE = 'keepalived.pid';

/** The command line that runs keepalived in `namespace` with the files of `dir`. Pure. */
export function keepalivedCommand(namespace: string, dir: string): { binary: string; args: string[] } {
  return {
    binary: 'ip',
    args: [
      'netns',
      'exec',
      namespace,
      // If the process that started keepalived dies, keepalived stops too (no orphan on a crash).
      'setpriv',
      '--pdeathsig',
      'TERM',
      '--',
      'keepalived',
      '-f',
      join(dir, 'keepalived.conf'),
      '-p',
      join(dir, PID_FILE),
      '-r',
      join(dir, 'vrrp.pid'),
      '-D',
      '-l',
      '-n',
    ],
  };
}

/** keepalived for the node whose namespace is `namespace`, files (config, pid files, log) in `dir`. */
export function keepalivedOn(namespace: string, dir: string, initial: KeepalivedConfig): Keepalived {
  let config = initial;
  let current: ManagedProcess | undefined;
  const configPath = join(dir, 'keepalived.conf');
  const logPath = join(dir, 'keepalived.log');
  const running = () => current !== undefined && current.exited() === undefined;
  const write = () => writeFile(configPath, renderKeepalivedConfig(config), { mode: 0o600 });

  return {
    configPath,
    pidPath: join(dir, PID_FILE),
    logPath,
    get config() {
      return config;
    },
    pid: () => (running() ? current?.pid : undefined),
    running,
    async start() {
      if (running()) throw new Error(`keepalived already runs in ${namespace}`);
      await current?.stop();
      await write();
      const { binary, args } = keepalivedCommand(namespace, dir);
      const started = startProcess(`keepalived ${namespace}`, binary, args, logPath);
      current = started;
      const early = await exitedWithin(started, 100);
      if (early !== undefined)
        throw new Error(`keepalived in ${namespace} did not start (${early}); see ${logPath}`);
    },
    async stop() {
      await current?.stop(10_000);
    },
    async kill() {
      const parent = current;
      if (!parent || !running()) return;
      const pids = (await ip(['netns', 'pids', namespace]))
        .split('\n')
        .filter((p) => /^\d+$/.test(p))
        .map(Number)
        .filter((pid) => pid !== parent.pid);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      parent.signal('SIGKILL');
      await parent.stop();
    },
    configure(next) {
      config = next;
    },
    async reload(next) {
      config = next;
      await write();
      if (running()) current?.signal('SIGHUP');
    },
  };
}
