import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeepalivedFiles } from '../../src/agent/keepalived-files.ts';
import { ReloadThrottle, type ThrottleTimers } from '../../src/agent/reload-throttle.ts';
import type { DesiredRouter } from '../../src/keepalived/desired.ts';

const R1 = '0b7e5a2c-1111-4222-8333-444455556666';
const R2 = '9d2f0c31-aaaa-4bbb-8ccc-0123456789ab';

/** A clock and timers moved by hand. */
function manualTimers() {
  let now = 0;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const api: ThrottleTimers = {
    now: () => now,
    setTimeout(fn, ms) {
      nextId++;
      timers.set(nextId, { at: now + ms, fn });
      return nextId;
    },
    clearTimeout(handle) {
      timers.delete(handle as number);
    },
  };
  return {
    api,
    /** Moves the clock to `to`, running the timers due on the way, in order. */
    advance(to: number) {
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
      }
      now = to;
    },
  };
}

describe('reload throttle', () => {
  it('runs the first reload on a timer at once and makes the requests of one turn share it', () => {
    const clock = manualTimers();
    const reloads: number[] = [];
    const throttle = new ReloadThrottle(2000, () => reloads.push(clock.api.now()), clock.api);
    throttle.request();
    throttle.request();
    throttle.request();
    expect(reloads).toEqual([]);
    clock.advance(0);
    expect(reloads).toEqual([0]);
  });

  it('keeps reloads 2 s apart, however many changes ask in between, and drops none', () => {
    const clock = manualTimers();
    const reloads: number[] = [];
    const throttle = new ReloadThrottle(2000, () => reloads.push(clock.api.now()), clock.api);
    throttle.request();
    clock.advance(10);
    for (let t = 100; t <= 1900; t += 100) {
      clock.advance(t);
      throttle.request();
    }
    expect(reloads).toEqual([0]);
    expect(throttle.pending).toBe(true);
    clock.advance(2000);
    expect(reloads).toEqual([0, 2000]);
    clock.advance(7000);
    throttle.request();
    clock.advance(7000);
    expect(reloads).toEqual([0, 2000, 7000]);
    throttle.request();
    clock.advance(8999);
    expect(reloads).toEqual([0, 2000, 7000]);
    clock.advance(9000);
    expect(reloads).toEqual([0, 2000, 7000, 9000]);
  });

  it('stop cancels a waiting reload and ignores later requests', () => {
    const clock = manualTimers();
    let reloads = 0;
    const throttle = new ReloadThrottle(2000, () => reloads++, clock.api);
    throttle.request();
    throttle.stop();
    throttle.request();
    clock.advance(10_000);
    expect(reloads).toBe(0);
  });
});

const desired = (routerId: string, config: string, fenced = false): DesiredRouter => ({
  routerId,
  namespace: 'routers',
  config,
  fenced,
});

describe('keepalived files', () => {
  function dirs() {
    const base = mkdtempSync(join(tmpdir(), 'keepalived-files-'));
    return { config: join(base, 'conf.d'), fence: join(base, 'fence') };
  }

  it('writes each router file and fence file 0644, atomically, and reports a change once', async () => {
    const d = dirs();
    const files = new KeepalivedFiles(d.config, d.fence);
    await files.init();
    const first = await files.apply([desired(R1, 'one\n'), desired(R2, 'two\n', true)]);
    expect(first).toEqual({ configChanged: true, fencesWritten: 2, rendered: 2 });
    expect(readFileSync(join(d.config, `${R1}.conf`), 'utf8')).toBe('one\n');
    expect(readFileSync(join(d.fence, R1), 'utf8')).toBe('0');
    expect(readFileSync(join(d.fence, R2), 'utf8')).toBe('1');
    for (const path of [join(d.config, `${R2}.conf`), join(d.fence, R2)]) {
      expect(statSync(path).mode & 0o777).toBe(0o644);
    }
    // No temporary file is left behind.
    expect(readdirSync(d.config).sort()).toEqual([`${R1}.conf`, `${R2}.conf`]);
    const inode = statSync(join(d.config, `${R1}.conf`)).ino;
    const again = await files.apply([desired(R1, 'one\n'), desired(R2, 'two\n', true)]);
    expect(again).toEqual({ configChanged: false, fencesWritten: 0, rendered: 2 });
    expect(statSync(join(d.config, `${R1}.conf`)).ino).toBe(inode);
  });

  it('a fence change writes the fence file only (by rename: a new inode), with no reload', async () => {
    const d = dirs();
    const files = new KeepalivedFiles(d.config, d.fence);
    await files.init();
    await files.apply([desired(R1, 'one\n')]);
    const before = statSync(join(d.fence, R1)).ino;
    const result = await files.apply([desired(R1, 'one\n', true)]);
    expect(result).toEqual({ configChanged: false, fencesWritten: 1, rendered: 1 });
    expect(readFileSync(join(d.fence, R1), 'utf8')).toBe('1');
    expect(statSync(join(d.fence, R1)).ino).not.toBe(before);
  });

  it('deletes a removed router’s files and nothing it did not write', async () => {
    const d = dirs();
    const files = new KeepalivedFiles(d.config, d.fence);
    await files.init();
    writeFileSync(join(d.config, 'keepalived.conf'), 'main\n');
    writeFileSync(join(d.config, 'harouter-global.conf'), 'global\n');
    writeFileSync(join(d.config, 'site.conf'), 'mine\n');
    writeFileSync(join(d.fence, 'README'), 'x');
    await files.apply([desired(R1, 'one\n'), desired(R2, 'two\n')]);
    const result = await files.apply([desired(R2, 'two\n')]);
    expect(result).toEqual({ configChanged: true, fencesWritten: 0, rendered: 1 });
    expect(readdirSync(d.config).sort()).toEqual([
      `${R2}.conf`,
      'harouter-global.conf',
      'keepalived.conf',
      'site.conf',
    ]);
    expect(readdirSync(d.fence).sort()).toEqual([R2, 'README']);
  });

  it('after a restart, compares with what is on disk: same content, no write; a stale router file goes', async () => {
    const d = dirs();
    const old = new KeepalivedFiles(d.config, d.fence);
    await old.init();
    await old.apply([desired(R1, 'one\n'), desired(R2, 'two\n')]);
    const inode = statSync(join(d.config, `${R1}.conf`)).ino;
    const restarted = new KeepalivedFiles(d.config, d.fence);
    await restarted.init();
    expect(await restarted.apply([desired(R1, 'one\n')])).toEqual({
      configChanged: true,
      fencesWritten: 0,
      rendered: 1,
    });
    expect(statSync(join(d.config, `${R1}.conf`)).ino).toBe(inode);
    expect(readdirSync(d.config)).toEqual([`${R1}.conf`]);
    expect(await restarted.apply([desired(R1, 'one\n')])).toMatchObject({ configChanged: false });
  });
});
