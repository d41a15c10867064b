/**
 * `npm run local -- --node`: the chart installed with helm on a real node of this
 * machine (containerd, a kubelet, kube-proxy, CNI; see `src/local/realnode/`), from
 * the image `npm run image` builds from the Dockerfile: what a newcomer's cluster
 * would run, pods and all.
 */
import { execFile } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { buildTools, startControlPlane, toolBinary, writeKubeconfig } from './controlplane/index.ts';
import { buildImage, imageArchives, OPERATOR_IMAGE } from './realnode/image.ts';
import { type RealNode, startRealNode } from './realnode/index.ts';

const run = promisify(execFile);
const repoRoot = resolve(import.meta.dirname, '../..');

/** The release and namespace `--node` installs. */
export const NODE_RELEASE = { name: 'harouter', namespace: 'harouter-system' } as const;

/** Host paths of the agent DaemonSet in `--node` mode (its own, not the chart's defaults). */
export const NODE_AGENT_PATHS = {
  fifoDir: '/run/harouter-local',
  stateDir: '/var/lib/harouter-local',
} as const;

/** The helm values `--node` installs the chart with: the local image, never pulled, and the agent. Pure. */
export function nodeModeValues(logLevel: string): object {
  return {
    image: { repository: OPERATOR_IMAGE.repository, tag: OPERATOR_IMAGE.tag, pullPolicy: 'Never' },
    operator: { logLevel },
    reporter: { agent: { enabled: true, ...NODE_AGENT_PATHS } },
  };
}

/** A running `--node` environment. */
export interface LocalNodeEnvironment {
  dir: string;
  server: string;
  kubectlPath: string;
  helmPath: string;
  adminKubeconfig: string;
  node: RealNode;
  /** Seconds: the image, the node (with its control plane), helm install to every pod Ready, in all. */
  timings: { image: number; node: number; install: number; total: number };
  stop(): Promise<void>;
}

function seconds(fromMs: number): number {
  return Math.round((performance.now() - fromMs) / 100) / 10;
}

/**
 * Builds the image, starts the real node and its control plane in `DIR/node` and
 * `DIR/cluster`, installs the chart with `helm install --wait` and writes
 * `DIR/admin.kubeconfig` last. On failure everything started is stopped and removed.
 */
export async function startLocalOnNode(options: {
  dir: string;
  logLevel: string;
  print: (line: string) => void;
}): Promise<LocalNodeEnvironment> {
  const dir = resolve(options.dir);
  const adminKubeconfig = join(dir, 'admin.kubeconfig');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await rm(adminKubeconfig, { force: true });
  const started = performance.now();
  const progress = (line: string) => options.print(`local: ${line}`);
  options.print('local: building the operator image from the Dockerfile (npm run image) ...');
  await buildImage(progress);
  await buildTools(['helm'], progress);
  const image = seconds(started);
  options.print('local: starting the control plane and the node (containerd, kubelet, kube-proxy) ...');
  const nodeStarted = performance.now();
  const archives = imageArchives();
  const node = await startRealNode({
    dir: join(dir, 'node'),
    images: [archives.sandbox, archives.operator],
    controlPlane: (servesNode) =>
      startControlPlane({ dir: join(dir, 'cluster'), servesNode, buildProgress: progress }),
    buildProgress: progress,
  });
  const stop = async () => {
    await node.stop();
    for (const path of [adminKubeconfig, ...Object.values(NODE_AGENT_PATHS)])
      await rm(path, { recursive: true, force: true });
  };
  try {
    const nodeSeconds = seconds(nodeStarted);
    options.print(
      `local: node ${node.name} Ready at ${node.address}, API server ${node.controlPlane.server} (${nodeSeconds} s)`,
    );
    const helmPath = toolBinary('helm');
    const values = join(dir, 'node-values.json');
    await writeFile(values, JSON.stringify(nodeModeValues(options.logLevel)));
    options.print('local: helm install of the chart, waiting for every pod to be Ready ...');
    const installStarted = performance.now();
    try {
      await run(
        helmPath,
        [
          'install',
          NODE_RELEASE.name,
          join(repoRoot, 'charts', 'harouter-operator'),
          '--namespace',
          NODE_RELEASE.namespace,
          '--create-namespace',
          '-f',
          values,
          '--wait',
          '--timeout',
          '5m',
        ],
        { env: { ...process.env, KUBECONFIG: node.controlPlane.kubeconfigPath } },
      );
    } catch (error) {
      throw new Error(`helm install failed: ${(error as { stderr?: string }).stderr ?? error}`);
    }
    const install = seconds(installStarted);
    options.print(`local: chart installed, operator and agent pods Ready (${install} s)`);
    await writeKubeconfig({
      path: adminKubeconfig,
      server: node.controlPlane.server,
      caCertPath: node.controlPlane.ca.certPath,
      user: node.controlPlane.pki.admin,
      namespace: NODE_RELEASE.namespace,
    });
    return {
      dir,
      server: node.controlPlane.server,
      kubectlPath: node.controlPlane.binaries.kubectl,
      helmPath,
      adminKubeconfig,
      node,
      timings: { image, node: nodeSeconds, install, total: seconds(started) },
      stop,
    };
  } catch (error) {
    await stop().catch(() => {});
    throw error;
  }
}
