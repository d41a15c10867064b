/**
 * `harouterctl agent` against a real API server with the operator's webhook in
 * the path, on a control plane of its own (the local mode's environment, started
 * here; the shared control plane serves other files and must not be frozen).
 * Every scenario ends with every router's newest state stored and no older
 * state stored after a newer one (a watch records every stored observedAt).
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldJournal, SPOOL_FILE } from '../../src/agent/spool.ts';
import { freePort } from '../../src/local/controlplane/index.ts';
import { type LocalEnvironment, startLocal } from '../../src/local/environment.ts';
import { SAMPLE_NAMESPACE } from '../../src/local/sample.ts';
import {
  type AgentProcess,
  createRouters,
  FifoWriter,
  readStates,
  routerIds,
  StateHistory,
  startAgentProcess,
  until,
} from '../support/agent-process.ts';

const AGENT = 'node-a';
const WORDS = { Primary: 'MASTER', Backup: 'BACKUP', Fault: 'FAULT', Stopped: 'STOP' } as const;
type State = keyof typeof WORDS;

let env: LocalEnvironment;
let admin: KubeConfig;
let base: string;

/** A node's files: its private FIFO directory and its spool. */
async function nodeDir(name: string) {
  const dir = join(base, name);
  await mkdir(join(dir, 'run'), { recursive: true });
  await chmod(join(dir, 'run'), 0o700);
  return { fifo: join(dir, 'run', 'notify.fifo'), stateDir: join(dir, 'spool') };
}

/** mkfifo as keepalived does; the agent may have made it again a moment before, which is as good. */
function makeFifo(path: string) {
  try {
    execFileSync('mkfifo', ['-m', '600', path], { stdio: 'ignore' });
  } catch (error) {
    if (!existsSync(path)) throw error;
  }
}

/** A line as keepalived writes it, for a UUID-named instance. */
const line = (router: string, state: State) => `INSTANCE "${router}" ${WORDS[state]} 100\n`;

/** Several transitions per router, ending in a known state per router. */
function transitions(ids: readonly string[], rounds: number, last: (i: number) => State) {
  const order: State[] = ['Backup', 'Primary', 'Fault', 'Backup', 'Primary'];
  const lines: string[] = [];
  for (let r = 0; r < rounds; r++) {
    ids.forEach((id, i) => {
      lines.push(line(id, r === rounds - 1 ? last(i) : (order[(r + i) % order.length] as State)));
    });
  }
  return lines.join('');
}

/** Waits until every router's stored state is `expected(i)`, then checks the stored history never went backwards. */
async function expectFinal(ids: readonly string[], expected: (i: number) => State, history: StateHistory) {
  await until('every router to store its newest state', 90_000, async () => {
    const stored = await readStates(admin, SAMPLE_NAMESPACE, AGENT);
    return ids.every((id, i) => stored.get(id)?.state === expected(i));
  });
  const stored = await readStates(admin, SAMPLE_NAMESPACE, AGENT);
  // The newest stamp stored is the last one the watch saw: nothing older replaced it.
  await until('the watch to see the final states', 30_000, () =>
    ids.every((id) => history.byRouter.get(id)?.at(-1) === stored.get(id)?.observedAt),
  );
  expect(history.backwards()).toEqual([]);
}

function agentArgs(files: { fifo: string; stateDir: string }, kubeconfig: string, extra: string[] = []) {
  return [
    `--fifo=${files.fifo}`,
    `--state-dir=${files.stateDir}`,
    `--kubeconfig=${kubeconfig}`,
    `--agent=${AGENT}`,
    '--timeout=2s',
    ...extra,
  ];
}

/** A TCP proxy to the API server that can refuse connections (an outage of the agent's network path). */
async function startProxy(target: URL) {
  let open = true;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!open) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream).pipe(client);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  const port = await freePort();
  await new Promise<void>((ready) => server.listen(port, '127.0.0.1', ready));
  return {
    port,
    cut() {
      open = false;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    restore() {
      open = true;
    },
    close: () => new Promise<void>((closed) => server.close(() => closed())),
  };
}

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'agent-it-'));
  env = await startLocal({
    dir: join(base, 'local'),
    logLevel: 'warn',
    freePorts: true,
    print: () => undefined,
  });
  admin = new KubeConfig();
  admin.loadFromFile(env.adminKubeconfig);
}, 300_000);

afterAll(async () => {
  await env?.stop();
  await rm(base, { recursive: true, force: true });
}, 120_000);

describe('harouterctl agent on a real API server', () => {
  it('delivers every router’s newest state across an API server frozen (SIGSTOP) while lines arrive', async () => {
    const ids = routerIds(30);
    await createRouters(admin, SAMPLE_NAMESPACE, ids, [AGENT, 'node-b']);
    const files = await nodeDir('freeze');
    const history = new StateHistory(admin, SAMPLE_NAMESPACE, AGENT);
    await history.start();
    const agent = startAgentProcess(
      agentArgs(files, env.reporterKubeconfigs[AGENT] as string),
      await freePort(),
    );
    const writer = new FifoWriter(files.fifo);
    try {
      await agent.ready();
      await writer.open();
      await writer.write(transitions(ids, 2, () => 'Backup'));
      await new Promise((r) => setTimeout(r, 300));
      env.controlPlane.signal('kube-apiserver', 'SIGSTOP');
      // Short of the operator's 10 s lease renew deadline: its webhook must stay up.
      try {
        await writer.write(transitions(ids, 3, (i) => (i % 2 ? 'Primary' : 'Fault')));
        await new Promise((r) => setTimeout(r, 5000));
      } finally {
        env.controlPlane.signal('kube-apiserver', 'SIGCONT');
      }
      await writer.write(transitions(ids, 1, (i) => (i % 3 ? 'Primary' : 'Backup')));
      await expectFinal(ids, (i) => (i % 3 ? 'Primary' : 'Backup'), history);
      expect(await agent.metric('harouter_agent_reports_total{result="retried"}')).toBeGreaterThan(0);
      expect(await agent.metric('harouter_agent_lines_total{kind="transition"}')).toBe(ids.length * 6);
      expect(await agent.metric('harouter_agent_pending_routers')).toBe(0);
    } finally {
      history.stop();
      await writer.close();
      agent.child.kill('SIGTERM');
    }
    expect(await agent.exited).toBe(0);
    expect(agent.stderr()).toContain('the spool is synced');
  });

  it('delivers the spool of an agent killed (SIGKILL) with undelivered lines, before new lines, after a restart', async () => {
    const ids = routerIds(20);
    await createRouters(admin, SAMPLE_NAMESPACE, ids, [AGENT]);
    const files = await nodeDir('kill');
    const proxy = await startProxy(new URL(env.server));
    // The reporter's kubeconfig, through the proxy: the agent's path to the API server can be cut.
    const viaProxy = join(base, 'kill', 'via-proxy.kubeconfig');
    const original = await readFile(env.reporterKubeconfigs[AGENT] as string, 'utf8');
    await writeFile(viaProxy, original.replace(env.server, `https://127.0.0.1:${proxy.port}`), {
      mode: 0o600,
    });
    const history = new StateHistory(admin, SAMPLE_NAMESPACE, AGENT);
    await history.start();
    const writer = new FifoWriter(files.fifo);
    let first: AgentProcess | undefined;
    let second: AgentProcess | undefined;
    try {
      first = startAgentProcess(agentArgs(files, viaProxy), await freePort());
      await first.ready();
      await writer.open();
      await writer.write(transitions(ids, 1, () => 'Backup'));
      await expectFinal(ids, () => 'Backup', history);
      proxy.cut();
      await writer.write(transitions(ids, 2, (i) => (i % 2 ? 'Primary' : 'Fault')));
      // Every router's newest line is in the spool (synced) and nothing of it was delivered.
      await until('the spool to hold every router', 30_000, async () => {
        const { live } = foldJournal(await readFile(join(files.stateDir, SPOOL_FILE), 'utf8'));
        return ids.every(
          (id, i) => live.get(`${SAMPLE_NAMESPACE}/${id}`)?.state === (i % 2 ? 'Primary' : 'Fault'),
        );
      });
      first.child.kill('SIGKILL');
      expect(await first.exited).toBe('SIGKILL');
      const before = await readStates(admin, SAMPLE_NAMESPACE, AGENT);
      expect(ids.every((id) => before.get(id)?.state === 'Backup')).toBe(true);
      proxy.restore();
      second = startAgentProcess(agentArgs(files, viaProxy), await freePort());
      // New lines for half of the routers right away: they must win over the spool's older values.
      await writer.write(
        ids
          .filter((_, i) => i < 10)
          .map((id) => line(id, 'Stopped'))
          .join(''),
      );
      await expectFinal(ids, (i) => (i < 10 ? 'Stopped' : i % 2 ? 'Primary' : 'Fault'), history);
      expect(second.stderr()).toContain('delivering the spool first');
    } finally {
      history.stop();
      await writer.close();
      first?.child.kill('SIGKILL');
      second?.child.kill('SIGTERM');
      await proxy.close();
    }
    expect(await second.exited).toBe(0);
  });

  it('reads a FIFO made by keepalived first, deleted and made again, and misses no line', async () => {
    const ids = routerIds(10);
    await createRouters(admin, SAMPLE_NAMESPACE, ids, [AGENT]);
    const files = await nodeDir('keepalived-first');
    // keepalived starts first: it makes the FIFO and writes before any reader is there.
    makeFifo(files.fifo);
    let writer = new FifoWriter(files.fifo);
    await writer.open();
    await writer.write(transitions(ids, 1, () => 'Backup'));
    const history = new StateHistory(admin, SAMPLE_NAMESPACE, AGENT);
    await history.start();
    const agent = startAgentProcess(
      agentArgs(files, env.reporterKubeconfigs[AGENT] as string),
      await freePort(),
    );
    try {
      await agent.ready();
      await expectFinal(ids, () => 'Backup', history);
      // keepalived restarts: deletes its FIFO, makes a new one and writes at once (before the agent re-checks).
      await writer.close();
      await rm(files.fifo);
      makeFifo(files.fifo);
      writer = new FifoWriter(files.fifo);
      await writer.open();
      await writer.write(transitions(ids, 2, () => 'Primary'));
      await expectFinal(ids, () => 'Primary', history);
      // And again with the path missing for a while: the agent makes the FIFO itself.
      await writer.close();
      await rm(files.fifo);
      await until('the agent to make the FIFO again', 10_000, () => existsSync(files.fifo));
      writer = new FifoWriter(files.fifo);
      await writer.open();
      await writer.write(transitions(ids, 1, () => 'Fault'));
      await expectFinal(ids, () => 'Fault', history);
      expect(await agent.metric('harouter_agent_lines_total{kind="transition"}')).toBe(ids.length * 4);
    } finally {
      history.stop();
      await writer.close();
      agent.child.kill('SIGTERM');
    }
    expect(await agent.exited).toBe(0);
  });

  it('counts and logs bad input as escaped fields, and keeps serving every other line through a 100k-line burst', async () => {
    const ids = routerIds(5);
    await createRouters(admin, SAMPLE_NAMESPACE, ids, [AGENT]);
    const files = await nodeDir('bad-input');
    const history = new StateHistory(admin, SAMPLE_NAMESPACE, AGENT);
    await history.start();
    const agent = startAgentProcess(
      agentArgs(files, env.reporterKubeconfigs[AGENT] as string, [`--instance=VI_1=${ids[0]}`]),
      await freePort(),
    );
    const writer = new FifoWriter(files.fifo);
    try {
      await agent.ready();
      await writer.open();
      const bad = [
        Buffer.from(`INSTANCE "VI_1" MASTER 100${'x'.repeat(5000)}\n`),
        Buffer.concat([
          Buffer.from('INSTANCE "VI_\xff'),
          Buffer.from([0xff, 0xfe]),
          Buffer.from('" MASTER 100\n'),
        ]),
        Buffer.from('INSTANCE "VI\u001b[2J" MASTER 100\n'),
        Buffer.from('INSTANCE "VI\u202e1" MASTER 100\n'),
        Buffer.from('INSTANCE "VI_1" UPSIDE_DOWN 100\n'),
        Buffer.from('ROUTER "VI_1" MASTER 100\n'),
      ];
      await writer.write(Buffer.concat([Buffer.from(line(ids[1] as string, 'Backup')), ...bad]));
      await writer.write('INSTANCE "not-mapped" MASTER 100\nINSTANCE "not-mapped" BACKUP 100\n');
      await writer.write('INSTANCE "VI_1" MASTER 100\nINSTANCE "VI_1" MASTER_RX_LOWER_PRI 100\n');
      // The burst: 100k malformed lines with a valid line for each router every 10k.
      const burst: string[] = [];
      for (let i = 0; i < 100_000; i++) {
        burst.push(
          i % 10_000 === 0
            ? line(ids[(i / 10_000) % ids.length] as string, 'Primary')
            : `garbage line ${i}\u0007\n`,
        );
      }
      await writer.write(burst.join(''));
      await writer.write(ids.map((id) => line(id, 'Fault')).join(''));
      await expectFinal(ids, () => 'Fault', history);
      await until('every line to be counted', 30_000, async () => {
        const malformed = await agent.metric('harouter_agent_lines_total{kind="malformed"}');
        return malformed === bad.length + 100_000 - 10;
      });
      expect(await agent.metric('harouter_agent_lines_total{kind="unmapped"}')).toBe(2);
      expect(await agent.metric('harouter_agent_lines_total{kind="ignored"}')).toBe(1);
      const logs = agent.stderr();
      expect(logs).not.toContain('\u001b');
      expect(logs).not.toContain('\u202e');
      expect(logs).toContain('\\\\u{1B}[2J');
      expect(logs).toContain('\\\\u{202E}');
      expect(logs).toContain('"problem":"not UTF-8"');
      expect(logs).toContain('"problem":"longer than 4096 bytes"');
      expect(logs.match(/no router is mapped/g)).toHaveLength(1);
      // Logged at a bounded rate, not once per bad line.
      expect(logs.split('\n').length).toBeLessThan(200);
    } finally {
      history.stop();
      await writer.close();
      agent.child.kill('SIGTERM');
    }
    expect(await agent.exited).toBe(0);
  });
});
