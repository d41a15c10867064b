/** One line cut out of a byte stream, or the notice that a line was too long to hold. */
export type SplitEvent =
  /** A complete line without its `\n`; may be a view into the chunk it came in. */
  | { kind: 'line'; bytes: Buffer }
  /** A line longer than the bound: `head` is a copy of its first bytes, `bytes` its whole length. */
  | { kind: 'too-long'; head: Buffer; bytes: number };

const HEAD_BYTES = 256;
const EMPTY = Buffer.alloc(0);

/**
 * Splits a byte stream into lines at `\n` (a byte that never occurs inside a
 * UTF-8 sequence), holding at most `maxBytes` of an unfinished line. A longer
 * line is not held: its bytes are counted and skipped up to its newline, then
 * reported once as `too-long`, so a writer that never ends a line cannot make
 * the reader buffer without bound. What is held across chunks is copied, so a
 * held line never keeps a whole chunk (or a pooled buffer) alive. One splitter
 * per stream: the node agent's FIFO streams and the API server's watch streams.
 */
export class LineSplitter {
  readonly #maxBytes: number;
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** Bytes of the line being skipped as too long; -1 when not skipping. */
  #skipped = -1;
  #head: Buffer = EMPTY;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** True while a line longer than the bound is being skipped (its newline not yet seen). */
  get skipping(): boolean {
    return this.#skipped >= 0;
  }

  /**
   * Feeds the next chunk and hands `emit` every line it completes, in order.
   * When `emit` returns false the rest of the chunk is dropped (the reader is
   * done with the stream).
   */
  push(chunk: Buffer, emit: (event: SplitEvent) => boolean | undefined): void {
    let start = 0;
    for (let newline = chunk.indexOf(10); newline !== -1; newline = chunk.indexOf(10, start)) {
      this.#hold(chunk.subarray(start, newline), false);
      start = newline + 1;
      if (emit(this.#finish()) === false) return;
    }
    this.#hold(chunk.subarray(start), true);
  }

  /** The unfinished last line when the stream ends, if there is one. */
  rest(): SplitEvent | undefined {
    if (this.#heldBytes === 0 && this.#skipped < 0) return undefined;
    return this.#finish();
  }

  #hold(part: Buffer, copy: boolean): void {
    if (part.length === 0) return;
    if (this.#skipped >= 0) {
      this.#skipped += part.length;
      return;
    }
    if (this.#heldBytes + part.length > this.#maxBytes) {
      const headLength = Math.min(HEAD_BYTES, this.#heldBytes + part.length);
      this.#head = Buffer.concat([...this.#held, part], headLength);
      this.#skipped = this.#heldBytes + part.length;
      this.#held = [];
      this.#heldBytes = 0;
      return;
    }
    this.#held.push(copy ? Buffer.from(part) : part);
    this.#heldBytes += part.length;
  }

  #finish(): SplitEvent {
    if (this.#skipped >= 0) {
      const event: SplitEvent = { kind: 'too-long', head: this.#head, bytes: this.#skipped };
      this.#skipped = -1;
      this.#head = EMPTY;
      return event;
    }
    const bytes =
      this.#held.length === 0
        ? EMPTY
        : this.#held.length === 1
          ? (this.#held[0] as Buffer)
          : Buffer.concat(this.#held);
    this.#held = [];
    this.#heldBytes = 0;
    return { kind: 'line', bytes };
  }
}
