/**
 * The nodes harness for end-to-end tests: network namespaces on a bridge with
 * real keepalived and the node agent (implemented in `src/local/nodes/`, which
 * local mode shares; see its module comment for the API), plus a reader that
 * takes keepalived's notify FIFO in place of the agent, with the time each line
 * arrived.
 */
import { execFile } from 'node:child_process';
import { constants, openSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { Socket } from 'node:net';
import { createInterface } from 'node:readline';

export * from '../../src/local/nodes/index.ts';

/** One line read from a FIFO, with `Date.now()` when it was read. */
export interface FifoLine {
  at: number;
  text: string;
}

/** Lines read from a notify FIFO; see {@link readFifo}. */
export interface FifoReader {
  readonly lines: readonly FifoLine[];
  /**
   * The first line read at or after index `from` that matches, waiting up to
   * `timeoutMs`; throws with every line read so far when none comes.
   */
  next(match: RegExp, timeoutMs?: number, from?: number): Promise<FifoLine>;
  close(): void;
}

function mkfifo(path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('mkfifo', ['-m', '600', path], (error, _out, stderr) =>
      error ? reject(new Error(`mkfifo ${path}: ${stderr.trim() || error.message}`)) : resolve(),
    );
  });
}

/**
 * Reads a FIFO line by line, creating it (0600) when missing. Opened read-write
 * and non-blocking, so that no libuv thread waits on it and a writer that exits
 * (keepalived restarting) never ends the stream.
 */
export async function readFifo(path: string): Promise<FifoReader> {
  try {
    if (!(await lstat(path)).isFIFO()) throw new Error(`${path} exists and is not a FIFO`);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkfifo(path);
  }
  const fd = openSync(path, constants.O_RDWR | constants.O_NONBLOCK);
  const socket = new Socket({ fd, readable: true, writable: false });
  const lines: FifoLine[] = [];
  const waiters = new Set<() => void>();
  createInterface({ input: socket }).on('line', (text) => {
    lines.push({ at: Date.now(), text });
    for (const wake of waiters) wake();
  });
  return {
    lines,
    async next(match, timeoutMs = 15_000, from = 0) {
      const find = () => lines.slice(from).find((l) => match.test(l.text));
      const found = find();
      if (found) return found;
      return await new Promise<FifoLine>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `no line matching ${match} in ${timeoutMs} ms on ${path}; read: ${JSON.stringify(lines.map((l) => l.text))}`,
            ),
          );
        }, timeoutMs);
        const check = () => {
          const hit = find();
          if (!hit) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(hit);
        };
        waiters.add(check);
      });
    },
    close() {
      socket.destroy();
    },
  };
}
