/**
 * Simulated nodes with real keepalived, for the end-to-end tests and local mode
 * (`npm run local -- --keepalived`): N network namespaces on one bridge, one
 * keepalived per node writing its transitions to the node's notify FIFO, and
 * optionally the node's `harouterctl agent` reading that FIFO and reporting to
 * the API server. Everything made here is removed by {@link Nodes.stop}, by a
 * synchronous clean-up on process exit and on SIGINT/SIGTERM, and, if the run
 * was killed outright, by the next run with the same prefix.
 *
 *   const nodes = await startNodes({ names: ['node-a', 'node-b'], dir });
 *   const a = nodes.node('node-a');
 *   await a.setInstances([{ name: 'VI_1', virtualRouterId: 1, priority: 150 }]);
 *   a.addAgent({ kubeconfig, namespace: 'demo', instances: { VI_1: routerId }, metricsAddress });
 *   await a.agent?.start(); await a.keepalived.start();
 *
 * With `addAgent({ ..., renderKeepalived: true })` the agent renders the
 * keepalived configuration of the HARouters with `spec.vrrp` into the node's
 * `keepalived.d/` (fences in `fence/`) and reloads keepalived itself; the main
 * file the harness writes then only `include`s those files (plus any instances
 * set by hand, for routers without `spec.vrrp`).
 *   await a.detach(); ... await a.attach();   // split brain and heal
 *   await nodes.stop();
 */
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { includeLines } from '../../keepalived/render.ts';
import { type Agent, type AgentOptions, agentOn } from './agent.ts';
import { type Keepalived, keepalivedOn } from './keepalived.ts';
import type { VrrpInstance } from './keepalived-config.ts';
import {
  createNetwork,
  type Network,
  NODE_INTERFACE,
  newRunId,
  removeLeftovers,
  removeRunDetached,
  removeRunSync,
} from './network.ts';

export type { Agent, AgentOptions } from './agent.ts';
export type { Keepalived } from './keepalived.ts';
export { renderKeepalivedConfig, type VrrpInstance, virtualAddress } from './keepalived-config.ts';
export { removeLeftovers } from './network.ts';

/** The prefix of namespaces made by {@link startNodes} unless told otherwise. */
export const DEFAULT_PREFIX = 'harouter-nodes';

/** Options of {@link startNodes}. */
export interface NodesOptions {
  /** The nodes' names, in order (addresses 192.0.2.1, .2, ...). */
  names: readonly string[];
  /** Where each node's files go (`DIR/<node>/`: configuration, FIFO, pid files, logs, spool). */
  dir: string;
  /** Prefix of the run's namespaces; leftovers of dead runs with it are removed first. */
  prefix?: string;
  /** keepalived's `advert_int` in seconds (default 1). */
  advertInt?: number;
  /**
   * Remove everything on SIGINT/SIGTERM before the signal takes its course
   * (default true). Local mode handles its signals itself and says false.
   */
  handleSignals?: boolean;
}

/** One simulated node. */
export interface SimulatedNode {
  readonly name: string;
  /** Its network namespace (`ip netns exec <namespace> ...`). */
  readonly namespace: string;
  /** Its address on the bridge (192.0.2.N). */
  readonly address: string;
  /** Its files: `keepalived.conf`, `keepalived.log`, `notify.fifo`, `agent.log`, `agent-state/`. */
  readonly dir: string;
  /** Where an agent that renders keepalived's configuration writes it (`--keepalived-config-dir`). */
  readonly configDir: string;
  /** Where that agent writes the fence files (`--fence-dir`). */
  readonly fenceDir: string;
  /** The FIFO named in keepalived's `vrrp_notify_fifo` (and the agent's `--fifo`). */
  readonly fifo: string;
  readonly keepalived: Keepalived;
  /** The node's agent, once {@link SimulatedNode.addAgent} made one. */
  readonly agent: Agent | undefined;
  /** Replaces the node's VRRP instances; a running keepalived reloads (SIGHUP). */
  setInstances(instances: readonly VrrpInstance[]): Promise<void>;
  /** Changes one instance's priority by reload (SIGHUP): how a failback is forced. */
  setPriority(instance: string, priority: number): Promise<void>;
  /**
   * Makes the node's agent (not started) with this node's FIFO and spool
   * directory; with `renderKeepalived`, also its keepalived directories and
   * pid file, and keepalived's main file includes what the agent renders
   * (taken at keepalived's next start or reload).
   */
  addAgent(options: Omit<AgentOptions, 'node' | 'fifo' | 'stateDir'> & RenderOption): Agent;
  /** Cuts the node off the bridge, carrier kept: it hears no one and no one hears it. */
  detach(): Promise<void>;
  /** Puts the node back on the bridge. */
  attach(): Promise<void>;
  attached(): Promise<boolean>;
}

/** Whether a node's agent renders keepalived's configuration; see {@link SimulatedNode.addAgent}. */
export interface RenderOption {
  renderKeepalived?: boolean;
}

/** A running set of simulated nodes; see the module comment. */
export interface Nodes {
  /** The run id, the prefix of every namespace this run made. */
  readonly run: string;
  /** The namespace of the bridge (`ip -n <bridgeNamespace> link`). */
  readonly bridgeNamespace: string;
  readonly nodes: readonly SimulatedNode[];
  node(name: string): SimulatedNode;
  /** `host:port` of each node's agent metrics endpoint, for a Prometheus scrape configuration. */
  agentMetricsTargets(): string[];
  /** Stops agents (SIGTERM: spools synced) and keepalived, then removes the namespaces. Idempotent. */
  stop(): Promise<void>;
}

/** Each running set's clean-up, given whether the process is about to be ended by a signal. */
const live = new Set<(signalled: boolean) => void>();
let hooked = false;

function removeAllSync(): void {
  for (const remove of [...live]) remove(false);
}

function onSignal(signal: NodeJS.Signals): void {
  for (const remove of [...live]) remove(true);
  process.removeListener(signal, onSignal);
  // With no other listener, the signal's default (ending the process) applies again.
  if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
}

function hookProcess(signals: boolean): void {
  if (!hooked) {
    hooked = true;
    process.on('exit', removeAllSync);
  }
  if (signals) {
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      if (!process.listeners(signal).includes(onSignal)) process.on(signal, onSignal);
    }
  }
}

/** The programs the nodes need, each with the Debian package that has it. */
const TOOLS = [
  { command: 'ip', args: ['-V'], pkg: 'iproute2' },
  { command: 'keepalived', args: ['--version'], pkg: 'keepalived' },
  { command: 'setpriv', args: ['--version'], pkg: 'util-linux' },
] as const;

/** Throws, naming the package to install, when a program the nodes need is missing. */
export function checkNodeTools(): void {
  const missing = TOOLS.filter(({ command, args }) => {
    try {
      execFileSync(command, [...args], { stdio: 'ignore', timeout: 10_000 });
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'ENOENT';
    }
  });
  if (missing.length > 0) {
    throw new Error(
      `the simulated nodes need ${missing.map((t) => t.command).join(', ')}: apt-get install ${missing.map((t) => t.pkg).join(' ')}`,
    );
  }
}

/**
 * Creates the network and one (stopped) keepalived per node, with no instances
 * yet. Fails with the reason when namespaces cannot be made (not root, no
 * iproute2, keepalived); it never degrades to something else.
 */
export async function startNodes(options: NodesOptions): Promise<Nodes> {
  const prefix = options.prefix ?? DEFAULT_PREFIX;
  checkNodeTools();
  removeLeftovers(prefix);
  const run = newRunId(prefix);
  const agents = new Map<string, Agent>();
  let stopped = false;
  // Registered before anything exists, so that a signal during creation removes what was made.
  const removeSync = (signalled = false) => {
    for (const agent of agents.values()) {
      const pid = agent.pid();
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    // On a signal the process may be killed before a synchronous clean-up ends: hand it off.
    if (signalled) removeRunDetached(run);
    else removeRunSync(run);
    live.delete(removeSync);
  };
  live.add(removeSync);
  hookProcess(options.handleSignals ?? true);
  let network: Network;
  try {
    network = await createNetwork(run, options.names);
  } catch (error) {
    removeSync();
    throw error;
  }

  const nodes: SimulatedNode[] = [];
  try {
    for (const place of network.nodes) {
      const dir = resolve(options.dir, place.name);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const fifo = join(dir, 'notify.fifo');
      const configDir = join(dir, 'keepalived.d');
      const fenceDir = join(dir, 'fence');
      await mkdir(configDir, { recursive: true, mode: 0o755 });
      await mkdir(fenceDir, { recursive: true, mode: 0o755 });
      const keepalived = keepalivedOn(place.namespace, dir, {
        routerId: place.name,
        interface: NODE_INTERFACE,
        fifo,
        ...(options.advertInt !== undefined ? { advertInt: options.advertInt } : {}),
        instances: [],
      });
      nodes.push({
        name: place.name,
        namespace: place.namespace,
        address: place.address,
        dir,
        configDir,
        fenceDir,
        fifo,
        keepalived,
        get agent() {
          return agents.get(place.name);
        },
        setInstances: (instances) => keepalived.reload({ ...keepalived.config, instances }),
        async setPriority(instance, priority) {
          const instances = keepalived.config.instances;
          if (!instances.some((i) => i.name === instance))
            throw new Error(`${place.name} has no instance ${instance}`);
          await keepalived.reload({
            ...keepalived.config,
            instances: instances.map((i) => (i.name === instance ? { ...i, priority } : i)),
          });
        },
        addAgent({ renderKeepalived, ...agentOptions }) {
          if (agents.get(place.name)?.running()) throw new Error(`the agent of ${place.name} runs`);
          const agent = agentOn(
            {
              ...agentOptions,
              node: place.name,
              fifo,
              stateDir: join(dir, 'agent-state'),
              ...(renderKeepalived
                ? { keepalived: { configDir, fenceDir, pidFile: keepalived.pidPath } }
                : {}),
            },
            join(dir, 'agent.log'),
          );
          if (renderKeepalived) {
            // The agent's global_defs names the FIFO: the main file only includes its files.
            const { fifo: _fifo, ...config } = keepalived.config;
            keepalived.configure({ ...config, includes: includeLines(configDir) });
          }
          agents.set(place.name, agent);
          return agent;
        },
        detach: () => network.detach(place.name),
        attach: () => network.attach(place.name),
        attached: () => network.attached(place.name),
      });
    }
  } catch (error) {
    removeSync();
    throw error;
  }
  const byName = new Map(nodes.map((n) => [n.name, n]));
  return {
    run,
    bridgeNamespace: network.bridgeNamespace,
    nodes,
    node(name) {
      const found = byName.get(name);
      if (!found) throw new Error(`no node ${name}`);
      return found;
    },
    agentMetricsTargets: () => nodes.flatMap((n) => (n.agent ? [n.agent.options.metricsAddress] : [])),
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(nodes.map((n) => n.agent?.stop()));
      await Promise.all(nodes.map((n) => n.keepalived.stop()));
      removeSync();
    },
  };
}
