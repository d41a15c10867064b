import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { binaryCacheDir } from '../controlplane/index.ts';

const repoRoot = resolve(import.meta.dirname, '../../..');

const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

/**
 * The operator image `npm run image` builds (tagged with package.json's version); a
 * chart on the real node uses it with `pullPolicy: Never`.
 */
export const OPERATOR_IMAGE = { repository: 'localhost/harouter-operator', tag: version } as const;

/** The archives `npm run image` writes (docker archives that `ctr images import` reads). */
export function imageArchives(cache = binaryCacheDir()) {
  return {
    operator: join(cache, 'images', 'harouter-operator.tar'),
    sandbox: join(cache, 'images', 'pause.tar'),
  };
}

/**
 * Runs `npm run image` (test/tools/build-image.sh): the Dockerfile built with buildah
 * over a local stand-in of its base (made once, about 4 min), then the archives
 * written (about 20 s when nothing changed). Its own lines go to `progress`; rejects
 * with the tail of its output when it fails.
 */
export function buildImage(progress: (line: string) => void): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn('bash', [join(repoRoot, 'test', 'tools', 'build-image.sh')], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, HAROUTER_CACHE: binaryCacheDir() },
    });
    const output: string[] = [];
    const keep = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        output.push(line);
        if (output.length > 200) output.shift();
        if (line.startsWith('build-image:')) progress(line);
      }
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', (error) => fail(new Error(`could not run build-image.sh: ${error.message}`)));
    child.on('close', (code) =>
      code === 0
        ? done()
        : fail(new Error(`npm run image failed (exit ${code}):\n${output.slice(-60).join('\n')}`)),
    );
  });
}
