import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeepalivedProcess, keepalivedArgs, keepalivedPid } from '../../src/agent/keepalived-process.ts';
import { createLogger } from '../../src/log.ts';

/**
 * A stand-in named `keepalived` (so /proc/PID/comm says so): it writes its pid to the
 * `-p` file, records each SIGHUP and SIGTERM in `events`, and exits on SIGTERM.
 */
function standIn(dir: string): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin, { recursive: true });
  const path = join(bin, 'keepalived');
  writeFileSync(
    path,
    `#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = "-p" ] && pidfile="$2"; shift; done
echo $$ > "$pidfile"
echo start >> ${dir}/events
trap 'echo hup >> ${dir}/events' HUP
trap 'echo term >> ${dir}/events; exit 0' TERM
while :; do sleep 0.05; done
`,
  );
  chmodSync(path, 0o755);
  return path;
}

const events = (dir: string) =>
  existsSync(join(dir, 'events'))
    ? readFileSync(join(dir, 'events'), 'utf8').split('\n').filter(Boolean)
    : [];

async function until(check: () => boolean, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const log = createLogger('silent');

describe('keepalived run and reloaded by the agent', () => {
  it('runs keepalived in the foreground, logging to the console, VRRP only, with its pid files', () => {
    expect(keepalivedArgs('/etc/k/keepalived.conf', '/run/harouter/keepalived.pid')).toEqual([
      '--dont-fork',
      '--log-console',
      '--vrrp',
      '-f',
      '/etc/k/keepalived.conf',
      '-p',
      '/run/harouter/keepalived.pid',
      '-r',
      '/run/harouter/keepalived-vrrp.pid',
    ]);
  });

  it('signals the pid file’s process only when it is keepalived', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keepalived-pid-'));
    const pidFile = join(dir, 'keepalived.pid');
    expect(keepalivedPid(pidFile)).toBeUndefined();
    writeFileSync(pidFile, `${process.pid}\n`);
    expect(keepalivedPid(pidFile)).toBeUndefined();
    writeFileSync(pidFile, 'garbage');
    expect(keepalivedPid(pidFile)).toBeUndefined();
    const process_ = new KeepalivedProcess({ pidFile, log });
    expect(process_.reload()).toBe(false);
  });

  it('starts keepalived, reloads it by SIGHUP, restarts it after it dies, stops it with SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keepalived-run-'));
    const pidFile = join(dir, 'keepalived.pid');
    const keepalived = new KeepalivedProcess({
      pidFile,
      run: { mainConfig: join(dir, 'keepalived.conf'), binary: standIn(dir) },
      log,
    });
    keepalived.start();
    await until(() => events(dir).includes('start') && keepalivedPid(pidFile) !== undefined);
    expect(keepalivedPid(pidFile)).toBe(keepalived.pid);
    expect(keepalived.reload()).toBe(true);
    await until(() => events(dir).includes('hup'));
    const first = keepalived.pid as number;
    process.kill(first, 'SIGKILL');
    await until(() => keepalived.starts === 2 && keepalived.pid !== undefined && keepalived.pid !== first);
    await until(() => events(dir).filter((e) => e === 'start').length === 2);
    await keepalived.stop();
    expect(events(dir).at(-1)).toBe('term');
    expect(keepalived.pid).toBeUndefined();
    // Stopped means stopped: no restart follows.
    await new Promise((r) => setTimeout(r, 1500));
    expect(keepalived.starts).toBe(2);
  });

  it('a missing keepalived binary is retried with backoff, never a crash', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keepalived-missing-'));
    const keepalived = new KeepalivedProcess({
      pidFile: join(dir, 'keepalived.pid'),
      run: { mainConfig: join(dir, 'keepalived.conf'), binary: join(dir, 'no-such-keepalived') },
      log,
    });
    keepalived.start();
    await until(() => keepalived.starts >= 2, 5000);
    await keepalived.stop();
  });
});
