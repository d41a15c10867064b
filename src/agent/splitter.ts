import { isUtf8 } from 'node:buffer';
import { MAX_LINE_BYTES } from './line.ts';

/** One line out of the byte stream: its text, or why it has none. */
export type SplitLine =
  | { kind: 'line'; text: string }
  /** Longer than the cap: `head` is its first bytes, `bytes` how many were seen in all. */
  | { kind: 'too-long'; head: Buffer; bytes: number }
  /** Not valid UTF-8: `bytes` is the raw line. */
  | { kind: 'not-utf8'; bytes: Buffer };

/**
 * Splits a byte stream into newline-terminated lines, holding at most
 * `maxBytes` of an unfinished line: a longer line is reported once as
 * `too-long` and the rest of it is skipped up to its newline, so a writer that
 * never ends a line cannot make the agent buffer without bound. Each stream
 * (each FIFO the agent opens) gets its own splitter.
 */
export class LineSplitter {
  private readonly maxBytes: number;
  private readonly emit: (line: SplitLine) => void;
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** Bytes of the current line while it is being skipped as too long; -1 when not skipping. */
  private skipped = -1;
  private head: Buffer = Buffer.alloc(0);

  constructor(emit: (line: SplitLine) => void, maxBytes = MAX_LINE_BYTES) {
    this.emit = emit;
    this.maxBytes = maxBytes;
  }

  /** Feeds the next chunk; emits every line it completes, in order. */
  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(10, start);
      if (newline === -1) {
        this.hold(chunk.subarray(start));
        return;
      }
      this.hold(chunk.subarray(start, newline));
      this.finishLine();
      start = newline + 1;
    }
  }

  private hold(part: Buffer): void {
    if (part.length === 0) return;
    if (this.skipped >= 0) {
      this.skipped += part.length;
      return;
    }
    if (this.heldBytes + part.length > this.maxBytes) {
      const all = Buffer.concat([...this.held, part]);
      this.head = all.subarray(0, Math.min(all.length, 256));
      this.skipped = all.length;
      this.held = [];
      this.heldBytes = 0;
      return;
    }
    this.held.push(part);
    this.heldBytes += part.length;
  }

  private finishLine(): void {
    if (this.skipped >= 0) {
      this.emit({ kind: 'too-long', head: this.head, bytes: this.skipped });
      this.skipped = -1;
      this.head = Buffer.alloc(0);
      return;
    }
    const bytes = this.held.length === 1 ? (this.held[0] as Buffer) : Buffer.concat(this.held);
    this.held = [];
    this.heldBytes = 0;
    if (!isUtf8(bytes)) {
      this.emit({ kind: 'not-utf8', bytes: Buffer.from(bytes) });
      return;
    }
    this.emit({ kind: 'line', text: bytes.toString('utf8') });
  }
}
