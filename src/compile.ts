/**
 * Writes the programs as plain JavaScript: every `.ts` file under `bin/` and
 * `src/` becomes a `.js` file under `dist/` (or `--out DIR`), its types erased by
 * Node's own `stripTypeScriptTypes` and its relative `.ts` imports pointed at the
 * `.js` files. `npm run build` runs it; the image and the benchmarks run its output.
 *
 * Why: type stripping at run time loads Node's TypeScript parser into every
 * process and keeps its memory, about 30 MiB of resident memory in the node agent
 * (107 MiB idle from the sources, 78 MiB from this output), paid once per node and
 * per operator replica. Erasure replaces types with blanks, so every line and
 * column of the output is that of its source and stack traces need no source map.
 * The checkout itself still runs from the sources (`npx harouterctl`), with no
 * build step.
 */
import { copyFile, mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { stripTypeScriptTypes } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The source folders compiled, relative to the repository root. */
export const COMPILED_DIRECTORIES = ['bin', 'src'] as const;

const RELATIVE_TS_SPECIFIER = /(\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)(['"])(\.{1,2}\/[^'"\n]*?)\.ts\2/g;

/**
 * One module's JavaScript: types erased (positions kept), and each relative
 * import or export of a `.ts` file (static or `import()`) pointed at its `.js`
 * twin. Bare specifiers and `.ts` text anywhere else are left alone. Pure;
 * throws on TypeScript that cannot be erased (enums, namespaces), which
 * `erasableSyntaxOnly` already refuses at type-check time.
 */
export function toJavaScript(typescript: string): string {
  const erased = stripTypeScriptTypes(typescript, { mode: 'strip' });
  return erased.replace(
    RELATIVE_TS_SPECIFIER,
    (_match, lead, quote, path) => `${lead}${quote}${path}.js${quote}`,
  );
}

async function* typescriptFiles(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* typescriptFiles(path);
    else if (entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) yield path;
    else if (entry.isFile() && entry.name.endsWith('.js')) yield path;
  }
}

/**
 * Compiles `directories` of `root` (by default `COMPILED_DIRECTORIES`; the
 * benchmarks add `bench`) into `outDir` (emptied first), with
 * a copy of `package.json` (the module type, and the version the programs print),
 * so that `outDir` is laid out as the image's `/app`; returns the files written,
 * relative to `outDir`. `.js` files (the `bin/`
 * shims) get the same specifier rewrite as compiled modules.
 */
export async function compileTree(
  root: string,
  outDir: string,
  directories: readonly string[] = COMPILED_DIRECTORIES,
): Promise<string[]> {
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });
  await copyFile(join(root, 'package.json'), join(outDir, 'package.json'));
  const written: string[] = ['package.json'];
  for (const folder of directories) {
    for await (const source of typescriptFiles(join(root, folder))) {
      const text = await readFile(source, 'utf8');
      const output = source.endsWith('.ts')
        ? toJavaScript(text)
        : text.replace(RELATIVE_TS_SPECIFIER, '$1$2$3.js$2');
      const target = join(outDir, relative(root, source)).replace(/\.ts$/, '.js');
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, output, { mode: source.startsWith(join(root, 'bin')) ? 0o755 : 0o644 });
      written.push(relative(outDir, target));
    }
  }
  return written.sort();
}

/** The repository root (this file lives in `src/`). */
const REPOSITORY_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const outFlag = process.argv.indexOf('--out');
  const outDir = outFlag > 0 ? (process.argv[outFlag + 1] ?? '') : join(REPOSITORY_ROOT, 'dist');
  if (outDir === '') {
    process.stderr.write('usage: node src/compile.ts [--out DIR]\n');
    process.exit(2);
  }
  const files = await compileTree(REPOSITORY_ROOT, outDir);
  process.stdout.write(`compiled ${files.length} files into ${outDir}\n`);
}
