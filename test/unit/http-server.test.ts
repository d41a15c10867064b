import { X509Certificate } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { BindAddress } from '../../src/config.ts';
import { selfSignedCertificate } from '../../src/http/self-signed.ts';
import { type HttpServerHandle, startMetricsServer, startProbeServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';

const log = createLogger('silent');
const bind: BindAddress = { host: '127.0.0.1', port: 0, text: '127.0.0.1:0' };
const open: HttpServerHandle[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

async function get(port: number, path: string, method = 'GET') {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method });
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

describe('probe server', () => {
  it('answers ok when every check passes and lists the failing ones otherwise', async () => {
    let synced = false;
    const server = await startProbeServer({
      bind,
      log,
      healthz: () => [{ name: 'ping', check: () => true }],
      readyz: () => [
        { name: 'informers', check: () => synced },
        {
          name: 'webhook',
          check: async () => {
            if (!synced) throw new Error('not yet');
            return true;
          },
        },
      ],
    });
    open.push(server);
    expect(await get(server.port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
    const notReady = await get(server.port, '/readyz');
    expect(notReady.status).toBe(500);
    expect(notReady.body).toContain('[-]informers failed');
    expect(notReady.body).toContain('[-]webhook failed');
    synced = true;
    expect(await get(server.port, '/readyz')).toMatchObject({ status: 200, body: 'ok\n' });
    expect((await get(server.port, '/readyz?verbose')).body).toBe('[+]informers ok\n[+]webhook ok\nok\n');
    expect((await get(server.port, '/other')).status).toBe(404);
    expect((await get(server.port, '/healthz', 'POST')).status).toBe(405);
  });
});

/** Sends one raw request line and returns the status line of the answer. */
function rawStatusLine(port: number, requestTarget: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(`GET ${requestTarget} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    });
    let answer = '';
    socket.on('data', (chunk) => {
      answer += String(chunk);
    });
    socket.on('end', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
  });
}

describe('request targets', () => {
  it('answers 400 to a target URL cannot parse, and keeps serving', async () => {
    const server = await startProbeServer({
      bind,
      log,
      healthz: () => [{ name: 'ping', check: () => true }],
      readyz: () => [],
    });
    open.push(server);
    expect(await rawStatusLine(server.port, '//[')).toBe('HTTP/1.1 400 Bad Request');
    expect(await get(server.port, '/healthz')).toMatchObject({ status: 200, body: 'ok\n' });
  });
});

/** The certificate a TLS server presents (no verification: the test compares it). */
function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const pem = new X509Certificate(socket.getPeerX509Certificate()?.raw ?? Buffer.alloc(0)).toString();
      socket.destroy();
      resolve(pem);
    });
    socket.on('error', reject);
  });
}

describe('metrics server', () => {
  it('secure, with a certificate directory: serves its pair, a rotated pair within a poll, keeps the old on a bad one', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'harouter-metrics-certs-'));
    const write = async (pair: { cert: string; key: string }) => {
      await writeFile(join(dir, 'tls.crt'), pair.cert);
      await writeFile(join(dir, 'tls.key'), pair.key);
    };
    const first = selfSignedCertificate(['first.example']);
    await write(first);
    const server = await startMetricsServer({
      bind,
      metrics: createMetrics({ processMetrics: false }),
      log,
      secure: { ...first, certDir: dir, certPollIntervalMs: 20, authorize: async () => 200 },
    });
    open.push(server);
    const pem = (pair: { cert: string }) => new X509Certificate(pair.cert).toString();
    expect(await servedCertificate(server.port)).toBe(pem(first));
    const second = selfSignedCertificate(['second.example']);
    await write(second);
    await vi.waitFor(async () => expect(await servedCertificate(server.port)).toBe(pem(second)), {
      timeout: 5_000,
      interval: 20,
    });
    await writeFile(join(dir, 'tls.crt'), 'not a certificate');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await servedCertificate(server.port)).toBe(pem(second));
  });

  it("serves the operator's own registry in the Prometheus text format", async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.workqueueAdds.inc({ name: 'harouter' }, 3);
    const server = await startMetricsServer({ bind, metrics, log });
    open.push(server);
    const res = await get(server.port, '/metrics');
    expect(res.status).toBe(200);
    expect(res.type).toContain('text/plain');
    expect(res.body).toContain('workqueue_adds_total{name="harouter"} 3');
    expect(res.body).toContain('# TYPE harouter_report_to_route_seconds histogram');
  });

  it('fails to start on an address in use', async () => {
    const metrics = createMetrics({ processMetrics: false });
    const first = await startMetricsServer({ bind, metrics, log });
    open.push(first);
    await expect(
      startMetricsServer({ bind: { host: '127.0.0.1', port: first.port, text: 'x' }, metrics, log }),
    ).rejects.toThrow(/EADDRINUSE/);
  });
});
