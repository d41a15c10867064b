import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  inClusterConfig,
  KubeconfigError,
  loadConnection,
  simpleConfig,
  simpleConnection,
} from '../../src/kube/kubeconfig.ts';
import { loadTransport } from '../../src/report/kubeconfig.ts';
import { UsageError } from '../../src/report/usage-error.ts';

// The kubeconfig loader both programs share (src/kube/kubeconfig.ts); harouterctl's
// `loadTransport` turns its errors into usage errors (exit 2).

const doc = (cluster: Record<string, unknown>, user: Record<string, unknown>, namespace?: string) => ({
  apiVersion: 'v1',
  kind: 'Config',
  'current-context': 'here',
  contexts: [
    { name: 'other', context: { cluster: 'c2', user: 'u2' } },
    { name: 'here', context: { cluster: 'c1', user: 'u1', ...(namespace ? { namespace } : {}) } },
  ],
  clusters: [
    { name: 'c2', cluster: { server: 'https://wrong:1' } },
    { name: 'c1', cluster },
  ],
  users: [
    { name: 'u2', user: { token: 'wrong' } },
    { name: 'u1', user },
  ],
});

describe('simpleConfig', () => {
  it('reads the current context: server, namespace, CA data, token', () => {
    expect(
      simpleConfig(
        doc(
          { server: 'https://127.0.0.1:6443', 'certificate-authority-data': 'Q0E=' },
          { token: 't' },
          'demo',
        ),
        '/etc/k',
      ),
    ).toEqual({ server: 'https://127.0.0.1:6443', namespace: 'demo', ca: { data: 'Q0E=' }, token: 't' });
  });

  it('makes file paths relative to the kubeconfig directory, as kubectl does', () => {
    expect(
      simpleConfig(
        doc(
          { server: 'https://h:6443', 'certificate-authority': 'pki/ca.crt', 'tls-server-name': 'api' },
          { 'client-certificate': '/abs/admin.crt', 'client-key': 'admin.key', tokenFile: 'token' },
        ),
        '/etc/k',
      ),
    ).toEqual({
      server: 'https://h:6443',
      ca: { file: '/etc/k/pki/ca.crt' },
      servername: 'api',
      cert: { file: '/abs/admin.crt' },
      key: { file: '/etc/k/admin.key' },
      tokenFile: '/etc/k/token',
    });
  });

  it.each([
    [{ server: 'https://h', 'proxy-url': 'http://proxy:3128' }, { token: 't' }],
    [{ server: 'https://h' }, { exec: { command: 'aws' } }],
    [{ server: 'https://h' }, { 'auth-provider': { name: 'oidc' } }],
    [{ server: 'https://h' }, { username: 'u', password: 'p' }],
  ])('leaves what it does not handle to client-node (%o, %o)', (cluster, user) => {
    expect(simpleConfig(doc(cluster, user), '/')).toBe('fallback');
  });

  it('refuses a kubeconfig without a current context or server', () => {
    expect(() => simpleConfig({ 'current-context': 'x', contexts: [] }, '/')).toThrow(KubeconfigError);
    expect(() => simpleConfig(doc({}, { token: 't' }), '/')).toThrow(/server/);
    expect(() => simpleConfig('text', '/')).toThrow(KubeconfigError);
  });
});

describe('simpleConnection', () => {
  it('re-reads the token file on every attempt (the kubelet rotates it)', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hctl-kc-'));
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'first\n');
    const transport = simpleConnection({
      server: 'https://h',
      tokenFile,
      ca: { data: Buffer.from('CA').toString('base64') },
    });
    expect(await transport.requestOptions()).toMatchObject({
      ca: Buffer.from('CA'),
      headers: { Authorization: 'Bearer first' },
    });
    await writeFile(tokenFile, 'second\n');
    expect((await transport.requestOptions()).headers).toEqual({ Authorization: 'Bearer second' });
  });

  it('passes skip-verify and the TLS server name', async () => {
    const options = await simpleConnection({
      server: 'https://h',
      insecure: true,
      servername: 'api',
      token: 't',
    }).requestOptions();
    expect(options).toMatchObject({ rejectUnauthorized: false, servername: 'api' });
  });
});

describe('inClusterConfig', () => {
  it('reads the service account directory and KUBERNETES_SERVICE_HOST/PORT', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hctl-sa-'));
    await writeFile(join(dir, 'namespace'), 'routers');
    expect(
      inClusterConfig({ KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' }, dir),
    ).toEqual({
      server: 'https://10.0.0.1:443',
      ca: { file: join(dir, 'ca.crt') },
      tokenFile: join(dir, 'token'),
      namespace: 'routers',
    });
    expect(
      inClusterConfig({ KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, dir).server,
    ).toBe('https://[fd00::1]:6443');
  });
});

describe('loadTransport', () => {
  it('turns unreadable credentials into a usage error', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hctl-load-'));
    const path = join(dir, 'config');
    await writeFile(path, JSON.stringify(doc({ server: 'https://h' }, { tokenFile: 'missing-token' })));
    await expect(loadTransport(path, {})).rejects.toThrow(UsageError);
    await expect(loadTransport(join(dir, 'absent'), {})).rejects.toThrow(UsageError);
    // --kubeconfig is one file: a list is not handed to client-node's defaults.
    await expect(loadTransport(`${join(dir, 'absent')}:${path}`, {})).rejects.toThrow(UsageError);
  });

  it('hands what it does not handle (basic auth) to client-node, keeping server and namespace', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hctl-basic-'));
    const path = join(dir, 'config');
    await writeFile(
      path,
      JSON.stringify(doc({ server: 'https://h:6443' }, { username: 'u', password: 'p' }, 'ns1')),
    );
    const transport = await loadTransport(path, {});
    expect(transport).toMatchObject({ server: 'https://h:6443', namespace: 'ns1' });
    expect(await transport.requestOptions()).toMatchObject({ auth: 'u:p' });
  }, 30_000);
});

describe('loadConnection', () => {
  const plain = (server: string) =>
    `apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "${server}"}}]\n` +
    'contexts: [{name: x, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n' +
    'current-context: x\n';

  it('prefers the explicit path over KUBECONFIG, then KUBECONFIG over the service account', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kc-order-'));
    await writeFile(join(dir, 'a'), plain('https://a:6443'));
    await writeFile(join(dir, 'b'), plain('https://b:6443'));
    await writeFile(join(dir, 'token'), 'sa-token\n');
    await writeFile(join(dir, 'ca.crt'), 'CA');
    const inCluster = { KUBERNETES_SERVICE_HOST: '10.0.0.1', KUBERNETES_SERVICE_PORT: '443' };
    const env = { ...inCluster, KUBECONFIG: join(dir, 'b') };
    expect((await loadConnection(join(dir, 'a'), env, dir)).server).toBe('https://a:6443');
    expect((await loadConnection(undefined, env, dir)).server).toBe('https://b:6443');
    const sa = await loadConnection(undefined, inCluster, dir);
    expect(sa.server).toBe('https://10.0.0.1:443');
    expect((await sa.requestOptions()).headers).toEqual({ Authorization: 'Bearer sa-token' });
  });

  it('fails with a KubeconfigError that names the problem, not the content', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'kc-bad-'));
    await writeFile(
      join(dir, 'config'),
      'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n',
    );
    await expect(loadConnection(join(dir, 'config'), {})).rejects.toThrow(KubeconfigError);
    await expect(loadConnection(join(dir, 'config'), {})).rejects.toThrow(/no current context/);
    await expect(loadConnection(join(dir, 'absent'), {})).rejects.toThrow(KubeconfigError);
  });
});
