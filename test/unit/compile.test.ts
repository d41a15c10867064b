import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileTree, toJavaScript } from '../../src/compile.ts';
import { NODE, REPO } from '../support/paths.ts';

const run = promisify(execFile);

describe('toJavaScript', () => {
  it('erases types in place: every line and column of the source is kept', () => {
    const source = [
      "import type { A } from './a.ts';",
      'export function f(x: number, y?: A): string {',
      '  const z = x as unknown as number;',
      '  return `${z}`;',
      '}',
    ].join('\n');
    const js = toJavaScript(source);
    expect(js.split('\n')).toHaveLength(5);
    expect(js).not.toContain(': number');
    expect(js.split('\n')[2]?.indexOf('const z')).toBe(2);
    expect(js.split('\n')[3]).toBe('  return `${z}`;');
  });

  it('points relative imports, re-exports and import() of .ts files at .js files', () => {
    const js = toJavaScript(
      [
        "import { a } from './a.ts';",
        "import '../side-effect.ts';",
        'export { b } from "./dir/b.ts";',
        "export * from '../c.ts';",
        "const d = await import('./d.ts');",
      ].join('\n'),
    );
    expect(js).toContain("from './a.js'");
    expect(js).toContain("import '../side-effect.js'");
    expect(js).toContain('from "./dir/b.js"');
    expect(js).toContain("from '../c.js'");
    expect(js).toContain("import('./d.js')");
    expect(js).not.toMatch(/\.ts['"]/);
  });

  it('leaves bare specifiers and .ts text outside imports alone', () => {
    const js = toJavaScript(
      ["import { z } from 'zod';", "const path = './x.ts';", "const note = 'see from ./y.ts';"].join('\n'),
    );
    expect(js).toContain("from 'zod'");
    expect(js).toContain("const path = './x.ts'");
    expect(js).toContain("'see from ./y.ts'");
  });

  it('refuses TypeScript that cannot be erased', () => {
    expect(() => toJavaScript('enum E { A }')).toThrow();
  });
});

describe('compileTree on this repository', () => {
  let out: string;
  let files: string[];

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'harouter-dist-'));
    files = await compileTree(REPO, out);
    await symlink(join(REPO, 'node_modules'), join(out, 'node_modules'));
  }, 60_000);

  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it('writes one .js module per source and the package manifest, no .ts file', () => {
    expect(files).toContain('package.json');
    expect(files).toContain('bin/harouterctl.js');
    expect(files).toContain('src/operator.js');
    expect(files).toContain('src/agent/agent.js');
    expect(files.filter((f) => f.endsWith('.ts'))).toEqual([]);
  });

  it('leaves no relative import of a .ts file in any module', async () => {
    const offending: string[] = [];
    for (const file of files.filter((f) => f.endsWith('.js'))) {
      const text = await readFile(join(out, file), 'utf8');
      if (/(from\s*|import\s*\(\s*|import\s+)['"]\.{1,2}\/[^'"\n]*\.ts['"]/.test(text)) offending.push(file);
    }
    expect(offending).toEqual([]);
  });

  it('both programs run from the output', async () => {
    const ctl = await run(NODE, [join(out, 'bin', 'harouterctl.js'), 'agent', '--help']);
    expect(ctl.stdout).toContain('vrrp_notify_fifo');
    const operator = await run(NODE, [join(out, 'bin', 'harouter-operator.js'), '--help']);
    expect(operator.stdout).toContain('--leader-elect');
  }, 30_000);
});
