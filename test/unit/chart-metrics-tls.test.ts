/**
 * The secure metrics' certificate in the chart: the metrics server gets a certificate for the
 * metrics Service's DNS names from a CA of its own (or from cert-manager), mounted at
 * `--metrics-cert-dir`, and the ServiceMonitor verifies it with that CA and that name instead of
 * skipping verification. A TLS client that verifies as Prometheus does connects to the operator's
 * own metrics server serving the rendered certificate; one holding another CA, asking for another
 * name, or facing the self-signed certificate the operator makes without the chart's, is refused.
 */
import { X509Certificate } from 'node:crypto';
import { request } from 'node:https';
import { afterEach, describe, expect, it } from 'vitest';
import type { BindAddress } from '../../src/config.ts';
import { parseConfig } from '../../src/config.ts';
import { selfSignedCertificate } from '../../src/http/self-signed.ts';
import { type HttpServerHandle, startMetricsServer } from '../../src/http/server.ts';
import { createLogger } from '../../src/log.ts';
import { createMetrics } from '../../src/metrics.ts';
import { findObject, type KubeObject, renderChart, tlsSecretCertificates } from './chart-helpers.ts';

const NS = 'harouter-system';
const FULLNAME = 'harouter-operator';
const SERVICE_NAME = `${FULLNAME}-metrics.${NS}.svc`;

function decode(value: string): string {
  return Buffer.from(value, 'base64').toString('utf8');
}

function operatorContainer(objects: KubeObject[]) {
  return findObject(objects, 'Deployment', FULLNAME).spec.template.spec.containers[0];
}

const open: HttpServerHandle[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

/** GET /metrics over TLS to 127.0.0.1, verifying the server with `ca` for `serverName`, as Prometheus does. */
function scrape(port: number, ca: string, serverName: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/metrics', ca, servername: serverName, rejectUnauthorized: true },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('helm template: the secure metrics certificate', { timeout: 60_000 }, () => {
  it('generates a CA and a certificate for the metrics Service, mounted where --metrics-cert-dir points', async () => {
    const objects = await renderChart();
    const secret = findObject(objects, 'Secret', `${FULLNAME}-metrics-tls`);
    expect(secret.type).toBe('kubernetes.io/tls');
    const { ca, leaf, keyMatches } = tlsSecretCertificates(secret);
    expect(ca.ca).toBe(true);
    expect(leaf.verify(ca.publicKey)).toBe(true);
    expect(keyMatches).toBe(true);
    expect(leaf.subjectAltName).toContain(`DNS:${SERVICE_NAME}`);
    // A CA of its own: the webhook's CA does not sign it.
    const webhookCa = new X509Certificate(
      decode(findObject(objects, 'Secret', `${FULLNAME}-webhook-tls`).data['ca.crt']),
    );
    expect(leaf.verify(webhookCa.publicKey)).toBe(false);

    const container = operatorContainer(objects);
    const config = parseConfig(container.args, { POD_NAME: 'operator-0', POD_NAMESPACE: NS });
    if (config.help) throw new Error('the chart passes --help');
    expect(config.config.metricsSecure).toBe(true);
    const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'metrics-certs');
    expect(mount).toEqual({ name: 'metrics-certs', mountPath: config.config.metricsCertDir, readOnly: true });
    const pod = findObject(objects, 'Deployment', FULLNAME).spec.template.spec;
    // Read-only to the operator, as the webhook's certificate is.
    const volume = (name: string) => pod.volumes.find((v: { name: string }) => v.name === name).secret;
    expect(volume('metrics-certs')).toEqual({
      secretName: secret.metadata.name,
      defaultMode: volume('serving-certs').defaultMode,
    });
  });

  it('the ServiceMonitor verifies the operator with that CA for the Service name, never skipping verification', async () => {
    const objects = await renderChart({ scenario: 'monitoring' });
    const [endpoint] = findObject(objects, 'ServiceMonitor', FULLNAME).spec.endpoints;
    expect(endpoint.scheme).toBe('https');
    expect(endpoint.tlsConfig).toEqual({
      ca: { secret: { name: `${FULLNAME}-metrics-tls`, key: 'ca.crt' } },
      serverName: SERVICE_NAME,
      insecureSkipVerify: false,
    });
    const secret = findObject(objects, 'Secret', endpoint.tlsConfig.ca.secret.name);
    const leaf = new X509Certificate(decode(secret.data['tls.crt']));
    expect(leaf.checkHost(endpoint.tlsConfig.serverName)).toBe(endpoint.tlsConfig.serverName);
  });

  it("a client verifying as the ServiceMonitor says connects to the operator's metrics server; other CAs, names and the fallback certificate are refused", async () => {
    const objects = await renderChart({ scenario: 'monitoring' });
    const { tlsConfig } = findObject(objects, 'ServiceMonitor', FULLNAME).spec.endpoints[0];
    const secret = findObject(objects, 'Secret', tlsConfig.ca.secret.name);
    const ca = decode(secret.data[tlsConfig.ca.secret.key]);
    const bind: BindAddress = { host: '127.0.0.1', port: 0, text: '127.0.0.1:0' };
    const log = createLogger('silent');
    const serve = async (pair: { cert: string; key: string }) => {
      const server = await startMetricsServer({
        bind,
        metrics: createMetrics({ processMetrics: false }),
        log,
        secure: { ...pair, authorize: async () => 200 },
      });
      open.push(server);
      return server.port;
    };
    const chartCertificate = await serve({
      cert: decode(secret.data['tls.crt']),
      key: decode(secret.data['tls.key']),
    });
    expect(await scrape(chartCertificate, ca, tlsConfig.serverName)).toBe(200);

    const webhookCa = decode(findObject(objects, 'Secret', `${FULLNAME}-webhook-tls`).data['ca.crt']);
    await expect(scrape(chartCertificate, webhookCa, tlsConfig.serverName)).rejects.toMatchObject({
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    await expect(scrape(chartCertificate, ca, `${FULLNAME}-webhook.${NS}.svc`)).rejects.toMatchObject({
      code: 'ERR_TLS_CERT_ALTNAME_INVALID',
    });
    // What the operator serves without --metrics-cert-dir cannot be verified with the chart's CA.
    const fallback = await serve(selfSignedCertificate(['localhost', '127.0.0.1', 'operator-0']));
    await expect(scrape(fallback, ca, tlsConfig.serverName)).rejects.toMatchObject({
      code: expect.stringMatching(/^(DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE)$/),
    });
  });

  it('cert-manager: a Certificate for the metrics Service from the same issuer, also in policy mode', async () => {
    const objects = await renderChart({ scenario: 'cert-manager' });
    const webhook = findObject(objects, 'Certificate', `${FULLNAME}-webhook`);
    const metrics = findObject(objects, 'Certificate', `${FULLNAME}-metrics`);
    expect(metrics.spec.secretName).toBe(`${FULLNAME}-metrics-tls`);
    expect(metrics.spec.dnsNames).toEqual([SERVICE_NAME, `${SERVICE_NAME}.cluster.local`]);
    expect(metrics.spec.usages).toEqual(['server auth']);
    expect(metrics.spec.issuerRef).toEqual(webhook.spec.issuerRef);
    const policy = await renderChart({
      scenario: 'cert-manager',
      set: ['admission.mode=policy', 'metrics.serviceMonitor.enabled=true'],
    });
    expect(policy.filter((o) => o.kind === 'Certificate').map((o) => o.metadata.name)).toEqual([
      `${FULLNAME}-metrics`,
    ]);
    const issuer = findObject(policy, 'Issuer');
    expect(findObject(policy, 'Certificate').spec.issuerRef.name).toBe(issuer.metadata.name);
    expect(findObject(policy, 'ServiceMonitor').spec.endpoints[0].tlsConfig.ca.secret.name).toBe(
      `${FULLNAME}-metrics-tls`,
    );
  });

  it('metrics.secure=false: plain HTTP, no metrics certificate', async () => {
    const objects = await renderChart({
      scenario: 'monitoring',
      set: ['metrics.secure=false'],
    });
    expect(objects.filter((o) => o.kind === 'Secret').map((o) => o.metadata.name)).toEqual([
      `${FULLNAME}-webhook-tls`,
    ]);
    expect(operatorContainer(objects).args.some((a: string) => a.startsWith('--metrics-cert-dir'))).toBe(
      false,
    );
    const [endpoint] = findObject(objects, 'ServiceMonitor', FULLNAME).spec.endpoints;
    expect(endpoint.scheme).toBeUndefined();
    expect(endpoint.tlsConfig).toBeUndefined();
  });
});
