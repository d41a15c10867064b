/**
 * keepalived configured by the node agents alone (`--keepalived-config-dir`), on real
 * keepalived in network namespaces: local mode supplies the control plane, the operator,
 * the reporter RBAC (reads of HARouters included) and each node's pod-bound token; the
 * nodes harness runs keepalived with a main file that only includes the agent's files.
 * The truth is the data plane: which namespace holds each virtual IP (`ip -n NS addr`),
 * never the HARouter's status.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, HAROUTER, VERSION } from '../../src/api/index.ts';
import { includeLines } from '../../src/keepalived/render.ts';
import { freePort } from '../../src/local/controlplane/index.ts';
import { type LocalEnvironment, startLocal } from '../../src/local/environment.ts';
import { SAMPLE_NAMESPACE, SAMPLE_NODES } from '../../src/local/sample.ts';
import { kubeRequest } from '../support/admission-cases.ts';
import { startAgentProcess, until as untilTrue } from '../support/agent-process.ts';
import { type Nodes, type SimulatedNode, startNodes } from '../support/nodes.ts';

const run = promisify(execFile);
const NAMES = SAMPLE_NODES.map((n) => n.name);
const SCALE = 50;

let dir: string;
let env: LocalEnvironment;
let nodes: Nodes;
let admin: KubeConfig;
let operatorPid: number | undefined;
const print = (line: string) => process.stdout.write(`${line}\n`);
/** The routers made here: id and virtual IP, in order. */
const routers: { id: string; vip: string }[] = [];

/** The agent's files of a node. */
const files = (node: SimulatedNode) => ({
  configDir: join(node.dir, 'keepalived.d'),
  fenceDir: join(node.dir, 'fence'),
  pidFile: join(node.dir, 'keepalived.pid'),
});

/** Which nodes hold each address on eth0 right now (the data plane). */
async function holders(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const lists = await Promise.all(
    nodes.nodes.map(async (n) => {
      const { stdout } = await run('ip', ['-n', n.namespace, '-o', '-4', 'addr', 'show', 'dev', 'eth0']);
      return { name: n.name, addresses: [...stdout.matchAll(/ inet (\S+)\//g)].map((m) => m[1] as string) };
    }),
  );
  for (const { name, addresses } of lists) {
    for (const address of addresses) out.set(address, [...(out.get(address) ?? []), name]);
  }
  return out;
}

/** The single holder of each router's VIP, or throws naming the routers with none or several. */
function singleHolders(now: Map<string, string[]>, list = routers): Map<string, string> {
  const bad = list.filter((r) => (now.get(r.vip) ?? []).length !== 1);
  if (bad.length > 0)
    throw new Error(
      `not one holder: ${bad.map((r) => `${r.vip}=${(now.get(r.vip) ?? []).join('+') || 'none'}`).join(', ')}`,
    );
  return new Map(list.map((r) => [r.id, (now.get(r.vip) as string[])[0] as string]));
}

async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let problem = '';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      problem = (error as Error).message;
    }
    if (Date.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${problem ? `: ${problem}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Writes a fence file as the agent does: a temporary file renamed over it (keepalived follows it by inotify). */
async function setFence(path: string, value: '0' | '1'): Promise<void> {
  await writeFile(`${path}.tmp`, value);
  await rename(`${path}.tmp`, path);
}

/** A counter or gauge of a node's agent. */
async function agentMetric(node: SimulatedNode, series: string): Promise<number> {
  const text = await (await fetch(`http://${node.agent?.options.metricsAddress}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no ${series} on ${node.name}'s agent`);
  return Number(line.slice(series.length + 1));
}

/** Creates a router on all three nodes (the agents' order, hence priorities, rotated by `i`) with VRID `i`. */
async function createRouter(i: number): Promise<{ id: string; vip: string }> {
  const id = randomUUID();
  const vip = `192.0.2.${100 + i}`;
  const agents = [0, 1, 2].map((k) => ({ name: NAMES[(i + k) % 3] as string }));
  const base = `/apis/${GROUP}/${VERSION}/namespaces/${SAMPLE_NAMESPACE}/${HAROUTER.plural}`;
  const created = await kubeRequest(admin, 'POST', base, {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: HAROUTER.kind,
    metadata: { name: id },
    spec: { agents, vrrp: { vrid: i, interface: 'eth0', virtualIPs: [`${vip}/24`] } },
  });
  if (created.status >= 300) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
  // The VRID is recorded in status by the operator; this test plays that part when it has not yet.
  const recorded = await kubeRequest(admin, 'GET', `${base}/${id}`);
  if ((recorded.body.status as { vrrp?: { vrid?: number } } | undefined)?.vrrp?.vrid !== i) {
    const patched = await kubeRequest(
      admin,
      'PATCH',
      `${base}/${id}/status`,
      { status: { vrrp: { vrid: i, segment: 'default' } } },
      'application/merge-patch+json',
    );
    if (patched.status >= 300) throw new Error(`status: ${patched.status} ${JSON.stringify(patched.body)}`);
  }
  return { id, vip };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'harouter-e2e-render-'));
  env = await startLocal({
    dir: join(dir, 'local'),
    logLevel: 'warn',
    freePorts: true,
    print: () => undefined,
  });
  admin = new KubeConfig();
  admin.loadFromFile(env.adminKubeconfig);
  // The operator is paused for this file: the test records each router's VRID in status itself, and the
  // operator's status writes would remove a field it does not keep yet. Reports then wait (the webhook
  // is paused too), which changes nothing here: the data plane is the truth.
  const listening = await run('ss', ['-Hltnp', `sport = :${env.ports.probes}`]);
  operatorPid = Number(/pid=(\d+)/.exec(listening.stdout)?.[1]);
  if (!Number.isInteger(operatorPid) || operatorPid <= 0)
    throw new Error(`no operator on :${env.ports.probes}`);
  process.kill(operatorPid, 'SIGSTOP');
  nodes = await startNodes({ names: NAMES, dir: join(dir, 'nodes'), prefix: 'harouter-e2e-render' });
  for (const node of nodes.nodes) {
    const f = files(node);
    // keepalived's own file carries nothing but the lines that include the agent's files.
    const { fifo: _fromTheAgent, ...own } = node.keepalived.config;
    await node.keepalived.reload({ ...own, includes: includeLines(f.configDir) });
    const agent = node.addAgent({
      kubeconfig: env.reporterKubeconfigs[node.name] as string,
      namespace: SAMPLE_NAMESPACE,
      instances: {},
      metricsAddress: `127.0.0.1:${await freePort()}`,
      keepalived: f,
    });
    await agent.start();
    await agent.ready(60_000);
  }
}, 600_000);

afterAll(async () => {
  if (operatorPid) process.kill(operatorPid, 'SIGCONT');
  await nodes?.stop();
  await env?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('keepalived configured by the agents alone', () => {
  it(`brings up ${SCALE} routers rendered by the agents, one VIP holder each`, async () => {
    for (let i = 1; i <= SCALE; i++) routers.push(await createRouter(i));
    for (const node of nodes.nodes) {
      await until(`${node.name}'s agent to render ${SCALE} routers`, 60_000, async () =>
        (await agentMetric(node, 'harouter_agent_rendered_routers')) === SCALE ? true : undefined,
      );
      // The rendered files, read by keepalived itself in the node's namespace (its config test).
      const check = await run('ip', [
        'netns',
        'exec',
        node.namespace,
        'keepalived',
        '-t',
        '-f',
        node.keepalived.configPath,
      ]).catch((error: { code: number; stderr: string }) => error);
      expect('code' in check ? `${check.code}: ${check.stderr}` : 'ok', node.name).toBe('ok');
      const global = await readFile(join(files(node).configDir, 'harouter-global.conf'), 'utf8');
      expect(global).toContain(`vrrp_notify_fifo ${node.fifo}`);
    }
    const started = Date.now();
    await Promise.all(nodes.nodes.map((n) => n.keepalived.start()));
    // Instances that start together as BACKUP elect within a few adverts; on a loaded machine two may
    // briefly both be MASTER until one hears the other. Settled: one holder each, unchanged for 5 s.
    let settled = '';
    let since = Date.now();
    const masters = await until(
      `one holder of each of the ${SCALE} VIPs, unchanged for 5 s`,
      90_000,
      async () => {
        let now: Map<string, string>;
        try {
          now = singleHolders(await holders());
        } catch (error) {
          settled = '';
          throw error;
        }
        const key = JSON.stringify([...now]);
        if (key !== settled) {
          settled = key;
          since = Date.now();
        }
        return Date.now() - since >= 5000 ? now : undefined;
      },
    );
    print(
      `render e2e: ${SCALE} routers, one VIP holder each, settled ${since - started} ms after keepalived started`,
    );
    expect(new Set(masters.values()).size).toBeGreaterThan(1);
  });

  it('adding a router reloads keepalived and moves no other router’s master', async () => {
    const before = singleHolders(await holders());
    const reloads = await Promise.all(
      nodes.nodes.map((n) => agentMetric(n, 'harouter_agent_keepalived_reloads_total')),
    );
    const added = await createRouter(SCALE + 1);
    const moves: string[] = [];
    let upAt: number | undefined;
    const end = Date.now() + 60_000;
    // Every 50 ms until the new router has one holder and 2 s more: no other VIP moves meanwhile.
    while (Date.now() < end && (upAt === undefined || Date.now() - upAt < 2000)) {
      const now = await holders();
      for (const r of routers) {
        const held = now.get(r.vip) ?? [];
        if (held.length !== 1 || held[0] !== before.get(r.id))
          moves.push(`${r.vip}: ${held.join('+') || 'none'}`);
      }
      if (upAt === undefined && (now.get(added.vip) ?? []).length === 1) upAt = Date.now();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(moves).toEqual([]);
    expect((await holders()).get(added.vip)).toHaveLength(1);
    const after = await Promise.all(
      nodes.nodes.map((n) => agentMetric(n, 'harouter_agent_keepalived_reloads_total')),
    );
    for (const [i, count] of after.entries()) expect(count, NAMES[i]).toBeGreaterThan(reloads[i] as number);
    routers.push(added);
  });

  it('a fence file set to 1 makes that node’s instance give up its VIP; another node takes it', async () => {
    const [target] = routers;
    if (!target) throw new Error('no router');
    const holder = singleHolders(await holders()).get(target.id) as string;
    const node = nodes.node(holder);
    const fence = join(files(node).fenceDir, target.id);
    expect(await readFile(fence, 'utf8')).toBe('0');
    const started = Date.now();
    await setFence(fence, '1');
    const next = await until('another node to hold the fenced router’s VIP', 15_000, async () => {
      const held = (await holders()).get(target.vip) ?? [];
      return held.length === 1 && held[0] !== holder ? held[0] : undefined;
    });
    print(`render e2e: fenced ${holder}; ${next} holds the VIP ${Date.now() - started} ms later`);
    // Lifted: the fenced node comes back as a backup (nopreempt), nothing moves.
    await setFence(fence, '0');
    await new Promise((r) => setTimeout(r, 4000));
    expect((await holders()).get(target.vip)).toEqual([next]);
  });

  it('--run-keepalived: the agent runs keepalived itself, restarts it when it dies, stops it on SIGTERM', async () => {
    const node = nodes.node('node-c');
    await node.agent?.stop();
    await node.keepalived.stop();
    // keepalived by name from PATH, in node-c's namespace: `ip netns exec` execs it, so the pid is keepalived's.
    const bin = join(dir, 'run-keepalived-bin');
    await mkdir(bin);
    const real = (await run('sh', ['-c', 'command -v keepalived'])).stdout.trim();
    await writeFile(
      join(bin, 'keepalived'),
      `#!/bin/sh\nexec ip netns exec ${node.namespace} ${real} "$@"\n`,
    );
    await chmod(join(bin, 'keepalived'), 0o755);
    const configDir = join(node.dir, 'run-keepalived.d');
    const pidFile = join(node.dir, 'run-keepalived.pid');
    const agent = startAgentProcess(
      [
        `--fifo=${node.fifo}`,
        `--state-dir=${join(node.dir, 'agent-state')}`,
        `--kubeconfig=${env.reporterKubeconfigs[node.name]}`,
        `--agent=${node.name}`,
        `--namespace=${SAMPLE_NAMESPACE}`,
        `--keepalived-config-dir=${configDir}`,
        `--fence-dir=${files(node).fenceDir}`,
        `--keepalived-pid-file=${pidFile}`,
        '--run-keepalived',
      ],
      await freePort(),
      { PATH: `${bin}:${process.env.PATH}` },
    );
    try {
      await agent.ready();
      expect(await readFile(join(configDir, 'keepalived.conf'), 'utf8')).toBe(
        [
          '# harouter: keepalived run by harouterctl agent; do not edit.',
          ...includeLines(configDir),
          '',
        ].join('\n'),
      );
      const pid = async () => Number((await readFile(pidFile, 'utf8').catch(() => '0')).trim());
      const comm = async (p: number) => (await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')).trim();
      await untilTrue(
        'keepalived to run in node-c',
        30_000,
        async () => (await comm(await pid())) === 'keepalived',
      );
      // With the two other agents of a router fenced, node-c's keepalived (run by its agent) takes the VIP.
      const target = routers.find((r) => r.id !== routers[0]?.id) as { id: string; vip: string };
      const fence = (name: string, value: '0' | '1') =>
        setFence(join(files(nodes.node(name)).fenceDir, target.id), value);
      await untilTrue(
        'node-c to be a backup of every router',
        30_000,
        async () => (await agent.metric('harouter_agent_rendered_routers')) === routers.length,
      );
      await new Promise((r) => setTimeout(r, 4000));
      await fence('node-a', '1');
      await fence('node-b', '1');
      await until('node-c to hold the router whose other agents are fenced', 15_000, async () => {
        const held = (await holders()).get(target.vip) ?? [];
        return held.length === 1 && held[0] === 'node-c' ? true : undefined;
      });
      await fence('node-a', '0');
      await fence('node-b', '0');
      const first = await pid();
      process.kill(first, 'SIGKILL');
      await untilTrue('the agent to restart keepalived', 30_000, async () => {
        const now = await pid();
        return now !== first && (await comm(now)) === 'keepalived';
      });
      expect(agent.stderr()).toContain('keepalived exited; restarting');
      const second = await pid();
      agent.child.kill('SIGTERM');
      expect(await agent.exited).toBe(0);
      expect(await comm(second)).toBe('');
      const { stdout } = await run('ip', ['netns', 'pids', node.namespace]);
      expect(stdout.trim()).toBe('');
    } finally {
      agent.child.kill('SIGKILL');
    }
  });
});
