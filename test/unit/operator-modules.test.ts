import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { selfSignedCertificate } from '../../src/http/self-signed.ts';
import { NODE, REPO } from '../support/paths.ts';

/**
 * issue 12: the operator process never loads @kubernetes/client-node (about 80 MiB
 * of resident memory for its generated models) when its kubeconfig is a plain
 * token or client-certificate one. The real binary runs in a child process with a
 * module recorder preloaded, against a stand-in API server (HTTPS: empty lists, held
 * watches, a Lease to create), until its caches synced, it leads, and its webhook
 * serves; then it stops on SIGTERM and the recorder lists every module it loaded.
 */
const BIN = join(REPO, 'bin', 'harouter-operator.js');
const RECORDER = join(REPO, 'test', 'support', 'record-modules.ts');
const CLIENT_NODE = '/node_modules/@kubernetes/client-node/';

let server: Server;
let dir: string;
let caFile: string;
let pair: { cert: string; key: string };
const requests: Array<{ method: string; url: string; authorization?: string; clientCert: boolean }> = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'operator-modules-'));
  pair = selfSignedCertificate(['127.0.0.1', 'localhost']);
  caFile = join(dir, 'ca.crt');
  await writeFile(caFile, pair.cert);
  // The webhook's serving certificate, so that the admission side starts too.
  await writeFile(join(dir, 'tls.crt'), pair.cert);
  await writeFile(join(dir, 'tls.key'), pair.key);
  server = createServer({ ...pair, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    const socket = req.socket as { getPeerCertificate?: () => { raw?: Buffer } };
    requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization,
      clientCert: Boolean(socket.getPeerCertificate?.()?.raw),
    });
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.searchParams.get('watch')) {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(`${JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: '2' } } })}\n`);
      return; // held open, as a real watch
    }
    // One Lease (leader election) is not there yet; the list of VRID claims is empty, as every list.
    const lease = url.pathname.includes('/leases/');
    if (req.method === 'GET' && lease) return json(404, { kind: 'Status', code: 404, reason: 'NotFound' });
    if (req.method === 'GET')
      return json(200, { apiVersion: 'v1', kind: 'List', metadata: { resourceVersion: '1' }, items: [] });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as { metadata?: object };
      json(req.method === 'POST' ? 201 : 200, {
        ...body,
        metadata: { ...body.metadata, resourceVersion: '3' },
      });
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

async function kubeconfig(name: string, user: Record<string, string>, cluster: Record<string, string>) {
  const path = join(dir, `${name}.kubeconfig`);
  const server_ = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  await writeFile(
    path,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      'current-context': 'x',
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      clusters: [{ name: 'c', cluster: { server: server_, ...cluster } }],
      users: [{ name: 'u', user }],
    }),
  );
  return path;
}

/** Runs the operator until it is fully up, stops it, and returns the modules it loaded. */
async function modulesOfOperator(kubeconfigPath: string): Promise<{ modules: string[]; log: string }> {
  const record = join(dir, `modules-${Math.random().toString(36).slice(2)}.txt`);
  const child = spawn(
    NODE,
    [
      '--import',
      RECORDER,
      BIN,
      `--kubeconfig=${kubeconfigPath}`,
      '--metrics-bind-address=127.0.0.1:0',
      '--health-probe-bind-address=127.0.0.1:0',
      '--webhook-bind-address=127.0.0.1:0',
      `--cert-dir=${dir}`,
      '--leader-election-namespace=default',
      '--identity=modules-test',
    ],
    { env: { PATH: process.env.PATH ?? '', HOME: dir, HAROUTER_RECORD_MODULES: record }, stdio: 'pipe' },
  );
  let log = '';
  child.stdout.on('data', (c: Buffer) => {
    log += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    log += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const end = Date.now() + 45_000;
  const up = () =>
    ['caches synced: starting the reconcile workers', 'acquired the lease', 'webhook serving'].every((m) =>
      log.includes(m),
    );
  while (!up()) {
    if (Date.now() > end || child.exitCode !== null) {
      child.kill('SIGKILL');
      throw new Error(`the operator did not come up:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  expect(await exited).toBe(0);
  const modules = (await readFile(record, 'utf8')).split('\n').filter(Boolean);
  return { modules, log };
}

describe('the operator process without @kubernetes/client-node', { timeout: 60_000 }, () => {
  it.each([
    [
      'a token and a CA file',
      () => kubeconfig('token', { token: 'plain-token' }, { 'certificate-authority': caFile }),
    ],
    [
      'a client certificate and CA data',
      () =>
        kubeconfig(
          'cert',
          {
            'client-certificate-data': Buffer.from(pair.cert).toString('base64'),
            'client-key-data': Buffer.from(pair.key).toString('base64'),
          },
          { 'certificate-authority-data': Buffer.from(pair.cert).toString('base64') },
        ),
    ],
  ])('%s: lists, watches, leads and serves without loading it', async (_, make) => {
    requests.length = 0;
    const { modules } = await modulesOfOperator(await make());
    // The recorder saw the operator's own modules and its dependencies...
    expect(modules.some((m) => m.endsWith('/src/operator.ts'))).toBe(true);
    expect(modules.some((m) => m.endsWith('/src/kube/transport.ts'))).toBe(true);
    expect(modules.some((m) => m.includes('/node_modules/prom-client/'))).toBe(true);
    // ...and nothing of client-node.
    expect(modules.filter((m) => m.includes(CLIENT_NODE))).toEqual([]);
    // The stand-in API server was really used: lists, watches and the lease, authenticated.
    expect(requests.some((r) => r.url.includes('watch=1'))).toBe(true);
    expect(requests.some((r) => r.method === 'POST' && r.url.includes('/leases'))).toBe(true);
    expect(
      requests.every((r) => r.authorization === 'Bearer plain-token' || (!r.authorization && r.clientCert)),
    ).toBe(true);
  });

  it('loads it only for what the simple loader leaves to it (here basic auth): the recorder sees it', async () => {
    const path = await kubeconfig(
      'basic',
      { username: 'u', password: 'p' },
      { 'certificate-authority': caFile },
    );
    const { modules } = await modulesOfOperator(path);
    expect(modules.some((m) => m.includes(CLIENT_NODE))).toBe(true);
  });
});
