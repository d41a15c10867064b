/**
 * What the keepalived-driving e2e file and `npm run bench:switchover` share:
 * local mode with keepalived whose configuration the agents render (a real
 * control plane, the operator process, three nodes as network namespaces with
 * keepalived and an agent each), routers with `spec.vrrp` and their opted-in
 * Services, the EndpointSlice watch, and the data-plane observer, the truth of
 * who holds each virtual address. Acting is done the way a user acts: specs,
 * `harouterctl`, `kubectl`, keepalived and the network.
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { HARouter } from '../../src/api/index.ts';
import { type LocalEnvironment, startLocal } from '../../src/local/environment.ts';
import type { Nodes } from '../../src/local/nodes/index.ts';
import {
  SAMPLE_NAMESPACE,
  SAMPLE_NODES,
  SAMPLE_ROUTER_ID,
  SAMPLE_VIRTUAL_IP,
} from '../../src/local/sample.ts';
import { Cluster, waitFor } from '../integration/reconcile-harness.ts';
import { observeVips, type VipObserver } from '../support/vip-observer.ts';
import { SliceWatch } from './observe.ts';

const HAROUTERCTL = resolve(import.meta.dirname, '../../bin/harouterctl.js');

/** The nodes' InternalIPs, what the EndpointSlices route to. */
export const NODE_IP: Readonly<Record<string, string>> = Object.fromEntries(
  SAMPLE_NODES.map((n) => [n.name, n.ip]),
);
/** The sample router's virtual address, without prefix. */
export const SAMPLE_VIP = SAMPLE_VIRTUAL_IP.split('/')[0] as string;

/**
 * Lease timings for the operator: on a starved machine a renewal can outlast
 * client-go's 10 s deadline, and a leader that cannot renew exits by design
 * (tested in the integration tier); here that would only end the run.
 */
export const LEASE_ENV = {
  HAROUTER_LEADER_ELECTION_LEASE_DURATION: '120s',
  HAROUTER_LEADER_ELECTION_RENEW_DEADLINE: '90s',
  HAROUTER_LEADER_ELECTION_RETRY_PERIOD: '5s',
};

/** The virtual address of the `index`th router made here (203.0.113.1 ...): TEST-NET-3, not the nodes' net. */
export function routerVip(index: number): string {
  if (!Number.isInteger(index) || index < 1 || index > 254) throw new Error('1 to 254 routers');
  return `203.0.113.${index}`;
}

/** One router made by {@link VrrpStand.addRouters}. */
export interface StandRouter {
  id: string;
  service: string;
  /** Its virtual address, without prefix. */
  vip: string;
}

/** What `spec.vrrp` the routers get besides interface and address. */
export interface VrrpExtras {
  advertIntervalMs?: number;
  fenceHoldSeconds?: number;
  failbackDelaySeconds?: number;
}

/** The outcome of a program run to completion. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  startedAt: number;
  endedAt: number;
}

/** A running stand; see the module comment. */
export interface VrrpStand {
  readonly env: LocalEnvironment;
  readonly nodes: Nodes;
  readonly cluster: Cluster;
  readonly slices: SliceWatch;
  readonly vips: VipObserver;
  /** Every router made here, in order, and the sample router first. */
  readonly routers: StandRouter[];
  /**
   * Creates `count` routers over the three nodes (default priorities: 200,
   * 190, 180) with `spec.vrrp` and an endpoint, and waits until each has a
   * recorded VRID, exactly one holder of its address and a slice routing to
   * that holder's node. `preferredAgent` is set at creation when given.
   */
  addRouters(count: number, extras?: VrrpExtras, preferredAgent?: string): Promise<StandRouter[]>;
  /** The single node holding the router's address now, or undefined. */
  holder(router: StandRouter): string | undefined;
  /** Waits until every router's address has exactly one holder and its slice routes to that node. */
  settled(routers: readonly StandRouter[], timeoutMs?: number): Promise<void>;
  /** `harouterctl ARGS` with the admin kubeconfig, to completion. */
  harouterctl(args: readonly string[], timeoutMs?: number): Promise<RunResult>;
  /** `kubectl ARGS` with the admin kubeconfig, to completion. */
  kubectl(args: readonly string[]): Promise<RunResult>;
  getRouter(router: StandRouter): Promise<HARouter>;
  /** The content of a node's fence file for the router ('' when missing). */
  fence(node: string, router: StandRouter): Promise<string>;
  stop(): Promise<void>;
}

function run(binary: string, args: readonly string[], timeoutMs: number): Promise<RunResult> {
  const startedAt = Date.now();
  return new Promise((resolveRun) => {
    execFile(binary, [...args], { encoding: 'utf8', timeout: timeoutMs }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolveRun({ code, stdout, stderr, startedAt, endedAt: Date.now() });
    });
  });
}

/** Starts local mode with agent-rendered keepalived, the slice watch and the observer. */
export async function startVrrpStand(options: {
  dir: string;
  print?: (line: string) => void;
}): Promise<VrrpStand> {
  Object.assign(process.env, LEASE_ENV);
  let env: LocalEnvironment;
  try {
    env = await startLocal({
      dir: options.dir,
      logLevel: 'info',
      freePorts: true,
      keepalived: true,
      keepalivedConfig: 'agents',
      print: options.print ?? (() => {}),
    });
  } finally {
    for (const key of Object.keys(LEASE_ENV)) delete process.env[key];
  }
  const nodes = env.nodes as Nodes;
  const kc = new KubeConfig();
  kc.loadFromFile(env.adminKubeconfig);
  const cluster = new Cluster(kc, SAMPLE_NAMESPACE);
  const slices = new SliceWatch(kc, SAMPLE_NAMESPACE);
  let vips: VipObserver | undefined;
  try {
    await slices.start();
    vips = await observeVips({
      namespaces: Object.fromEntries(nodes.nodes.map((n) => [n.name, n.namespace])),
      isVip: (address) => address === SAMPLE_VIP || address.startsWith('203.0.113.'),
    });
  } catch (error) {
    slices.stop();
    await env.stop();
    throw error;
  }
  const observer = vips;
  const routers: StandRouter[] = [{ id: SAMPLE_ROUTER_ID, service: 'demo-router', vip: SAMPLE_VIP }];

  const holder = (router: StandRouter) => {
    const held = observer.holders(router.vip);
    return held.length === 1 ? held[0] : undefined;
  };

  const settled = async (list: readonly StandRouter[], timeoutMs = 60_000) => {
    let waiting: StandRouter[] = [...list];
    try {
      await waitFor(
        async () => {
          waiting = waiting.filter((r) => {
            const node = holder(r);
            return node === undefined || slices.current(r.service)?.join() !== NODE_IP[node];
          });
          return waiting.length === 0;
        },
        timeoutMs,
        100,
      );
    } catch {
      const detail = waiting
        .slice(0, 5)
        .map(
          (r) =>
            `${r.id} (${r.vip}): held by [${observer.holders(r.vip).join(',')}], slice ${JSON.stringify(slices.current(r.service))}`,
        )
        .join('; ');
      throw new Error(`${waiting.length} routers not settled in ${timeoutMs} ms: ${detail}`);
    }
  };

  return {
    env,
    nodes,
    cluster,
    slices,
    vips: observer,
    routers,
    async addRouters(count, extras = {}, preferredAgent) {
      const made: StandRouter[] = [];
      for (let i = 0; i < count; i++) {
        const index = routers.length; // the sample router is index 0
        made.push({ id: randomUUID(), service: `vrrp-${index}`, vip: routerVip(index) });
        routers.push(made.at(-1) as StandRouter);
      }
      await Promise.all(made.map((r) => cluster.createService(r.service, 80, true, r.id)));
      await Promise.all(
        made.map((r) =>
          cluster.createRouter(r.id, {
            agents: SAMPLE_NODES.map((n) => ({ name: n.name })),
            endpoint: { serviceName: r.service, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
            vrrp: { interface: 'eth0', virtualIPs: [`${r.vip}/32`], ...extras },
            ...(preferredAgent ? { preferredAgent } : {}),
          } as Parameters<Cluster['createRouter']>[1]),
        ),
      );
      await settled(made, 60_000 + 500 * count);
      return made;
    },
    holder,
    settled,
    harouterctl: (args, timeoutMs = 60_000) =>
      run(process.execPath, [HAROUTERCTL, ...args, `--kubeconfig=${env.adminKubeconfig}`], timeoutMs),
    kubectl: (args) => run(env.kubectlPath, [`--kubeconfig=${env.adminKubeconfig}`, ...args], 60_000),
    getRouter: (router) => cluster.getRouter(router.id),
    async fence(node, router) {
      try {
        return (await readFile(join(nodes.node(node).fenceDir, router.id), 'utf8')).trim();
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
        throw error;
      }
    },
    async stop() {
      await observer.stop();
      slices.stop();
      await env.stop();
    },
  };
}
