/**
 * `harouterctl report` as keepalived runs it: the real CLI in a child process,
 * with kubeconfigs holding real pod-bound service-account tokens, against the
 * run's real kube-apiserver with the CRDs, RBAC and the operator's admission
 * webhook (served in-process, scoped to this file's namespace). TCP proxies in
 * front of the API server inject what the real server cannot produce on demand:
 * an outage, and a delay that makes two reports arrive out of order.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RbacAuthorizationV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  compareObservedAt,
  GROUP,
  HAROUTER_STATE,
  type HARouterState,
  VERSION,
} from '../../src/api/index.ts';
import { freePort } from '../../src/local/controlplane/index.ts';
import { sendApply } from '../../src/report/apply.ts';
import { loadTransport } from '../../src/report/kubeconfig.ts';
import {
  type ClusterFixture,
  createRouter,
  installCrds,
  installTestWebhook,
  kubeRequest,
  type TestWebhook,
  waitFor,
} from '../support/admission-cases.ts';
import {
  adminKubeConfig,
  controlPlaneInfo,
  createTestNamespace,
  kubeConfigForToken,
  mintServiceAccountToken,
} from '../support/index.ts';
import { NODE, REPO } from '../support/paths.ts';

const CLI = join(REPO, 'bin', 'harouterctl.js');
const ROUTER = '0b6f4f64-2d0e-4c55-8f43-3c2b8e1a9d70';

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
  /** The JSON log lines of stderr. */
  logs: Record<string, unknown>[];
}

/** Runs `node bin/harouterctl.js <args>` with only the given environment (plus PATH and HOME). */
/** Runs harouterctl; `onStderr` sees its stderr as it arrives (to act on a log line mid-run). */
function runCli(
  args: string[],
  env: Record<string, string> = {},
  onStderr?: (soFar: string) => void,
): Promise<CliRun> {
  const started = performance.now();
  return new Promise((done, fail) => {
    const child = spawn(NODE, [CLI, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      onStderr?.(stderr);
    });
    child.on('error', fail);
    child.on('close', (code) => {
      const logs = stderr
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      done({ code, stdout, stderr, ms: performance.now() - started, logs });
    });
  });
}

/** The final log line of a run (the outcome). */
const last = (run: CliRun) => run.logs.at(-1) ?? {};

/** Writes a kubeconfig file for a token, optionally with another server URL (a proxy). */
async function kubeconfigFile(dir: string, name: string, token: string, namespace: string, server?: string) {
  const config = JSON.parse(kubeConfigForToken(token, namespace).exportConfig()) as {
    clusters: { cluster: { server: string } }[];
  };
  if (server) for (const c of config.clusters) c.cluster.server = server;
  const path = join(dir, `${name}.kubeconfig`);
  await writeFile(path, JSON.stringify(config), { mode: 0o600 });
  return path;
}

/** A TCP proxy to the API server; `hold` keeps new connections waiting until `release()`. */
async function startProxy(port: number, target: URL, options: { hold?: boolean } = {}) {
  let held: (() => void)[] = [];
  let holding = options.hold ?? false;
  let connections = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    connections++;
    sockets.add(client);
    const forward = () => {
      const upstream = createConnection({ host: target.hostname, port: Number(target.port) });
      sockets.add(upstream);
      client.pipe(upstream).pipe(client);
      const end = () => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
    };
    if (holding) held.push(forward);
    else forward();
  });
  await new Promise<void>((ready) => server.listen(port, '127.0.0.1', ready));
  return {
    connections: () => connections,
    release() {
      holding = false;
      for (const forward of held) forward();
      held = [];
    },
    close: () =>
      new Promise<void>((closed) => {
        for (const s of sockets) s.destroy();
        server.close(() => closed());
      }),
  };
}

function statePath(namespace: string, agent: string): string {
  return `/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${HAROUTER_STATE.plural}/${ROUTER}.${agent}`;
}

async function readState(
  namespace: string,
  agent: string,
): Promise<HARouterState & { metadata: { managedFields?: { manager: string; operation: string }[] } }> {
  const res = await kubeRequest(adminKubeConfig(), 'GET', statePath(namespace, agent));
  expect(res.status).toBe(200);
  return res.body as never;
}

describe('harouterctl report against the real API server', () => {
  let namespace: string;
  let dir: string;
  let server: URL;
  let webhook: TestWebhook | undefined;
  const tokens: Record<string, string> = {};
  const kubeconfigs: Record<string, string> = {};

  /** A kubeconfig file with `node`'s reporter token that talks to 127.0.0.1:`port` (a proxy or nothing). */
  const kubeconfigVia = (name: string, node: string, port: number) =>
    kubeconfigFile(dir, name, tokens[node] as string, namespace, `https://127.0.0.1:${port}`);

  beforeAll(async () => {
    namespace = await createTestNamespace('harouterctl');
    dir = await mkdtemp(join(tmpdir(), 'harouterctl-it-'));
    server = new URL(controlPlaneInfo().server);
    const admin = adminKubeConfig();
    await installCrds(admin);

    // The reporters' ClusterRole of the contract, bound in this namespace to the reporter service account.
    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    const roleName = `harouter-reporter-${namespace}`;
    await rbac.createClusterRole({
      body: {
        metadata: { name: roleName },
        rules: [
          {
            apiGroups: [GROUP],
            resources: [HAROUTER_STATE.plural],
            verbs: ['get', 'create', 'patch', 'update', 'delete'],
          },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: {
        metadata: { name: 'reporter' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: roleName },
        subjects: [{ kind: 'ServiceAccount', name: 'reporter', namespace }],
      },
    });

    for (const node of ['node-a', 'node-b']) {
      tokens[node] = await mintServiceAccountToken({
        namespace,
        serviceAccount: 'reporter',
        pod: { name: `reporter-${node}`, nodeName: node },
      });
      kubeconfigs[node] = await kubeconfigFile(dir, node, tokens[node] as string, namespace);
    }
    tokens.stranger = await mintServiceAccountToken({
      namespace,
      serviceAccount: 'stranger',
      pod: { name: 'stranger-a', nodeName: 'node-a' },
    });
    kubeconfigs.stranger = await kubeconfigFile(dir, 'stranger', tokens.stranger as string, namespace);

    // The operator's webhook, in-process (the admission tests' installer), for this namespace only.
    const config = {
      reporterServiceAccounts: [`${namespace}/reporter`],
      allowedUsers: [],
      allowedGroups: [],
      operatorServiceAccount: `${namespace}/operator`,
      requireNodeBinding: true,
    };
    // The router the reports are about, listing both nodes (the webhook's membership rule).
    await createRouter(admin, namespace, ROUTER, ['node-a', 'node-b']);
    webhook = await installTestWebhook({
      namespace,
      admin,
      config,
      clients: {} as ClusterFixture['clients'],
      probeRouterId: ROUTER,
    });
    // Configurations are picked up asynchronously: wait until a dry run for the wrong node is denied.
    const reporterA = await loadTransport(kubeconfigs['node-a'] as string);
    await waitFor('the webhook to intercept', async () => {
      const probe = {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: HAROUTER_STATE.kind,
        metadata: { name: `${ROUTER}.node-b`, namespace },
        spec: { routerId: ROUTER, agent: 'node-b', state: 'Primary', observedAt: '2026-01-01T00:00:00Z' },
      } as HARouterState;
      const result = await sendApply(reporterA, probe, 5000, true);
      return result.kind === 'response' && result.status === 403 && result.body.includes('NodeBinding')
        ? true
        : undefined;
    });
  });

  afterAll(async () => {
    await webhook?.uninstall();
    await rm(dir, { recursive: true, force: true });
  });

  it('applies MASTER then BACKUP in order, by server-side apply as harouterctl', async () => {
    const master = await runCli(
      [
        'report',
        '--kubeconfig',
        kubeconfigs['node-a'] as string,
        '--router',
        ROUTER,
        'INSTANCE',
        'VI_1',
        'MASTER',
        '150',
      ],
      {
        NODE_NAME: 'node-a',
      },
    );
    expect(master.code, master.stderr).toBe(0);
    expect(master.stdout).toBe('');
    expect(last(master)).toMatchObject({ msg: 'report applied', namespace, state: 'Primary' });
    const first = await readState(namespace, 'node-a');
    expect(first.spec).toMatchObject({
      routerId: ROUTER,
      agent: 'node-a',
      state: 'Primary',
      priority: 150,
      message: 'keepalived INSTANCE VI_1 MASTER',
    });
    expect(first.spec.observedAt).toBe(last(master).observedAt);
    expect(first.spec.observedAt).toMatch(/\.[0-9]{9}Z$/);
    expect(
      first.metadata.managedFields?.some((f) => f.manager === 'harouterctl' && f.operation === 'Apply'),
    ).toBe(true);

    const backup = await runCli(
      [
        'report',
        '--kubeconfig',
        kubeconfigs['node-a'] as string,
        '--router',
        ROUTER,
        'INSTANCE',
        'VI_1',
        'BACKUP',
        '150',
      ],
      {
        NODE_NAME: 'node-a',
      },
    );
    expect(backup.code, backup.stderr).toBe(0);
    const second = await readState(namespace, 'node-a');
    expect(second.spec.state).toBe('Backup');
    expect(compareObservedAt(second.spec.observedAt, first.spec.observedAt)).toBe(1);
  });

  it('keeps the newer of two reports that arrive out of order; the older exits 0 as stale', async () => {
    const proxyPort = await freePort();
    const proxy = await startProxy(proxyPort, server, { hold: true });
    try {
      const slowConfig = await kubeconfigVia('node-b-slow', 'node-b', proxyPort);
      // The older report (FAULT) starts first, stamps its time, and is held at the proxy.
      const older = runCli(
        [
          'report',
          '--kubeconfig',
          slowConfig,
          '--router',
          ROUTER,
          '--timeout',
          '30s',
          '--deadline',
          '45s',
          'INSTANCE',
          'VI_1',
          'FAULT',
          '100',
        ],
        {
          NODE_NAME: 'node-b',
        },
      );
      await waitFor('the older report to reach the proxy', async () =>
        proxy.connections() > 0 ? true : undefined,
      );
      // The newer report (MASTER) starts later and goes straight through.
      const newer = await runCli(
        [
          'report',
          '--kubeconfig',
          kubeconfigs['node-b'] as string,
          '--router',
          ROUTER,
          'INSTANCE',
          'VI_1',
          'MASTER',
          '100',
        ],
        {
          NODE_NAME: 'node-b',
        },
      );
      expect(newer.code, newer.stderr).toBe(0);
      proxy.release();
      const late = await older;
      expect(late.code, late.stderr).toBe(0);
      expect(last(late)).toMatchObject({ state: 'Fault' });
      expect(String(last(late).msg)).toMatch(/stale/);
      expect(String(last(late).serverMessage)).toMatch(/stale report/);
      expect(compareObservedAt(String(last(late).observedAt), String(last(newer).observedAt))).toBe(-1);

      const stored = await readState(namespace, 'node-b');
      expect(stored.spec.state).toBe('Primary');
      expect(stored.spec.observedAt).toBe(last(newer).observedAt);
    } finally {
      await proxy.close();
    }
  });

  it('exits 3 with the webhook message when a reporter speaks for another node', async () => {
    const run = await runCli([
      'report',
      '--kubeconfig',
      kubeconfigs['node-a'] as string,
      '--router',
      ROUTER,
      '--agent',
      'node-b',
      'INSTANCE',
      'VI_1',
      'MASTER',
      '100',
    ]);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stdout).toBe('');
    expect(last(run)).toMatchObject({ msg: 'report refused by the API server', status: 403 });
    expect(String(last(run).serverMessage)).toMatch(
      /denied the request: NodeBinding: spec.agent must be the node the reporter's token is bound to \("node-a"\)/,
    );
    expect(last(run).attempts).toBe(1);
  });

  it('exits 3 with the RBAC reason when the identity may not write reports', async () => {
    const run = await runCli([
      'report',
      '--kubeconfig',
      kubeconfigs.stranger as string,
      '--router',
      ROUTER,
      '--agent',
      'node-a',
      'INSTANCE',
      'VI_1',
      'MASTER',
      '100',
    ]);
    expect(run.code, run.stderr).toBe(3);
    expect(last(run)).toMatchObject({ status: 403, reason: 'Forbidden' });
    expect(String(last(run).serverMessage)).toMatch(/cannot patch resource "harouterstates"/);
  });

  it('delivers when the API server is unreachable for a few seconds inside the deadline', async () => {
    const proxyPort = await freePort();
    const config = await kubeconfigVia('node-a-outage', 'node-a', proxyPort);
    const before = await readState(namespace, 'node-a');
    const outageMs = 3000;
    const started = performance.now();
    // Nothing listens on the port until the CLI has been refused at least once and the outage has
    // lasted `outageMs` (a CLI slow to start on a loaded machine must still meet the outage).
    let refused: () => void = () => undefined;
    const wasRefused = new Promise<void>((resolve) => {
      refused = resolve;
    });
    const running = runCli(
      [
        'report',
        '--kubeconfig',
        config,
        '--router',
        ROUTER,
        '--deadline',
        '30s',
        'INSTANCE',
        'VI_1',
        'MASTER',
        '150',
      ],
      {
        NODE_NAME: 'node-a',
      },
      (soFar) => {
        if (soFar.includes('ECONNREFUSED')) refused();
      },
    );
    await Promise.race([wasRefused, running]);
    await new Promise((r) => setTimeout(r, Math.max(0, outageMs - (performance.now() - started))));
    const proxy = await startProxy(proxyPort, server);
    try {
      const run = await running;
      expect(run.code, run.stderr).toBe(0);
      expect(performance.now() - started).toBeGreaterThanOrEqual(outageMs);
      const retries = run.logs.filter((l) => l.msg === 'report not delivered yet; retrying');
      expect(retries.length).toBeGreaterThan(0);
      expect(retries[0]).toMatchObject({ reason: 'ECONNREFUSED' });
      const after = await readState(namespace, 'node-a');
      expect(after.spec.state).toBe('Primary');
      expect(compareObservedAt(after.spec.observedAt, before.spec.observedAt)).toBe(1);
    } finally {
      await proxy.close();
    }
  });

  it('exits 4 when the API server stays unreachable past the deadline', async () => {
    const deadPort = await freePort();
    const config = await kubeconfigVia('dead', 'node-a', deadPort);
    const run = await runCli(
      [
        'report',
        '--kubeconfig',
        config,
        '--router',
        ROUTER,
        '--deadline',
        '2s',
        'INSTANCE',
        'VI_1',
        'MASTER',
        '150',
      ],
      {
        NODE_NAME: 'node-a',
      },
    );
    expect(run.code, run.stderr).toBe(4);
    expect(last(run)).toMatchObject({
      msg: 'report not delivered before the deadline',
      reason: 'ECONNREFUSED',
      deadlineMs: 2000,
    });
    expect(Number(last(run).attempts)).toBeGreaterThan(1);
  });

  it('exits 2 on bad arguments without opening any connection', async () => {
    const listenPort = await freePort();
    const counter = await startProxy(listenPort, server, { hold: true });
    try {
      const config = await kubeconfigVia('counted', 'node-a', listenPort);
      const bad: [string[], Record<string, string>][] = [
        [
          ['report', '--kubeconfig', config, '--router', 'not-a-uuid', 'INSTANCE', 'VI_1', 'MASTER', '1'],
          { NODE_NAME: 'node-a' },
        ],
        [['report', '--kubeconfig', config, '--router', ROUTER, 'INSTANCE', 'VI_1', 'MASTER', '1'], {}],
        [
          ['report', '--kubeconfig', config, '--router', ROUTER, 'INSTANCE', 'VI_1', 'PRIMARY', '1'],
          { NODE_NAME: 'node-a' },
        ],
        [
          [
            'report',
            '--kubeconfig',
            config,
            '--router',
            ROUTER,
            '--message',
            'line\nbreak',
            '--state',
            'Backup',
          ],
          { NODE_NAME: 'node-a' },
        ],
        [
          ['report', '--kubeconfig', config, '--router', ROUTER, '--state', 'Backup', '--max-attempts', '0'],
          { NODE_NAME: 'node-a' },
        ],
        [
          [
            'report',
            '--kubeconfig',
            join(dir, 'missing.kubeconfig'),
            '--router',
            ROUTER,
            '--state',
            'Backup',
          ],
          { NODE_NAME: 'node-a' },
        ],
      ];
      // A long deadline: a CLI that did connect would hang on the holding proxy for a minute.
      const runs = await Promise.all(
        bad.map(([args, env]) => runCli([...args, '--timeout', '60s', '--deadline', '60s'], env)),
      );
      for (const run of runs) {
        expect(run.code, run.stderr).toBe(2);
        expect(run.stdout).toBe('');
        expect(last(run)).toMatchObject({ msg: 'bad arguments; nothing was sent' });
        expect(run.ms).toBeLessThan(30_000);
      }
      expect(counter.connections()).toBe(0);
    } finally {
      await counter.close();
    }
  });
});
