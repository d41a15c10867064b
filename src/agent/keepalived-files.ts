/**
 * The agent's keepalived files on disk: one `<routerId>.conf` per rendered router in
 * the configuration directory, `harouter-global.conf` (and the main file when the
 * agent runs keepalived), and one fence file per router in the fence directory.
 * Each is written atomically (a temporary file renamed over it, so keepalived and
 * its inotify watch never see half a file), mode 0644, and only when its content
 * changes; a removed router's files are deleted. Only names this module writes
 * (a router id, with `.conf` in the configuration directory) are ever deleted.
 */
import { chmod, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRouterId } from '../api/validation.ts';
import type { DesiredRouter } from '../keepalived/desired.ts';
import { routerFileName, routerIdOfFile } from '../keepalived/render.ts';

/** What one {@link KeepalivedFiles.apply} changed. */
export interface ApplyResult {
  /** A router file was written or deleted: keepalived must reload. */
  configChanged: boolean;
  /** Fence files written (keepalived reads them by inotify; no reload). */
  fencesWritten: number;
  /** Router files now present. */
  rendered: number;
}

/** Writes files atomically and only when their content changes; see the module comment. */
export class KeepalivedFiles {
  readonly configDir: string;
  readonly fenceDir: string;
  /** What each path holds, as last read or written here. */
  readonly #known = new Map<string, string | undefined>();

  constructor(configDir: string, fenceDir: string) {
    this.configDir = configDir;
    this.fenceDir = fenceDir;
  }

  /** Creates both directories (0755) when missing. */
  async init(): Promise<void> {
    await mkdir(this.configDir, { recursive: true, mode: 0o755 });
    await mkdir(this.fenceDir, { recursive: true, mode: 0o755 });
  }

  /** Writes `path` (in one of the two directories) when its content differs; true when written. */
  async write(path: string, content: string): Promise<boolean> {
    if ((await this.#read(path)) === content) return false;
    const slash = path.lastIndexOf('/');
    const temporary = `${path.slice(0, slash)}/.${path.slice(slash + 1)}.${process.pid}.tmp`;
    try {
      await writeFile(temporary, content, { mode: 0o644 });
      await chmod(temporary, 0o644);
      await rename(temporary, path);
    } catch (error) {
      await rm(temporary, { force: true });
      this.#known.delete(path);
      throw error;
    }
    this.#known.set(path, content);
    return true;
  }

  async #read(path: string): Promise<string | undefined> {
    if (this.#known.has(path)) return this.#known.get(path);
    let content: string | undefined;
    try {
      content = await readFile(path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    this.#known.set(path, content);
    return content;
  }

  async #remove(path: string): Promise<boolean> {
    this.#known.set(path, undefined);
    try {
      await rm(path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      this.#known.delete(path);
      throw error;
    }
  }

  /** The fence file of a router. */
  fencePath(routerId: string): string {
    return join(this.fenceDir, routerId);
  }

  /** The configuration file of a router. */
  configPath(routerId: string): string {
    return join(this.configDir, routerFileName(routerId));
  }

  /**
   * Makes the directories hold exactly `routers`: each fence file first (so that a
   * new instance starts fenced when it should), then each router file; then deletes
   * the router files and fence files of routers not in the list.
   */
  async apply(routers: readonly DesiredRouter[]): Promise<ApplyResult> {
    let configChanged = false;
    let fencesWritten = 0;
    const wanted = new Set<string>();
    for (const router of routers) {
      wanted.add(router.routerId);
      if (await this.write(this.fencePath(router.routerId), router.fenced ? '1' : '0')) fencesWritten++;
      if (await this.write(this.configPath(router.routerId), router.config)) configChanged = true;
    }
    for (const name of await readdir(this.configDir)) {
      const id = routerIdOfFile(name);
      if (id !== undefined && !wanted.has(id) && (await this.#remove(join(this.configDir, name))))
        configChanged = true;
    }
    for (const name of await readdir(this.fenceDir)) {
      if (isRouterId(name) && !wanted.has(name)) await this.#remove(join(this.fenceDir, name));
    }
    return { configChanged, fencesWritten, rendered: wanted.size };
  }
}
