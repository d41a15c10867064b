import { chmodSync, createWriteStream, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { startAgent } from '../../src/agent/agent.ts';
import { WarnedNames } from '../../src/agent/warned-names.ts';
import { createLogger } from '../../src/log.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function retainedHeap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A name of about 4 KiB (the longest a line allows), distinct per `i`. */
const longName = (i: number) => `n${i}-${'x'.repeat(4000)}`;

describe('unmapped keepalived names (issue 23, item 10)', () => {
  it('WarnedNames: each name once, and no more than max remembered', () => {
    const warned = new WarnedNames(3);
    expect(warned.firstTime(longName(1))).toBe(true);
    expect(warned.firstTime(longName(1))).toBe(false);
    expect(warned.firstTime(longName(2))).toBe(true);
    expect(warned.firstTime(longName(3))).toBe(true);
    expect(warned.firstTime(longName(4))).toBe(false);
    expect(warned.size).toBe(3);
  });

  it('the agent holds under 8 MiB more after 10,000 distinct names of 4 KiB (about 40 MB when kept whole)', {
    timeout: 120_000,
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'agent-unmapped-'));
    chmodSync(dir, 0o700);
    const kubeconfig = join(dir, 'kubeconfig');
    // Nothing listens there: the agent never needs the API server for unmapped lines.
    writeFileSync(
      kubeconfig,
      `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: routers}}]
current-context: x
`,
      { mode: 0o600 },
    );
    const fifo = join(dir, 'notify.fifo');
    const agent = await startAgent(
      {
        fifo,
        stateDir: join(dir, 'state'),
        instances: new Map(),
        agent: 'node-a',
        kubeconfig,
        metricsBind: null,
        concurrency: 1,
        requestTimeoutMs: 1000,
      },
      createLogger('silent'),
    );
    try {
      const unmapped = async () =>
        (await agent.metrics.lines.get()).values.find((v) => v.labels.kind === 'unmapped')?.value ?? 0;
      const before = retainedHeap();
      const writer = createWriteStream(fifo, { flags: 'w' });
      const count = 10_000;
      for (let i = 0; i < count; i++) {
        if (!writer.write(`INSTANCE "${longName(i)}" MASTER 100\n`)) {
          await new Promise<void>((resolve) => writer.once('drain', () => resolve()));
        }
      }
      await new Promise<void>((resolve) => writer.end(() => resolve()));
      const end = performance.now() + 60_000;
      while ((await unmapped()) < count && performance.now() < end) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await unmapped()).toBe(count);
      const grown = retainedHeap() - before;
      expect(grown).toBeLessThan(8 * 2 ** 20);
    } finally {
      await agent.stop();
    }
  });
});
