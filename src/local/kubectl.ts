import { spawn } from 'node:child_process';

/** How to run the control plane's kubectl: its absolute path, the kubeconfig and a private cache. */
export interface Kubectl {
  binary: string;
  kubeconfig: string;
  /** kubectl's discovery cache (kept inside the local directory, never in ~/.kube). */
  cacheDir: string;
}

/**
 * Runs `kubectl <args>` (with `input` on stdin) and resolves with stdout; rejects
 * with kubectl's stderr when it exits non-zero.
 */
export function kubectl(k: Kubectl, args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(k.binary, [`--kubeconfig=${k.kubeconfig}`, `--cache-dir=${k.cacheDir}`, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out).toString('utf8'));
      else
        reject(
          new Error(
            `kubectl ${args.slice(0, 3).join(' ')} failed (exit ${code}): ${Buffer.concat(err).toString('utf8').trim()}`,
          ),
        );
    });
    child.stdin.end(input ?? '');
  });
}

/** Server-side applies a list of manifests (JSON) with kubectl, as field manager `harouter-local`. */
export async function applyManifests(k: Kubectl, manifests: readonly object[]): Promise<void> {
  const list = { apiVersion: 'v1', kind: 'List', items: manifests };
  await kubectl(
    k,
    ['apply', '--server-side', '--force-conflicts', '--field-manager=harouter-local', '-f', '-'],
    JSON.stringify(list),
  );
}
