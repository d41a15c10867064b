/**
 * The spool: the newest undelivered report of every router, kept on disk so
 * that a restart (or a crash) loses none. One append-only journal file,
 * `spool.jsonl` (mode 0600, in a directory of mode 0700): each batch of records
 * is appended with one write and synced with one `fdatasync` (group commit), so
 * a burst of thousands of lines costs a few syncs, not one per line. A record
 * is one JSON line; a line cut short by a crash is ignored when read back.
 * When the journal has grown well past what is still undelivered it is
 * rewritten (to a temporary file, synced, renamed over, the directory synced):
 * the file on disk is always either the old journal or the new one.
 */
import { constants, fdatasyncSync, type Stats, writeSync } from 'node:fs';
import { chmod, type FileHandle, lstat, mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ReportedState } from '../api/index.ts';
import { compareObservedAt, parseObservedAt } from '../api/observed-at.ts';
import { isPrintable, isRouterId } from '../api/validation.ts';
import type { Logger } from '../log.ts';
import { KEEPALIVED_STATES } from '../report/keepalived.ts';
import { NAMESPACE_PATTERN } from '../report/namespace.ts';

/** One undelivered report: enough to build the HARouterState again. */
export interface SpoolEntry {
  namespace: string;
  router: string;
  state: ReportedState;
  priority?: number;
  message?: string;
  observedAt: string;
}

/** The journal's file name inside `--state-dir`. */
export const SPOOL_FILE = 'spool.jsonl';

/** The states a spooled report can hold: those keepalived's words map to. */
const STATES: ReadonlySet<string> = new Set(Object.values(KEEPALIVED_STATES));

type SpoolRecord =
  | ({ op: 'put' } & SpoolEntry)
  | { op: 'done'; namespace: string; router: string; observedAt: string };

/**
 * One journal line read back, checked field by field (the file may have been
 * cut short or edited); undefined when it is not a record this spool writes.
 * Checked by hand rather than with zod: the agent does not load zod at all.
 */
export function readRecord(value: unknown): SpoolRecord | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const r = value as Record<string, unknown>;
  const { op, namespace, router, observedAt } = r;
  if (typeof namespace !== 'string' || !NAMESPACE_PATTERN.test(namespace)) return undefined;
  if (typeof router !== 'string' || !isRouterId(router)) return undefined;
  if (typeof observedAt !== 'string' || parseObservedAt(observedAt) === undefined) return undefined;
  if (op === 'done') return { op, namespace, router, observedAt };
  if (op !== 'put' || typeof r.state !== 'string' || !STATES.has(r.state)) return undefined;
  const entry: SpoolRecord = { op, namespace, router, observedAt, state: r.state as ReportedState };
  if (r.priority !== undefined) {
    if (
      typeof r.priority !== 'number' ||
      !Number.isInteger(r.priority) ||
      r.priority < 0 ||
      r.priority > 255
    ) {
      return undefined;
    }
    entry.priority = r.priority;
  }
  if (r.message !== undefined) {
    if (typeof r.message !== 'string' || r.message.length > 1024 || !isPrintable(r.message)) return undefined;
    entry.message = r.message;
  }
  return entry;
}

/** The key of a router in the spool and the queue: `namespace/router`. */
export function routerKey(entry: { namespace: string; router: string }): string {
  return `${entry.namespace}/${entry.router}`;
}

/**
 * Folds journal text into the undelivered entries, by key. Pure. A `put`
 * replaces an older entry of its router; a `done` removes the entry it names
 * (or an older one). Unreadable lines are counted and skipped.
 */
export function foldJournal(text: string): { live: Map<string, SpoolEntry>; skipped: number } {
  const live = new Map<string, SpoolEntry>();
  let skipped = 0;
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let record: SpoolRecord | undefined;
    try {
      record = readRecord(JSON.parse(line));
    } catch {
      record = undefined;
    }
    if (!record) {
      skipped++;
      continue;
    }
    const key = routerKey(record);
    const held = live.get(key);
    if (record.op === 'put') {
      const { op: _, ...entry } = record;
      if (!held || compareObservedAt(held.observedAt, entry.observedAt) < 0) live.set(key, entry);
    } else if (held && compareObservedAt(held.observedAt, record.observedAt) <= 0) {
      live.delete(key);
    }
  }
  return { live, skipped };
}

/** The journal grows to at least this before it is rewritten. */
const COMPACT_MIN_BYTES = 4 * 1024 * 1024;

/** See the module comment. Open with {@link Spool.open}. */
export class Spool {
  private readonly dir: string;
  private readonly log: Logger;
  private handle: FileHandle;
  private readonly live: Map<string, SpoolEntry>;
  private buffer: string[] = [];
  private scheduled = false;
  private chain: Promise<void> = Promise.resolve();
  private journalBytes: number;
  private failing = false;
  private compacting = false;

  private constructor(
    dir: string,
    handle: FileHandle,
    live: Map<string, SpoolEntry>,
    bytes: number,
    log: Logger,
  ) {
    this.dir = dir;
    this.handle = handle;
    this.live = live;
    this.journalBytes = bytes;
    this.log = log;
  }

  /**
   * Opens the spool in `dir` (created with mode 0700; an existing one is set
   * to 0700), reads what an earlier run left undelivered, and rewrites the
   * journal to just that. Rejects when the directory is a symlink or not a
   * directory, or cannot be written.
   */
  static async open(dir: string, log: Logger): Promise<{ spool: Spool; pending: SpoolEntry[] }> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const stat: Stats = await lstat(dir);
    if (stat.isSymbolicLink() || !stat.isDirectory()) {
      throw new Error(`the state directory ${dir} must be a directory, not a symlink or file`);
    }
    if ((stat.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
    let text = '';
    try {
      text = await readFile(join(dir, SPOOL_FILE), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    const { live, skipped } = foldJournal(text);
    if (skipped > 0) log.warn({ skipped }, 'spool records that could not be read were skipped');
    const handle = await Spool.rewrite(dir, live);
    const spool = new Spool(dir, handle, live, (await handle.stat()).size, log);
    return { spool, pending: [...live.values()] };
  }

  /** Records the newest undelivered value of a router (written with the next batch). */
  put(entry: SpoolEntry): void {
    this.live.set(routerKey(entry), entry);
    this.append({ op: 'put', ...entry });
  }

  /** Records that `entry` was delivered (or dropped for good): a restart will not send it again. */
  delivered(entry: SpoolEntry): void {
    const key = routerKey(entry);
    const held = this.live.get(key);
    if (held && compareObservedAt(held.observedAt, entry.observedAt) <= 0) this.live.delete(key);
    this.append({
      op: 'done',
      namespace: entry.namespace,
      router: entry.router,
      observedAt: entry.observedAt,
    });
  }

  /** Routers with an undelivered value. */
  get size(): number {
    return this.live.size;
  }

  /**
   * Writes and syncs what was recorded so far before returning, in the caller's
   * turn of the event loop. The agent calls it after each chunk read from the
   * FIFO: a FIFO read consumes the lines, so until they are synced a SIGKILL
   * loses them; done here, anyone who can see the lines counted (metrics are
   * served on a later turn) knows they are on disk. Skipped while the journal is
   * being rewritten (the batch then goes with the next asynchronous flush); a
   * write error keeps the batch for the next attempt, as `flush` does.
   */
  syncNow(): void {
    if (this.compacting || this.buffer.length === 0) return;
    const text = this.buffer.join('');
    this.buffer = [];
    try {
      writeSync(this.handle.fd, text);
      fdatasyncSync(this.handle.fd);
      this.written(text);
    } catch (error) {
      this.notWritten(text, error);
    }
  }

  /** Writes and syncs everything recorded so far. */
  flush(): Promise<void> {
    this.chain = this.chain.then(() => this.writeOut());
    return this.chain;
  }

  /** Flushes and closes the journal. */
  async close(): Promise<void> {
    await this.flush();
    await this.handle.close();
  }

  private append(record: object): void {
    this.buffer.push(`${JSON.stringify(record)}\n`);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async writeOut(): Promise<void> {
    if (this.buffer.length === 0) return;
    const text = this.buffer.join('');
    this.buffer = [];
    try {
      await this.handle.write(text);
      await this.handle.datasync();
      this.written(text);
      if (this.journalBytes > COMPACT_MIN_BYTES && this.journalBytes > 8 * 256 * (this.live.size + 1)) {
        await this.compact();
      }
    } catch (error) {
      this.notWritten(text, error);
    }
  }

  private written(text: string): void {
    this.journalBytes += Buffer.byteLength(text);
    if (this.failing) this.log.info('the spool is written again');
    this.failing = false;
  }

  /** Keeps the batch for the next attempt (the reports are still sent) and logs the first failure of a run of them. */
  private notWritten(text: string, error: unknown): void {
    this.buffer.unshift(text);
    if (!this.failing) {
      this.log.error(
        { error: (error as NodeJS.ErrnoException).code ?? String(error) },
        'cannot write the spool',
      );
    }
    this.failing = true;
  }

  private async compact(): Promise<void> {
    this.compacting = true;
    try {
      const handle = await Spool.rewrite(this.dir, this.live);
      await this.handle.close();
      this.handle = handle;
      this.journalBytes = (await handle.stat()).size;
    } finally {
      this.compacting = false;
    }
  }

  /** Writes `live` as a new journal atomically; returns it open for appending. */
  private static async rewrite(dir: string, live: ReadonlyMap<string, SpoolEntry>): Promise<FileHandle> {
    const path = join(dir, SPOOL_FILE);
    const temporary = `${path}.tmp`;
    const text = [...live.values()].map((entry) => `${JSON.stringify({ op: 'put', ...entry })}\n`).join('');
    // A file left by a crash is removed (a symlink itself, never its target); the new one is created
    // exclusively, so a link planted in between fails the rewrite instead of redirecting the write.
    await rm(temporary, { force: true });
    const out = await open(
      temporary,
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o600,
    );
    try {
      await out.chmod(0o600);
      await out.write(text);
      await out.datasync();
    } finally {
      await out.close();
    }
    await rename(temporary, path);
    const directory = await open(dir, constants.O_RDONLY);
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
    return open(path, constants.O_WRONLY | constants.O_APPEND | constants.O_NOFOLLOW, 0o600);
  }
}
