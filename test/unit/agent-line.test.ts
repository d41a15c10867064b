import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hexForLog, parseNotifyLine } from '../../src/agent/line.ts';
import { NotifyLineSplitter, type SplitLine } from '../../src/agent/splitter.ts';

describe('parseNotifyLine: every form of keepalived.conf(5)', () => {
  it.each([
    ['INSTANCE "VI_1" MASTER 100', { type: 'INSTANCE', name: 'VI_1', state: 'Primary', priority: 100 }],
    ['INSTANCE "VI_1" BACKUP 150', { type: 'INSTANCE', name: 'VI_1', state: 'Backup', priority: 150 }],
    ['INSTANCE "VI_1" FAULT 0', { type: 'INSTANCE', name: 'VI_1', state: 'Fault', priority: 0 }],
    ['INSTANCE "VI_1" STOP 150', { type: 'INSTANCE', name: 'VI_1', state: 'Stopped', priority: 150 }],
    ['INSTANCE "VI_1" DELETED 255', { type: 'INSTANCE', name: 'VI_1', state: 'Stopped', priority: 255 }],
    ['GROUP "VG_1" MASTER', { type: 'GROUP', name: 'VG_1', state: 'Primary' }],
    ['GROUP "VG_1" BACKUP', { type: 'GROUP', name: 'VG_1', state: 'Backup' }],
    ['GROUP "VG_1" FAULT 0', { type: 'GROUP', name: 'VG_1', state: 'Fault', priority: 0 }],
    [
      'INSTANCE "name with spaces" MASTER 10',
      { type: 'INSTANCE', name: 'name with spaces', state: 'Primary' },
    ],
    ['INSTANCE VI_bare MASTER 10', { type: 'INSTANCE', name: 'VI_bare', state: 'Primary' }],
    [
      'INSTANCE "0b6f4f64-2d0e-4c55-8f43-3c2b8e1a9d70" BACKUP 90',
      { type: 'INSTANCE', name: '0b6f4f64-2d0e-4c55-8f43-3c2b8e1a9d70', state: 'Backup' },
    ],
  ])('%s is a transition', (line, expected) => {
    expect(parseNotifyLine(line)).toMatchObject({ kind: 'transition', ...expected });
  });

  it('keeps keepalived’s own word for the message', () => {
    expect(parseNotifyLine('INSTANCE "VI_1" DELETED 5')).toMatchObject({ keepalivedState: 'DELETED' });
  });

  it.each([
    ['INSTANCE "VI_1" MASTER_RX_LOWER_PRI 100', 'MASTER_RX_LOWER_PRI'],
    ['INSTANCE "VI_1" MASTER_PRIORITY 120', 'MASTER_PRIORITY'],
    ['INSTANCE "VI_1" BACKUP_PRIORITY 80', 'BACKUP_PRIORITY'],
  ])('%s is counted and ignored', (line, event) => {
    expect(parseNotifyLine(line)).toEqual({ kind: 'ignored', type: 'INSTANCE', name: 'VI_1', event });
  });

  it.each([
    '',
    'INSTANCE',
    'INSTANCE "VI_1"',
    'INSTANCE "VI_1" UP 100',
    'INSTANCE "VI_1" master 100',
    'instance "VI_1" MASTER 100',
    'ROUTER "VI_1" MASTER 100',
    'VS [192.168.201.15]:tcp:80 UP',
    'INSTANCE "" MASTER 100',
    'INSTANCE "VI_1" MASTER 256',
    'INSTANCE "VI_1" MASTER -1',
    'INSTANCE "VI_1" MASTER 1000',
    'INSTANCE "VI_1" MASTER 100 extra',
    'INSTANCE  "VI_1" MASTER 100',
    'INSTANCE "VI_1" MASTER 100\r',
    'INSTANCE "VI\u001b[2J" MASTER 100',
    'INSTANCE "VI\u202e1" MASTER 100',
    'INSTANCE "VI\u0000" MASTER 100',
    'INSTANCE "VI"1" MASTER 100',
  ])('%j is malformed', (line) => {
    const parsed = parseNotifyLine(line);
    expect(parsed.kind).toBe('malformed');
  });

  it('never throws and never accepts a name with control or bidi characters (property)', () => {
    const state = fc.constantFrom('MASTER', 'BACKUP', 'FAULT', 'STOP', 'DELETED', 'MASTER_PRIORITY', 'X');
    const line = fc.oneof(
      fc.string({ maxLength: 300 }),
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc
        .tuple(
          fc.constantFrom('INSTANCE', 'GROUP', 'X'),
          fc.string({ unit: 'binary', maxLength: 40 }),
          state,
          fc.nat(999),
        )
        .map(([type, name, word, priority]) => `${type} "${name}" ${word} ${priority}`),
    );
    fc.assert(
      fc.property(line, (text) => {
        const parsed = parseNotifyLine(text);
        if (parsed.kind !== 'malformed') {
          expect(parsed.name).not.toMatch(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/u);
        }
      }),
      { numRuns: 500 },
    );
  }, 30_000);
});

describe('hexForLog', () => {
  it('shows bytes as hex, clipped', () => {
    expect(hexForLog(Buffer.from([0xff, 0xfe, 0x41]))).toBe('fffe41');
    expect(hexForLog(Buffer.alloc(100), 2)).toBe('0000...');
  });
});

describe('NotifyLineSplitter', () => {
  const split = (chunks: Buffer[], max?: number) => {
    const lines: SplitLine[] = [];
    const splitter = new NotifyLineSplitter((line) => lines.push(line), max);
    for (const chunk of chunks) splitter.push(chunk);
    return lines;
  };

  it('joins lines across chunks and keeps an unfinished line', () => {
    const lines = split([Buffer.from('INSTANCE "a" MA'), Buffer.from('STER 1\nGROUP "b" BACKUP\nINST')]);
    expect(lines).toEqual([
      { kind: 'line', text: 'INSTANCE "a" MASTER 1' },
      { kind: 'line', text: 'GROUP "b" BACKUP' },
    ]);
  });

  it('reports a line over the cap once, skips the rest of it, and reads the next line', () => {
    const long = Buffer.alloc(10_000, 0x41);
    const lines = split(
      [Buffer.from('ok 1\n'), long.subarray(0, 3000), long.subarray(3000), Buffer.from('\nok 2\n')],
      4096,
    );
    expect(lines.map((l) => l.kind)).toEqual(['line', 'too-long', 'line']);
    expect(lines[1]).toMatchObject({ kind: 'too-long', bytes: 10_000 });
    expect(lines[2]).toEqual({ kind: 'line', text: 'ok 2' });
  });

  it('accepts a line of exactly the cap and refuses one byte more', () => {
    const lines = split([Buffer.from(`${'a'.repeat(4096)}\n${'b'.repeat(4097)}\n`)]);
    expect(lines.map((l) => l.kind)).toEqual(['line', 'too-long']);
  });

  it('reports bytes that are not UTF-8 without decoding them', () => {
    const lines = split([Buffer.from([0x49, 0xff, 0xfe, 0x0a, 0x4f, 0x4b, 0x0a])]);
    expect(lines).toEqual([
      { kind: 'not-utf8', bytes: Buffer.from([0x49, 0xff, 0xfe]) },
      { kind: 'line', text: 'OK' },
    ]);
  });

  it('splits any chunking of a stream into the same lines (property)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.stringMatching(/^[ -~]{0,50}$/), { maxLength: 30 }),
        fc.array(fc.nat(60)),
        (texts, cuts) => {
          const stream = Buffer.from(texts.map((t) => `${t}\n`).join(''));
          const chunks: Buffer[] = [];
          let at = 0;
          for (const cut of cuts) {
            chunks.push(stream.subarray(at, Math.min(stream.length, at + cut)));
            at = Math.min(stream.length, at + cut);
          }
          chunks.push(stream.subarray(at));
          expect(split(chunks)).toEqual(texts.map((text) => ({ kind: 'line', text })));
        },
      ),
    );
  });
});
