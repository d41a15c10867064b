import { execFile } from 'node:child_process';
import { mkdir, open, readdir, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import {
  type BuildProgress,
  type ControlPlane,
  ensureNodeBinaries,
  issueClientCert,
  type ManagedProcess,
  type NodeBinaries,
  type NodeServing,
  startProcess,
  tailLog,
  waitUntil,
  writeKubeconfig,
} from '../controlplane/index.ts';
import { containerdConfig } from './containerd.ts';
import {
  absentFixedPaths,
  createCgroup,
  mountsUnder,
  removeCgroup,
  removePaths,
  restoreSysctls,
  snapshotSysctls,
} from './host.ts';
import { kubeletConfig } from './kubelet.ts';
import {
  cniConfigList,
  NODE_NETWORK,
  removeKubeletChains,
  setUpNodeNetwork,
  tearDownNodeNetwork,
} from './network.ts';

export { NODE_NETWORK } from './network.ts';

const run = promisify(execFile);

/** The image the pod sandboxes run (test/tools/build-image.sh makes it from test/tools/pause.c). */
export const SANDBOX_IMAGE = 'localhost/harouter-pause:1';

/** The cgroup under which the kubelet puts its pods, in every hierarchy. */
const CGROUP_ROOT = 'harouter-node';

/** One real node per machine at a time: its addresses, interface and chains are fixed. */
const LOCK_PATH = '/run/harouter-node.lock';

/** Options of {@link startRealNode}. */
export interface RealNodeOptions {
  /** Working directory (kept short: containerd's socket lives in it); emptied first. */
  dir: string;
  /**
   * Starts the control plane once the node's address exists, serving `serving`
   * (`startControlPlane({ ..., servesNode: serving })`); the node stops it.
   */
  controlPlane: (serving: NodeServing) => Promise<ControlPlane>;
  /** Image archives (docker-archive) to import before the kubelet starts; the sandbox image among them. */
  images: readonly string[];
  /** Node name (default `harouter-node`). */
  name?: string;
  /** Longest wait for each step (default 120 s). */
  readyTimeoutMs?: number;
  buildProgress?: BuildProgress;
}

/** A running node: containerd, a kubelet registered as a Ready Node, kube-proxy, CNI. */
export interface RealNode {
  readonly name: string;
  /** The node's InternalIP. */
  readonly address: string;
  readonly dir: string;
  readonly binaries: NodeBinaries;
  readonly controlPlane: ControlPlane;
  /** Seconds each step took (control plane, containerd, import of the images, the kubelet to a Ready Node). */
  readonly timings: { controlPlane: number; containerd: number; images: number; nodeReady: number };
  /** Runs `ctr` against this node's containerd in the `k8s.io` namespace; resolves with its output. */
  ctr(args: readonly string[]): Promise<string>;
  /**
   * Stops kube-proxy, the kubelet, every container, containerd and the control plane, then removes
   * what the node added to the machine (iptables chains, links, mounts, cgroups,
   * fixed paths) and restores the kernel settings it changed.
   */
  stop(): Promise<void>;
}

async function takeLock(): Promise<() => Promise<void>> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(LOCK_PATH, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => unlink(LOCK_PATH).catch(() => {});
    } catch (error) {
      if ((error as { code?: string }).code !== 'EEXIST') throw error;
      const holder = Number((await readFile(LOCK_PATH, 'utf8').catch(() => '')).trim());
      if (holder > 0 && holder !== process.pid && (await alive(holder)))
        throw new Error(`another real node runs on this machine (process ${holder} holds ${LOCK_PATH})`);
      await unlink(LOCK_PATH).catch(() => {});
    }
  }
  throw new Error(`could not take ${LOCK_PATH}`);
}

async function alive(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function prerequisites(): Promise<void> {
  if (process.getuid?.() !== 0)
    throw new Error('a real node needs root (containerd, kubelet, network links)');
  const missing: string[] = [];
  for (const tool of ['runc', 'iptables', 'ip'])
    try {
      await run('sh', ['-c', `command -v ${tool}`]);
    } catch {
      missing.push(tool);
    }
  if (missing.length > 0)
    throw new Error(
      `a real node needs ${missing.join(', ')} on PATH (Debian: apt-get install runc iptables iproute2)`,
    );
}

/** PIDs of containerd shims serving `socket` (left running when containerd stops). */
async function shimsOf(socket: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const cmdline = await readFile(join('/proc', entry, 'cmdline'), 'utf8').catch(() => '');
    const args = cmdline.split('\0');
    if (args[0]?.endsWith('containerd-shim-runc-v2') && args.includes(socket)) pids.push(pid);
  }
  return pids;
}

/**
 * Starts a real node against `controlPlane`: its network (an interface with
 * {@link NODE_NETWORK}'s address, a CNI bridge), containerd (images imported from
 * archives, nothing pulled), a kubelet with a `system:node:<name>` client certificate,
 * and kube-proxy in iptables mode. Resolves once the Node is Ready and kube-proxy is
 * healthy. Needs root; one at a time per machine. When a step fails, everything
 * started is stopped and removed, and the error carries the tails of the logs.
 */
export async function startRealNode(options: RealNodeOptions): Promise<RealNode> {
  await prerequisites();
  const binaries = await ensureNodeBinaries(options.buildProgress);
  const timeout = options.readyTimeoutMs ?? 120_000;
  const name = options.name ?? 'harouter-node';
  const dir = options.dir;
  const release = await takeLock();
  let plane: ControlPlane | undefined;
  const sysctls = await snapshotSysctls();
  const ownFixedPaths = await absentFixedPaths();
  await rm(dir, { recursive: true, force: true });
  for (const sub of ['logs', 'pki', 'cni/net.d', 'cni/ipam', 'pod-logs', 'kubelet'])
    await mkdir(join(dir, sub), { recursive: true, mode: 0o700 });
  const socket = join(dir, 'containerd', 'containerd.sock');
  const processes: ManagedProcess[] = [];
  const runc = (await run('sh', ['-c', 'command -v runc'])).stdout.trim();
  const env = {
    ...process.env,
    PATH: [binaries.containerdBinDir, process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin'].join(':'),
  };
  const ctr = async (args: readonly string[]) =>
    (
      await run(binaries.ctr, ['--address', socket, '--namespace', 'k8s.io', ...args], {
        maxBuffer: 16 << 20,
      })
    ).stdout;
  const firstExited = () => {
    const dead = processes.find((p) => p.exited() !== undefined);
    return dead ? `${dead.name} exited (${dead.exited()})` : undefined;
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    const problems: string[] = [];
    const step = async (what: string, action: () => Promise<unknown>) => {
      try {
        await action();
      } catch (error) {
        problems.push(`${what}: ${(error as Error).message}`);
      }
    };
    for (const p of [...processes].reverse()) if (p.name !== 'containerd') await p.stop();
    const containerd = processes.find((p) => p.name === 'containerd');
    if (containerd && containerd.exited() === undefined) {
      await step('stopping the containers', async () => {
        for (const id of (await ctr(['tasks', 'list', '--quiet'])).split('\n').filter(Boolean)) {
          await ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]).catch(() => {});
          await ctr(['tasks', 'delete', '--force', id]).catch(() => {});
        }
      });
      await containerd.stop();
    }
    if (plane) await step('stopping the control plane', () => (plane as ControlPlane).stop());
    await step('stopping the shims', async () => {
      for (const pid of await shimsOf(socket)) process.kill(pid, 'SIGKILL');
    });
    await step('kube-proxy --cleanup', () => run(binaries.kubeProxy, ['--cleanup']).catch(() => {}));
    await step('removing kubelet chains', removeKubeletChains);
    await step('unmounting', async () => {
      for (const point of mountsUnder(await readFile('/proc/self/mountinfo', 'utf8'), dir))
        await run('umount', ['--lazy', point]).catch(() => {});
    });
    await step('removing the network', tearDownNodeNetwork);
    await step('removing the cgroups', () => removeCgroup(CGROUP_ROOT));
    await step('restoring kernel settings', async () => {
      const failed = await restoreSysctls(sysctls);
      if (failed.length > 0) throw new Error(failed.join('; '));
    });
    await step('removing fixed paths', () => removePaths(ownFixedPaths));
    await step('removing the directory', () => rm(dir, { recursive: true, force: true }));
    await release();
    if (problems.length > 0) throw new Error(`stopping the real node: ${problems.join('; ')}`);
  };

  const timings = { controlPlane: 0, containerd: 0, images: 0, nodeReady: 0 };
  const since = (start: number) => Math.round((performance.now() - start) / 100) / 10;
  try {
    await setUpNodeNetwork();
    let started = performance.now();
    plane = await options.controlPlane({
      address: NODE_NETWORK.address,
      serviceCidr: NODE_NETWORK.serviceCidr,
      podCidr: NODE_NETWORK.podCidr,
    });
    timings.controlPlane = since(started);
    await writeFile(
      join(dir, 'cni', 'net.d', '10-harouter.conflist'),
      `${JSON.stringify(cniConfigList(join(dir, 'cni', 'ipam')), null, 2)}\n`,
    );
    const containerdConfigPath = join(dir, 'containerd.toml');
    await writeFile(
      containerdConfigPath,
      containerdConfig({
        root: join(dir, 'containerd', 'root'),
        state: join(dir, 'containerd', 'state'),
        socket,
        cniBinDir: binaries.cniBinDir,
        cniConfDir: join(dir, 'cni', 'net.d'),
        runc,
        sandboxImage: SANDBOX_IMAGE,
      }),
    );
    started = performance.now();
    processes.push(
      startProcess(
        'containerd',
        binaries.containerd,
        ['--config', containerdConfigPath],
        join(dir, 'logs', 'containerd.log'),
        {
          env,
        },
      ),
    );
    await waitUntil(
      'containerd',
      timeout,
      async () => (await ctr(['version'])).includes('Server:'),
      firstExited,
    );
    timings.containerd = since(started);

    started = performance.now();
    for (const image of options.images) await ctr(['images', 'import', image]);
    timings.images = since(started);

    const pki = join(dir, 'pki');
    const kubeletPair = await issueClientCert({
      ca: plane.ca,
      dir: pki,
      name: 'kubelet',
      subject: `/O=system:nodes/CN=system:node:${name}`,
    });
    const proxyPair = await issueClientCert({
      ca: plane.ca,
      dir: pki,
      name: 'kube-proxy',
      subject: '/CN=system:kube-proxy',
    });
    const kubeletKubeconfig = join(dir, 'kubelet.kubeconfig');
    const proxyKubeconfig = join(dir, 'kube-proxy.kubeconfig');
    await writeKubeconfig({
      path: kubeletKubeconfig,
      server: plane.server,
      caCertPath: plane.ca.certPath,
      user: kubeletPair,
      userName: `system:node:${name}`,
    });
    await writeKubeconfig({
      path: proxyKubeconfig,
      server: plane.server,
      caCertPath: plane.ca.certPath,
      user: proxyPair,
      userName: 'system:kube-proxy',
    });
    const kubeletConfigPath = join(dir, 'kubelet.yaml');
    await writeFile(
      kubeletConfigPath,
      `${JSON.stringify(
        kubeletConfig({
          clientCaFile: plane.ca.certPath,
          containerdSocket: socket,
          podLogsDir: join(dir, 'pod-logs'),
          cgroupRoot: `/${CGROUP_ROOT}`,
        }),
        null,
        2,
      )}\n`,
    );

    await createCgroup(CGROUP_ROOT);
    started = performance.now();
    processes.push(
      startProcess(
        'kubelet',
        binaries.kubelet,
        [
          `--config=${kubeletConfigPath}`,
          `--kubeconfig=${kubeletKubeconfig}`,
          `--root-dir=${join(dir, 'kubelet')}`,
          `--cert-dir=${join(dir, 'kubelet', 'pki')}`,
          `--node-ip=${NODE_NETWORK.address}`,
          `--hostname-override=${name}`,
          '--v=1',
        ],
        join(dir, 'logs', 'kubelet.log'),
        { env },
      ),
    );
    processes.push(
      startProcess(
        'kube-proxy',
        binaries.kubeProxy,
        [
          `--kubeconfig=${proxyKubeconfig}`,
          `--hostname-override=${name}`,
          '--proxy-mode=iptables',
          `--cluster-cidr=${NODE_NETWORK.podCidr}`,
          `--healthz-bind-address=${NODE_NETWORK.address}:10256`,
          `--metrics-bind-address=${NODE_NETWORK.address}:10249`,
          // Machine-wide settings left alone: conntrack sizes and timeouts, route_localnet.
          '--conntrack-max-per-core=0',
          '--conntrack-tcp-timeout-established=0',
          '--conntrack-tcp-timeout-close-wait=0',
          '--iptables-localhost-nodeports=false',
          '--v=1',
        ],
        join(dir, 'logs', 'kube-proxy.log'),
        { env },
      ),
    );
    const admin = new KubeConfig();
    admin.loadFromFile(plane.kubeconfigPath);
    const core = admin.makeApiClient(CoreV1Api);
    await waitUntil(
      `Node ${name} Ready`,
      timeout,
      async () => {
        const node = await core.readNode({ name });
        return node.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true;
      },
      firstExited,
    );
    timings.nodeReady = since(started);
    await waitUntil(
      'kube-proxy healthy',
      timeout,
      async () => {
        const res = await fetch(`http://${NODE_NETWORK.address}:10256/healthz`);
        return res.status === 200;
      },
      firstExited,
    );
  } catch (error) {
    const logs = await Promise.all(
      processes.map(async (p) => `--- ${p.name} (${p.logPath}) ---\n${await tailLog(p.logPath, 30)}`),
    );
    await stop().catch(() => {});
    throw new Error(`the real node did not start: ${(error as Error).message}\n${logs.join('\n')}`);
  }
  return { name, address: NODE_NETWORK.address, dir, binaries, controlPlane: plane, timings, ctr, stop };
}
