import { randomUUID } from 'node:crypto';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPki, issueServingCert, type Pki } from '../../src/local/controlplane/pki.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import type { RouterAgents } from '../../src/webhook/policy.ts';
import { parseBindAddress, startWebhookServer, type WebhookServer } from '../../src/webhook/server.ts';
import {
  ADMISSION_CASES,
  admissionRequestFor,
  routersFor,
  testAdmissionConfig,
} from '../support/admission-cases.ts';

let dir = '';
let certDir = '';
let ca = '';
let pki: Pki;
let server: WebhookServer;
const metrics = createMetrics({ processMetrics: false });
/** A log destination that collects each line into `lines`. */
const lineSink = (lines: string[]) =>
  new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
const logLines: string[] = [];
const logStream = lineSink(logLines);

interface Reply {
  status: number;
  body: string;
  serial: string;
}

function post(
  path: string,
  body: string | Buffer,
  headers: Record<string, string> = {},
  method = 'POST',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: server.port,
        path,
        method,
        ca,
        agent: false,
        headers: { 'Content-Type': 'application/json', ...headers },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            serial: (res.socket as TLSSocket).getPeerCertificate().serialNumber,
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The HARouter cache the server reads: each case sets its own (see `routersFor`). */
let routers: RouterAgents = () => undefined;

const review = (c: (typeof ADMISSION_CASES)[number]) => {
  const ctx = { routerId: randomUUID(), nowMs: Date.now() };
  routers = routersFor(c, 'team-a', ctx);
  return JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: admissionRequestFor(c, 'team-a', ctx),
  });
};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'webhook-server-'));
  pki = await createPki(join(dir, 'pki'));
  ca = await readFile(pki.ca.certPath, 'utf8');
  certDir = join(dir, 'certs');
  await issueServingCert({ ca: pki.ca, dir: certDir, name: 'tls' });
  await issueServingCert({ ca: pki.ca, dir: join(dir, 'next'), name: 'tls' });
  server = await startWebhookServer({
    bindAddress: '127.0.0.1:0',
    certDir,
    config: testAdmissionConfig('team-a'),
    routers: (namespace, routerId) => routers(namespace, routerId),
    logger: createLogger('debug', logStream),
    metrics,
    certPollIntervalMs: 60_000,
    maxBodyBytes: 64 * 1024,
  });
}, 60_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('webhook server', () => {
  it('answers every decision with HTTP 200 and an AdmissionReview echoing the uid', async () => {
    for (const c of ADMISSION_CASES.filter((x) => x.operation === 'CREATE')) {
      const body = review(c);
      const res = await post('/validate', body);
      expect(res.status).toBe(200);
      const answer = JSON.parse(res.body);
      expect(answer).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' });
      expect(answer.response.uid).toBe(JSON.parse(body).request.uid);
      expect(answer.response.allowed, c.name).toBe(c.expect.allowed);
      if (!c.expect.allowed) {
        expect(answer.response.status.code).toBeGreaterThanOrEqual(400);
        expect(answer.response.status.message).toMatch(c.expect.message ?? /./);
      }
    }
  });

  it('counts decisions by decision and reason, and requests by code', async () => {
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/harouter_admission_decisions_total\{decision="allowed",reason="Reporter"\} [1-9]/);
    expect(text).toMatch(
      /harouter_admission_decisions_total\{decision="denied",reason="NotAReporter"\} [1-9]/,
    );
    expect(text).toMatch(/harouter_admission_decisions_total\{decision="denied",reason="ClockSkew"\} 1/);
    expect(text).toMatch(
      /controller_runtime_webhook_requests_total\{webhook="\/validate",code="200"\} [1-9]/,
    );
    expect(text).toMatch(/controller_runtime_webhook_latency_seconds_count\{webhook="\/validate"\} [1-9]/);
    expect(text).toMatch(/controller_runtime_webhook_requests_in_flight\{webhook="\/validate"\} 0/);
  });

  it('logs denials with untrusted values in fields only', () => {
    const denials = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === 'admission denied');
    expect(denials.length).toBeGreaterThan(0);
    for (const d of denials) expect(d).toMatchObject({ component: 'webhook', reason: expect.any(String) });
    expect(denials.some((d) => d.user === 'system:serviceaccount:team-a:intruder')).toBe(true);
  });

  it('refuses what is not an admission request', async () => {
    expect((await post('/validate', '{not json')).status).toBe(400);
    expect((await post('/validate', JSON.stringify({ kind: 'AdmissionReview' }))).status).toBe(400);
    expect((await post('/other', '{}')).status).toBe(404);
    // Request targets that URL parsing refuses or reads as another host: 404, never a server error.
    expect((await post('//', '{}')).status).toBe(404);
    expect((await post('//host/validate', '{}')).status).toBe(404);
    expect((await post('/validate', '', {}, 'GET')).status).toBe(405);
    expect((await post('/validate', '{}', { 'Content-Type': 'text/plain' })).status).toBe(415);
    expect((await post('/validate', Buffer.alloc(100 * 1024, 32))).status).toBe(413);
    expect(await metrics.registry.metrics()).toMatch(
      /harouter_admission_decisions_total\{decision="denied",reason="MalformedRequest"\} 2\n/,
    );
  });

  it('a client that closes mid-request gets no answer and no status; a failure of the server is a 500', async () => {
    const count = async (code: string) => {
      const text = await metrics.registry.metrics();
      const m = new RegExp(
        `controller_runtime_webhook_requests_total\\{webhook="/validate",code="${code}"\\} (\\d+)`,
      ).exec(text);
      return Number(m?.[1] ?? 0);
    };
    const failedLines = () => logLines.filter((l) => l.includes('webhook request failed')).length;
    const before = { c400: await count('400'), c500: await count('500'), failed: failedLines() };
    const allowed = ADMISSION_CASES.find((c) => c.operation === 'CREATE' && c.expect.allowed);
    const body = review(allowed as (typeof ADMISSION_CASES)[number]);
    // Half the body, then the connection closes (as the API server does when it gives up on an answer).
    await new Promise<void>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: server.port,
        path: '/validate',
        method: 'POST',
        ca,
        agent: false,
        headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
      });
      req.on('error', () => resolve());
      req.on('response', () => reject(new Error('an aborted request was answered')));
      req.write(body.slice(0, 40));
      setTimeout(() => {
        req.destroy();
        setTimeout(resolve, 300);
      }, 100);
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(await count('400')).toBe(before.c400);
    expect(await count('500')).toBe(before.c500);
    expect(failedLines()).toBe(before.failed);
    expect(logLines.some((l) => l.includes('webhook client closed the request'))).toBe(true);

    // A real failure (here the HARouter cache throwing) is still answered and counted as a 500.
    review(allowed as (typeof ADMISSION_CASES)[number]);
    routers = () => {
      throw new Error('cache exploded');
    };
    expect((await post('/validate', body)).status).toBe(500);
    expect(await count('500')).toBe(before.c500 + 1);
    expect(failedLines()).toBe(before.failed + 1);
  });

  it('reloads a changed certificate and keeps the old one when the new one is bad', async () => {
    const before = (await post('/validate', '{}')).serial;
    expect(await server.reloadCertificate()).toBe(false); // unchanged
    await writeFile(join(certDir, 'tls.crt'), 'not a certificate');
    expect(await server.reloadCertificate()).toBe(false);
    expect((await post('/validate', '{}')).serial).toBe(before);
    await copyFile(join(dir, 'next', 'tls.key'), join(certDir, 'tls.key'));
    await copyFile(join(dir, 'next', 'tls.crt'), join(certDir, 'tls.crt'));
    expect(await server.reloadCertificate()).toBe(true);
    const after = (await post('/validate', '{}')).serial;
    expect(after).not.toBe(before);
  });

  it('refuses to start without a usable certificate or with a bad configuration', async () => {
    const common = {
      logger: createLogger('silent'),
      metrics: createMetrics({ processMetrics: false }),
      routers: () => undefined,
    };
    await expect(
      startWebhookServer({
        ...common,
        bindAddress: '127.0.0.1:0',
        certDir: dir,
        config: testAdmissionConfig('x'),
      }),
    ).rejects.toThrow();
    await expect(
      startWebhookServer({
        ...common,
        bindAddress: '127.0.0.1:0',
        certDir,
        config: { ...testAdmissionConfig('x'), reporterServiceAccounts: ['nope'] },
      }),
    ).rejects.toThrow(/invalid admission configuration/);
  });
});

describe('parseBindAddress', () => {
  it.each([
    [':9443', { host: undefined, port: 9443 }],
    ['127.0.0.1:0', { host: '127.0.0.1', port: 0 }],
    ['[::1]:9443', { host: '::1', port: 9443 }],
  ])('%s', (input, expected) => expect(parseBindAddress(input)).toEqual(expected));
  it('refuses garbage', () => expect(() => parseBindAddress('9443')).toThrow(RangeError));
});

describe('webhook server with a client CA (issue 23, item 2)', () => {
  let guarded: WebhookServer;
  const guardedMetrics = createMetrics({ processMetrics: false });
  const lines: string[] = [];
  const sink = lineSink(lines);

  beforeAll(async () => {
    guarded = await startWebhookServer({
      bindAddress: '127.0.0.1:0',
      certDir,
      clientCaFile: pki.webhookClient.ca.certPath,
      config: testAdmissionConfig('team-a'),
      routers: () => ['node-a'],
      logger: createLogger('info', sink),
      metrics: guardedMetrics,
      certPollIntervalMs: 60_000,
    });
  });
  afterAll(() => guarded?.close());

  /** A forged review (a reporter of node-a speaking for node-b) with a name of `nameBytes`. */
  const forged = (nameBytes: number) =>
    JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: randomUUID(),
        resource: { group: 'harouter.dev', version: 'v1alpha1', resource: 'harouterstates' },
        name: `\u001b[31m${'n'.repeat(nameBytes)}`,
        namespace: 'team-a',
        operation: 'CREATE',
        userInfo: {
          username: 'system:serviceaccount:team-a:harouter-reporter',
          extra: { 'authentication.kubernetes.io/node-name': ['node-a'] },
        },
        object: { spec: { agent: 'node-b' } },
      },
    });

  const send = async (body: string, client?: { cert: Buffer; key: Buffer }) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: guarded.port,
          path: '/validate',
          method: 'POST',
          ca,
          agent: false,
          headers: { 'Content-Type': 'application/json' },
          ...client,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  const apiServer = async () => ({
    cert: await readFile(pki.webhookClient.client.certPath),
    key: await readFile(pki.webhookClient.client.keyPath),
  });

  it('refuses a caller without the client certificate at the TLS handshake, and counts nothing', async () => {
    const before = await guardedMetrics.registry.metrics();
    await expect(send(forged(10))).rejects.toThrow(/certificate|socket hang up|ECONNRESET/i);
    // A certificate from another CA (the cluster admin's) is no better.
    const admin = { cert: await readFile(pki.admin.certPath), key: await readFile(pki.admin.keyPath) };
    await expect(send(forged(10), admin)).rejects.toThrow();
    expect(await guardedMetrics.registry.metrics()).toBe(before);
    expect(lines.filter((l) => l.includes('admission'))).toEqual([]);
  });

  it("answers the API server's certificate, and logs a 900 KiB name as one bounded, escaped line", async () => {
    const res = await send(forged(900 * 1024), await apiServer());
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).response).toMatchObject({ allowed: false });
    const denial = lines.find((l) => l.includes('admission denied')) as string;
    expect(Buffer.byteLength(denial)).toBeLessThan(2048);
    const parsed = JSON.parse(denial);
    expect(parsed.name).toBe(`\\u{1B}[31m${'n'.repeat(253 - 5)}...`);
    expect(parsed.reason).toBe('NodeMismatch');
  });

  it('keeps asking for the client certificate after the serving certificate is reloaded', async () => {
    await issueServingCert({ ca: pki.ca, dir: join(dir, 'third'), name: 'tls' });
    for (const f of ['tls.crt', 'tls.key']) await copyFile(join(dir, 'third', f), join(certDir, f));
    expect(await guarded.reloadCertificate()).toBe(true);
    expect((await send(forged(10), await apiServer())).status).toBe(200);
    await expect(send(forged(10))).rejects.toThrow();
  });

  it('logs at most 10 denials per reason in a window, and counts every one', async () => {
    const client = await apiServer();
    const logged = () => lines.filter((l) => JSON.parse(l).reason === 'NodeMismatch').length;
    const counted = async () =>
      Number(
        /harouter_admission_decisions_total\{decision="denied",reason="NodeMismatch"\} (\d+)/.exec(
          await guardedMetrics.registry.metrics(),
        )?.[1],
      );
    const before = logged();
    const countedBefore = await counted();
    for (let i = 0; i < 30; i++) expect((await send(forged(10), client)).status).toBe(200);
    expect(logged() - before).toBeLessThanOrEqual(10);
    expect((await counted()) - countedBefore).toBe(30);
  });
});
