import { join, resolve } from 'node:path';

/** The checkout's root, so tests, the chaos run and benchmarks find the programs wherever they run from. */
export const REPO = resolve(import.meta.dirname, '../..');

/**
 * The project's Node 24 (the `node` dev dependency): child processes run on it even where the
 * machine's own `node` is older, as `npm run` and `npx` do.
 */
export const NODE = join(REPO, 'node_modules', '.bin', 'node');
