/**
 * The nodes harness itself, with real keepalived and no Kubernetes: three
 * nodes elect, fail over when the MASTER stops, split when one is cut off the
 * bridge and heal when it returns, preempt after a priority reload, take over
 * after a crash; each node's notify FIFO, read directly, says so, and so does
 * the data-plane observer (test/support/vip-observer.ts: who holds the
 * virtual address, from `ip monitor`), checked here against keepalived itself
 * before other files take it as their truth. Afterwards no namespace and no
 * process of the run is left.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FifoReader, type Nodes, readFifo, startNodes, virtualAddress } from '../support/nodes.ts';
import { observeVips, type VipObserver } from '../support/vip-observer.ts';

const NAMES = ['node-a', 'node-b', 'node-c'] as const;
const PRIORITY = { 'node-a': 150, 'node-b': 100, 'node-c': 50 } as const;

let dir: string;
let nodes: Nodes;
let vips: VipObserver;
const fifos = new Map<string, FifoReader>();

const fifo = (name: string) => fifos.get(name) as FifoReader;
const mark = (name: string) => fifo(name).lines.length;
const vip = virtualAddress(1);

/** Whether the node's namespace holds the instance's virtual address (keepalived MASTER sets it). */
function holdsVip(name: string): boolean {
  const out = execFileSync('ip', ['-n', nodes.node(name).namespace, '-o', 'addr', 'show', 'dev', 'eth0'], {
    encoding: 'utf8',
  });
  return out.includes(` ${vip}/`);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'harouter-nodes-test-'));
  nodes = await startNodes({ names: NAMES, dir, prefix: 'harouter-e2e' });
  for (const name of NAMES) {
    const node = nodes.node(name);
    fifos.set(name, await readFifo(node.fifo));
    await node.setInstances([{ name: 'VI_1', virtualRouterId: 1, priority: PRIORITY[name] }]);
  }
  vips = await observeVips({
    namespaces: Object.fromEntries(NAMES.map((name) => [name, nodes.node(name).namespace])),
    isVip: (address) => address === vip,
  });
});

afterAll(async () => {
  await vips?.stop();
  for (const reader of fifos.values()) reader.close();
  await nodes?.stop();
  await rm(dir, { recursive: true, force: true });
});

describe('nodes harness with real keepalived', () => {
  it('elects the highest priority: node-a MASTER, the others BACKUP', async () => {
    const started = Date.now();
    await Promise.all(NAMES.map((name) => nodes.node(name).keepalived.start()));
    const master = await fifo('node-a').next(/^INSTANCE "VI_1" MASTER 150$/);
    await fifo('node-b').next(/^INSTANCE "VI_1" BACKUP 100$/);
    await fifo('node-c').next(/^INSTANCE "VI_1" BACKUP 50$/);
    process.stdout.write(`election: node-a MASTER ${master.at - started} ms after keepalived started\n`);
    expect(holdsVip('node-a')).toBe(true);
    expect(holdsVip('node-b')).toBe(false);
    expect(fifo('node-b').lines.some((l) => l.text.includes('MASTER'))).toBe(false);
    await vips.waitFor(vip, (h) => h.join() === 'node-a', 5000);
    expect(vips.spans(vip, started).map((s) => s.holders)).toEqual([[], ['node-a']]);
    await vips.verify();
  });

  it('a node cut off the bridge (carrier kept) becomes a second MASTER; re-attached, it yields', async () => {
    const a = mark('node-a');
    const b = mark('node-b');
    await nodes.node('node-b').detach();
    expect(await nodes.node('node-b').attached()).toBe(false);
    const cut = Date.now();
    await fifo('node-b').next(/^INSTANCE "VI_1" MASTER 100$/, 15_000, b);
    expect(holdsVip('node-a')).toBe(true);
    expect(holdsVip('node-b')).toBe(true);
    expect(fifo('node-a').lines.slice(a)).toEqual([]);
    await vips.waitFor(vip, (h) => h.join() === 'node-a,node-b', 5000);
    expect(vips.overlaps(vip, cut)).toHaveLength(1);

    const healed = mark('node-b');
    await nodes.node('node-b').attach();
    expect(await nodes.node('node-b').attached()).toBe(true);
    await fifo('node-b').next(/^INSTANCE "VI_1" BACKUP 100$/, 15_000, healed);
    expect(holdsVip('node-b')).toBe(false);
    expect(holdsVip('node-a')).toBe(true);
    await vips.waitFor(vip, (h) => h.join() === 'node-a', 5000);
    expect(vips.gaps(vip, cut)).toEqual([]);
    await vips.verify();
  });

  it('the MASTER stopped (STOP on its FIFO) moves MASTER to node-b; restarted, node-a preempts', async () => {
    const a = mark('node-a');
    const b = mark('node-b');
    const stopped = Date.now();
    await nodes.node('node-a').keepalived.stop();
    await fifo('node-a').next(/^INSTANCE "VI_1" STOP 150$/, 5000, a);
    const moved = await fifo('node-b').next(/^INSTANCE "VI_1" MASTER 100$/, 15_000, b);
    process.stdout.write(
      `stop: node-b MASTER ${moved.at - stopped} ms after node-a's keepalived was stopped\n`,
    );
    const held = await vips.waitFor(vip, (h) => h.join() === 'node-b', 5000);
    const gap = vips.gaps(vip, stopped, held);
    expect(gap).toHaveLength(1);
    expect(vips.overlaps(vip, stopped, held)).toEqual([]);
    process.stdout.write(`stop: no holder of ${vip} for ${gap[0]?.ms.toFixed(1)} ms (ip monitor)\n`);
    // keepalived deletes only a FIFO it made itself: this one was made by the reader.
    expect((await stat(nodes.node('node-a').fifo)).isFIFO()).toBe(true);

    const back = mark('node-a');
    const yielded = mark('node-b');
    await nodes.node('node-a').keepalived.start();
    await fifo('node-a').next(/^INSTANCE "VI_1" MASTER 150$/, 15_000, back);
    await fifo('node-b').next(/^INSTANCE "VI_1" BACKUP 100$/, 15_000, yielded);
  });

  it('a priority raised by reload (SIGHUP) makes node-c preempt', async () => {
    const a = mark('node-a');
    const c = mark('node-c');
    const pid = nodes.node('node-c').keepalived.pid();
    await nodes.node('node-c').setPriority('VI_1', 200);
    await fifo('node-c').next(/^INSTANCE "VI_1" MASTER 200$/, 15_000, c);
    await fifo('node-a').next(/^INSTANCE "VI_1" BACKUP 150$/, 15_000, a);
    expect(nodes.node('node-c').keepalived.pid()).toBe(pid);
  });

  it('a crashed MASTER (SIGKILL) writes no STOP; node-a takes over after the master-down interval', async () => {
    const a = mark('node-a');
    const c = mark('node-c');
    const killed = Date.now();
    await nodes.node('node-c').keepalived.kill();
    const took = await fifo('node-a').next(/^INSTANCE "VI_1" MASTER 150$/, 15_000, a);
    process.stdout.write(
      `crash: node-a MASTER ${took.at - killed} ms after node-c's keepalived was killed\n`,
    );
    expect(fifo('node-c').lines.slice(c)).toEqual([]);
    expect(nodes.node('node-c').keepalived.running()).toBe(false);
  });

  it('stop() leaves no namespace and no process of the run', async () => {
    const run = nodes.run;
    const pids = NAMES.flatMap((n) => nodes.node(n).keepalived.pid() ?? []);
    expect(pids.length).toBe(2);
    await nodes.stop();
    expect(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })).not.toContain(run);
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow();
  });
});
