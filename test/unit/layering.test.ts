import { readdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../src/generate-manifests.ts';

const SRC = join(REPO_ROOT, 'src');

/**
 * What each layer may import besides itself (directories under src/, or top-level
 * modules). Imports run downward only: the kinds and the runtime primitives at the
 * bottom, then the API clients, the controller machinery, the reconciler.
 */
const ALLOWED: Record<string, readonly string[]> = {
  api: [],
  runtime: [],
  kube: ['api', 'runtime', 'log.ts', 'metrics.ts'],
  controller: ['api', 'runtime', 'kube', 'log.ts', 'metrics.ts'],
  reconcile: ['api', 'runtime', 'kube', 'controller', 'log.ts', 'metrics.ts'],
  // harouterctl: cli -> agent -> report -> api (issue 10); report reads the kubeconfig with the
  // loader both programs share (kube/kubeconfig.ts, which imports nothing of the project).
  report: ['api', 'kube'],
  // keepalived's configuration, rendered from HARouters: pure, shared by the agent and local mode.
  keepalived: ['api'],
  // The agent watches HARouters with the operator's informer when it renders keepalived's files.
  agent: ['api', 'runtime', 'kube', 'keepalived', 'report', 'http', 'flag-values.ts', 'log.ts'],
};

/** Every relative import of the layer's modules, and how many modules were read. */
async function relativeImports(
  layer: string,
): Promise<{ files: number; imports: { file: string; target: string }[] }> {
  const out: { file: string; target: string }[] = [];
  let files = 0;
  for (const entry of await readdir(join(SRC, layer), { recursive: true })) {
    if (!entry.endsWith('.ts')) continue;
    const file = join(SRC, layer, entry);
    const text = await readFile(file, 'utf8');
    files++;
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) {
      const target = relative(SRC, resolve(join(file, '..'), match[1] as string));
      out.push({ file: relative(SRC, file), target });
    }
  }
  return { files, imports: out };
}

describe('layering of src/', () => {
  it.each(Object.keys(ALLOWED))('src/%s imports only the layers below it', async (layer) => {
    const { files, imports } = await relativeImports(layer);
    expect(files).toBeGreaterThan(0);
    const upward = imports.filter(({ target }) => {
      const top = target.split('/')[0] as string;
      return top !== layer && !(ALLOWED[layer] as readonly string[]).includes(top);
    });
    expect(upward).toEqual([]);
  });
});
