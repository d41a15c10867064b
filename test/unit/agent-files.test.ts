import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { appendFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FifoRefused, fifoProblem, openCheckedFifo } from '../../src/agent/fifo.ts';
import { InstanceMap, parseInstanceFlags, parseInstancesFile } from '../../src/agent/mapping.ts';
import { foldJournal, SPOOL_FILE, Spool, type SpoolEntry } from '../../src/agent/spool.ts';
import { createLogger } from '../../src/log.ts';

const R1 = '0b6f4f64-2d0e-4c55-8f43-3c2b8e1a9d70';
const R2 = '6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12';
const silent = createLogger('silent');

/** A private directory (0700) for FIFOs: the agent refuses group- or other-writable ones, as /tmp is. */
function privateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'agent-fifo-'));
  chmodSync(dir, 0o700);
  return dir;
}

describe('the FIFO checks (the seed’s third finding)', () => {
  const fifo = { isSymbolicLink: false, isFIFO: true, uid: 0, gid: 0, mode: 0o10600 };
  const root = { mode: 0o700, uid: 0 };
  const me = { uid: 1000 };
  it.each([
    [{ ...fifo, isSymbolicLink: true }, root, 'it is a symbolic link'],
    [{ ...fifo, isFIFO: false }, root, 'it is not a FIFO'],
    [{ ...fifo, uid: 1234 }, root, 'owned by uid 1234'],
    [{ ...fifo, mode: 0o10620 }, root, 'writable by group and no --fifo-group is set (mode 620)'],
    [{ ...fifo, mode: 0o10602 }, root, 'writable by others (mode 602)'],
    [fifo, { mode: 0o1777, uid: 0 }, 'its directory /run/h is writable by group or others (mode 777)'],
    [fifo, { mode: 0o770, uid: 0 }, 'its directory /run/h is writable by group or others'],
    // issue 23, item 10: a directory of another user could swap the FIFO for its own at any time.
    [fifo, { mode: 0o700, uid: 1234 }, 'its directory /run/h is owned by uid 1234, neither this user'],
  ])('refuses %o in a directory %o, naming the path and the rule', (facts, directory, rule) => {
    const problem = fifoProblem('/run/h/notify.fifo', facts, directory, me);
    expect(problem).toContain('/run/h/notify.fifo');
    expect(problem).toContain(rule);
  });

  it('accepts a FIFO of this user or root, 0600 or 0644, in a 0755 directory of this user or root', () => {
    expect(fifoProblem('/p/f', { ...fifo, uid: 1000 }, { mode: 0o755, uid: 0 }, me)).toBeUndefined();
    expect(fifoProblem('/p/f', { ...fifo, mode: 0o10644 }, { mode: 0o755, uid: 0 }, me)).toBeUndefined();
    expect(fifoProblem('/p/f', fifo, { mode: 0o700, uid: 1000 }, me)).toBeUndefined();
  });

  it('with --fifo-group: accepts a group-writable FIFO of that group only, never an other-writable one', () => {
    const shared = { ...fifo, gid: 2000, mode: 0o10660 };
    const dir = { mode: 0o755, uid: 0 };
    expect(fifoProblem('/p/f', shared, dir, { uid: 1000, group: 2000 })).toBeUndefined();
    expect(
      fifoProblem('/p/f', { ...shared, mode: 0o10640 }, dir, { uid: 1000, group: 2000 }),
    ).toBeUndefined();
    expect(fifoProblem('/p/f', shared, dir, { uid: 1000, group: 3000 })).toContain(
      'writable by group and its group is 2000, not 3000',
    );
    expect(fifoProblem('/p/f', shared, dir, me)).toContain('no --fifo-group is set');
    expect(fifoProblem('/p/f', { ...shared, mode: 0o10666 }, dir, { uid: 1000, group: 2000 })).toContain(
      'writable by others',
    );
  });

  it('creates a missing FIFO with mode 0600 and opens it', () => {
    const path = join(privateDir(), 'notify.fifo');
    const opened = openCheckedFifo(path);
    const stat = lstatSync(path);
    expect(stat.isFIFO()).toBe(true);
    expect(stat.mode & 0o777).toBe(0o600);
    expect(stat.ino).toBe(opened.ino);
    closeSync(opened.fd);
  });

  it('refuses, on the real file system, a symlink, a regular file, a foreign owner and loose modes', () => {
    const dir = privateDir();
    const target = join(dir, 'real.fifo');
    execFileSync('mkfifo', ['-m', '600', target]);
    symlinkSync(target, join(dir, 'link.fifo'));
    writeFileSync(join(dir, 'file.fifo'), '');
    execFileSync('mkfifo', ['-m', '622', join(dir, 'loose.fifo')]);
    chmodSync(join(dir, 'loose.fifo'), 0o622);
    execFileSync('mkfifo', ['-m', '600', join(dir, 'foreign.fifo')]);
    // Needs root (development machines and CI run as root, docs/development.md): fails loudly otherwise.
    chownSync(join(dir, 'foreign.fifo'), 4321, 4321);
    const refused = (name: string) => {
      try {
        closeSync(openCheckedFifo(join(dir, name)).fd);
        return 'accepted';
      } catch (error) {
        expect(error).toBeInstanceOf(FifoRefused);
        return (error as Error).message;
      }
    };
    expect(refused('link.fifo')).toContain('symbolic link');
    expect(refused('file.fifo')).toContain('not a FIFO');
    expect(refused('loose.fifo')).toContain('writable by others');
    expect(refused('foreign.fifo')).toContain('owned by uid 4321');
    const open = join(privateDir(), 'x');
    mkdirSync(open);
    chmodSync(open, 0o777);
    expect(() => openCheckedFifo(join(open, 'notify.fifo'))).toThrow(
      /its directory .* is writable by group or others/,
    );
    const foreignDir = join(privateDir(), 'foreign');
    mkdirSync(foreignDir, { mode: 0o700 });
    execFileSync('mkfifo', ['-m', '600', join(foreignDir, 'notify.fifo')]);
    chownSync(foreignDir, 4321, 4321);
    expect(() => openCheckedFifo(join(foreignDir, 'notify.fifo'))).toThrow(
      /its directory .* is owned by uid 4321, neither this user \(uid 0\) nor root/,
    );
  });

  it('with a trusted group: opens a root-owned FIFO of mode 0660 in that group, as a non-root agent would', () => {
    const dir = privateDir();
    chmodSync(dir, 0o755);
    const path = join(dir, 'notify.fifo');
    execFileSync('mkfifo', ['-m', '660', path]);
    chownSync(path, 0, 2345);
    expect(() => openCheckedFifo(path, { uid: 4321 })).toThrow(/writable by group and no --fifo-group/);
    const opened = openCheckedFifo(path, { uid: 4321, group: 2345 });
    expect(opened.ino).toBe(lstatSync(path).ino);
    closeSync(opened.fd);
  });
});

describe('instance mapping', () => {
  it('reads --instance values, with or without a namespace, split at the last =', () => {
    const flags = parseInstanceFlags([`VI_1=${R1}`, `a=b=routers/${R2}`]);
    expect(flags).toEqual(
      new Map([
        ['VI_1', { router: R1 }],
        ['a=b', { namespace: 'routers', router: R2 }],
      ]),
    );
  });

  it.each([['VI_1'], [`=${R1}`], ['VI_1=not-a-uuid'], [`VI_1=Bad_NS/${R1}`], [`VI_1=${R1.toUpperCase()}`]])(
    'refuses --instance %s',
    (value) => {
      expect(parseInstanceFlags([value])).toHaveProperty('error');
    },
  );

  it('reads a YAML or JSON file and names the bad entry by position only', () => {
    expect(parseInstancesFile(`VI_1: ${R1}\n"VI 2": "team/${R2}"\n`)).toEqual(
      new Map([
        ['VI_1', { router: R1 }],
        ['VI 2', { namespace: 'team', router: R2 }],
      ]),
    );
    expect(parseInstancesFile(JSON.stringify({ VI_1: R1 }))).toEqual(new Map([['VI_1', { router: R1 }]]));
    expect(parseInstancesFile('')).toEqual(new Map());
    const bad = parseInstancesFile(`VI_1: ${R1}\nVI_2: secret-not-uuid\n`);
    expect(bad).toEqual({ error: 'entry #2: the router id is not a lower-case canonical UUID' });
    expect(JSON.stringify(parseInstancesFile('a: [secret-value\n'))).not.toContain('secret-value');
    expect(parseInstancesFile('- a\n- b\n')).toHaveProperty('error');
  });

  it('resolves flags over the file, and UUID names to the default namespace', () => {
    const map = new InstanceMap(
      new Map([['VI_1', { router: R1 }]]),
      new Map([
        ['VI_1', { router: R2 }],
        ['VI_2', { namespace: 'b', router: R2 }],
      ]),
      'routers',
    );
    expect(map.resolve('VI_1')).toEqual({ namespace: 'routers', router: R1 });
    expect(map.resolve('VI_2')).toEqual({ namespace: 'b', router: R2 });
    expect(map.resolve(R2)).toEqual({ namespace: 'routers', router: R2 });
    expect(map.resolve('VI_3')).toBeUndefined();
    map.replaceFile(new Map());
    expect(map.resolve('VI_2')).toBeUndefined();
  });
});

describe('the spool', () => {
  const entry = (router: string, observedAt: string, state: SpoolEntry['state'] = 'Primary'): SpoolEntry => ({
    namespace: 'routers',
    router,
    state,
    observedAt,
  });

  it('folds a journal: newest put per router, done removes it, a torn last line is skipped', () => {
    const put = (e: SpoolEntry) => JSON.stringify({ op: 'put', ...e });
    const text = [
      put(entry(R1, '2026-01-01T00:00:00.000000001Z', 'Backup')),
      put(entry(R1, '2026-01-01T00:00:00.000000002Z')),
      put(entry(R2, '2026-01-01T00:00:00.5Z')),
      JSON.stringify({ op: 'done', namespace: 'routers', router: R2, observedAt: '2026-01-01T00:00:00.5Z' }),
      JSON.stringify({
        op: 'done',
        namespace: 'routers',
        router: R1,
        observedAt: '2026-01-01T00:00:00.000000001Z',
      }),
      '{"op":"put","namespace":"rou',
    ].join('\n');
    const { live, skipped } = foldJournal(text);
    expect([...live.values()]).toEqual([entry(R1, '2026-01-01T00:00:00.000000002Z')]);
    expect(skipped).toBe(1);
  });

  it('keeps what was not delivered across a reopen, in files 0600 under a 0700 directory', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'agent-spool-')), 'state');
    const first = await Spool.open(dir, silent);
    expect(first.pending).toEqual([]);
    first.spool.put(entry(R1, '2026-01-01T00:00:01Z', 'Backup'));
    first.spool.put(entry(R2, '2026-01-01T00:00:02Z'));
    first.spool.put(entry(R1, '2026-01-01T00:00:03Z'));
    first.spool.delivered(entry(R2, '2026-01-01T00:00:02Z'));
    await first.spool.flush();
    // A crash: the journal is left as it is, without close.
    await appendFile(join(dir, SPOOL_FILE), '{"op":"put","trunc');
    const second = await Spool.open(dir, silent);
    expect(second.pending).toEqual([entry(R1, '2026-01-01T00:00:03Z')]);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, SPOOL_FILE)).mode & 0o777).toBe(0o600);
    second.spool.delivered(entry(R1, '2026-01-01T00:00:03Z'));
    await second.spool.close();
    expect((await Spool.open(dir, silent)).pending).toEqual([]);
    expect(await readFile(join(dir, SPOOL_FILE), 'utf8')).toBe('');
  });

  it('syncNow puts the lines on disk before it returns, in the same turn (what a SIGKILL right after leaves)', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'agent-spool-')), 'state');
    const { spool } = await Spool.open(dir, silent);
    spool.put(entry(R1, '2026-01-01T00:00:01Z'));
    spool.put(entry(R2, '2026-01-01T00:00:02Z', 'Backup'));
    spool.syncNow();
    // No await since the puts: only what syncNow wrote can be in the file.
    const { live } = foldJournal(readFileSync(join(dir, SPOOL_FILE), 'utf8'));
    expect([...live.values()]).toEqual([
      entry(R1, '2026-01-01T00:00:01Z'),
      entry(R2, '2026-01-01T00:00:02Z', 'Backup'),
    ]);
    await spool.close();
    expect((await Spool.open(dir, silent)).pending).toHaveLength(2);
  });

  it('refuses a state directory that is a symlink', async () => {
    const base = mkdtempSync(join(tmpdir(), 'agent-spool-'));
    mkdirSync(join(base, 'real'));
    symlinkSync(join(base, 'real'), join(base, 'link'));
    await expect(Spool.open(join(base, 'link'), silent)).rejects.toThrow(/not a symlink/);
  });

  it('never writes through a symlink planted at the temporary file (issue 23, item 10)', async () => {
    const base = mkdtempSync(join(tmpdir(), 'agent-spool-'));
    const dir = join(base, 'state');
    mkdirSync(dir, { mode: 0o700 });
    const victim = join(base, 'victim');
    writeFileSync(victim, 'precious\n', { mode: 0o644 });
    symlinkSync(victim, join(dir, `${SPOOL_FILE}.tmp`));
    const { spool } = await Spool.open(dir, silent);
    spool.put(entry(R1, '2026-01-01T00:00:01Z'));
    await spool.close();
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(statSync(victim).mode & 0o777).toBe(0o644);
    expect(lstatSync(join(dir, SPOOL_FILE)).isFile()).toBe(true);
    expect((await Spool.open(dir, silent)).pending).toEqual([entry(R1, '2026-01-01T00:00:01Z')]);
  });
});
