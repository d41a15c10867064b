import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import type { TestProject } from 'vitest/node';
import { type ControlPlane, startControlPlane } from '../../src/local/controlplane/index.ts';
import { keepConfigMapParamInformer } from './admission-cases.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    controlPlane: {
      dir: string;
      server: string;
      kubeconfigPath: string;
      caCertPath: string;
      caKeyPath: string;
      binaries: ControlPlane['binaries'];
      etcdUrl: string;
      /** etcd's own CA and the client pair kube-apiserver uses (certificate and key paths). */
      etcdPki: { caCertPath: string; clientCertPath: string; clientKeyPath: string };
      /** The CA of the API server's client certificate for webhooks (`--webhook-client-ca`). */
      webhookClientCaPath: string;
    };
  }
}

let plane: ControlPlane | undefined;

/**
 * Starts one real control plane for the whole integration run and gives its
 * paths to the tests. If it cannot be built or started, this throws with the
 * reason and the logs: the run fails, it never skips.
 */
export async function setup(project: TestProject): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'harouter-test-'));
  plane = await startControlPlane({ dir });
  // Before any test installs or removes a policy with ConfigMap parameters (kubernetes#133827).
  const admin = new KubeConfig();
  admin.loadFromFile(plane.kubeconfigPath);
  await keepConfigMapParamInformer(admin);
  project.provide('controlPlane', {
    dir,
    server: plane.server,
    kubeconfigPath: plane.kubeconfigPath,
    caCertPath: plane.ca.certPath,
    caKeyPath: plane.ca.keyPath,
    binaries: plane.binaries,
    etcdUrl: plane.etcdUrl,
    etcdPki: {
      caCertPath: plane.pki.etcd.ca.certPath,
      clientCertPath: plane.pki.etcd.client.certPath,
      clientKeyPath: plane.pki.etcd.client.keyPath,
    },
    webhookClientCaPath: plane.pki.webhookClient.ca.certPath,
  });
}

export async function teardown(): Promise<void> {
  if (!plane) return;
  await plane.stop();
  if (!process.env.HAROUTER_KEEP_TEST_DIR) await rm(plane.dir, { recursive: true, force: true });
}
