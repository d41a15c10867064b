/**
 * The Service opt-in is a label the API server filters on (API.md, HARouter,
 * "The Service must opt in"), on a real kube-apiserver: a Service carrying only
 * the old annotation is not driven, a labelled one is, and Services without the
 * label never reach the operator's memory, whatever their annotations.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { HARouter } from '../../src/api/index.ts';
import { adminKubeConfig, createTestNamespace } from '../support/index.ts';
import {
  Cluster,
  conditionOf,
  installCrds,
  startTestOperator,
  type TestOperator,
  waitFor,
} from './reconcile-harness.ts';

/** Written out, not imported: the test must mean the contract's key, not whatever the code calls it. */
const OPT_IN = 'harouter.dev/router';
const IP = '198.51.100.61';

let cluster: Cluster;
let operator: TestOperator;
let ns: string;
let node: string;

async function routerWhere(id: string, check: (r: HARouter) => boolean): Promise<HARouter> {
  let last: HARouter | undefined;
  await waitFor(async () => {
    last = await cluster.getRouter(id);
    return check(last);
  }, 30_000).catch(() => {
    throw new Error(`router ${id} did not converge; last status: ${JSON.stringify(last?.status)}`);
  });
  return last as HARouter;
}

/** A headless, selector-less Service with `metadata`, and a router over `node` naming it, reported Primary. */
async function routedService(id: string, name: string, metadata: object): Promise<void> {
  await cluster.core.createNamespacedService({
    namespace: ns,
    body: { metadata: { name, ...metadata }, spec: { clusterIP: 'None', ports: [{ port: 80 }] } },
  });
  await cluster.createRouter(id, {
    agents: [{ name: node }],
    endpoint: { serviceName: name, ports: [{ port: 80 }] },
  });
  await cluster.report(id, node, 'Primary', new Date().toISOString());
}

beforeAll(async () => {
  const kc = adminKubeConfig();
  await installCrds(kc);
  ns = await createTestNamespace('optin');
  cluster = new Cluster(kc, ns);
  node = `${ns}-a`;
  await cluster.setNode(node, true, IP);
  operator = await startTestOperator(kc, ns);
});

afterAll(async () => {
  await operator?.stop();
  await cluster?.deleteNode(node);
});

describe('the Service opt-in label', () => {
  it('a Service with only the annotation gets ServiceNotOptedIn and no slice; a labelled one is driven', async () => {
    const annotated = randomUUID();
    await routedService(annotated, 'annotated', { annotations: { [OPT_IN]: annotated } });
    const refused = await routerWhere(
      annotated,
      (r) => r.status?.activeAgent === node && conditionOf(r, 'Ready')?.reason === 'ServiceNotOptedIn',
    );
    expect(conditionOf(refused, 'Ready')?.status).toBe('False');
    expect(await cluster.sliceAddresses('annotated')).toBeUndefined();

    const labelled = randomUUID();
    await routedService(labelled, 'labelled', { labels: { [OPT_IN]: labelled } });
    await routerWhere(labelled, (r) => conditionOf(r, 'Ready')?.status === 'True');
    await waitFor(async () => (await cluster.sliceAddresses('labelled'))?.join() === IP);
    // The annotated one is still refused: the slice never appeared.
    expect(await cluster.sliceAddresses('annotated')).toBeUndefined();
  });

  it('Services without the label never enter the cache, however large their annotations', async () => {
    const bulk = 'x'.repeat(64 * 1024);
    const count = 200;
    for (let start = 0; start < count; start += 20) {
      await Promise.all(
        Array.from({ length: Math.min(20, count - start) }, (_, k) =>
          cluster.core.createNamespacedService({
            namespace: ns,
            body: {
              metadata: { name: `bulk-${start + k}`, annotations: { bulk, [OPT_IN]: randomUUID() } },
              spec: { clusterIP: 'None', ports: [{ port: 80 }] },
            },
          }),
        ),
      );
    }
    // Created last, so once the cache holds it the watch has delivered everything before it.
    const marker = randomUUID();
    await cluster.core.createNamespacedService({
      namespace: ns,
      body: {
        metadata: { name: 'marker', labels: { [OPT_IN]: marker, team: 'a' }, annotations: { bulk } },
        spec: { clusterIP: 'None', ports: [{ port: 80 }] },
      },
    });
    const services = operator.informers.services;
    await waitFor(async () => services.get(`${ns}/marker`) !== undefined, 30_000);

    const keys = services.keys().sort();
    expect(keys).toEqual([`${ns}/labelled`, `${ns}/marker`]);
    // What is kept of an opted-in Service: no annotation, no other label, no spec.
    expect(services.get(`${ns}/marker`)).toEqual({
      metadata: {
        name: 'marker',
        namespace: ns,
        uid: expect.any(String),
        resourceVersion: expect.any(String),
        labels: { [OPT_IN]: marker },
      },
      hasSelector: false,
    });
    const held = JSON.stringify(services.list()).length;
    expect(held).toBeLessThan(2048);
  }, 120_000);
});
