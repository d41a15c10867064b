import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * The addresses of the real node, all in 198.18.0.0/15 (the benchmarking range, RFC 2544): no
 * clash with a private network of the machine or of other tests' namespaces, and nothing in it
 * is routed off this machine. The node's address sits on an interface of its own: one end of a
 * veth pair (this machine's kernel has no `dummy` link type), the other end up and unused.
 */
export const NODE_NETWORK = {
  /** The interface that carries `address`, and its veth peer. */
  interface: 'harouter-node',
  peer: 'harouter-nodep',
  /** The node's InternalIP; kube-apiserver binds and advertises it (pods reach it through the bridge). */
  address: '198.18.0.10',
  /** The CNI bridge (its gateway address is the pod range's first). */
  bridge: 'harouter-cni0',
  podCidr: '198.18.128.0/24',
  serviceCidr: '198.18.64.0/24',
} as const;

/** Names of the iptables chains kubelet creates and `kube-proxy --cleanup` leaves behind. */
export const KUBELET_CHAINS: ReadonlyArray<{ table: string; chain: string }> = [
  { table: 'filter', chain: 'KUBE-FIREWALL' },
  { table: 'mangle', chain: 'KUBE-KUBELET-CANARY' },
  { table: 'nat', chain: 'KUBE-KUBELET-CANARY' },
  { table: 'filter', chain: 'KUBE-KUBELET-CANARY' },
  { table: 'mangle', chain: 'KUBE-IPTABLES-HINT' },
];

/**
 * The CNI network list: a bridge that is the pods' gateway, host-local addresses with
 * their own data directory, and portmap. No masquerading: pods talk only to this
 * machine (the API server on the node's address, the host's probes). Pure.
 */
export function cniConfigList(ipamDataDir: string): object {
  return {
    cniVersion: '1.0.0',
    name: 'harouter',
    plugins: [
      {
        type: 'bridge',
        bridge: NODE_NETWORK.bridge,
        isGateway: true,
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet: NODE_NETWORK.podCidr }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: ipamDataDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

async function ip(args: string[]): Promise<void> {
  try {
    await run('ip', args);
  } catch (error) {
    throw new Error(`ip ${args.join(' ')} failed: ${(error as { stderr?: string }).stderr ?? error}`);
  }
}

async function linkExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['link', 'show', name]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates the node's interface with its address; a leftover interface (or bridge)
 * from a killed run is replaced.
 */
export async function setUpNodeNetwork(): Promise<void> {
  await tearDownNodeNetwork();
  await ip(['link', 'add', NODE_NETWORK.interface, 'type', 'veth', 'peer', 'name', NODE_NETWORK.peer]);
  await ip(['address', 'add', `${NODE_NETWORK.address}/32`, 'dev', NODE_NETWORK.interface]);
  await ip(['link', 'set', NODE_NETWORK.peer, 'up']);
  await ip(['link', 'set', NODE_NETWORK.interface, 'up']);
  // Service addresses never follow the default route off the machine (kube-proxy rewrites the ones in use).
  await ip([
    'route',
    'add',
    NODE_NETWORK.serviceCidr,
    'dev',
    NODE_NETWORK.interface,
    'src',
    NODE_NETWORK.address,
  ]);
}

/** Deletes the CNI bridge and the node's veth pair (deleting one end deletes both). */
export async function tearDownNodeNetwork(): Promise<void> {
  for (const link of [NODE_NETWORK.bridge, NODE_NETWORK.interface])
    if (await linkExists(link)) await ip(['link', 'delete', link]);
}

async function iptables(args: string[]): Promise<boolean> {
  try {
    await run('iptables', ['-w', '5', ...args]);
    return true;
  } catch {
    return false;
  }
}

/** Removes the chains kubelet made (each rule jumping to one first), tolerant of ones already gone. */
export async function removeKubeletChains(): Promise<void> {
  for (const { table, chain } of KUBELET_CHAINS) {
    for (const from of ['INPUT', 'OUTPUT', 'FORWARD', 'PREROUTING', 'POSTROUTING'])
      while (await iptables(['-t', table, '-D', from, '-j', chain])) {}
    await iptables(['-t', table, '-F', chain]);
    await iptables(['-t', table, '-X', chain]);
  }
}
