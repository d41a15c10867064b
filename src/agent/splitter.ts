import { isUtf8 } from 'node:buffer';
import { LineSplitter } from '../runtime/line-splitter.ts';
import { MAX_LINE_BYTES } from './line.ts';

/** One line out of the FIFO: its text, or why it has none. */
export type SplitLine =
  | { kind: 'line'; text: string }
  /** Longer than the cap: `head` is its first bytes, `bytes` how many were seen in all. */
  | { kind: 'too-long'; head: Buffer; bytes: number }
  /** Not valid UTF-8: `bytes` is the raw line. */
  | { kind: 'not-utf8'; bytes: Buffer };

/**
 * The lines of one FIFO stream as the agent reads them: cut by the bounded
 * {@link LineSplitter} at `maxBytes` (a longer line is reported once as
 * `too-long` and skipped up to its newline), then checked to be UTF-8 before
 * they are decoded. Each stream the agent opens gets its own.
 */
export class NotifyLineSplitter {
  readonly #lines: LineSplitter;
  readonly #emit: (line: SplitLine) => void;

  constructor(emit: (line: SplitLine) => void, maxBytes = MAX_LINE_BYTES) {
    this.#lines = new LineSplitter(maxBytes);
    this.#emit = emit;
  }

  /** Feeds the next chunk; emits every line it completes, in order. */
  push(chunk: Buffer): void {
    this.#lines.push(chunk, (event) => {
      if (event.kind === 'too-long') this.#emit(event);
      else if (!isUtf8(event.bytes)) this.#emit({ kind: 'not-utf8', bytes: Buffer.from(event.bytes) });
      else this.#emit({ kind: 'line', text: event.bytes.toString('utf8') });
      return true;
    });
  }
}
