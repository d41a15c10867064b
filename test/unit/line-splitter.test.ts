import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { LineSplitter, type SplitEvent } from '../../src/runtime/line-splitter.ts';

const text = (event: SplitEvent | undefined) =>
  event?.kind === 'line' ? event.bytes.toString('latin1') : event && `<too-long ${event.bytes}>`;

function split(
  chunks: Buffer[],
  maxBytes: number,
): { lines: (string | undefined)[]; splitter: LineSplitter } {
  const splitter = new LineSplitter(maxBytes);
  const lines: (string | undefined)[] = [];
  for (const chunk of chunks) {
    splitter.push(chunk, (event) => {
      lines.push(text(event));
      return true;
    });
  }
  return { lines, splitter };
}

describe('LineSplitter', () => {
  it('holds a copy of an unfinished line, so the chunk it came in may be reused', () => {
    const chunk = Buffer.from('{"type":"ADD');
    const splitter = new LineSplitter(64);
    const lines: (string | undefined)[] = [];
    const emit = (event: SplitEvent) => {
      lines.push(text(event));
      return true;
    };
    splitter.push(chunk, emit);
    chunk.fill(0x58);
    splitter.push(Buffer.from('ED"}\n'), emit);
    expect(lines).toEqual(['{"type":"ADDED"}']);
  });

  it('says it is skipping while a line over the bound has no newline yet, and reports it once at the newline', () => {
    const { lines, splitter } = split([Buffer.from('ok\n'), Buffer.alloc(40, 0x41)], 32);
    expect(lines).toEqual(['ok']);
    expect(splitter.skipping).toBe(true);
    const rest: (string | undefined)[] = [];
    splitter.push(Buffer.alloc(10, 0x41), () => true);
    splitter.push(Buffer.from('\nnext\n'), (event) => {
      rest.push(text(event));
      return true;
    });
    expect(rest).toEqual(['<too-long 50>', 'next']);
    expect(splitter.skipping).toBe(false);
  });

  it('keeps the head of a too-long line, at most 256 bytes', () => {
    const splitter = new LineSplitter(300);
    const events: SplitEvent[] = [];
    splitter.push(Buffer.from(`${'h'.repeat(200)}`), () => true);
    splitter.push(Buffer.from(`${'t'.repeat(200)}\n`), (event) => {
      events.push(event);
      return true;
    });
    expect(events).toHaveLength(1);
    const [event] = events;
    expect(event?.kind).toBe('too-long');
    if (event?.kind !== 'too-long') return;
    expect(event.bytes).toBe(400);
    expect(event.head.toString()).toBe(`${'h'.repeat(200)}${'t'.repeat(56)}`);
  });

  it('drops the rest of a chunk once emit returns false', () => {
    const splitter = new LineSplitter(64);
    const seen: (string | undefined)[] = [];
    splitter.push(Buffer.from('a\nb\nc\n'), (event) => {
      seen.push(text(event));
      return seen.length < 2;
    });
    expect(seen).toEqual(['a', 'b']);
  });

  it('gives the unfinished last line at the end of the stream, and nothing when there is none', () => {
    const { splitter } = split([Buffer.from('a\nlast')], 64);
    expect(text(splitter.rest())).toBe('last');
    expect(splitter.rest()).toBeUndefined();
    const { splitter: skipping } = split([Buffer.alloc(100, 0x41)], 64);
    expect(text(skipping.rest())).toBe('<too-long 100>');
  });

  it('cuts any chunking of a stream into the same lines, each over the bound reported by its length (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 30 }),
        fc.integer({ min: 1, max: 64 }),
        (parts, max) => {
          const chunks = parts.map((part) => Buffer.from(part));
          const stream = Buffer.concat(chunks).toString('latin1');
          const { lines, splitter } = split(chunks, max);
          const rest = splitter.rest();
          const expected = stream.split('\n');
          if (expected.at(-1) === '') expected.pop();
          expect([...lines, ...(rest ? [text(rest)] : [])]).toEqual(
            expected.map((line) => (line.length > max ? `<too-long ${line.length}>` : line)),
          );
        },
      ),
    );
  });
});
