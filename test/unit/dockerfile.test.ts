/**
 * The Dockerfile and .dockerignore, read as text (no container engine runs here).
 * test/unit/dockerfile-build.test.ts runs the build stage's commands for real.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from './chart-helpers.ts';
import {
  dockerignoreExcludes,
  dockerignorePatterns,
  type Instruction,
  parseDockerfile,
  stages,
} from './dockerfile-helpers.ts';

const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const instructions = parseDockerfile(dockerfile);
const allStages = stages(instructions);
const finalStage = allStages.at(-1);
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
  devDependencies: Record<string, string>;
};
/** The global ARGs (before the first FROM) and their defaults: what FROM lines see. */
const firstFrom = instructions.findIndex((i) => i.keyword === 'FROM');
const args = new Map(
  instructions
    .slice(0, firstFrom)
    .filter((i) => i.keyword === 'ARG')
    .map((i) => i.args.split('=', 2) as [string, string | undefined])
    .map(([name, value]) => [name.trim(), value?.trim()]),
);

function expand(text: string): string {
  return text.replaceAll(
    /\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g,
    (_, name: string) => args.get(name) ?? `<${name}>`,
  );
}

describe('Dockerfile', () => {
  it('is multi-stage: a build stage and a runtime stage', () => {
    expect(allStages.length).toBeGreaterThanOrEqual(2);
    expect(allStages[0]?.from.args).toMatch(/\bAS build$/i);
  });

  it('uses Node 24 images pinned to the version package.json pins, never latest', () => {
    expect(args.get('NODE_VERSION')).toBe(pkg.devDependencies.node);
    expect(pkg.devDependencies.node).toMatch(/^24\.\d+\.\d+$/);
    for (const { from } of allStages) {
      const image = expand(from.args.split(/\s+/)[0] as string);
      expect(image, `line ${from.line}`).toMatch(
        /^(node:24\.\d+\.\d+-slim|gcr\.io\/distroless\/nodejs24-debian\d+:nonroot)$/,
      );
      expect(image).not.toMatch(/:latest$|^[^:@]+$/);
    }
  });

  it('installs production dependencies only, reproducibly, without install scripts', () => {
    const runs = allStages[0]?.body.filter((i) => i.keyword === 'RUN').map((i) => i.args) ?? [];
    const install = runs.find((r) => r.includes('npm ci'));
    expect(install).toBeDefined();
    expect(install).toContain('--omit=dev');
    expect(install).toContain('--ignore-scripts');
    expect(runs.join('\n')).not.toMatch(/npm install\b/);
    const copies = allStages[0]?.body.filter((i) => i.keyword === 'COPY').map((i) => i.args) ?? [];
    expect(copies[0]).toBe('package.json package-lock.json ./');
  });

  it('runtime stage copies the compiled programs, node_modules and package.json from the build stage', () => {
    const copies = finalStage?.body.filter((i) => i.keyword === 'COPY').map((i) => i.args) ?? [];
    for (const what of ['/app/node_modules', '/app/dist/bin', '/app/dist/src', '/app/package.json']) {
      expect(
        copies.some((c) => c.startsWith('--from=build ') && c.includes(what)),
        what,
      ).toBe(true);
    }
  });

  it('puts harouter-operator and harouterctl on PATH, pointing at the package.json bins', () => {
    const runs =
      finalStage?.body
        .filter((i) => i.keyword === 'RUN')
        .map((i) => i.args)
        .join('\n') ?? '';
    for (const [name, file] of Object.entries(pkg.bin)) {
      expect(runs).toContain(`ln -s /app/${file} /usr/local/bin/${name}`);
    }
    expect(Object.keys(pkg.bin).sort()).toEqual(['harouter-operator', 'harouterctl']);
    const entrypoint = finalStage?.body.find((i) => i.keyword === 'ENTRYPOINT');
    expect(JSON.parse(entrypoint?.args ?? 'null')).toEqual(['harouter-operator']);
  });

  it('runtime carries keepalived from Debian (the agent’s --run-keepalived), without recommends or apt lists', () => {
    const runs =
      finalStage?.body.filter((i) => i.keyword === 'RUN').map((i) => i.args.replace(/\s+/g, ' ')) ?? [];
    const apt = runs.filter((r) => r.includes('apt-get'));
    expect(apt).toHaveLength(1);
    expect(apt[0]).toMatch(/^apt-get update && apt-get install -y --no-install-recommends keepalived && /);
    expect(apt[0]).toContain('rm -rf /var/lib/apt/lists/*');
  });

  it('runs as a numeric non-root user, set last', () => {
    const users = finalStage?.body.filter((i) => i.keyword === 'USER') ?? [];
    expect(users.length).toBeGreaterThan(0);
    const user = users.at(-1)?.args ?? '';
    expect(user).toMatch(/^\d+(:\d+)?$/);
    expect(user.split(':').every((id) => Number(id) > 0)).toBe(true);
    expect(user).toBe('65532:65532');
    const afterUser = finalStage?.body.slice(finalStage.body.indexOf(users.at(-1) as Instruction) + 1) ?? [];
    expect(afterUser.filter((i) => i.keyword === 'RUN' || i.keyword === 'USER')).toEqual([]);
  });

  it('the chart runs the image as the same user', () => {
    const values = readFileSync(join(repoRoot, 'charts/harouter-operator/values.yaml'), 'utf8');
    expect(values).toMatch(/runAsUser: 65532/);
    expect(values).toMatch(/runAsGroup: 65532/);
  });

  it('carries the OCI labels', () => {
    const labels =
      finalStage?.body
        .filter((i) => i.keyword === 'LABEL')
        .map((i) => i.args)
        .join(' ') ?? '';
    for (const key of ['title', 'description', 'version', 'revision', 'created', 'licenses', 'source']) {
      expect(labels).toContain(`org.opencontainers.image.${key}=`);
    }
  });

  it('every variable a stage expands is declared in that stage (global ARGs reach FROM lines only)', () => {
    const undeclared: string[] = [];
    for (const stage of allStages) {
      const declared = new Set<string>();
      for (const instruction of stage.body) {
        for (const match of instruction.args.matchAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g)) {
          const name = match[1] as string;
          if (instruction.keyword !== 'RUN' && !declared.has(name))
            undeclared.push(`line ${instruction.line}: ${name}`);
        }
        if (instruction.keyword === 'ARG' || instruction.keyword === 'ENV') {
          declared.add(instruction.args.split(/[=\s]/, 1)[0] as string);
        }
      }
    }
    expect(undeclared).toEqual([]);
  });

  it('exposes the contract ports', () => {
    const expose = finalStage?.body.find((i) => i.keyword === 'EXPOSE')?.args.split(/\s+/);
    expect(expose).toEqual(['8080', '8081', '9443']);
  });
});

describe('.dockerignore', () => {
  const patterns = dockerignorePatterns(readFileSync(join(repoRoot, '.dockerignore'), 'utf8'));

  it.each([
    'package.json',
    'package-lock.json',
    'bin/harouter-operator.js',
    'bin/harouterctl.js',
    'src/metrics.ts',
    'src/api/index.ts',
  ])('sends %s to the build', (path) => {
    expect(dockerignoreExcludes(patterns, path)).toBe(false);
  });

  it.each([
    'node_modules/zod/package.json',
    '.git/config',
    '.local/admin.kubeconfig',
    'test/unit/dockerfile.test.ts',
    'charts/harouter-operator/values.yaml',
    'docs/helm.md',
    'src/node_modules/x.js',
    'Dockerfile',
    'npm-debug.log',
  ])('keeps %s out of the build', (path) => {
    expect(dockerignoreExcludes(patterns, path)).toBe(true);
  });

  it('the matcher follows the last matching rule', () => {
    expect(dockerignoreExcludes(['*', '!src/'], 'src/a.ts')).toBe(false);
    expect(dockerignoreExcludes(['!src/', '*'], 'src/a.ts')).toBe(true);
    expect(dockerignoreExcludes(['**/*.log'], 'a/b/c.log')).toBe(true);
    expect(dockerignoreExcludes(['**/*.log'], 'c.log')).toBe(true);
  });
});
