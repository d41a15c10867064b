/**
 * What the reconcile integration tests share: CRD installation, Nodes, reports,
 * and an in-process operator built from the runtime pieces (informers, work
 * queue, worker pool) around the real reconciler, watching one namespace, with
 * its own metrics registry so that API writes can be counted per test.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  EventsV1Api,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  type V1CustomResourceDefinition,
  type V1EndpointSlice,
} from '@kubernetes/client-node';
import pino from 'pino';
import { parse } from 'yaml';
import {
  GROUP,
  HAROUTER,
  HAROUTER_STATE,
  type HARouter,
  type HARouterSpec,
  type HARouterState,
  type ReportedState,
  ROUTER_LABEL,
  VERSION,
} from '../../src/api/index.ts';
import { parseConfig } from '../../src/config.ts';
import { kubeConfigConnection } from '../../src/kube/kubeconfig.ts';
import { createMetrics, type Metrics } from '../../src/metrics.ts';
import { type Informers, Operator } from '../../src/operator.ts';

const CRD_DIR = join(import.meta.dirname, '../../crds');

/** Installs the project's CRDs (idempotent, safe when several test files race) and waits until served. */
export async function installCrds(kc: KubeConfig): Promise<void> {
  const api = kc.makeApiClient(ApiextensionsV1Api);
  for (const file of (await readdir(CRD_DIR)).filter((f) => f.endsWith('.yaml'))) {
    const crd = parse(await readFile(join(CRD_DIR, file), 'utf8')) as V1CustomResourceDefinition;
    const name = crd.metadata?.name ?? '';
    await api.patchCustomResourceDefinition(
      { name, body: crd, fieldManager: 'harouter-tests', force: true },
      setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply),
    );
    await waitFor(async () => {
      const got = await api.readCustomResourceDefinition({ name });
      return got.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false;
    }, 30_000);
  }
  // The API server serves a newly established CRD within moments; make sure a list works.
  const custom = kc.makeApiClient(CustomObjectsApi);
  await waitFor(async () => {
    try {
      await custom.listClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: HAROUTER_STATE.plural,
        limit: 1,
      });
      return true;
    } catch {
      return false;
    }
  }, 30_000);
}

export async function waitFor(
  check: () => Promise<boolean>,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

const apply = setHeaderOptions('Content-Type', PatchStrategy.ServerSideApply);
const merge = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
/** Per-call options for a JSON merge patch. */
export const mergePatchOptions = merge;

/** Admin-side helpers bound to one namespace. */
export class Cluster {
  readonly core: CoreV1Api;
  readonly custom: CustomObjectsApi;
  readonly discovery: DiscoveryV1Api;
  readonly events: EventsV1Api;

  readonly kc: KubeConfig;
  readonly namespace: string;

  constructor(kc: KubeConfig, namespace: string) {
    this.kc = kc;
    this.namespace = namespace;
    this.core = kc.makeApiClient(CoreV1Api);
    this.custom = kc.makeApiClient(CustomObjectsApi);
    this.discovery = kc.makeApiClient(DiscoveryV1Api);
    this.events = kc.makeApiClient(EventsV1Api);
  }

  /** Creates or updates a Node with a Ready condition and an InternalIP. */
  async setNode(name: string, ready: boolean, ip: string): Promise<void> {
    try {
      await this.core.createNode({ body: { metadata: { name } } });
    } catch (err) {
      if ((err as { code?: number }).code !== 409) throw err;
    }
    const now = `${new Date().toISOString().slice(0, 19)}Z`;
    await this.core.patchNodeStatus(
      {
        name,
        body: {
          status: {
            conditions: [
              {
                type: 'Ready',
                status: ready ? 'True' : 'False',
                reason: ready ? 'KubeletReady' : 'KubeletNotReady',
                message: 'set by test',
                lastHeartbeatTime: now,
                lastTransitionTime: now,
              },
            ],
            addresses: [{ type: 'InternalIP', address: ip }],
          },
        },
      },
      merge,
    );
  }

  async deleteNode(name: string): Promise<void> {
    await this.core.deleteNode({ name }).catch(() => undefined);
  }

  /**
   * A selector-less Service (headless ones use no cluster IP: the test range has only 254),
   * opted in to the router `routerId` (label `harouter.dev/router`) when one is given.
   */
  async createService(name: string, port = 80, headless = false, routerId?: string): Promise<void> {
    await this.core.createNamespacedService({
      namespace: this.namespace,
      body: {
        metadata: { name, ...(routerId ? { labels: { [ROUTER_LABEL]: routerId } } : {}) },
        spec: {
          ...(headless ? { clusterIP: 'None' } : {}),
          ports: [{ name: 'http', port, protocol: 'TCP' }],
        },
      },
    });
  }

  async createRouter(name: string, spec: HARouterSpec): Promise<void> {
    await this.custom.createNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural: HAROUTER.plural,
      body: { apiVersion: `${GROUP}/${VERSION}`, kind: HAROUTER.kind, metadata: { name }, spec },
    });
  }

  async patchRouterSpec(name: string, spec: Partial<Record<keyof HARouterSpec, unknown>>): Promise<void> {
    await this.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: HAROUTER.plural,
        name,
        body: { spec },
      },
      merge,
    );
  }

  async getRouter(name: string): Promise<HARouter> {
    return (await this.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural: HAROUTER.plural,
      name,
    })) as HARouter;
  }

  /** Writes an agent's report as an admin (no webhook in these tests), by server-side apply. */
  async report(routerId: string, agent: string, state: ReportedState, observedAt: string): Promise<void> {
    const name = `${routerId}.${agent}`;
    await this.custom.patchNamespacedCustomObject(
      {
        group: GROUP,
        version: VERSION,
        namespace: this.namespace,
        plural: HAROUTER_STATE.plural,
        name,
        fieldManager: 'harouterctl',
        force: true,
        body: {
          apiVersion: `${GROUP}/${VERSION}`,
          kind: HAROUTER_STATE.kind,
          metadata: { name, namespace: this.namespace },
          spec: { routerId, agent, state, observedAt },
        },
      },
      apply,
    );
  }

  async getReport(routerId: string, agent: string): Promise<HARouterState> {
    return (await this.custom.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: this.namespace,
      plural: HAROUTER_STATE.plural,
      name: `${routerId}.${agent}`,
    })) as HARouterState;
  }

  async slices(): Promise<V1EndpointSlice[]> {
    return (await this.discovery.listNamespacedEndpointSlice({ namespace: this.namespace })).items;
  }

  /** The addresses of the slice `<service>-harouter`, or undefined when there is no such slice. */
  async sliceAddresses(service: string): Promise<string[] | undefined> {
    try {
      const slice = await this.discovery.readNamespacedEndpointSlice({
        namespace: this.namespace,
        name: `${service}-harouter`,
      });
      return (slice.endpoints ?? []).flatMap((e) => e.addresses);
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /** Events recorded about one router, by reason. */
  async eventReasons(routerId: string): Promise<string[]> {
    const list = await this.events.listNamespacedEvent({
      namespace: this.namespace,
      fieldSelector: `regarding.name=${routerId}`,
    });
    return list.items
      .sort((a, b) => String(a.eventTime).localeCompare(String(b.eventTime)))
      .map((e) => e.reason ?? '');
  }
}

/** A condition's status and reason, or undefined. */
export function conditionOf(router: HARouter, type: string): { status: string; reason: string } | undefined {
  const c = router.status?.conditions?.find((x) => x.type === type);
  return c ? { status: c.status, reason: c.reason } : undefined;
}

export interface TestOperator {
  metrics: Metrics;
  /** The operator's caches, to assert on what it holds. */
  informers: Informers;
  /** Sum of `rest_client_requests_total` for write methods (POST, PUT, PATCH, DELETE). */
  writes(): Promise<number>;
  stop(): Promise<void>;
}

/**
 * Starts the operator in-process (`src/operator.ts`, the wiring `harouter-operator`
 * runs: informers, event mapping, work queue, workers, reconciler) against the real
 * API server, watching `namespace`, without webhook, leader election or HTTP
 * servers, with its own metrics registry so that API writes can be counted.
 */
export async function startTestOperator(
  kc: KubeConfig,
  namespace: string,
  workers = 2,
  extraArgs: readonly string[] = [],
): Promise<TestOperator> {
  const log = pino({ level: process.env.HAROUTER_TEST_LOG ?? 'silent' });
  const metrics = createMetrics({ processMetrics: false });
  const parsed = parseConfig(
    [
      `--namespace=${namespace}`,
      '--webhook=false',
      '--leader-elect=false',
      '--metrics-bind-address=0',
      '--health-probe-bind-address=0',
      `--workers=${workers}`,
      `--identity=test-${process.pid}`,
      ...extraArgs,
    ],
    {},
  );
  if (parsed.help) throw new Error('unexpected --help');
  const operator = new Operator({
    config: parsed.config,
    log,
    metrics,
    connection: kubeConfigConnection(kc),
  });
  await operator.start();
  await waitFor(async () => operator.isLeader() && operator.cachesSynced(), 30_000);
  return {
    metrics,
    informers: operator.informers,
    async writes() {
      const json = await metrics.registry.getMetricsAsJSON();
      const values = json.find((m) => m.name === 'rest_client_requests_total')?.values ?? [];
      return values
        .filter((v) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(String(v.labels.method)))
        .reduce((sum, v) => sum + v.value, 0);
    },
    async stop() {
      await operator.stop();
    },
  };
}

/** An RFC 3339 time `seconds` after a fixed base, with nanoseconds. */
export function at(seconds: number, nanos = 0): string {
  const base = Date.UTC(2026, 10, 25, 12, 0, 0) / 1000 + seconds;
  return `${new Date(base * 1000).toISOString().slice(0, 19)}.${String(nanos).padStart(9, '0')}Z`;
}
