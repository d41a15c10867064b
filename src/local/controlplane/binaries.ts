import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

/** Versions of the Kubernetes binaries, kept in step with `test/tools/build-binaries.sh`. */
export const KUBERNETES_VERSION = 'v1.36.3';
export const ETCD_VERSION = 'v3.6.14';
export const HELM_VERSION = 'v3.21.4';

/** Absolute paths of the binaries the control plane, the tests and the local mode run. */
export interface Binaries {
  readonly etcd: string;
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubectl: string;
  readonly helm: string;
}

const repoRoot = resolve(import.meta.dirname, '../../..');

/** The per-machine cache the binaries are built into (`HAROUTER_CACHE` overrides it). */
export function binaryCacheDir(): string {
  return process.env.HAROUTER_CACHE ?? join(homedir(), '.cache', 'harouter');
}

/** Where each binary lives in the cache, whether or not it has been built yet. */
export function binaryPaths(cache = binaryCacheDir()): Binaries {
  const k8s = join(cache, `kubernetes-${KUBERNETES_VERSION}`, 'bin');
  return {
    etcd: join(cache, `etcd-${ETCD_VERSION}`, 'bin', 'etcd'),
    kubeApiserver: join(k8s, 'kube-apiserver'),
    kubeControllerManager: join(k8s, 'kube-controller-manager'),
    kubectl: join(k8s, 'kubectl'),
    helm: join(cache, `helm-${HELM_VERSION}`, 'bin', 'helm'),
  };
}

async function isExecutable(path: string): Promise<boolean> {
  try {
    await access(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Returns the binaries, building the missing ones first from the Go module proxy
 * with `test/tools/build-binaries.sh` (a few minutes on a cold machine, nothing on a
 * warm one; a file lock keeps concurrent callers from building twice). Throws with
 * the build's output when the build fails, so a caller fails loudly, never skips.
 */
export async function ensureBinaries(): Promise<Binaries> {
  const paths = binaryPaths();
  const missing = (await Promise.all(Object.values(paths).map(isExecutable))).some((ok) => !ok);
  if (missing) {
    try {
      await promisify(execFile)(
        'bash',
        [join(repoRoot, 'test', 'tools', 'build-binaries.sh'), 'etcd', 'kubernetes', 'helm'],
        {
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, HAROUTER_CACHE: binaryCacheDir() },
        },
      );
    } catch (error) {
      const failure = error as { stderr?: string; stdout?: string; message: string };
      throw new Error(
        `building the Kubernetes binaries failed (test/tools/build-binaries.sh):\n${failure.stderr ?? ''}${failure.stdout ?? ''}`,
      );
    }
  }
  return paths;
}
