/**
 * `npm run local -- [--dir DIR]`: one command that runs the whole system on this
 * machine (see docs/local-mode.md). Runs in the foreground until Ctrl-C.
 */
import { relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { LOG_LEVELS } from '../log.ts';
import { type LocalEnvironment, startLocal, takeDirectoryLock } from './environment.ts';
import { nodesSummary, SAMPLE_INSTANCE } from './keepalived.ts';
import { type LocalNodeEnvironment, NODE_RELEASE, startLocalOnNode } from './node-mode.ts';
import type { Nodes } from './nodes/index.ts';
import { LOCAL_INTERVALS, OPERATOR_JOB } from './prometheus.ts';
import { SAMPLE_NAMESPACE, SAMPLE_ROUTER_ID } from './sample.ts';

/** `npm run local -- --help`. */
export const LOCAL_HELP = `npm run local -- [--dir DIR] [--log-level LEVEL] [--free-ports] [--prometheus] [--keepalived] [--node]

Starts a local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager),
installs the harouter CRDs, RBAC, webhook and a working sample (three Ready nodes, a reporter
Pod bound to each, one HARouter), runs the operator in the foreground with readable logs, then
writes DIR/admin.kubeconfig and DIR/reporter-<node>.kubeconfig and prints the commands to try.
An operator that exits is restarted with backoff (local mode stops after 5 exits within 5 min).
Ctrl-C stops everything. A second start replaces the cluster's data (a fresh cluster).

  --dir DIR          working directory (default .local/)
  --log-level LEVEL  the operator's log level (default info)
  --free-ports       always run the operator on free ports (default: 8080, 8081 and 9443 when
                     free on 127.0.0.1, else free ones); the ports are printed
  --prometheus       also run Prometheus (127.0.0.1:9090 when free) scraping the operator every
                     2 s and evaluating the chart's alert rules every 2 s; data in DIR/prometheus
  --keepalived       run the three nodes as network namespaces with real keepalived and the
                     node agent each (metrics on 8090, 8091, 8092 when free); needs root,
                     keepalived and iproute2
  --node             instead: a real node on this machine (containerd, kubelet, kube-proxy, CNI)
                     and the chart installed on it with helm, from the image \`npm run image\`
                     builds from the Dockerfile (operator and agent run as pods); needs root,
                     runc, iptables, buildah and debootstrap
  -h, --help         this text
`;

/** Reads local mode's flags. Pure. */
export function parseLocalArgs(argv: readonly string[]):
  | {
      dir: string;
      logLevel: string;
      freePorts: boolean;
      prometheus: boolean;
      keepalived: boolean;
      node: boolean;
    }
  | { help: true } {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      dir: { type: 'string' },
      'log-level': { type: 'string' },
      'free-ports': { type: 'boolean' },
      prometheus: { type: 'boolean' },
      keepalived: { type: 'boolean' },
      node: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) return { help: true };
  const logLevel = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new Error(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    dir: values.dir ?? '.local',
    logLevel,
    freePorts: values['free-ports'] === true,
    prometheus: values.prometheus === true,
    keepalived: values.keepalived === true,
    node: values.node === true,
  };
}

/** What `--node` prints once the chart runs on the node: where things are and what to try. */
export function nodeSummary(
  env: Omit<LocalNodeEnvironment, 'node' | 'stop'> & { node: { name: string; address: string; dir: string } },
  cwd = process.cwd(),
): string {
  const shown = (path: string) => {
    const rel = relative(cwd, path);
    return rel.startsWith('..') ? path : rel;
  };
  const kubectl = `${env.kubectlPath} --kubeconfig ${shown(env.adminKubeconfig)}`;
  const t = env.timings;
  const ns = NODE_RELEASE.namespace;
  return `
harouter local mode is running on a real node (started in ${t.total} s: image ${t.image} s, node ${t.node} s, helm install ${t.install} s).

  API server      ${env.server}
  kubectl         ${env.kubectlPath}
  helm            ${env.helmPath}
  kubeconfig      ${shown(env.adminKubeconfig)} (cluster admin; context namespace "${ns}")
  node            ${env.node.name} (${env.node.address}): containerd, kubelet, kube-proxy; logs in ${shown(resolve(env.node.dir, 'logs'))}/
  release         ${NODE_RELEASE.name} in ${ns} (the chart, image ${'localhost/harouter-operator'}, pullPolicy Never)

In another terminal:

  # the operator's two replicas and the agent DaemonSet, running as pods
  ${kubectl} get pods -A -o wide

  # the operator's log (leader election, the webhook), and the agent's
  ${kubectl} logs deploy/${NODE_RELEASE.name}-harouter-operator
  ${kubectl} logs -n harouter-reporters ds/${NODE_RELEASE.name}-harouter-operator-agent

  # the release, as helm sees it
  KUBECONFIG=${shown(env.adminKubeconfig)} ${env.helmPath} status ${NODE_RELEASE.name} -n ${ns}

  # a HARouter (examples/harouter.yaml names nodes node-a..c; edit the agents to ${env.node.name})
  ${kubectl} get harouters,harouterstates -A

Press Ctrl-C to stop everything (pods, node, control plane; the machine is put back as it was).
`;
}

/** The Prometheus lines of the summary: where it runs, a query or two, the alerts. */
export function prometheusSummary(url: string): string {
  return `  prometheus      ${url} (job="${OPERATOR_JOB}", scraped every ${LOCAL_INTERVALS.scrape}; the chart's alert rules, evaluated every ${LOCAL_INTERVALS.evaluation}; HTTP API only, no web UI)
                  curl -sG ${url}/api/v1/query --data-urlencode 'query=max by (condition) (harouter_routers)'
                  curl -sG ${url}/api/v1/query --data-urlencode 'query=harouter_router_info'
                  curl -s ${url}/api/v1/alerts   (pending and firing alerts; rules: ${url}/api/v1/rules)
`;
}

/** The lines both summaries share: where the API server, kubeconfigs and the operator's ports are. */
function endpointLines(env: Omit<LocalEnvironment, 'controlPlane'>, shown: (path: string) => string): string {
  const reporter = (node: string) => shown(env.reporterKubeconfigs[node] ?? '');
  return `  API server      ${env.server}
  kubectl         ${env.kubectlPath}
  kubeconfigs     ${shown(env.adminKubeconfig)} (cluster admin), ${reporter('node-a')}, ${reporter('node-b')}, ${reporter('node-c')}
                  (pod-bound reporter tokens, valid 24 h; context namespace "${SAMPLE_NAMESPACE}")
  metrics         http://127.0.0.1:${env.ports.metrics}/metrics
  probes          http://127.0.0.1:${env.ports.probes}/healthz  http://127.0.0.1:${env.ports.probes}/readyz
  webhook         https://127.0.0.1:${env.ports.webhook}/validate`;
}

/** What local mode prints once everything runs: the commands to try, with absolute paths. */
export function summary(env: Omit<LocalEnvironment, 'controlPlane'>, cwd = process.cwd()): string {
  const shown = (path: string) => {
    const rel = relative(cwd, path);
    return rel.startsWith('..') ? path : rel;
  };
  const kubectl = env.kubectlPath;
  const admin = shown(env.adminKubeconfig);
  const reporter = (node: string) => shown(env.reporterKubeconfigs[node] ?? '');
  const examples = shown(resolve(import.meta.dirname, '../../examples'));
  const t = env.timings;
  if (env.nodes) return keepalivedSummary(env, env.nodes, shown);
  return `
harouter local mode is running (started in ${t.total} s: control plane ${t.controlPlane} s, install ${t.install} s, operator ${t.operator} s).

${endpointLines(env, shown)}
  logs            ${shown(resolve(env.dir, 'logs'))}/ (operator.log${env.prometheus ? ', prometheus.log' : ''}) and ${shown(resolve(env.dir, 'cluster', 'logs'))}/
${env.prometheus ? prometheusSummary(env.prometheus.url) : ''}
The sample router ${SAMPLE_ROUTER_ID} (namespace ${SAMPLE_NAMESPACE}) runs on node-a, node-b and node-c;
node-a is primary. In another terminal:

  # watch the router
  ${kubectl} --kubeconfig ${admin} get har -w

  # node-b's keepalived becomes MASTER: both claim primary (SplitBrain=True, node-a stays active)
  ${kubectl} --kubeconfig ${reporter('node-b')} apply -f ${examples}/report-primary.yaml
  # node-a steps down: the router fails over to node-b (its EndpointSlice now points at 198.51.100.12)
  ${kubectl} --kubeconfig ${reporter('node-a')} apply -f ${examples}/report-backup.yaml
  ${kubectl} --kubeconfig ${admin} get endpointslices,hars

  # node-b's reporter tries to speak for node-c: denied by the webhook (NodeBinding)
  ${kubectl} --kubeconfig ${reporter('node-b')} apply -f ${examples}/report-wrong-node.yaml

  # what keepalived's notify runs: node-a becomes MASTER again (stamped now, so newer than the examples)
  npx harouterctl report --kubeconfig ${reporter('node-a')} --agent node-a --router ${SAMPLE_ROUTER_ID} INSTANCE VI_1 MASTER 150

  # a node goes down: its claims stop counting (Unknown, NodeNotReady)
  ${kubectl} --kubeconfig ${admin} patch node node-b --subresource=status --type=merge \\
    -p '{"status":{"conditions":[{"type":"Ready","status":"False","reason":"Down"}]}}'

Press Ctrl-C to stop everything.
`;
}

/** The summary with `--keepalived`: the agents, and commands that act on keepalived and the network. */
function keepalivedSummary(
  env: Omit<LocalEnvironment, 'controlPlane'>,
  nodes: Nodes,
  shown: (path: string) => string,
): string {
  const kubectl = env.kubectlPath;
  const admin = shown(env.adminKubeconfig);
  const reporter = (node: string) => shown(env.reporterKubeconfigs[node] ?? '');
  const examples = shown(resolve(import.meta.dirname, '../../examples'));
  const t = env.timings;
  const rendered = env.keepalivedConfig === 'agents';
  const n = nodesSummary(nodes, shown, rendered ? { kubectl, admin } : undefined);
  return `
harouter local mode is running with keepalived (started in ${t.total} s: control plane ${t.controlPlane} s, install ${t.install} s, operator and election ${t.operator} s).

${endpointLines(env, shown)}
  agents          ${n.agents}
  nodes           network namespaces ${nodes.nodes.map((x) => x.namespace).join(', ')}
                  on a bridge in ${nodes.bridgeNamespace}; files in ${shown(resolve(env.dir, 'nodes'))}/<node>/
  logs            ${shown(resolve(env.dir, 'logs'))}/ (operator.log${env.prometheus ? ', prometheus.log' : ''}), ${shown(resolve(env.dir, 'nodes'))}/<node>/ (keepalived.log, agent.log)
                  and ${shown(resolve(env.dir, 'cluster', 'logs'))}/
${env.prometheus ? prometheusSummary(env.prometheus.url) : ''}
${
  rendered
    ? `The sample router ${SAMPLE_ROUTER_ID} (namespace ${SAMPLE_NAMESPACE}) has spec.vrrp: each node's agent renders
its vrrp_instance (named by the router id; priorities 150, 100, 50; every instance BACKUP and nopreempt)
into <node>/keepalived.d/ and reloads keepalived. In another terminal, as root:`
    : `The sample router ${SAMPLE_ROUTER_ID} (namespace ${SAMPLE_NAMESPACE}) is keepalived's instance ${SAMPLE_INSTANCE} on
node-a (priority 150), node-b (100) and node-c (50); node-a is MASTER and active. In another terminal, as root:`
}

  # watch the router
  ${kubectl} --kubeconfig ${admin} get har -w

${n.commands}

  # the EndpointSlice and the reports the agents wrote
  ${kubectl} --kubeconfig ${admin} get endpointslices,hars

  # node-b's reporter tries to speak for node-c: denied by the webhook (NodeBinding)
  ${kubectl} --kubeconfig ${reporter('node-b')} apply -f ${examples}/report-wrong-node.yaml

Press Ctrl-C to stop everything (keepalived, agents, namespaces, operator, control plane).
`;
}

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseLocalArgs>;
  try {
    parsed = parseLocalArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n\n${LOCAL_HELP}`);
    return 2;
  }
  if ('help' in parsed) {
    process.stdout.write(LOCAL_HELP);
    return 0;
  }
  const print = (line: string) => process.stdout.write(`${line}\n`);
  if (parsed.node) return await runOnNode(parsed.dir, parsed.logLevel, print);
  let release: () => Promise<void>;
  try {
    release = await takeDirectoryLock(parsed.dir);
  } catch (error) {
    process.stderr.write(`local: ${(error as Error).message}\n`);
    return 1;
  }
  let env: LocalEnvironment | undefined;
  const interrupted = new AbortController();
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    print(`local: ${signal}: stopping the operator and the control plane ...`);
    interrupted.abort();
    // While starting, startLocal stops what it started at its next step; once running, stop here.
    if (env) {
      const running = env;
      void (async () => {
        await running.stop();
        await release();
        print('local: stopped');
        process.exit(0);
      })();
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    env = await startLocal({
      dir: parsed.dir,
      logLevel: parsed.logLevel,
      freePorts: parsed.freePorts,
      prometheus: parsed.prometheus,
      keepalived: parsed.keepalived,
      print,
      signal: interrupted.signal,
    });
  } catch (error) {
    await release();
    if (stopping) {
      print('local: stopped');
      return 0;
    }
    process.stderr.write(`local: start-up failed: ${(error as Error).message}\n`);
    return 1;
  }
  if (stopping) {
    await env.stop();
    await release();
    print('local: stopped');
    return 0;
  }
  print(summary(env));
  // Runs until a signal arrives (the handlers above stop everything and exit) or the operator dies.
  const keepAlive = setInterval(() => {}, 1 << 30);
  const exit = await env.operatorExit;
  clearInterval(keepAlive);
  if (stopping) return await new Promise<number>(() => {});
  stopping = true;
  process.stderr.write(`local: ${exit}; stopping\n`);
  await env.stop();
  await release();
  print('local: stopped');
  return 1;
}

/** `--node`: runs until Ctrl-C, then stops the node and its control plane. */
async function runOnNode(dir: string, logLevel: string, print: (line: string) => void): Promise<number> {
  let release: () => Promise<void>;
  try {
    release = await takeDirectoryLock(dir);
  } catch (error) {
    process.stderr.write(`local: ${(error as Error).message}\n`);
    return 1;
  }
  let env: LocalNodeEnvironment;
  try {
    env = await startLocalOnNode({ dir, logLevel, print });
  } catch (error) {
    await release();
    process.stderr.write(`local: start-up failed: ${(error as Error).message}\n`);
    return 1;
  }
  print(nodeSummary(env));
  await new Promise<void>((done) => {
    const onSignal = (signal: NodeJS.Signals) => {
      print(`local: ${signal}: stopping the node and the control plane ...`);
      done();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  await env.stop();
  await release();
  print('local: stopped');
  return 0;
}

if (import.meta.main) process.exitCode = await main();
