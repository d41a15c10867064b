/**
 * Local mode with real keepalived (`npm run local -- --keepalived`): the three
 * sample nodes as network namespaces, each running keepalived with the sample
 * router's VRRP instance and the node's agent, which reports with the node's
 * pod-bound reporter kubeconfig. Needs root, keepalived and iproute2.
 */
import { join } from 'node:path';
import { type Nodes, startNodes } from './nodes/index.ts';
import { preferredPort } from './operator.ts';
import {
  SAMPLE_FENCE_HOLD_SECONDS,
  SAMPLE_NAMESPACE,
  SAMPLE_NODES,
  SAMPLE_ROUTER_ID,
  SAMPLE_VIRTUAL_IP,
} from './sample.ts';

/** The agents' preferred metrics ports, node-a, node-b, node-c (free ones when taken). */
export const AGENT_PORTS = [8090, 8091, 8092] as const;
/** The sample router's keepalived instance (what `examples/` and the printed harouterctl command name). */
export const SAMPLE_INSTANCE = 'VI_1';
/** The `job` label of the agents' series when local mode's Prometheus scrapes them (`--prometheus`). */
export const AGENT_JOB = 'harouter-agent';
/** The prefix of local mode's network namespaces. */
export const LOCAL_NODES_PREFIX = 'harouter-local';

/** Options of {@link startSampleNodes}. */
export interface SampleNodesOptions {
  /** Where the nodes' files go (`DIR/nodes`). */
  dir: string;
  /** Each sample node's reporter kubeconfig (pod-bound token). */
  kubeconfigs: Readonly<Record<string, string>>;
  /** Free ports for the agents even when 8090-8092 are free. */
  freePorts?: boolean;
  /**
   * The agents render keepalived's configuration from the HARouters'
   * `spec.vrrp`; otherwise the harness writes the sample router's instance
   * ({@link SAMPLE_INSTANCE}) by hand.
   */
  renderedByAgents?: boolean;
  logLevel?: string;
}

/**
 * Starts the sample nodes: namespaces and bridge, then each node's agent, then,
 * once the agents are ready, keepalived (so the agents own the FIFOs, and
 * have rendered their files when they render keepalived's configuration).
 * node-a (priority 150) becomes MASTER about 4 s after the instances appear.
 * On failure, what was started is removed.
 */
export async function startSampleNodes(options: SampleNodesOptions): Promise<Nodes> {
  const nodes = await startNodes({
    names: SAMPLE_NODES.map((n) => n.name),
    dir: options.dir,
    prefix: LOCAL_NODES_PREFIX,
    handleSignals: false,
  });
  try {
    for (const [i, sample] of SAMPLE_NODES.entries()) {
      const node = nodes.node(sample.name);
      const kubeconfig = options.kubeconfigs[sample.name];
      if (!kubeconfig) throw new Error(`no reporter kubeconfig for ${sample.name}`);
      if (!options.renderedByAgents)
        await node.setInstances([{ name: SAMPLE_INSTANCE, virtualRouterId: 1, priority: sample.priority }]);
      const port = await preferredPort(options.freePorts ? 0 : (AGENT_PORTS[i] ?? 0));
      const agent = node.addAgent({
        kubeconfig,
        namespace: SAMPLE_NAMESPACE,
        instances: options.renderedByAgents
          ? {}
          : { [SAMPLE_INSTANCE]: `${SAMPLE_NAMESPACE}/${SAMPLE_ROUTER_ID}` },
        metricsAddress: `127.0.0.1:${port}`,
        renderKeepalived: options.renderedByAgents === true,
        ...(options.logLevel ? { logLevel: options.logLevel } : {}),
      });
      await agent.start();
    }
    // Each agent ready (its FIFO made and open) before keepalived: a keepalived that finds no FIFO
    // makes its own and deletes it when it stops.
    await Promise.all(nodes.nodes.map((n) => n.agent?.ready()));
    for (const node of nodes.nodes) await node.keepalived.start();
  } catch (error) {
    await nodes.stop();
    throw error;
  }
  return nodes;
}

/**
 * The summary's lines about the nodes: agents and the commands to try, paths
 * as `shown` prints them; with `rendered` (the kubectl and admin kubeconfig to
 * print), the commands for a router whose keepalived configuration the agents
 * render. Pure.
 */
export function nodesSummary(
  nodes: Nodes,
  shown: (path: string) => string,
  rendered?: { kubectl: string; admin: string },
): { agents: string; commands: string } {
  const a = nodes.node('node-a');
  const agents = nodes.nodes
    .map((n) => `${n.name} http://${n.agent?.options.metricsAddress ?? '?'}/metrics`)
    .join('\n                  ');
  const start = (name: string) => {
    const n = nodes.node(name);
    const file = (f: string) => shown(join(n.dir, f));
    return `ip netns exec ${n.namespace} keepalived -f ${file('keepalived.conf')} -p ${file('keepalived.pid')} -r ${file('vrrp.pid')} -D -l -n >> ${file('keepalived.log')} 2>&1 &`;
  };
  const port = (name: string) => {
    const index = nodes.nodes.findIndex((n) => n.name === name);
    return `port${index}`;
  };
  const holders = nodes.nodes.map((n) => `ip -n ${n.namespace} -br addr show eth0`).join('; ');
  if (rendered) return { agents, commands: renderedCommands(nodes, shown, port, holders, rendered) };
  const commands = `  # stop keepalived on node-a (it sends priority 0): node-b becomes MASTER, the router follows
  kill $(cat ${shown(join(a.dir, 'keepalived.pid'))})
  # start it again: node-a preempts with its higher priority, the router fails back
  ${start('node-a')}

  # cut node-a off the network (carrier kept): node-b becomes MASTER too (SplitBrain=True, node-a stays active)
  ip -n ${nodes.bridgeNamespace} link set ${port('node-a')} nomaster
  # bring it back: node-b hears node-a again and steps down (SplitBrain=False)
  ip -n ${nodes.bridgeNamespace} link set ${port('node-a')} master br0

  # what keepalived says, and who holds the virtual address 192.0.2.101
  tail -f ${shown(join(a.dir, 'keepalived.log'))}
  ${holders}`;
  return { agents, commands };
}

/** The commands to try when the agents render keepalived's configuration from `spec.vrrp`. Pure. */
function renderedCommands(
  nodes: Nodes,
  shown: (path: string) => string,
  port: (name: string) => string,
  holders: string,
  { kubectl, admin }: { kubectl: string; admin: string },
): string {
  const node = (name: string) => nodes.node(name);
  const c = node('node-c');
  return `  # what the agents rendered (one vrrp_instance named by the router id) and the fence files
  cat ${shown(join(node('node-a').configDir, `${SAMPLE_ROUTER_ID}.conf`))}
  grep . ${nodes.nodes.map((n) => shown(join(n.fenceDir, SAMPLE_ROUTER_ID))).join(' ')}

  # switch the router over to node-b: the others are fenced (FAULT) until node-b is MASTER and routed to
  npx harouterctl switchover ${SAMPLE_ROUTER_ID} --to node-b --namespace ${SAMPLE_NAMESPACE} --kubeconfig ${admin}

  # drain node-b: its routers move to node-a, its agents stay fenced while it is cordoned
  ${kubectl} --kubeconfig ${admin} cordon node-b
  # uncordon: node-b's agents come back as backups, nothing moves
  ${kubectl} --kubeconfig ${admin} uncordon node-b

  # cut node-c off the network (carrier kept): it becomes a second MASTER and reports Primary over
  # the API; the operator fences it (its instance goes to FAULT and drops the VIP) while the segment is cut
  ip -n ${nodes.bridgeNamespace} link set ${port('node-c')} nomaster
  cat ${shown(join(c.fenceDir, SAMPLE_ROUTER_ID))}
  # heal it: the fence is lifted once the hold (${SAMPLE_FENCE_HOLD_SECONDS} s here) has passed; node-c stays a backup
  ip -n ${nodes.bridgeNamespace} link set ${port('node-c')} master br0

  # what keepalived says, and who holds the virtual address ${SAMPLE_VIRTUAL_IP}
  tail -f ${shown(join(node('node-a').dir, 'keepalived.log'))}
  ${holders}`;
}
