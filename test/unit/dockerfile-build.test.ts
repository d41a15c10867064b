/**
 * The Dockerfile's build stage, run for real without a container engine: the files its COPY lines
 * take go to a fresh directory, `npm ci --omit=dev --ignore-scripts` installs there with Node 24
 * (the version the image uses), and both programs then answer `--help` by name through symlinks on
 * PATH, as `/usr/local/bin/harouter-operator` and `/usr/local/bin/harouterctl` do in the image.
 * Needs the npm registry or a warm npm cache.
 */
import { execFile } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot } from './chart-helpers.ts';

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

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'harouter-image-'));
  app = join(root, 'app');
  pathBin = join(root, 'usr-local-bin');
  await mkdir(app);
  await mkdir(pathBin);
  // COPY package.json package-lock.json ./ ; COPY bin/ ./bin/ ; COPY src/ ./src/
  for (const file of ['package.json', 'package-lock.json']) await cp(join(repoRoot, file), join(app, file));
  for (const dir of ['bin', 'src']) await cp(join(repoRoot, dir), join(app, dir), { recursive: true });
  // The image's node is Node 24 on PATH; npm itself runs on it.
  await symlink(join(repoRoot, 'node_modules', 'node', 'bin', 'node'), join(pathBin, 'node'));
  env = { ...process.env, PATH: `${pathBin}:${process.env.PATH}`, NODE_ENV: 'production' };
  delete env.NODE_OPTIONS;
  await run('npm', ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund'], {
    cwd: app,
    env,
    maxBuffer: 16 * 1024 * 1024,
  });
  // RUN chmod 0755 bin/*.js && ln -s /app/bin/<bin> /usr/local/bin/<name>
  const pkg = JSON.parse(await readFile(join(app, 'package.json'), 'utf8')) as {
    bin: Record<string, string>;
  };
  for (const [name, file] of Object.entries(pkg.bin)) {
    await chmod(join(app, file), 0o755).catch(() => undefined);
    await symlink(join(app, file), join(pathBin, name));
  }
}, 300_000);

afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

describe('the image build stage, run directly', () => {
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

  it('no TypeScript source sits under node_modules (Node refuses to strip types there)', async () => {
    const sources = (await readdir(join(app, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts'));
    expect(sources.length).toBeGreaterThan(0);
    expect(sources.filter((f) => f.split('/').includes('node_modules'))).toEqual([]);
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
