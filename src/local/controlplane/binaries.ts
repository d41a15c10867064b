import { spawn } from 'node:child_process';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

/** Versions of the built binaries, kept in step with `test/tools/build-binaries.sh`. */
export const KUBERNETES_VERSION = 'v1.36.3';
export const ETCD_VERSION = 'v3.6.14';
export const HELM_VERSION = 'v3.21.4';
/** Prometheus 3.16.0 and its promtool (Prometheus 3.x modules are versioned v0.3xx.y). */
export const PROMETHEUS_VERSION = 'v0.316.0';
export const CONTAINERD_VERSION = 'v2.4.2';
export const CNI_PLUGINS_VERSION = 'v1.10.0';

/** The tools `test/tools/build-binaries.sh` builds, by its names. */
export type Tool =
  | 'kubernetes'
  | 'etcd'
  | 'helm'
  | 'promtool'
  | 'prometheus'
  | 'kubernetes-node'
  | 'containerd'
  | 'cni-plugins';

const TOOL_VERSIONS: Record<Tool, string> = {
  kubernetes: KUBERNETES_VERSION,
  etcd: ETCD_VERSION,
  helm: HELM_VERSION,
  promtool: PROMETHEUS_VERSION,
  prometheus: PROMETHEUS_VERSION,
  'kubernetes-node': KUBERNETES_VERSION,
  containerd: CONTAINERD_VERSION,
  'cni-plugins': CNI_PLUGINS_VERSION,
};

/** Absolute paths of the binaries the control plane, the tests and the local mode run. */
export interface Binaries {
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubectl: string;
  readonly helm: string;
}

const repoRoot = resolve(import.meta.dirname, '../../..');
const buildScript = join(repoRoot, 'test', 'tools', 'build-binaries.sh');

/** The per-machine cache the binaries are built into (`HAROUTER_CACHE` overrides it). */
export function binaryCacheDir(): string {
  return process.env.HAROUTER_CACHE ?? join(homedir(), '.cache', 'harouter');
}

/** Where a tool's binary lives in the cache (`binary` defaults to the tool's name), built or not. */
export function toolBinary(tool: Tool, binary: string = tool, cache = binaryCacheDir()): string {
  return join(cache, `${tool}-${TOOL_VERSIONS[tool]}`, 'bin', binary);
}

/** Where each binary lives in the cache, whether or not it has been built yet. */
export function binaryPaths(cache = binaryCacheDir()): Binaries {
  return {
    etcd: toolBinary('etcd', 'etcd', cache),
    kubeApiserver: toolBinary('kubernetes', 'kube-apiserver', cache),
    kubeControllerManager: toolBinary('kubernetes', 'kube-controller-manager', cache),
    kubectl: toolBinary('kubernetes', 'kubectl', cache),
    helm: toolBinary('helm', 'helm', cache),
  };
}

/** Receives the build's progress lines (which tool, once per machine, elapsed time). */
export type BuildProgress = (line: string) => void;

/** The default progress: the build script's own lines on stderr, as `npm run build-binaries` shows them. */
export const progressToStderr: BuildProgress = (line) => process.stderr.write(`${line}\n`);

/**
 * Runs `test/tools/build-binaries.sh` for `tools`: nothing when each is cached with
 * today's build recipe (well under a second), else a build from the Go module proxy
 * (minutes, once per machine; a file lock keeps concurrent callers from building
 * twice). The script's own lines (which tool, how long it usually takes, a line every
 * 30 s while it builds, how long it took) go to `progress` as they come; Go's
 * output is kept for the error. Rejects with the build's output when it fails, so a
 * caller fails loudly, never skips.
 */
export function buildTools(
  tools: readonly Tool[],
  progress: BuildProgress = progressToStderr,
): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn('bash', [buildScript, ...tools], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HAROUTER_CACHE: binaryCacheDir() },
    });
    const output: string[] = [];
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        output.push(line);
        if (output.length > 400) output.shift();
        if (line.startsWith('build-binaries:')) progress(line);
      });
    }
    child.on('error', (error) => fail(new Error(`could not run ${buildScript}: ${error.message}`)));
    child.on('close', (code, signal) => {
      if (code === 0) done();
      else
        fail(
          new Error(
            `building ${tools.join(', ')} failed (test/tools/build-binaries.sh, ${signal ?? `exit code ${code}`}):\n${output.join('\n')}`,
          ),
        );
    });
  });
}

/**
 * Returns the binaries of the control plane (etcd, kube-apiserver,
 * kube-controller-manager, kubectl), building them first when they are missing or
 * were built with another recipe (see {@link buildTools}).
 */
export async function ensureBinaries(progress?: BuildProgress): Promise<Binaries> {
  await buildTools(['etcd', 'kubernetes'], progress);
  return binaryPaths();
}

/** Absolute paths of a real node's binaries (runc is Debian's, found on PATH). */
export interface NodeBinaries {
  readonly kubelet: string;
  readonly kubeProxy: string;
  readonly kubeScheduler: string;
  readonly containerd: string;
  readonly ctr: string;
  /** Directory of containerd's runc shim (containerd finds `containerd-shim-runc-v2` on its PATH). */
  readonly containerdBinDir: string;
  /** Directory of the CNI plugins bridge, host-local, loopback and portmap. */
  readonly cniBinDir: string;
}

/** Where a real node's binaries live in the cache, whether or not they have been built yet. */
export function nodeBinaryPaths(cache = binaryCacheDir()): NodeBinaries {
  return {
    kubelet: toolBinary('kubernetes-node', 'kubelet', cache),
    kubeProxy: toolBinary('kubernetes-node', 'kube-proxy', cache),
    kubeScheduler: toolBinary('kubernetes-node', 'kube-scheduler', cache),
    containerd: toolBinary('containerd', 'containerd', cache),
    ctr: toolBinary('containerd', 'ctr', cache),
    containerdBinDir: join(cache, `containerd-${CONTAINERD_VERSION}`, 'bin'),
    cniBinDir: join(cache, `cni-plugins-${CNI_PLUGINS_VERSION}`, 'bin'),
  };
}

/**
 * Returns a real node's binaries (kubelet, kube-proxy, kube-scheduler, containerd, the
 * CNI plugins), building them first when they are missing or were built with another
 * recipe (see {@link buildTools}).
 */
export async function ensureNodeBinaries(progress?: BuildProgress): Promise<NodeBinaries> {
  await buildTools(['kubernetes-node', 'containerd', 'cni-plugins'], progress);
  return nodeBinaryPaths();
}

/** The Prometheus server binary, built first when missing (see {@link buildTools}). */
export async function prometheusBinary(progress?: BuildProgress): Promise<string> {
  await buildTools(['prometheus'], progress);
  return toolBinary('prometheus');
}
