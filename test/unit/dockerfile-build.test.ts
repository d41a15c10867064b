/**
 * The Dockerfile, run for real without a container engine: each stage gets a fresh directory
 * standing for its `/`, with Node 24 (the version the image uses) as the base image's `node`; the
 * Dockerfile's own WORKDIR, ENV, COPY and RUN lines are then carried out in order (COPY from the
 * context honours .dockerignore, `COPY --from` reads the earlier stage's directory, RUN runs in
 * `sh` with absolute paths moved under the stage's directory). Both programs then answer
 * `--help` by name through the symlinks the runtime stage made on its PATH. Needs the npm registry
 * or a warm npm cache (the build's npm cache is a hard-linked copy of this machine's, so the
 * Dockerfile's `npm cache clean` empties only the copy).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './chart-helpers.ts';
import {
  dockerignoreExcludes,
  dockerignorePatterns,
  type Instruction,
  parseDockerfile,
  stages,
} from './dockerfile-helpers.ts';

const run = promisify(execFile);

interface Lock {
  packages: Record<string, { dev?: boolean; optional?: boolean }>;
}

let root: string;
let app: string;
let pathBin: string;
let env: NodeJS.ProcessEnv;

/** Top-level and nested package directories under node_modules (`node_modules/a/node_modules/b` included). */
async function installedPackages(dir: string, prefix = 'node_modules'): Promise<string[]> {
  const found: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(join(dir, prefix));
  } catch {
    return found;
  }
  for (const entry of entries) {
    if (entry.startsWith('.')) continue;
    const names = entry.startsWith('@')
      ? (await readdir(join(dir, prefix, entry))).map((n) => `${entry}/${n}`)
      : [entry];
    for (const name of names) {
      const path = `${prefix}/${name}`;
      found.push(path);
      found.push(...(await installedPackages(dir, `${path}/node_modules`)));
    }
  }
  return found;
}

/** Instructions that only set image metadata (test/unit/dockerfile.test.ts reads those). */
const METADATA = new Set(['ARG', 'LABEL', 'USER', 'EXPOSE', 'ENTRYPOINT', 'CMD']);

/** A path inside a stage, as a path on this machine. */
const inStage = (stageRoot: string, path: string) => join(stageRoot, posix.resolve('/', path));

/**
 * A RUN command with every absolute path moved under the stage's directory. Refuses what it
 * cannot confine (`..`, or an absolute path inside a word such as `--x=/y`), so that no line of
 * the Dockerfile can touch this machine's own files.
 */
function confined(stageRoot: string, instruction: Instruction): string {
  const words = instruction.args.split(/(\s+)/);
  if (words.some((w) => w.includes('..') || /[=:]\//.test(w))) {
    throw new Error(`Dockerfile line ${instruction.line}: RUN has a path this test cannot confine`);
  }
  return words.map((w) => (w.startsWith('/') ? `${stageRoot}${w}` : w)).join('');
}

/**
 * A RUN line that installs Debian packages is checked, not run (it would install them on this
 * machine): it must be `apt-get update && apt-get install -y --no-install-recommends PKG... && rm -rf
 * /var/lib/apt/lists/* ...`, and Debian must know every package it names.
 */
async function checkDebianPackages(instruction: Instruction): Promise<void> {
  const where = `Dockerfile line ${instruction.line}`;
  const match =
    /^apt-get update && apt-get install -y --no-install-recommends ([a-z0-9.+ -]+?) && rm -rf \/var\/lib\/apt\/lists\/\*( \S+)*$/.exec(
      instruction.args.replace(/\s+/g, ' '),
    );
  if (!match) throw new Error(`${where}: an apt-get line this test does not understand`);
  for (const pkg of (match[1] as string).split(' ')) {
    await run('apt-cache', ['show', '--no-all-versions', pkg]).catch(() => {
      throw new Error(`${where}: Debian has no package ${pkg}`);
    });
  }
}

/** `KEY=value ...` or `KEY value`. */
function envPairs(args: string): [string, string][] {
  if (!/^\S+=/.test(args)) {
    const [key, ...value] = args.split(/\s+/);
    return [[key as string, value.join(' ')]];
  }
  return args.split(/\s+/).map((pair) => {
    const at = pair.indexOf('=');
    return [pair.slice(0, at), pair.slice(at + 1)];
  });
}

/**
 * Carries out the Dockerfile's stages under `buildRoot` (one directory per stage, named by its
 * `AS` name) and returns the directories. Fails on an instruction it does not know, so a new
 * kind of step cannot be skipped unnoticed.
 */
async function buildImage(buildRoot: string, npmCache: string): Promise<Map<string, string>> {
  const text = await readFile(join(repoRoot, 'Dockerfile'), 'utf8');
  const ignore = dockerignorePatterns(await readFile(join(repoRoot, '.dockerignore'), 'utf8'));
  const stageRoots = new Map<string, string>();
  for (const [index, stage] of stages(parseDockerfile(text)).entries()) {
    const name = /\bAS\s+(\S+)$/i.exec(stage.from.args)?.[1] ?? String(index);
    const stageRoot = join(buildRoot, name);
    // The base image: Node 24 as /usr/local/bin/node.
    await mkdir(inStage(stageRoot, '/usr/local/bin'), { recursive: true });
    await symlink(
      join(repoRoot, 'node_modules', 'node', 'bin', 'node'),
      inStage(stageRoot, '/usr/local/bin/node'),
    );
    const stageEnv: NodeJS.ProcessEnv = {
      ...process.env,
      PATH: `${inStage(stageRoot, '/usr/local/bin')}:${process.env.PATH}`,
      npm_config_cache: npmCache,
    };
    delete stageEnv.NODE_OPTIONS;
    let workdir = '/';
    for (const instruction of stage.body) {
      const where = `Dockerfile line ${instruction.line}`;
      switch (instruction.keyword) {
        case 'WORKDIR':
          workdir = posix.resolve(workdir, instruction.args);
          await mkdir(inStage(stageRoot, workdir), { recursive: true });
          break;
        case 'ENV':
          for (const [key, value] of envPairs(instruction.args)) stageEnv[key] = value;
          break;
        case 'COPY': {
          const words = instruction.args.split(/\s+/);
          const from = words[0]?.startsWith('--from=') ? words.shift()?.slice('--from='.length) : undefined;
          if (words.some((w) => w.startsWith('--'))) throw new Error(`${where}: COPY flag not emulated`);
          const dest = words.pop() as string;
          const fromRoot = from === undefined ? undefined : stageRoots.get(from);
          if (from !== undefined && fromRoot === undefined) throw new Error(`${where}: no stage ${from}`);
          for (const source of words) {
            if (source.includes('..')) throw new Error(`${where}: COPY source outside the context`);
            const path = fromRoot
              ? inStage(fromRoot, posix.resolve(workdir, source))
              : join(repoRoot, source);
            if (!fromRoot && dockerignoreExcludes(ignore, relative(repoRoot, path))) {
              throw new Error(`${where}: ${source} is excluded by .dockerignore`);
            }
            const target = inStage(stageRoot, posix.resolve(workdir, dest));
            const isDir = (await stat(path).catch(() => undefined))?.isDirectory();
            if (isDir === undefined) throw new Error(`${where}: COPY source ${source} not found`);
            const into = !isDir && (dest.endsWith('/') || words.length > 1);
            await cp(path, into ? join(target, basename(path)) : target, {
              recursive: true,
              filter: (file) =>
                fromRoot !== undefined || !dockerignoreExcludes(ignore, relative(repoRoot, file)),
            });
          }
          break;
        }
        case 'RUN':
          if (instruction.args.startsWith('apt-get ')) {
            await checkDebianPackages(instruction);
            break;
          }
          await run('sh', ['-c', confined(stageRoot, instruction)], {
            cwd: inStage(stageRoot, workdir),
            env: stageEnv,
            maxBuffer: 16 * 1024 * 1024,
          }).catch((error: Error) => {
            throw new Error(`${where}: RUN failed: ${error.message}`);
          });
          break;
        default:
          if (!METADATA.has(instruction.keyword)) {
            throw new Error(`${where}: ${instruction.keyword} is not emulated by this test`);
          }
      }
    }
    stageRoots.set(name, stageRoot);
  }
  return stageRoots;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'harouter-image-'));
  const npmCache = join(root, 'npm-cache');
  const machineCache = join((await run('npm', ['config', 'get', 'cache'])).stdout.trim(), '_cacache');
  await mkdir(npmCache);
  // Hard links need one file system; without them the build fetches from the registry.
  if (existsSync(machineCache)) {
    await run('cp', ['-al', machineCache, join(npmCache, '_cacache')]).catch(() => undefined);
  }
  const stageRoots = await buildImage(join(root, 'stages'), npmCache);
  const runtime = [...stageRoots.values()].at(-1) as string;
  app = inStage(runtime, '/app');
  pathBin = inStage(runtime, '/usr/local/bin');
  env = { ...process.env, PATH: `${pathBin}:${process.env.PATH}`, NODE_ENV: 'production' };
  delete env.NODE_OPTIONS;
}, 300_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe("the image, built by carrying out the Dockerfile's steps", () => {
  it('installs the production dependencies and nothing from devDependencies', async () => {
    const lock = JSON.parse(await readFile(join(app, 'package-lock.json'), 'utf8')) as Lock;
    const installed = await installedPackages(app);
    const production = new Set(
      Object.entries(lock.packages)
        .filter(([path, meta]) => path !== '' && !meta.dev)
        .map(([path]) => path),
    );
    expect(installed.filter((p) => !production.has(p))).toEqual([]);
    for (const name of ['@kubernetes/client-node', 'zod', 'pino', 'prom-client', 'yaml']) {
      expect(installed, name).toContain(`node_modules/${name}`);
    }
    for (const name of [
      'vitest',
      'typescript',
      '@biomejs/biome',
      'node',
      'fast-check',
      '@prometheus-io/lezer-promql',
    ]) {
      expect(installed, name).not.toContain(`node_modules/${name}`);
    }
  });

  it('the runtime holds the compiled JavaScript only: a .js module for every source, no .ts file', async () => {
    const shipped = [
      ...(await readdir(join(app, 'src'), { recursive: true })).map((f) => `src/${f}`),
      ...(await readdir(join(app, 'bin'), { recursive: true })).map((f) => `bin/${f}`),
    ];
    const sources = (await readdir(join(repoRoot, 'src'), { recursive: true }))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/${f.replace(/\.ts$/, '.js')}`);
    expect(sources.length).toBeGreaterThan(50);
    expect(shipped.filter((f) => f.endsWith('.ts'))).toEqual([]);
    expect(sources.filter((f) => !shipped.includes(f))).toEqual([]);
  });

  it('harouterctl --help runs by name from PATH on Node 24', async () => {
    const { stdout, stderr } = await run('harouterctl', ['--help'], { cwd: root, env });
    expect(stdout + stderr).toMatch(/report/);
  }, 30_000);

  it('harouter-operator --help runs by name from PATH on Node 24 and lists the flags', async () => {
    const { stdout, stderr } = await run('harouter-operator', ['--help'], { cwd: root, env });
    const text = stdout + stderr;
    for (const flag of ['--metrics-bind-address', '--webhook-bind-address', '--cert-dir', '--leader-elect']) {
      expect(text).toContain(flag);
    }
  }, 30_000);

  it('runs on the Node version the image pins', async () => {
    const { stdout } = await run('node', ['--version'], { env });
    const pinned = (
      JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as {
        devDependencies: Record<string, string>;
      }
    ).devDependencies.node;
    expect(stdout.trim()).toBe(`v${pinned}`);
  });
});
