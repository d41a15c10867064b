/**
 * keepalived's notify FIFO: the checks of the seed's third finding, opening it
 * without tying up a libuv thread, and following the path when keepalived
 * deletes and makes it again.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, constants, fstatSync, lstatSync, openSync, type Stats } from 'node:fs';
import { Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from '../log.ts';
import { UsageError } from '../report/usage-error.ts';

/** The agent refuses the FIFO: exit code 2, the message names the path and the rule. */
export class FifoRefused extends UsageError {
  override name = 'FifoRefused';
}

/** The parts of `lstat` the rules read. */
export interface PathFacts {
  isSymbolicLink: boolean;
  isFIFO: boolean;
  uid: number;
  gid: number;
  mode: number;
}

/** Who the FIFO and its directory may belong to: this process's user (and root), and the `--fifo-group`. */
export interface FifoTrust {
  uid: number;
  /** A group whose members may also write the FIFO (a non-root agent shares it with keepalived). */
  group?: number;
}

/**
 * The first rule the FIFO breaks, as text naming the path, or undefined when
 * it passes. Pure. Rules, in order: not a symlink; a FIFO; owned by this
 * process's user or root; not writable by others, nor by group unless its
 * group is the trusted `group`; its own directory owned by this user or root
 * and not writable by group or others (ancestors are not checked).
 */
export function fifoProblem(
  path: string,
  fifo: PathFacts,
  directory: { mode: number; uid: number },
  trust: FifoTrust,
): string | undefined {
  const { uid, group } = trust;
  if (fifo.isSymbolicLink) return `refusing the FIFO ${path}: it is a symbolic link`;
  if (!fifo.isFIFO) return `refusing the FIFO ${path}: it is not a FIFO`;
  if (fifo.uid !== uid && fifo.uid !== 0) {
    return `refusing the FIFO ${path}: it is owned by uid ${fifo.uid}, neither this user (uid ${uid}) nor root`;
  }
  const mode = (fifo.mode & 0o777).toString(8);
  if ((fifo.mode & 0o002) !== 0) return `refusing the FIFO ${path}: it is writable by others (mode ${mode})`;
  if ((fifo.mode & 0o020) !== 0 && (group === undefined || fifo.gid !== group)) {
    const allowed = group === undefined ? 'no --fifo-group is set' : `its group is ${fifo.gid}, not ${group}`;
    return `refusing the FIFO ${path}: it is writable by group and ${allowed} (mode ${mode})`;
  }
  if (directory.uid !== uid && directory.uid !== 0) {
    return `refusing the FIFO ${path}: its directory ${dirname(path)} is owned by uid ${directory.uid}, neither this user (uid ${uid}) nor root`;
  }
  if ((directory.mode & 0o022) !== 0) {
    return `refusing the FIFO ${path}: its directory ${dirname(path)} is writable by group or others (mode ${(directory.mode & 0o777).toString(8)})`;
  }
  return undefined;
}

const facts = (stat: Stats): PathFacts => ({
  isSymbolicLink: stat.isSymbolicLink(),
  isFIFO: stat.isFIFO(),
  uid: stat.uid,
  gid: stat.gid,
  mode: stat.mode,
});

/** An open FIFO: its descriptor and the identity of the inode it was checked as. */
export interface OpenedFifo {
  fd: number;
  dev: number;
  ino: number;
}

/** `lstat`, or undefined when the path does not exist. */
function lstatOrMissing(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** Creates the FIFO with mode 0600 (Node has no mkfifo; coreutils' sets the mode without the umask). */
function makeFifo(path: string): void {
  try {
    execFileSync('mkfifo', ['-m', '600', '--', path], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    // Someone (keepalived) made it at the same moment: the checks below judge it.
    if (lstatOrMissing(path) === undefined) {
      const stderr = String((error as { stderr?: unknown }).stderr ?? '').trim();
      throw new FifoRefused(`cannot create the FIFO ${path}: ${stderr || (error as Error).message}`);
    }
  }
}

/** This process's user, and no trusted group. */
export function ownTrust(group?: number): FifoTrust {
  return { uid: process.getuid?.() ?? 0, ...(group !== undefined ? { group } : {}) };
}

/**
 * Checks the FIFO at `path` (creating it with mode 0600 when missing), opens
 * it read-write and non-blocking (so that keepalived exiting never gives
 * end-of-file, and no thread waits for a writer), and checks that the opened
 * inode is the one checked. Throws {@link FifoRefused}.
 */
export function openCheckedFifo(path: string, trust: FifoTrust = ownTrust()): OpenedFifo {
  let before = lstatOrMissing(path);
  if (before === undefined) {
    let directory: Stats;
    try {
      directory = lstatSync(dirname(path));
    } catch {
      throw new FifoRefused(`refusing the FIFO ${path}: its directory ${dirname(path)} does not exist`);
    }
    if (!directory.isDirectory()) {
      throw new FifoRefused(`refusing the FIFO ${path}: ${dirname(path)} is not a directory`);
    }
    makeFifo(path);
    before = lstatOrMissing(path);
    if (before === undefined)
      throw new FifoRefused(`refusing the FIFO ${path}: it vanished after it was created`);
  }
  const problem = fifoProblem(path, facts(before), lstatSync(dirname(path)), trust);
  if (problem) throw new FifoRefused(problem);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK | constants.O_NOFOLLOW);
  } catch (error) {
    throw new FifoRefused(
      `cannot open the FIFO ${path}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
    );
  }
  const after = fstatSync(fd);
  if (after.dev !== before.dev || after.ino !== before.ino || !after.isFIFO()) {
    closeSync(fd);
    throw new FifoRefused(`refusing the FIFO ${path}: it was replaced between the check and the open`);
  }
  return { fd, dev: after.dev, ino: after.ino };
}

/** Options of {@link FifoFollower}. */
export interface FifoFollowerOptions {
  path: string;
  /** Every chunk read, with the id of the FIFO it came from (a new id after each reopen). */
  onData(chunk: Buffer, stream: number): void;
  /** Whether a FIFO is open now (readiness). */
  onOpenChange?(open: boolean): void;
  log: Logger;
  /** How often the path is re-checked, in ms. */
  intervalMs?: number;
  /** Who the FIFO may belong to (default: this process's user, no group). */
  trust?: FifoTrust;
}

/**
 * Reads the FIFO and follows its path: about once a second it `lstat`s the
 * path and, when it is gone, makes it again; when it is another inode
 * (keepalived made its own), checks and opens that one. The previous FIFO stays
 * open a little longer, so lines already written to it are still read.
 */
export class FifoFollower {
  private readonly options: FifoFollowerOptions;
  private current: { socket: Socket; dev: number; ino: number; id: number } | undefined;
  private retiring: Socket[] = [];
  private timer: NodeJS.Timeout | undefined;
  private nextId = 1;
  private refusedLogged = '';

  /** Starts reading the already opened and checked FIFO. */
  constructor(first: OpenedFifo, options: FifoFollowerOptions) {
    this.options = options;
    this.attach(first);
    this.timer = setInterval(() => this.recheck(), options.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** Whether a FIFO is open. */
  get open(): boolean {
    return this.current !== undefined;
  }

  /** Stops following and closes every FIFO. */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const socket of this.retiring) socket.destroy();
    this.retiring = [];
    this.current?.socket.destroy();
    this.current = undefined;
  }

  private attach(opened: OpenedFifo): void {
    const id = this.nextId++;
    const socket = new Socket({ fd: opened.fd, readable: true, writable: false });
    socket.on('data', (chunk: Buffer) => this.options.onData(chunk, id));
    socket.on('error', (error: NodeJS.ErrnoException) =>
      this.options.log.error({ path: this.options.path, error: error.code ?? 'error' }, 'FIFO read failed'),
    );
    if (this.current) this.retire(this.current.socket);
    this.current = { socket, dev: opened.dev, ino: opened.ino, id };
    this.options.onOpenChange?.(true);
  }

  /** Lines written to a FIFO before it was removed are still in its buffer: read them, then close it. */
  private retire(socket: Socket): void {
    this.retiring.push(socket);
    setTimeout(() => {
      socket.destroy();
      this.retiring = this.retiring.filter((s) => s !== socket);
    }, 2000).unref();
  }

  private recheck(): void {
    const { path, log } = this.options;
    let stat: Stats | undefined;
    try {
      stat = lstatOrMissing(path);
    } catch (error) {
      log.error({ path, error: (error as NodeJS.ErrnoException).code ?? 'error' }, 'cannot check the FIFO');
      return;
    }
    if (stat && this.current && stat.dev === this.current.dev && stat.ino === this.current.ino) return;
    try {
      const opened = openCheckedFifo(path, this.options.trust);
      log.info({ path, reason: stat ? 'replaced' : 'missing' }, 'FIFO reopened');
      this.refusedLogged = '';
      this.attach(opened);
    } catch (error) {
      const message = (error as Error).message;
      if (message !== this.refusedLogged)
        log.error({ path, problem: message }, 'the FIFO is refused; not reading it');
      this.refusedLogged = message;
      if (this.current) {
        this.retire(this.current.socket);
        this.current = undefined;
        this.options.onOpenChange?.(false);
      }
    }
  }
}
