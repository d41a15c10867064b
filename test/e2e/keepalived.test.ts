/**
 * Real VRRP drives the operator. Local mode with `keepalived` (in-process: a
 * real control plane, CRDs, RBAC, webhook, the real `harouter-operator`
 * process) runs three nodes as network namespaces, each with keepalived and
 * its `harouterctl agent` reporting with the node's pod-bound token. The
 * scenarios act on keepalived and the network only, and check what a user
 * sees: the HARouter's status and conditions, its EndpointSlice, its Events.
 * Each failover is timed from the EndpointSlice watch; the latencies (a
 * report's `observedAt`, stamped when the agent read keepalived's FIFO line, to
 * the slice change) are printed at the end for docs/performance.md.
 */
import { randomUUID } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HARouter } from '../../src/api/index.ts';
import { type LocalEnvironment, startLocal } from '../../src/local/environment.ts';
import { SAMPLE_INSTANCE } from '../../src/local/keepalived.ts';
import { SAMPLE_NAMESPACE, SAMPLE_NODES, SAMPLE_ROUTER_ID, SAMPLE_SERVICE } from '../../src/local/sample.ts';
import { Cluster, conditionOf, waitFor } from '../integration/reconcile-harness.ts';
import type { Nodes, SimulatedNode, VrrpInstance } from '../support/nodes.ts';
import { observedMs, SliceWatch, summarize } from './observe.ts';

const REPO = resolve(import.meta.dirname, '../..');
const HAROUTERCTL = join(REPO, 'bin', 'harouterctl.js');
const IP = Object.fromEntries(SAMPLE_NODES.map((n) => [n.name, n.ip])) as Record<string, string>;
const PRIORITY = Object.fromEntries(SAMPLE_NODES.map((n) => [n.name, n.priority])) as Record<string, number>;
const SCALE = 50;

let dir: string;
let env: LocalEnvironment;
let nodes: Nodes;
let cluster: Cluster;
let slices: SliceWatch;
const log: string[] = [];
/** Report `observedAt` to slice change, per scenario (ms). */
const latencies: { scenario: string; ms: number }[] = [];
/** The 50 routers: id, keepalived instance, Service. */
const routers: { id: string; instance: string; service: string; vrid: number }[] = [];

const node = (name: string): SimulatedNode => nodes.node(name);
const print = (line: string) => process.stdout.write(`${line}\n`);

async function router(id = SAMPLE_ROUTER_ID): Promise<HARouter> {
  return await cluster.getRouter(id);
}

/** The agents' states in the router's status, by name. */
function states(r: HARouter): Record<string, string> {
  return Object.fromEntries((r.status?.agents ?? []).map((a) => [a.name, a.state]));
}

/** Waits until the router's status satisfies `check`; throws with the last status. */
async function until(
  check: (r: HARouter) => boolean,
  id = SAMPLE_ROUTER_ID,
  timeoutMs = 30_000,
): Promise<HARouter> {
  let last: HARouter | undefined;
  try {
    await waitFor(
      async () => {
        last = await router(id);
        return check(last);
      },
      timeoutMs,
      100,
    );
  } catch {
    throw new Error(`router ${id} never reached the expected status; last: ${JSON.stringify(last?.status)}`);
  }
  return last as HARouter;
}

/** Records the latency from `agent`'s report's observedAt to the slice change at `sliceAt`. */
async function recordLatency(scenario: string, id: string, agent: string, sliceAt: number): Promise<number> {
  const report = await cluster.getReport(id, agent);
  const ms = sliceAt - observedMs(report.spec.observedAt);
  latencies.push({ scenario, ms });
  return ms;
}

async function eventCount(id: string, reason: string): Promise<number> {
  return (await cluster.eventReasons(id)).filter((r) => r === reason).length;
}

/**
 * The contract's counting: every change of activeAgent (to and from none)
 * counts one transition and is announced by one Event. Returns the count.
 */
async function expectCountedTransitions(id: string): Promise<number> {
  let transitions = -1;
  let announced = -2;
  await waitFor(async () => {
    transitions = (await router(id)).status?.transitions ?? 0;
    announced = (await eventCount(id, 'ActiveAgentChanged')) + (await eventCount(id, 'PrimaryLost'));
    return transitions === announced;
  }, 20_000).catch(() => {
    throw new Error(`router ${id}: ${transitions} transitions but ${announced} Events announcing them`);
  });
  return transitions;
}

/** A sample of an agent's metric (summed over series whose labels include `labels`). */
async function agentMetric(
  n: SimulatedNode,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const body = await (await fetch(`http://${n.agent?.options.metricsAddress}/metrics`)).text();
  let sum = 0;
  for (const line of body.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
  }
  return sum;
}

function instancesFor(name: string, extra: readonly VrrpInstance[] = []): VrrpInstance[] {
  return [
    { name: SAMPLE_INSTANCE, virtualRouterId: 1, priority: PRIORITY[name] as number },
    ...routers.map((r) => ({
      name: r.instance,
      virtualRouterId: r.vrid,
      priority: PRIORITY[name] as number,
    })),
    ...extra,
  ];
}

/**
 * Lease timings for the operator here: on a starved machine (CI shares none, but developers' machines
 * may run several suites) a renewal can take longer than client-go's 10 s deadline, and a leader that
 * cannot renew exits by design (tested in the integration tier). Here that would only end the run.
 */
const LEASE_ENV = {
  HAROUTER_LEADER_ELECTION_LEASE_DURATION: '120s',
  HAROUTER_LEADER_ELECTION_RENEW_DEADLINE: '90s',
  HAROUTER_LEADER_ELECTION_RETRY_PERIOD: '5s',
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'harouter-e2e-'));
  Object.assign(process.env, LEASE_ENV);
  env = await startLocal({
    dir,
    logLevel: 'info',
    freePorts: true,
    keepalived: true,
    // The scenarios here write keepalived's configuration by hand (preemption, priorities by reload).
    keepalivedConfig: 'hand',
    print: (line) => log.push(line),
  });
  for (const key of Object.keys(LEASE_ENV)) delete process.env[key];
  nodes = env.nodes as Nodes;
  const kc = new KubeConfig();
  kc.loadFromFile(env.adminKubeconfig);
  cluster = new Cluster(kc, SAMPLE_NAMESPACE);
  slices = new SliceWatch(kc, SAMPLE_NAMESPACE);
  await slices.start();
}, 300_000);

afterAll(async () => {
  slices?.stop();
  await env?.stop();
  if (latencies.length > 0) {
    const all = summarize(latencies.map((l) => l.ms));
    print(
      `e2e latency, FIFO line read (observedAt) to EndpointSlice changed: n=${all.n} p50=${all.p50} ms max=${all.max} ms`,
    );
    const byScenario = new Map<string, number[]>();
    for (const l of latencies) byScenario.set(l.scenario, [...(byScenario.get(l.scenario) ?? []), l.ms]);
    for (const [scenario, values] of byScenario) {
      const s = summarize(values);
      print(`  ${scenario}: n=${s.n} p50=${s.p50} ms max=${s.max} ms`);
    }
  }
  if (process.env.HAROUTER_KEEP_TEST_DIR) print(`e2e: kept ${dir}`);
  else await rm(dir, { recursive: true, force: true });
}, 120_000);

describe('real keepalived drives the operator', () => {
  it('election: the highest priority (node-a) is active; the slice points at its node', async () => {
    const r = await until((x) => x.status?.activeAgent === 'node-a' && x.status.liveAgents === 3);
    expect(states(r)).toEqual({ 'node-a': 'Primary', 'node-b': 'Backup', 'node-c': 'Backup' });
    expect(conditionOf(r, 'Ready')).toMatchObject({ status: 'True' });
    expect(conditionOf(r, 'SplitBrain')).toMatchObject({ status: 'False' });
    expect(conditionOf(r, 'Degraded')).toMatchObject({ status: 'False' });
    // Usually 1 (none -> node-a); 2 when node-b's keepalived started first and node-a preempted it.
    expect(await expectCountedTransitions(SAMPLE_ROUTER_ID)).toBeGreaterThanOrEqual(1);
    await slices.routed(SAMPLE_SERVICE, IP['node-a'] as string);
    // The reports are the agents', each written with its own node's token.
    for (const name of ['node-a', 'node-b', 'node-c']) {
      const report = await cluster.getReport(SAMPLE_ROUTER_ID, name);
      expect(report.spec.agent).toBe(name);
      expect(report.status?.conditions?.find((c) => c.type === 'Accepted')?.status).toBe('True');
    }
  });

  it('keepalived stopped on the active node: traffic moves to node-b', async () => {
    const before = await expectCountedTransitions(SAMPLE_ROUTER_ID);
    const changed = await eventCount(SAMPLE_ROUTER_ID, 'ActiveAgentChanged');
    const lostBefore = await eventCount(SAMPLE_ROUTER_ID, 'PrimaryLost');
    const stoppedAt = Date.now();
    await node('node-a').keepalived.stop();
    const sliceAt = await slices.routed(SAMPLE_SERVICE, IP['node-b'] as string);
    const latency = await recordLatency('keepalived stopped', SAMPLE_ROUTER_ID, 'node-b', sliceAt);
    print(
      `keepalived stopped on node-a -> slice at node-b in ${sliceAt - stoppedAt} ms (FIFO to slice ${latency} ms)`,
    );
    const r = await until((x) => x.status?.activeAgent === 'node-b' && states(x)['node-a'] === 'Stopped');
    expect(states(r)).toEqual({ 'node-a': 'Stopped', 'node-b': 'Primary', 'node-c': 'Backup' });
    expect(r.status?.liveAgents).toBe(2);
    expect(conditionOf(r, 'Ready')).toMatchObject({ status: 'True' });
    expect(conditionOf(r, 'Degraded')).toMatchObject({ status: 'False' });
    // node-a's STOP usually lands first (none active for a moment: PrimaryLost), then node-b's MASTER;
    // either way every change of activeAgent is counted and announced.
    const after = await expectCountedTransitions(SAMPLE_ROUTER_ID);
    const lost = (await eventCount(SAMPLE_ROUTER_ID, 'PrimaryLost')) - lostBefore;
    expect(await eventCount(SAMPLE_ROUTER_ID, 'ActiveAgentChanged')).toBe(changed + 1);
    expect(after).toBe(before + 1 + lost);
    print(
      `  (traffic withdrawn in between: ${lost === 1 ? 'yes, node-a reported STOP before node-b MASTER' : 'no'})`,
    );
  });

  it('the old primary returns with its higher priority and preempts: failback to node-a', async () => {
    const before = (await router()).status?.transitions ?? 0;
    const lostBefore = await eventCount(SAMPLE_ROUTER_ID, 'PrimaryLost');
    const startedAt = Date.now();
    await node('node-a').keepalived.start();
    const sliceAt = await slices.routed(SAMPLE_SERVICE, IP['node-a'] as string);
    const latency = await recordLatency('failback', SAMPLE_ROUTER_ID, 'node-a', sliceAt);
    print(
      `node-a's keepalived restarted -> slice back at node-a in ${sliceAt - startedAt} ms (FIFO to slice ${latency} ms)`,
    );
    const r = await until((x) => x.status?.activeAgent === 'node-a' && states(x)['node-b'] === 'Backup');
    expect(states(r)).toEqual({ 'node-a': 'Primary', 'node-b': 'Backup', 'node-c': 'Backup' });
    // node-b's BACKUP can land before node-a's MASTER (none active for a moment: PrimaryLost).
    const lost = (await eventCount(SAMPLE_ROUTER_ID, 'PrimaryLost')) - lostBefore;
    expect(lost).toBeLessThanOrEqual(1);
    expect(await expectCountedTransitions(SAMPLE_ROUTER_ID)).toBe(before + 1 + lost);
    expect(conditionOf(r, 'SplitBrain')).toMatchObject({ status: 'False' });
  });

  it('the active node cut off the bridge: two MASTERs, SplitBrain=True, traffic stays; healed: SplitBrain=False', async () => {
    const splitEvents = await eventCount(SAMPLE_ROUTER_ID, 'SplitBrain');
    const before = (await router()).status?.transitions;
    await node('node-a').detach();
    const split = await until((x) => conditionOf(x, 'SplitBrain')?.status === 'True');
    expect(states(split)).toMatchObject({ 'node-a': 'Primary', 'node-b': 'Primary' });
    expect(split.status?.activeAgent).toBe('node-a');
    expect(split.status?.transitions).toBe(before);
    expect(slices.current(SAMPLE_SERVICE)).toEqual([IP['node-a']]);
    await waitFor(async () => (await eventCount(SAMPLE_ROUTER_ID, 'SplitBrain')) === splitEvents + 1, 10_000);

    await node('node-a').attach();
    const healed = await until((x) => conditionOf(x, 'SplitBrain')?.status === 'False');
    expect(states(healed)).toEqual({ 'node-a': 'Primary', 'node-b': 'Backup', 'node-c': 'Backup' });
    expect(healed.status?.activeAgent).toBe('node-a');
    expect(healed.status?.transitions).toBe(before);
    expect(slices.changes.filter((c) => c.service === SAMPLE_SERVICE).at(-1)?.addresses).toEqual([
      IP['node-a'],
    ]);
  });

  it(`${SCALE} routers (${SCALE} vrrp_instances) on the same nodes: node-a's keepalived stops, all fail over`, async () => {
    for (let i = 0; i < SCALE; i++) {
      routers.push({ id: randomUUID(), instance: `VI_R${i + 1}`, service: `r${i + 1}`, vrid: i + 2 });
    }
    // The Services first (selector-less, opted in), then the routers listing the nodes, then keepalived.
    await Promise.all(
      routers.map((r) =>
        cluster.core.createNamespacedService({
          namespace: SAMPLE_NAMESPACE,
          body: {
            metadata: { name: r.service, labels: { 'harouter.dev/router': r.id } },
            spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
          },
        }),
      ),
    );
    await Promise.all(
      routers.map((r) =>
        cluster.createRouter(r.id, {
          agents: SAMPLE_NODES.map((n) => ({ name: n.name, priority: n.priority })),
          endpoint: { serviceName: r.service, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
        }),
      ),
    );
    for (const n of nodes.nodes) {
      const agent = n.agent;
      if (!agent) throw new Error(`${n.name} has no agent`);
      await agent.stop();
      agent.configure({
        instances: {
          ...agent.options.instances,
          ...Object.fromEntries(routers.map((r) => [r.instance, `${SAMPLE_NAMESPACE}/${r.id}`])),
        },
      });
      await agent.start();
      await agent.ready();
      await n.setInstances(instancesFor(n.name));
    }
    await Promise.all(routers.map((r) => slices.routed(r.service, IP['node-a'] as string, 120_000)));

    const stoppedAt = Date.now();
    await node('node-a').keepalived.stop();
    const moved = await Promise.all(
      routers.map((r) => slices.routed(r.service, IP['node-b'] as string, 120_000)),
    );
    const last = Math.max(...moved);
    print(
      `${SCALE} routers: node-a's keepalived stopped -> last of ${SCALE} slices at node-b after ${last - stoppedAt} ms`,
    );
    for (const [i, r] of routers.entries()) {
      await recordLatency(`${SCALE}-router failover`, r.id, 'node-b', moved[i] as number);
    }
    for (const r of routers.slice(0, 5)) {
      const got = await until((x) => x.status?.activeAgent === 'node-b', r.id);
      expect(states(got)).toEqual({ 'node-a': 'Stopped', 'node-b': 'Primary', 'node-c': 'Backup' });
      expect(await eventCount(r.id, 'ActiveAgentChanged')).toBe(2);
      await expectCountedTransitions(r.id);
    }

    await node('node-a').keepalived.start();
    await Promise.all(
      [SAMPLE_SERVICE, ...routers.map((r) => r.service)].map((s) =>
        slices.routed(s, IP['node-a'] as string, 120_000),
      ),
    );
  });

  it("the new primary's agent SIGKILLed during the failover and restarted: nothing lost", async () => {
    const b = node('node-b');
    const linesBefore = await agentMetric(b, 'harouter_agent_lines_total', { kind: 'transition' });
    const stoppedAt = Date.now();
    await node('node-a').keepalived.stop();
    // Kill node-b's agent once it has read the first MASTER line, while the rest is in flight.
    await waitFor(
      async () => (await agentMetric(b, 'harouter_agent_lines_total', { kind: 'transition' })) > linesBefore,
      15_000,
      10,
    );
    await b.agent?.kill();
    const killedAt = Date.now();
    const delivered = routers.filter((r) => slices.current(r.service)?.join() === IP['node-b']).length;
    print(
      `agent of node-b killed ${killedAt - stoppedAt} ms after the stop, with ${delivered} of ${SCALE} slices moved`,
    );
    await new Promise((r) => setTimeout(r, 1000));
    await b.agent?.start();
    const moved = await Promise.all(
      [SAMPLE_SERVICE, ...routers.map((r) => r.service)].map((s) =>
        slices.routed(s, IP['node-b'] as string, 120_000),
      ),
    );
    print(
      `agent restarted: all ${SCALE + 1} slices at node-b ${Math.max(...moved) - stoppedAt} ms after the stop`,
    );
    for (const r of [SAMPLE_ROUTER_ID, ...routers.map((x) => x.id)]) {
      expect((await cluster.getReport(r, 'node-b')).spec.state).toBe('Primary');
      expect((await cluster.getReport(r, 'node-a')).spec.state).toBe('Stopped');
    }
    await node('node-a').keepalived.start();
    await Promise.all(
      [SAMPLE_SERVICE, ...routers.map((r) => r.service)].map((s) =>
        slices.routed(s, IP['node-a'] as string, 120_000),
      ),
    );
  });

  it('keepalived started before its agent, then restarted while the agent runs: the agent follows the new FIFO', async () => {
    const c = node('node-c');
    const agent = c.agent;
    if (!agent) throw new Error('node-c has no agent');
    await agent.stop();
    await c.keepalived.stop();
    await rm(c.fifo, { force: true });

    // keepalived first: it makes the FIFO itself and writes its BACKUP lines into it.
    const firstStart = Date.now();
    await c.keepalived.start();
    await waitFor(async () => (await stat(c.fifo).catch(() => undefined))?.isFIFO() === true, 10_000);
    await new Promise((r) => setTimeout(r, 1000));
    await agent.start();
    const backup = async (after: number) =>
      waitFor(async () => {
        const report = await cluster.getReport(SAMPLE_ROUTER_ID, 'node-c');
        return report.spec.state === 'Backup' && observedMs(report.spec.observedAt) >= after;
      }, 20_000);
    await backup(firstStart);

    // Restarted while the agent runs: keepalived deletes its FIFO on exit and makes a new one.
    const inode = (await stat(c.fifo)).ino;
    await c.keepalived.stop();
    await waitFor(
      async () => (await cluster.getReport(SAMPLE_ROUTER_ID, 'node-c')).spec.state === 'Stopped',
      20_000,
    );
    const restartedAt = Date.now();
    await c.keepalived.start();
    await waitFor(async () => (await stat(c.fifo).catch(() => undefined))?.ino !== undefined, 10_000);
    expect((await stat(c.fifo)).ino).not.toBe(inode);
    await backup(restartedAt);

    // The next transition on the new FIFO: node-c outranks node-a and takes the router.
    await c.setPriority(SAMPLE_INSTANCE, 250);
    const sliceAt = await slices.routed(SAMPLE_SERVICE, IP['node-c'] as string);
    await recordLatency('after a keepalived restart', SAMPLE_ROUTER_ID, 'node-c', sliceAt);
    const r = await until((x) => x.status?.activeAgent === 'node-c');
    expect(states(r)).toMatchObject({ 'node-a': 'Backup', 'node-c': 'Primary' });
    await c.setPriority(SAMPLE_INSTANCE, PRIORITY['node-c'] as number);
    await slices.routed(SAMPLE_SERVICE, IP['node-a'] as string);
  });

  it("the same election through keepalived's classic notify script calling harouterctl report", async () => {
    const id = randomUUID();
    const service = 'notified';
    const vrid = SCALE + 10;
    await cluster.core.createNamespacedService({
      namespace: SAMPLE_NAMESPACE,
      body: {
        metadata: { name: service, labels: { 'harouter.dev/router': id } },
        spec: { clusterIP: 'None', ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
      },
    });
    await cluster.createRouter(id, {
      agents: SAMPLE_NODES.map((n) => ({ name: n.name })),
      endpoint: { serviceName: service, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    });
    // node-b wins this one. keepalived runs the script inside the node's network namespace;
    // the API server listens in this process's, which the script enters (on a real node they share one).
    const priorities: Record<string, number> = { 'node-a': 100, 'node-b': 200, 'node-c': 50 };
    for (const n of nodes.nodes) {
      const script = join(n.dir, 'notify.sh');
      await writeFile(
        script,
        [
          '#!/bin/sh',
          `# keepalived appends: INSTANCE <name> <STATE> <priority>; $1 is the router id.`,
          'router=$1; shift',
          `exec nsenter --net=/proc/${process.pid}/ns/net -- ${process.execPath} ${HAROUTERCTL} report --kubeconfig ${env.reporterKubeconfigs[n.name]} --agent ${n.name} --namespace ${SAMPLE_NAMESPACE} --router "$router" "$@" >> ${join(n.dir, 'notify.log')} 2>&1`,
          '',
        ].join('\n'),
      );
      await chmod(script, 0o700);
      await n.setInstances(
        instancesFor(n.name, [
          {
            name: 'VI_NOTIFY',
            virtualRouterId: vrid,
            priority: priorities[n.name] as number,
            notify: `${script} ${id}`,
          },
        ]),
      );
    }
    const sliceAt = await slices.routed(service, IP['node-b'] as string, 30_000);
    const latency = await recordLatency('notify script', id, 'node-b', sliceAt);
    print(`notify script: election -> slice at node-b; harouterctl's observedAt to slice ${latency} ms`);
    const r = await until((x) => x.status?.activeAgent === 'node-b' && x.status.liveAgents === 3, id);
    expect(states(r)).toEqual({ 'node-a': 'Backup', 'node-b': 'Primary', 'node-c': 'Backup' });
    expect(conditionOf(r, 'Ready')).toMatchObject({ status: 'True' });
    expect(await eventCount(id, 'ActiveAgentChanged')).toBe(1);
    expect(await expectCountedTransitions(id)).toBe(1);
    const report = await cluster.getReport(id, 'node-b');
    const managers = (report.metadata as { managedFields?: { manager?: string }[] }).managedFields ?? [];
    expect(managers.map((f) => f.manager)).toContain('harouterctl');
    // The agent saw the same lines on the FIFO and, with no mapping for VI_NOTIFY, left them alone.
    expect(
      await agentMetric(node('node-b'), 'harouter_agent_lines_total', { kind: 'unmapped' }),
    ).toBeGreaterThan(0);
  });
});
