/**
 * The local control plane's certificates: etcd's serving pair is also a client certificate,
 * because etcd's JSON gateway (`/v3/...`, used by the chaos run's `watch-expiry` compaction)
 * dials etcd's own gRPC server with it and client-certificate authentication refuses a
 * certificate that is not a client's ("tls: bad certificate"); other serving pairs are not.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPki, issueServingCert } from '../../src/local/controlplane/pki.ts';

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const dirs: string[] = [];
afterAll(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
const usages = async (certPath: string) => new X509Certificate(await readFile(certPath)).keyUsage;

describe('local PKI', () => {
  it("etcd's serving certificate serves and authenticates as a client; a webhook's only serves", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pki-'));
    dirs.push(dir);
    const pki = await createPki(dir);
    expect(await usages(pki.etcd.server.certPath)).toEqual(
      expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]),
    );
    const webhook = await issueServingCert({ ca: pki.ca, dir: join(dir, 'webhook'), name: 'tls' });
    expect(await usages(webhook.certPath)).toEqual([SERVER_AUTH]);
  }, 60_000);
});
