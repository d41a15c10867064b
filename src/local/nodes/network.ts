/**
 * The network of simulated nodes: one Linux network namespace per node, each
 * with an `eth0` veth whose peer is a port of a bridge that lives in a
 * namespace of its own. Nothing is created in the caller's namespace, so the
 * host's links and routes are never touched. Needs root (CAP_SYS_ADMIN and
 * CAP_NET_ADMIN) and `ip` from iproute2.
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** The interface keepalived uses inside each node's namespace. */
export const NODE_INTERFACE = 'eth0';
/** The bridge inside the bridge namespace. */
export const BRIDGE = 'br0';
/** Nodes per network: their addresses are 192.0.2.1 to 192.0.2.16. */
export const MAX_NODES = 16;

/** One node's place in the network. */
export interface NetworkNode {
  name: string;
  /** The node's network namespace (`ip netns exec <namespace> ...`). */
  namespace: string;
  /** The node's address on the bridge, without prefix length (192.0.2.N). */
  address: string;
  /** The node's port on the bridge, inside {@link Network.bridgeNamespace}. */
  bridgePort: string;
}

/**
 * A run id `<prefix>-<pid>-<random>`: unique per run, so parallel runs never
 * collide, and naming the pid that owns it, so that a later run can tell a
 * leftover (its owner is gone) from a run in progress.
 */
export function newRunId(prefix: string, pid = process.pid): string {
  if (!/^[a-z][a-z0-9-]{0,23}$/.test(prefix)) {
    throw new Error('the run prefix must be lower-case letters, digits and dashes, at most 24');
  }
  return `${prefix}-${pid}-${randomBytes(3).toString('hex')}`;
}

/** The owner pid and run id of a namespace named by {@link newRunId} with `prefix`, else undefined. Pure. */
export function parseRunNamespace(
  prefix: string,
  namespace: string,
): { run: string; pid: number } | undefined {
  if (!namespace.startsWith(`${prefix}-`)) return undefined;
  const m = /^(\d{1,10})-([0-9a-f]{6})-/.exec(namespace.slice(prefix.length + 1));
  if (!m) return undefined;
  return { run: `${prefix}-${m[1]}-${m[2]}`, pid: Number(m[1]) };
}

/** The namespaces, addresses and ports of a network, from its run id and node names. Pure. */
export function planNetwork(
  run: string,
  nodes: readonly string[],
): { bridgeNamespace: string; nodes: NetworkNode[] } {
  if (nodes.length === 0 || nodes.length > MAX_NODES)
    throw new Error(`a network has 1 to ${MAX_NODES} nodes`);
  if (new Set(nodes).size !== nodes.length) throw new Error('node names must be unique');
  for (const name of nodes) {
    if (!/^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/.test(name)) {
      throw new Error('a node name must be a DNS label of at most 32 characters');
    }
  }
  return {
    bridgeNamespace: `${run}-bridge`,
    nodes: nodes.map((name, i) => ({
      name,
      namespace: `${run}-${name}`,
      address: `192.0.2.${i + 1}`,
      bridgePort: `port${i}`,
    })),
  };
}

/** Runs `ip` with arguments; rejects with the command and its stderr. */
export function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', [...args], { encoding: 'utf8', timeout: 30_000 }, (error, stdout, stderr) => {
      if (error) {
        const detail = stderr.trim() || error.message;
        reject(new Error(`ip ${args.join(' ')}: ${detail}`));
      } else resolve(stdout);
    });
  });
}

function ipSync(args: readonly string[]): string {
  return execFileSync('ip', [...args], {
    encoding: 'utf8',
    timeout: 30_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** The named network namespaces (`ip netns list`), synchronously (for exit handlers). */
function listNamespacesSync(): string[] {
  return ipSync(['netns', 'list'])
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Kills every process in a namespace (SIGKILL) and deletes the namespace,
 * synchronously, ignoring a namespace that is already gone. Deleting a node's
 * namespace destroys its veth pair; deleting the bridge's destroys the bridge.
 */
export function removeNamespaceSync(namespace: string): void {
  let pids: number[] = [];
  try {
    pids = ipSync(['netns', 'pids', namespace])
      .split('\n')
      .filter((p) => /^\d+$/.test(p))
      .map(Number);
  } catch {
    return;
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  try {
    ipSync(['netns', 'delete', namespace]);
  } catch {
    // already gone
  }
}

/**
 * Removes every namespace of run `run` (named `<run>-...`) and the processes in
 * them, synchronously: also what a creation cut short left behind.
 */
export function removeRunSync(run: string): void {
  for (const namespace of listNamespacesSync()) {
    if (namespace.startsWith(`${run}-`)) removeNamespaceSync(namespace);
  }
}

/**
 * Starts a detached shell that removes run `run`'s namespaces and their
 * processes, and returns at once: for a signal handler, whose process may be
 * killed (a test runner ending its workers) before a synchronous clean-up ends.
 */
export function removeRunDetached(run: string): void {
  const script =
    'for ns in $(ip netns list | cut -d" " -f1); do case "$ns" in "$1"-*) ip netns pids "$ns" | xargs -r kill -9; ip netns delete "$ns";; esac; done';
  try {
    spawn('sh', ['-c', script, 'sh', run], { detached: true, stdio: 'ignore' }).unref();
  } catch {
    // the next run's removeLeftovers is the fallback
  }
}

/**
 * Removes the namespaces (and the processes in them) of earlier runs with this
 * prefix whose owning process no longer runs: what a run killed with SIGKILL
 * left behind. Runs in progress are left alone. Returns the runs removed.
 */
export function removeLeftovers(prefix: string): string[] {
  const runs = new Set<string>();
  for (const namespace of listNamespacesSync()) {
    const owner = parseRunNamespace(prefix, namespace);
    if (owner && owner.pid !== process.pid && !processAlive(owner.pid)) runs.add(owner.run);
  }
  for (const run of runs) removeRunSync(run);
  return [...runs];
}

/** A network of node namespaces on one bridge; see the module comment. */
export interface Network {
  readonly run: string;
  readonly bridgeNamespace: string;
  readonly nodes: readonly NetworkNode[];
  node(name: string): NetworkNode;
  /**
   * Takes the node's port off the bridge. Both veth ends stay up with carrier,
   * so keepalived sees no fault: it stops hearing the others and becomes
   * MASTER, a real split brain.
   */
  detach(name: string): Promise<void>;
  /** Puts the node's port back on the bridge (forwarding at once: the bridge runs no STP). */
  attach(name: string): Promise<void>;
  /** Whether the node's port is on the bridge. */
  attached(name: string): Promise<boolean>;
  /** Kills the processes in the run's namespaces and deletes them. Synchronous and idempotent. */
  removeSync(): void;
}

/**
 * Creates the namespaces, bridge and veth pairs of `nodes` for run `run`
 * ({@link newRunId}), addresses 192.0.2.1... in order. If anything fails,
 * what was created is removed and the error names the `ip` command and its
 * message (typically: not root, or no iproute2).
 */
export async function createNetwork(run: string, nodes: readonly string[]): Promise<Network> {
  const plan = planNetwork(run, nodes);
  const removeSync = () => removeRunSync(run);
  const byName = new Map(plan.nodes.map((n) => [n.name, n]));
  const node = (name: string): NetworkNode => {
    const found = byName.get(name);
    if (!found) throw new Error(`no node ${name} in this network`);
    return found;
  };
  const br = plan.bridgeNamespace;
  try {
    await ip(['netns', 'add', br]);
    await ip(['-n', br, 'link', 'add', BRIDGE, 'type', 'bridge']);
    await ip(['-n', br, 'link', 'set', BRIDGE, 'up']);
    for (const n of plan.nodes) {
      await ip(['netns', 'add', n.namespace]);
      await ip([
        'link',
        'add',
        NODE_INTERFACE,
        'netns',
        n.namespace,
        'type',
        'veth',
        'peer',
        'name',
        n.bridgePort,
        'netns',
        br,
      ]);
      await ip(['-n', br, 'link', 'set', n.bridgePort, 'master', BRIDGE, 'up']);
      await ip(['-n', n.namespace, 'link', 'set', 'lo', 'up']);
      await ip(['-n', n.namespace, 'addr', 'add', `${n.address}/24`, 'dev', NODE_INTERFACE]);
      await ip(['-n', n.namespace, 'link', 'set', NODE_INTERFACE, 'up']);
    }
  } catch (error) {
    removeSync();
    throw new Error(
      `cannot create the nodes' network namespaces (root and iproute2 are needed): ${(error as Error).message}`,
    );
  }
  return {
    run,
    bridgeNamespace: br,
    nodes: plan.nodes,
    node,
    async detach(name) {
      await ip(['-n', br, 'link', 'set', node(name).bridgePort, 'nomaster']);
    },
    async attach(name) {
      await ip(['-n', br, 'link', 'set', node(name).bridgePort, 'master', BRIDGE]);
    },
    async attached(name) {
      const out = await ip(['-n', br, '-o', 'link', 'show', node(name).bridgePort]);
      return out.includes(` master ${BRIDGE} `);
    },
    removeSync,
  };
}
