/**
 * `harouterctl agent --keepalived-config-dir` against the real API server: the agent
 * process, with a real pod-bound reporter token and the contract's reporter RBAC
 * (reads of HARouters included), renders the files of the HARouters the admin
 * creates, follows the fences the admin writes into status, deletes the files of
 * removed routers, and reloads a stand-in keepalived (SIGHUP to the pid in its pid
 * file) at most once per 2 s.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROUP, HAROUTER, VERSION } from '../../src/api/index.ts';
import { freePort } from '../../src/local/controlplane/index.ts';
import { REPORTER_RULES } from '../../src/local/sample.ts';
import { applyObject, installCrds, kubeRequest } from '../support/admission-cases.ts';
import { type AgentProcess, startAgentProcess, until } from '../support/agent-process.ts';
import {
  adminKubeConfig,
  createTestNamespace,
  kubeConfigForToken,
  mintServiceAccountToken,
} from '../support/cluster.ts';

const AGENT = 'node-a';
const R = [
  'a0000000-0000-4000-8000-000000000001',
  'a0000000-0000-4000-8000-000000000002',
  'a0000000-0000-4000-8000-000000000003',
  'a0000000-0000-4000-8000-000000000004',
] as const;

let namespace: string;
let dir: string;
let configDir: string;
let fenceDir: string;
let agent: AgentProcess | undefined;
let keepalived: import('node:child_process').ChildProcess | undefined;
const admin = () => adminKubeConfig();
const path = (id: string) => `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${HAROUTER.plural}/${id}`;

/** `kill -0`-able stand-in named keepalived: writes its pid file and one line per SIGHUP, with the time. */
function standInKeepalived(): string {
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const script = join(bin, 'keepalived');
  writeFileSync(
    script,
    `#!/bin/sh
echo $$ > ${dir}/keepalived.pid
trap 'date +%s%N >> ${dir}/hups' HUP
while :; do sleep 0.02; done
`,
  );
  chmodSync(script, 0o755);
  return script;
}

const hups = () =>
  existsSync(join(dir, 'hups'))
    ? readFileSync(join(dir, 'hups'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((ns) => Number(BigInt(ns) / 1_000_000n))
    : [];

async function createRouter(id: string, agents: string[], vrrp?: Record<string, unknown>) {
  const res = await kubeRequest(
    admin(),
    'POST',
    `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${HAROUTER.plural}`,
    {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: HAROUTER.kind,
      metadata: { name: id },
      spec: { agents: agents.map((name) => ({ name })), ...(vrrp ? { vrrp } : {}) },
    },
  );
  if (res.status >= 300) throw new Error(`create ${id}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** The operator's part, played by the admin: the recorded VRID and this agent's fence. */
async function setStatus(id: string, vrid: number, fenced?: boolean) {
  const res = await kubeRequest(
    admin(),
    'PATCH',
    `${path(id)}/status`,
    {
      status: {
        vrrp: { vrid, segment: 'default' },
        agents: [{ name: AGENT, state: 'Backup', ...(fenced !== undefined ? { fenced } : {}) }],
      },
    },
    'application/merge-patch+json',
  );
  if (res.status >= 300) throw new Error(`status ${id}: ${res.status} ${JSON.stringify(res.body)}`);
}

/** Waits until no reload came for 2.5 s (longer than the throttle's interval). */
async function quiet() {
  let count = hups().length;
  let since = Date.now();
  await until('the reloads to stop', 30_000, () => {
    if (hups().length !== count) {
      count = hups().length;
      since = Date.now();
    }
    return Date.now() - since > 2500;
  });
}

const file = (id: string) => join(configDir, `${id}.conf`);
const read = (p: string) => (existsSync(p) ? readFileSync(p, 'utf8') : undefined);

beforeAll(async () => {
  namespace = await createTestNamespace('agent-keepalived');
  dir = await mkdtemp(join(tmpdir(), 'agent-keepalived-it-'));
  configDir = join(dir, 'keepalived.d');
  fenceDir = join(dir, 'fence');
  const kc = admin();
  await installCrds(kc);
  const role = `harouter-reporter-${namespace}`;
  await applyObject(kc, `/apis/rbac.authorization.k8s.io/v1/clusterroles/${role}`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: role },
    rules: REPORTER_RULES,
  });
  await applyObject(kc, `/apis/rbac.authorization.k8s.io/v1/namespaces/${namespace}/rolebindings/reporter`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'reporter', namespace },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
    subjects: [{ kind: 'ServiceAccount', name: 'reporter', namespace }],
  });
  const token = await mintServiceAccountToken({
    namespace,
    serviceAccount: 'reporter',
    pod: { name: `reporter-${AGENT}`, nodeName: AGENT },
  });
  const kubeconfig = join(dir, 'reporter.kubeconfig');
  await writeFile(kubeconfig, kubeConfigForToken(token, namespace).exportConfig(), { mode: 0o600 });
  mkdirSync(join(dir, 'run'), { mode: 0o700 });

  const { spawn } = await import('node:child_process');
  keepalived = spawn(standInKeepalived(), [], { stdio: 'ignore' });
  await until('the stand-in keepalived to write its pid file', 10_000, () =>
    existsSync(join(dir, 'keepalived.pid')),
  );

  agent = startAgentProcess(
    [
      `--fifo=${join(dir, 'run', 'notify.fifo')}`,
      `--state-dir=${join(dir, 'spool')}`,
      `--kubeconfig=${kubeconfig}`,
      `--agent=${AGENT}`,
      `--keepalived-config-dir=${configDir}`,
      `--fence-dir=${fenceDir}`,
      `--keepalived-pid-file=${join(dir, 'keepalived.pid')}`,
    ],
    await freePort(),
  );
  await agent.ready();
}, 120_000);

afterAll(async () => {
  agent?.child.kill('SIGTERM');
  if (agent) await agent.exited;
  keepalived?.kill('SIGKILL');
  await kubeRequest(admin(), 'DELETE', `/api/v1/namespaces/${namespace}`).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe('the agent renders keepalived’s configuration from HARouters', () => {
  it('writes the global file at start and a router file once the router has a VRID in status', async () => {
    expect(read(join(configDir, 'harouter-global.conf'))).toContain(
      `vrrp_notify_fifo ${join(dir, 'run', 'notify.fifo')}`,
    );
    const vrrp = {
      interface: 'eth0',
      virtualIPs: ['192.0.2.50/24', '198.51.100.50/32'],
      advertIntervalMs: 500,
    };
    await createRouter(R[0], [AGENT, 'node-b'], vrrp);
    await createRouter(R[1], ['node-b', AGENT], { ...vrrp, virtualIPs: ['192.0.2.51/24'] });
    await createRouter(R[2], ['node-b'], { ...vrrp, virtualIPs: ['192.0.2.52/24'] });
    await createRouter(R[3], [AGENT], undefined);
    // Without a recorded VRID nothing is rendered.
    await new Promise((r) => setTimeout(r, 1500));
    expect(readdirSync(configDir).filter((n) => n !== 'harouter-global.conf')).toEqual([]);

    await setStatus(R[0], 11);
    await setStatus(R[1], 12);
    await setStatus(R[2], 13);
    await until(
      'both routers of node-a to be rendered',
      30_000,
      () => existsSync(file(R[0])) && existsSync(file(R[1])),
    );
    const first = read(file(R[0])) as string;
    expect(first).toMatch(new RegExp(`^vrrp_instance ${R[0]} \\{$`, 'm'));
    for (const line of [
      'state BACKUP',
      'nopreempt',
      'interface eth0',
      'virtual_router_id 11',
      'priority 200',
      'advert_int 0.5',
      'version 3',
      `file "${fenceDir}/${R[0]}"`,
      `harouter_fence_${R[0]} weight 0`,
    ]) {
      expect(first).toMatch(new RegExp(`^ +${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
    }
    expect(first).toMatch(/virtual_ipaddress \{\n +192\.0\.2\.50\/24\n +\}/);
    expect(first).toMatch(/virtual_ipaddress_excluded \{\n +198\.51\.100\.50\/32\n +\}/);
    expect(read(file(R[1]))).toMatch(/^ +priority 190$/m);
    expect(statSync(file(R[0])).mode & 0o777).toBe(0o644);
    expect(existsSync(file(R[2]))).toBe(false);
    expect(existsSync(file(R[3]))).toBe(false);
    expect(read(join(fenceDir, R[0]))).toBe('0');
    await until(
      'the rendered gauge',
      10_000,
      async () => (await agent?.metric('harouter_agent_rendered_routers')) === 2,
    );
    await until('a reload', 10_000, () => hups().length >= 1);
  });

  it('follows this agent’s fence in status with the fence file, without a reload', async () => {
    // A reload the throttle still holds back from the routers above comes first.
    await quiet();
    const before = hups().length;
    const inode = statSync(file(R[0])).ino;
    await setStatus(R[0], 11, true);
    await until('the fence file to say 1', 15_000, () => read(join(fenceDir, R[0])) === '1');
    await setStatus(R[0], 11, false);
    await until('the fence file to say 0', 15_000, () => read(join(fenceDir, R[0])) === '0');
    await new Promise((r) => setTimeout(r, 2500));
    expect(hups().length).toBe(before);
    expect(statSync(file(R[0])).ino).toBe(inode);
  });

  it('deletes a removed router’s files and reloads; bursts of changes share reloads 2 s apart', async () => {
    const before = hups().length;
    const res = await kubeRequest(admin(), 'DELETE', path(R[1]));
    expect(res.status).toBeLessThan(300);
    await until(
      'the removed router’s file and fence to go',
      15_000,
      () => !existsSync(file(R[1])) && !existsSync(join(fenceDir, R[1])),
    );
    expect(existsSync(file(R[0]))).toBe(true);
    await until('a reload for the removal', 10_000, () => hups().length > before);

    const ids = Array.from(
      { length: 12 },
      (_, i) => `b0000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    );
    const start = hups().length;
    for (const [i, id] of ids.entries()) {
      await createRouter(id, [AGENT], { interface: 'eth0', virtualIPs: [`192.0.2.${100 + i}/24`] });
      await setStatus(id, 100 + i);
    }
    await until('every new router to be rendered', 30_000, () => ids.every((id) => existsSync(file(id))));
    await new Promise((r) => setTimeout(r, 2500));
    const times = hups();
    const burst = times.slice(start);
    expect(burst.length).toBeGreaterThanOrEqual(1);
    // 24 API writes, each a change: far fewer reloads, never two within 2 s (1.9: the clocks differ).
    expect(burst.length).toBeLessThan(ids.length);
    process.stdout.write(`agent-keepalived: ${ids.length * 2} API writes, ${burst.length} reload(s)\n`);
    for (let i = 1; i < times.length; i++)
      expect((times[i] as number) - (times[i - 1] as number)).toBeGreaterThan(1900);
    expect(await agent?.metric('harouter_agent_keepalived_reloads_total')).toBe(times.length);
    expect(await agent?.metric('harouter_agent_rendered_routers')).toBe(1 + ids.length);
  });
});
