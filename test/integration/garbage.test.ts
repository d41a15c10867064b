/**
 * Garbage at the operator's ports (issue 13): thousands of malformed requests
 * straight at a real operator process's webhook, metrics and probe ports (random
 * bytes, deeply nested JSON, a 3 MiB string, odd AdmissionReviews, slow bodies,
 * oversized headers), while a reporter with a real pod-bound token keeps sending
 * real reports through the real API server and that webhook. The operator must
 * stay ready, admit every real report in the same period, and its peak RSS
 * (VmHWM) must stay within the chart's 256 MiB heap bound. Then slow clients
 * (issue 23): 2,000 trickling connections from two addresses, one of them the
 * API server's own, must not keep a real report out for 2 s.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { base64File, freePort, issueServingCert } from '../../src/local/controlplane/index.ts';
import { webhookConfiguration } from '../../src/webhook/manifests.ts';
import {
  applyObject,
  collectionPath,
  createRouter,
  installCrds,
  kubeRequest,
  NODE_A,
  onlyNamespaces,
  report,
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
import { renderChart } from '../unit/chart-helpers.ts';

const BIN = join(REPO, 'bin', 'harouter-operator.js');
/** The chart's V8 heap bound for the operator (NODE_OPTIONS --max-old-space-size): RSS stays under it here. */
const LIMIT_MIB = 256;
const GARBAGE_REQUESTS = 3000;
const GARBAGE_CONCURRENCY = 64;
/** How much slower a report may be under the slow-client attack than without it (median to median). */
const RATIO_BOUND = 40;

let ns: string;
let dir: string;
let child: ChildProcess | undefined;
let webhookName: string;
const ports = { metrics: 0, probes: 0, webhook: 0 };

/** Resolves when the exchange is over, whatever happened (garbage gets no promises). */
function settle(start: (done: () => void) => void, timeoutMs = 20_000): Promise<void> {
  return new Promise((resolveDone) => {
    const timer = setTimeout(resolveDone, timeoutMs);
    start(() => {
      clearTimeout(timer);
      resolveDone();
    });
  });
}

function rawBytes(port: number, bytes: Buffer): Promise<void> {
  return settle((done) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
    socket.on('error', done);
    socket.on('close', done);
    socket.resume();
    socket.setTimeout(5000, () => socket.destroy());
  });
}

function tlsBytes(port: number, bytes: Buffer): Promise<void> {
  return settle((done) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false }, () =>
      socket.end(bytes),
    );
    socket.on('error', done);
    socket.on('close', done);
    socket.resume();
    socket.setTimeout(5000, () => socket.destroy());
  });
}

function send(
  tls: boolean,
  port: number,
  options: {
    method?: string;
    path?: string;
    headers?: Record<string, string>;
    body?: Buffer | string;
    slowMs?: number;
  },
): Promise<void> {
  return settle((done) => {
    const request = tls ? httpsRequest : httpRequest;
    const req = request(
      {
        host: '127.0.0.1',
        port,
        method: options.method ?? 'POST',
        path: options.path ?? '/validate',
        headers: options.headers ?? { 'content-type': 'application/json' },
        rejectUnauthorized: false,
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', done);
        res.on('error', done);
      },
    );
    req.on('error', done);
    req.setTimeout(20_000, () => req.destroy());
    const body = options.body === undefined ? undefined : Buffer.from(options.body);
    if (body && options.slowMs) {
      // A slow body: one byte at a time.
      let i = 0;
      const timer = setInterval(() => {
        if (req.destroyed || i >= body.length) {
          clearInterval(timer);
          if (!req.destroyed) req.end();
          return;
        }
        req.write(body.subarray(i, i + 1));
        i++;
      }, options.slowMs);
      req.on('close', () => clearInterval(timer));
    } else {
      req.end(body);
    }
  });
}

const review = (request: Record<string, unknown>) =>
  JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
const baseRequest = () => ({
  uid: randomUUID(),
  resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
  namespace: 'x',
  operation: 'CREATE',
  userInfo: { username: 'system:serviceaccount:x:y' },
});

/** The garbage kinds; each sends one request (or connection). */
const GARBAGE: ((i: number) => Promise<void>)[] = [
  () => rawBytes(ports.webhook, randomBytes(1 + Math.floor(Math.random() * 65536))),
  () => tlsBytes(ports.webhook, randomBytes(1 + Math.floor(Math.random() * 65536))),
  () => send(true, ports.webhook, { body: '['.repeat(500_000 + Math.floor(Math.random() * 500_000)) }),
  () => send(true, ports.webhook, { body: `{"a":${'{"a":'.repeat(200_000)}1${'}'.repeat(200_001)}` }),
  () => send(true, ports.webhook, { body: JSON.stringify({ s: 'x'.repeat(3 * 1024 * 1024) }) }),
  () =>
    send(true, ports.webhook, {
      headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
      body: review({ ...baseRequest(), object: { s: 'y'.repeat(3 * 1024 * 1024) } }),
    }),
  () =>
    send(true, ports.webhook, {
      body: review({ ...baseRequest(), object: Array.from({ length: 250_000 }, (_, i) => i) }),
    }),
  () =>
    send(true, ports.webhook, {
      body: review({
        ...baseRequest(),
        operation: 'UPDATE',
        userInfo: {
          username: 'u'.repeat(1024),
          groups: Array.from({ length: 1024 }, () => 'g'.repeat(1000)),
          extra: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, ['v'.repeat(500)]])),
        },
        object: { metadata: { annotations: { a: 'z'.repeat(1024 * 1024) } }, spec: {} },
        oldObject: { metadata: {}, spec: {} },
      }),
    }),
  () => send(true, ports.webhook, { body: review({ ...baseRequest(), operation: 'PATCH' }) }),
  () =>
    send(true, ports.webhook, {
      body: '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":',
    }),
  () => send(true, ports.webhook, { body: review(baseRequest()), headers: { 'content-type': 'text/plain' } }),
  () => send(true, ports.webhook, { method: 'GET', path: `/${randomBytes(8).toString('hex')}` }),
  () => send(true, ports.webhook, { body: review(baseRequest()), slowMs: 50 }),
  () =>
    send(true, ports.webhook, {
      headers: { 'content-type': 'application/json', 'x-filler': 'h'.repeat(64 * 1024) },
      body: '{}',
    }),
  () => send(false, ports.metrics, { method: 'GET', path: '/metrics' }),
  () => send(false, ports.metrics, { method: 'POST', path: '/metrics', body: randomBytes(256 * 1024) }),
  () => send(false, ports.probes, { method: 'GET', path: '/readyz?verbose' }),
  () => send(false, ports.probes, { method: 'GET', path: `/${'p'.repeat(8000)}` }),
  () => rawBytes(ports.metrics, randomBytes(1 + Math.floor(Math.random() * 65536))),
  () => rawBytes(ports.probes, Buffer.from(`GET / HTTP/1.1\r\nHost: x\r\nX: ${'a'.repeat(100_000)}\r\n\r\n`)),
];

/** The literal environment variables of the chart's operator container (default values). */
async function chartEnv(): Promise<Record<string, string>> {
  const deployment = (await renderChart({})).find((o) => o.kind === 'Deployment');
  const env = (deployment?.spec.template.spec.containers[0].env ?? []) as { name: string; value?: string }[];
  const literal = Object.fromEntries(
    env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value as string]),
  );
  if (!literal.NODE_OPTIONS) throw new Error('the chart sets no NODE_OPTIONS for the operator');
  return literal;
}

async function vmHwmMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
  if (!Number.isFinite(kb)) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return kb / 1024;
}

beforeAll(async () => {
  const admin = adminKubeConfig();
  await installCrds(admin);
  ns = await createTestNamespace('garbage');
  dir = join(tmpdir(), `harouter-garbage-${randomBytes(4).toString('hex')}`);
  const info = controlPlaneInfo();
  await issueServingCert({ ca: { certPath: info.caCertPath, keyPath: info.caKeyPath }, dir, name: 'tls' });
  ports.metrics = await freePort();
  ports.probes = await freePort();
  ports.webhook = await freePort();
  child = spawn(
    NODE,
    [
      BIN,
      `--kubeconfig=${info.kubeconfigPath}`,
      `--namespace=${ns}`,
      `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
      '--metrics-secure=false',
      `--health-probe-bind-address=127.0.0.1:${ports.probes}`,
      `--webhook-bind-address=127.0.0.1:${ports.webhook}`,
      `--cert-dir=${dir}`,
      `--leader-election-namespace=${ns}`,
      `--reporter-service-accounts=${ns}/reporter`,
      `--operator-service-account=${ns}/operator`,
      '--identity=garbage',
      '--log-level=info',
    ],
    // The environment the chart gives the container (NODE_OPTIONS: V8's heap sized for its limit).
    { stdio: ['ignore', 'ignore', 'pipe'], env: { PATH: process.env.PATH ?? '', ...(await chartEnv()) } },
  );
  child.stderr?.resume();
  await waitFor(
    'the operator to be ready',
    async () => {
      const res = await fetch(`http://127.0.0.1:${ports.probes}/readyz`).catch(() => undefined);
      return res?.status === 200 ? true : undefined;
    },
    60_000,
  );
  webhookName = `harouter-garbage-${ns}`;
  await applyObject(
    admin,
    `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${webhookName}`,
    webhookConfiguration({
      name: webhookName,
      url: `https://127.0.0.1:${ports.webhook}/validate`,
      caBundle: await base64File(info.caCertPath),
      namespaceSelector: onlyNamespaces(ns),
    }),
  );
  await mintServiceAccountToken({ namespace: ns, serviceAccount: 'reporter' });
  await applyObject(admin, `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/roles/reporter`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'Role',
    metadata: { name: 'reporter', namespace: ns },
    rules: [
      { apiGroups: ['harouter.dev'], resources: ['harouterstates'], verbs: ['get', 'create', 'patch'] },
    ],
  });
  await applyObject(admin, `/apis/rbac.authorization.k8s.io/v1/namespaces/${ns}/rolebindings/reporter`, {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: { name: 'reporter', namespace: ns },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'reporter' },
    subjects: [{ kind: 'ServiceAccount', name: 'reporter', namespace: ns }],
  });
  reporter = kubeConfigForToken(
    await mintServiceAccountToken({
      namespace: ns,
      serviceAccount: 'reporter',
      pod: { name: 'reporter-a', nodeName: NODE_A },
    }),
    ns,
  );
  routerId = randomUUID();
  await createRouter(admin, ns, routerId, [NODE_A]);
}, 120_000);

let reporter: KubeConfig;
let routerId = '';
let second = 0;
/** The pod-bound reporter's next report (one second later each time), applied through the API server. */
function sendReport() {
  second++;
  const observedAt = new Date(Date.UTC(2026, 0, 1, 0, 0, second)).toISOString();
  return kubeRequest(
    reporter,
    'PATCH',
    `${collectionPath(ns)}/${routerId}.${NODE_A}?fieldManager=harouterctl&force=true`,
    report(routerId, NODE_A, { observedAt, state: second % 2 ? 'Primary' : 'Backup' }),
    'application/apply-patch+yaml',
  );
}

afterAll(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  await kubeRequest(
    adminKubeConfig(),
    'DELETE',
    `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${webhookName}`,
  ).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

describe('garbage at the webhook, metrics and probe ports', () => {
  it('stays ready, keeps admitting real reports, and stays within the 256 MiB heap bound', async () => {
    const admin = adminKubeConfig();
    // Admission is up: the reporter's report is admitted, the admin's refused by the webhook.
    await waitFor('the webhook to admit the reporter', async () =>
      (await sendReport()).status === 200 ? true : undefined,
    );
    const refused = await kubeRequest(admin, 'POST', collectionPath(ns), report(randomUUID(), NODE_A));
    expect(refused.body.message).toMatch(/admission webhook .* denied the request: Identity/);

    const pid = child?.pid as number;
    const before = await vmHwmMiB(pid);
    let garbageDone = false;
    const reports: number[] = [];
    const readiness: number[] = [];
    const realTraffic = (async () => {
      while (!garbageDone) {
        reports.push((await sendReport()).status);
        const ready = await fetch(`http://127.0.0.1:${ports.probes}/readyz`).catch(() => undefined);
        readiness.push(ready?.status ?? 0);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: GARBAGE_CONCURRENCY }, async () => {
        while (next < GARBAGE_REQUESTS) {
          const i = next++;
          await (GARBAGE[i % GARBAGE.length] as (i: number) => Promise<void>)(i);
        }
      }),
    );
    garbageDone = true;
    await realTraffic;
    const seconds = (performance.now() - started) / 1000;
    const peak = await vmHwmMiB(pid);
    console.log(
      `garbage: ${GARBAGE_REQUESTS} requests in ${seconds.toFixed(1)} s; operator VmHWM ${before.toFixed(1)} MiB ` +
        `before, ${peak.toFixed(1)} MiB after (limit ${LIMIT_MIB} MiB); ${reports.length} real reports ` +
        `(${reports.filter((s) => s === 200).length} admitted); readiness ${readiness.filter((s) => s === 200).length}/${readiness.length}`,
    );
    expect(child?.exitCode).toBeNull();
    expect(reports.length).toBeGreaterThan(5);
    expect(reports.filter((s) => s !== 200)).toEqual([]);
    expect(readiness.filter((s) => s !== 200)).toEqual([]);
    expect(peak).toBeLessThanOrEqual(LIMIT_MIB);
    // And it still answers afterwards.
    expect((await sendReport()).status).toBe(200);
  }, 600_000);
});

/** Milliseconds one report takes through the API server and the webhook; fails on anything but 200. */
async function timedReport(): Promise<number> {
  const started = performance.now();
  const res = await sendReport();
  const ms = performance.now() - started;
  if (res.status !== 200)
    throw new Error(`report refused after ${ms.toFixed(0)} ms: ${res.status} ${res.body.message}`);
  return ms;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] as number;

describe('slow clients at the webhook (issue 23, item 1)', () => {
  it("2,000 slow connections from two addresses (one the API server's) do not keep a report out for 2 s", async () => {
    await waitFor('the webhook to admit the reporter', async () =>
      (await sendReport()).status === 200 ? true : undefined,
    );
    const baseline: number[] = [];
    for (let i = 0; i < 15; i++) baseline.push(await timedReport());

    // 1,000 connections from 127.0.0.1 (the API server's own address on loopback) and 1,000 from
    // 127.0.0.2: each sends a request head with Content-Length 1000, then a byte every 3 s, and
    // comes back a second after the webhook closes it.
    const attack = spawn(
      NODE,
      [join(REPO, 'test', 'support', 'slow-clients.ts'), `--port=${ports.webhook}`, '--per-address=1000'],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let last = { open: 0, opened: 0, closed: 0 };
    attack.stdout?.setEncoding('utf8').on('data', (text: string) => {
      const line = text.trim().split('\n').pop();
      if (line) last = JSON.parse(line);
    });
    try {
      // All 2,000 have connected, and the webhook has had to close (and they to reopen) many.
      await waitFor(
        'the attack to be under way',
        async () => (last.opened >= 2000 ? true : undefined),
        120_000,
      );
      await new Promise((r) => setTimeout(r, 5000));
      const underAttack: number[] = [];
      for (let i = 0; i < 15; i++) {
        underAttack.push(await timedReport());
        await new Promise((r) => setTimeout(r, 300));
      }
      const peak = await vmHwmMiB(child?.pid as number);
      const ratio = median(underAttack) / median(baseline);
      console.log(
        `slow clients: attack ${JSON.stringify(last)}; report median ${median(baseline).toFixed(0)} ms ` +
          `without, ${median(underAttack).toFixed(0)} ms (max ${Math.max(...underAttack).toFixed(0)} ms) with ` +
          `the attack, ratio ${ratio.toFixed(1)}; operator VmHWM ${peak.toFixed(1)} MiB`,
      );
      expect(child?.exitCode).toBeNull();
      expect(Math.max(...underAttack)).toBeLessThan(2000);
      expect(ratio).toBeLessThan(RATIO_BOUND);
      expect(peak).toBeLessThanOrEqual(LIMIT_MIB);
    } finally {
      attack.kill('SIGKILL');
    }
  }, 300_000);
});
