/**
 * The programs as the image runs them, for the benchmarks: `bin/`, `src/` and
 * `bench/` compiled to JavaScript (`src/compile.ts`) into a folder of the run,
 * with this checkout's `node_modules` linked in. A benchmark that measured the
 * sources would count Node's TypeScript parser (about 30 MiB per process) in
 * every memory figure.
 */
import { readFileSync } from 'node:fs';
import { symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { compileTree } from '../src/compile.ts';
import { REPO } from '../test/support/paths.ts';

/** Compiles into `dir` and returns it; `join(dir, 'bin', 'harouterctl.js')` and `join(dir, 'bench', …)` then run. */
export async function compileForBenchmark(dir: string): Promise<string> {
  await compileTree(REPO, dir, ['bin', 'src', 'bench']);
  await symlink(join(REPO, 'node_modules'), join(dir, 'node_modules'));
  return dir;
}

/**
 * The Node flags the chart gives the operator container (`NODE_OPTIONS` in the
 * Deployment template, with `operator.heapLimitMiB` from the chart's defaults),
 * read from the chart itself so that the benchmark measures what users run.
 */
export function chartOperatorNodeFlags(): string[] {
  const chart = join(REPO, 'charts', 'harouter-operator');
  const values = parse(readFileSync(join(chart, 'values.yaml'), 'utf8')) as {
    operator: { heapLimitMiB: number };
  };
  const template = readFileSync(join(chart, 'templates', 'deployment.yaml'), 'utf8');
  const semiSpace = /--max-semi-space-size=(\d+)/.exec(template)?.[1];
  if (!semiSpace) throw new Error('the Deployment template sets no --max-semi-space-size');
  return [`--max-old-space-size=${values.operator.heapLimitMiB}`, `--max-semi-space-size=${semiSpace}`];
}
