import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseObservedAt } from '../../src/api/index.ts';
import { main } from '../../src/cli/main.ts';

const ROUTER = '6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12';

async function run(argv: string[], env: Record<string, string | undefined> = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (chunk: Buffer) => out.push(chunk));
  stderr.on('data', (chunk: Buffer) => err.push(chunk));
  const code = await main(argv, env, { stdout, stderr });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** A kubeconfig whose context has a namespace; the server is never contacted. */
async function kubeconfig(namespace: string): Promise<string> {
  const path = join(tmpdir(), `harouterctl-unit-${process.pid}-${namespace}.kubeconfig`);
  await writeFile(
    path,
    `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: ${namespace}}}]
current-context: x
`,
  );
  return path;
}

describe('harouterctl main', () => {
  it('explains every flag and shows a keepalived.conf notify line in --help, on stdout', async () => {
    const { code, stdout, stderr } = await run(['--help']);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    for (const flag of [
      '--router',
      '--agent',
      '--namespace',
      '--state',
      '--priority',
      '--message',
      '--kubeconfig',
      '--timeout',
      '--deadline',
      '--max-attempts',
      '--log-level',
      '--dry-run',
    ]) {
      expect(stdout).toContain(flag);
    }
    expect(stdout).toContain('notify "/usr/local/bin/harouterctl report --router ');
    expect(stdout).toMatch(/DELETED -> Stopped/);
  });

  it('exits 2 on bad arguments with one JSON log line on stderr and nothing on stdout', async () => {
    const { code, stdout, stderr } = await run(
      ['report', '--router', 'nope', 'INSTANCE', 'VI_1', 'MASTER', '100'],
      {
        NODE_NAME: 'node-a',
      },
    );
    expect(code).toBe(2);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({ level: 50, msg: 'bad arguments; nothing was sent' });
    expect(lines[0]?.match(/"component"/g)).toHaveLength(1);
  });

  it('exits 2 when the kubeconfig cannot be read', async () => {
    const { code } = await run(
      ['report', '--router', ROUTER, '--state', 'Primary', '--kubeconfig', '/nonexistent/kubeconfig'],
      {
        NODE_NAME: 'node-a',
      },
    );
    expect(code).toBe(2);
  });

  it('prints the object with --dry-run, namespace from the kubeconfig context, observedAt to the nanosecond', async () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const path = await kubeconfig('routers');
    const { code, stdout } = await run(
      ['report', '--router', ROUTER, '--kubeconfig', path, '--dry-run', 'INSTANCE', 'VI_1', 'BACKUP', '90'],
      { NODE_NAME: 'node-c' },
    );
    expect(code).toBe(0);
    const object = JSON.parse(stdout);
    expect(object.metadata).toEqual({ name: `${ROUTER}.node-c`, namespace: 'routers' });
    expect(object.spec).toMatchObject({ routerId: ROUTER, agent: 'node-c', state: 'Backup', priority: 90 });
    expect(object.spec.observedAt).toMatch(/\.[0-9]{9}Z$/);
    const stamped = parseObservedAt(object.spec.observedAt) ?? 0n;
    expect(stamped).toBeGreaterThan(before - 5_000_000_000n);
    expect(stamped).toBeLessThanOrEqual(BigInt(Date.now()) * 1_000_000n);
  });

  it('prefers POD_NAMESPACE over the kubeconfig context', async () => {
    const path = await kubeconfig('routers');
    const { stdout } = await run(
      ['report', '--router', ROUTER, '--state', 'Stopped', '--kubeconfig', path, '--dry-run'],
      {
        NODE_NAME: 'node-c',
        POD_NAMESPACE: 'edge',
      },
    );
    expect(JSON.parse(stdout).metadata.namespace).toBe('edge');
  });
});
