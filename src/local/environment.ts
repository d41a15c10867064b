import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { HARouterState } from '../api/index.ts';
import { applyWithRetries } from '../report/apply.ts';
import { loadTransport, type Transport } from '../report/kubeconfig.ts';
import type { Outcome } from '../report/retry.ts';
import { webhookConfiguration } from '../webhook/manifests.ts';
import {
  base64File,
  type ControlPlane,
  issueServingCert,
  startControlPlane,
  waitUntil,
  writeKubeconfig,
} from './controlplane/index.ts';
import { AGENT_JOB, startSampleNodes } from './keepalived.ts';
import { applyManifests, type Kubectl, kubectl } from './kubectl.ts';
import type { Nodes } from './nodes/index.ts';
import {
  choosePorts,
  type OperatorPorts,
  type OperatorProcess,
  preferredPort,
  startOperator,
} from './operator.ts';
import {
  CHART_ALERT_RULES,
  instantQuery,
  OPERATOR_JOB,
  PROMETHEUS_PORT,
  type RunningPrometheus,
  type ScrapeTarget,
  startPrometheus,
  writeScrapeTargets,
} from './prometheus.ts';
import {
  baseManifests,
  nodeManifests,
  REPORTER_SERVICE_ACCOUNT,
  readyNodeStatus,
  reporterPodName,
  SAMPLE_NAMESPACE,
  SAMPLE_NODES,
  SAMPLE_ROUTER_ID,
  SEED_OBSERVED_AT,
  SEED_STATES,
  SYSTEM_NAMESPACE,
  sampleReport,
  sampleRouterManifests,
} from './sample.ts';
import { type Supervised, supervise } from './supervisor.ts';

const repoRoot = resolve(import.meta.dirname, '../..');

/** How long the reporter kubeconfigs' pod-bound tokens live. */
export const REPORTER_TOKEN_DURATION = '24h';

/** Options of {@link startLocal}. */
export interface LocalOptions {
  dir: string;
  logLevel: string;
  /** Free ports for the operator even when the defaults are free. */
  freePorts?: boolean;
  /** Progress and operator log lines. */
  print: (line: string) => void;
  /** Aborts start-up between steps (Ctrl-C): everything started is stopped, then startLocal rejects. */
  signal?: AbortSignal;
  /** Run a Prometheus scraping the operator (and `scrapeTargets`) with the chart's alert rules. */
  prometheus?: boolean;
  /** More endpoints for that Prometheus to scrape (the node agents' metrics, say). */
  scrapeTargets?: readonly ScrapeTarget[];
  /**
   * Run the sample nodes as network namespaces with real keepalived and an
   * agent each (`--keepalived`) instead of seeding reports; needs root.
   */
  keepalived?: boolean;
  /**
   * Who writes keepalived's configuration with `keepalived`: the harness, by
   * hand, for a sample router without `spec.vrrp` (`hand`, the default), or
   * the agents, from the sample router's `spec.vrrp` (`agents`: needs the
   * operator's VRID allocation and the agent's rendering).
   */
  keepalivedConfig?: 'agents' | 'hand';
}

/** A running local environment. */
export interface LocalEnvironment {
  dir: string;
  server: string;
  kubectlPath: string;
  ports: OperatorPorts;
  adminKubeconfig: string;
  reporterKubeconfigs: Record<string, string>;
  /** Resolves when local mode gives up restarting the operator after repeated exits (why). */
  operatorExit: Promise<string>;
  /** The control plane itself, for tests and benchmarks that freeze or restart its parts. */
  controlPlane: ControlPlane;
  /**
   * The Prometheus, with `--prometheus`: its URL, and its directory for
   * `writeScrapeTargets(dir, group, targets)` (more targets while it runs).
   */
  prometheus?: { url: string; dir: string };
  /** With `keepalived`: the simulated nodes (keepalived and agent per node). */
  nodes?: Nodes;
  /** With `keepalived`: who writes keepalived's configuration (see {@link LocalOptions.keepalivedConfig}). */
  keepalivedConfig?: 'agents' | 'hand';
  /** `host:port` of every agent's metrics endpoint (empty without `keepalived`): scrape targets. */
  agentTargets: string[];
  /** Seconds each phase took, for the docs' cold and warm start times. */
  timings: { controlPlane: number; install: number; operator: number; total: number };
  stop(): Promise<void>;
}

/** The kubeconfigs local mode writes last, once everything works. */
export function kubeconfigPaths(dir: string) {
  return {
    admin: join(dir, 'admin.kubeconfig'),
    reporters: Object.fromEntries(
      SAMPLE_NODES.map((n) => [n.name, join(dir, `reporter-${n.name}.kubeconfig`)]),
    ),
  };
}

/** Applies one report as a reporter, retrying transient failures for up to `deadlineMs`. */
async function report(
  transport: Transport,
  object: HARouterState,
  deadlineMs: number,
  dryRun = false,
): Promise<Outcome> {
  const limits = { requestTimeoutMs: 5000, deadlineMs, maxAttempts: 100 };
  return (await applyWithRetries(transport, object, limits, { dryRun })).outcome;
}

async function writeAtomically(path: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp`;
  await write(tmp);
  await rename(tmp, path);
}

function seconds(fromMs: number): number {
  return Math.round((performance.now() - fromMs) / 100) / 10;
}

/**
 * Starts everything local mode runs (see `docs/local-mode.md`): the control
 * plane in `DIR/cluster`, the CRDs, RBAC, sample nodes, reporter Pods and router,
 * the webhook configuration, the operator; checks that the webhook intercepts
 * and seeds one report per node; writes the kubeconfigs last. On failure
 * everything started is stopped and the error says what did not work.
 */
export async function startLocal(options: LocalOptions): Promise<LocalEnvironment> {
  const dir = resolve(options.dir);
  const started = performance.now();
  const paths = kubeconfigPaths(dir);
  await mkdir(join(dir, 'logs'), { recursive: true, mode: 0o700 });
  // Kubeconfigs of a previous run point at a cluster that is gone: remove them
  // first, so that whoever waits for them only ever sees this run's.
  await Promise.all([paths.admin, ...Object.values(paths.reporters)].map((p) => rm(p, { force: true })));

  let plane: ControlPlane | undefined;
  let operator: OperatorProcess | Supervised | undefined;
  let prometheus: RunningPrometheus | undefined;
  let nodes: Nodes | undefined;
  const stop = async () => {
    await nodes?.stop();
    await operator?.stop(15_000);
    await prometheus?.stop();
    await plane?.stop();
    await Promise.all([paths.admin, ...Object.values(paths.reporters)].map((p) => rm(p, { force: true })));
  };

  const checkpoint = () => {
    if (options.signal?.aborted) throw new Error('start-up interrupted');
  };
  try {
    options.print('local: starting etcd, kube-apiserver and kube-controller-manager ...');
    plane = await startControlPlane({
      dir: join(dir, 'cluster'),
      buildProgress: (line) => options.print(`local: ${line}`),
    });
    const controlPlaneSeconds = seconds(started);
    options.print(`local: control plane ready at ${plane.server} (${controlPlaneSeconds} s)`);

    checkpoint();
    const installStarted = performance.now();
    const k: Kubectl = {
      binary: plane.binaries.kubectl,
      kubeconfig: plane.kubeconfigPath,
      cacheDir: join(dir, 'cluster', 'kubectl-cache'),
    };
    const crdDir = join(repoRoot, 'crds');
    const crds = (await readdir(crdDir)).filter((f) => f.endsWith('.yaml')).map((f) => join(crdDir, f));
    const fileArgs = crds.flatMap((f) => ['-f', f]);
    await kubectl(k, ['apply', '--server-side', '--field-manager=harouter-local', ...fileArgs]);
    await kubectl(k, ['wait', '--for=condition=Established', '--timeout=60s', ...fileArgs]);
    await applyManifests(k, [...baseManifests(), ...nodeManifests()]);
    const now = new Date().toISOString().replace(/\.[0-9]+Z$/, 'Z');
    await Promise.all(
      SAMPLE_NODES.map((node) =>
        kubectl(k, [
          'patch',
          'node',
          node.name,
          '--subresource=status',
          '--type=merge',
          '-p',
          JSON.stringify(readyNodeStatus(node, now)),
        ]),
      ),
    );
    const renderedByAgents = options.keepalived === true && options.keepalivedConfig === 'agents';
    await applyManifests(k, sampleRouterManifests({ vrrp: renderedByAgents }));
    const tokens = Object.fromEntries(
      await Promise.all(
        SAMPLE_NODES.map(
          async (node) =>
            [
              node.name,
              (
                await kubectl(k, [
                  'create',
                  'token',
                  REPORTER_SERVICE_ACCOUNT,
                  `--namespace=${SYSTEM_NAMESPACE}`,
                  '--bound-object-kind=Pod',
                  `--bound-object-name=${reporterPodName(node.name)}`,
                  `--duration=${REPORTER_TOKEN_DURATION}`,
                ])
              ).trim(),
            ] as const,
        ),
      ),
    );
    const certDir = join(dir, 'webhook');
    await rm(certDir, { recursive: true, force: true });
    await issueServingCert({
      ca: plane.ca,
      dir: certDir,
      name: 'tls',
      ips: ['127.0.0.1'],
      dnsNames: ['localhost'],
    });
    const ports = await choosePorts(options.freePorts ? { metrics: 0, probes: 0, webhook: 0 } : undefined);
    if (options.prometheus) {
      const port = await preferredPort(options.freePorts ? 0 : PROMETHEUS_PORT);
      options.print(`local: starting Prometheus on 127.0.0.1:${port} with the chart's alert rules ...`);
      prometheus = await startPrometheus({
        dir: join(dir, 'prometheus'),
        port,
        targets: {
          operator: [{ job: OPERATOR_JOB, url: `http://127.0.0.1:${ports.metrics}/metrics` }],
          extra: options.scrapeTargets ?? [],
        },
        ruleFiles: [CHART_ALERT_RULES],
        logPath: join(dir, 'logs', 'prometheus.log'),
        buildProgress: (line) => options.print(`local: ${line}`),
      });
    }
    await applyManifests(k, [
      webhookConfiguration({
        url: `https://127.0.0.1:${ports.webhook}/validate`,
        caBundle: await base64File(plane.ca.certPath),
      }),
    ]);
    const installSeconds = seconds(installStarted);
    options.print(
      `local: CRDs, RBAC, nodes, reporter pods, sample router and webhook installed (${installSeconds} s)`,
    );

    checkpoint();
    const operatorStarted = performance.now();
    options.print(
      `local: starting the operator (metrics :${ports.metrics}, probes :${ports.probes}, webhook :${ports.webhook})`,
    );
    const operatorOptions = {
      kubeconfig: plane.kubeconfigPath,
      certDir,
      webhookClientCa: plane.pki.webhookClient.ca.certPath,
      ports,
      logPath: join(dir, 'logs', 'operator.log'),
      logLevel: options.logLevel,
      print: (line: string) => options.print(`operator | ${line}`),
    };
    const runningOperator = startOperator(operatorOptions);
    operator = runningOperator;
    const operatorDied = () => {
      if (options.signal?.aborted) return 'interrupted';
      const exit = runningOperator.exited();
      return exit ? `the operator exited (${exit}); see ${join(dir, 'logs', 'operator.log')}` : undefined;
    };
    await waitUntil(
      'the operator to be ready (/readyz)',
      90_000,
      async () => (await fetch(`http://127.0.0.1:${ports.probes}/readyz`)).status === 200,
      operatorDied,
    );
    // The reporters' kubeconfigs, staged inside the cluster directory until everything works.
    const staged = (node: string) => join(dir, 'cluster', `reporter-${node}.kubeconfig`);
    for (const node of SAMPLE_NODES) {
      await writeKubeconfig({
        path: staged(node.name),
        server: plane.server,
        caCertPath: plane.ca.certPath,
        user: { token: tokens[node.name] as string },
        namespace: SAMPLE_NAMESPACE,
        userName: `reporter-${node.name}`,
      });
    }
    const reporterA = await loadTransport(staged('node-a'));
    // The webhook is intercepting when node-a's reporter cannot write node-b's report (dry run: nothing stored).
    await waitUntil(
      'the webhook to intercept a dry-run report for the wrong node',
      60_000,
      async () => {
        const probe = sampleReport('node-b', 'Primary', SEED_OBSERVED_AT) as HARouterState;
        const outcome = await report(reporterA, probe, 5000, true);
        return outcome.kind === 'refused' && outcome.message.includes('NodeBinding');
      },
      operatorDied,
    );
    checkpoint();
    if (options.keepalived) {
      options.print('local: starting the nodes: network namespaces, an agent and keepalived per node ...');
      nodes = await startSampleNodes({
        dir: join(dir, 'nodes'),
        kubeconfigs: Object.fromEntries(SAMPLE_NODES.map((n) => [n.name, staged(n.name)])),
        renderedByAgents,
        ...(options.freePorts ? { freePorts: true } : {}),
      });
      options.print(
        renderedByAgents
          ? `local: nodes running (${nodes.run}-*); the agents render the sample router's keepalived configuration, keepalived elects node-a (priority 150) in about 4 s`
          : `local: nodes running (${nodes.run}-*); keepalived elects node-a (priority 150) in about 4 s`,
      );
      if (prometheus) {
        const targets = nodes
          .agentMetricsTargets()
          .map((t) => ({ job: AGENT_JOB, url: `http://${t}/metrics` }));
        await writeScrapeTargets(prometheus.dir, 'agents', targets);
      }
    } else {
      // The seed reports, with kubectl apply as each node's reporter: what a person runs next.
      for (const node of SAMPLE_NODES) {
        const seed = sampleReport(node.name, SEED_STATES[node.name] ?? 'Backup', SEED_OBSERVED_AT);
        await kubectl({ ...k, kubeconfig: staged(node.name) }, ['apply', '-f', '-'], JSON.stringify(seed));
      }
    }
    // keepalived with the agents' configuration runs every instance BACKUP with nopreempt: whichever
    // node's master-down timer ends first wins (node-a's, the shortest, unless its reload came late).
    let active = '';
    await waitUntil(
      renderedByAgents
        ? 'keepalived and the agents to give the sample router an active agent'
        : options.keepalived
          ? 'keepalived and the agents to make node-a the sample router active agent'
          : 'the operator to make node-a the sample router active agent',
      60_000,
      async () => {
        active = (
          await kubectl(k, [
            'get',
            'harouters',
            SAMPLE_ROUTER_ID,
            `--namespace=${SAMPLE_NAMESPACE}`,
            '-o',
            'jsonpath={.status.activeAgent}',
          ])
        ).trim();
        return renderedByAgents ? active !== '' : active === 'node-a';
      },
      operatorDied,
    );
    if (prometheus) {
      const url = prometheus.url;
      await waitUntil(
        `Prometheus to scrape the operator (up{job="${OPERATOR_JOB}"} == 1 at ${url})`,
        30_000,
        async () => (await instantQuery(url, `up{job="${OPERATOR_JOB}"} == 1`)).length > 0,
        operatorDied,
      );
    }
    const operatorSeconds = seconds(operatorStarted);
    options.print(
      `local: operator ready, webhook intercepting, sample router active on ${active} (${operatorSeconds} s)`,
    );

    checkpoint();
    // Last: the kubeconfigs, so that their presence means everything works.
    for (const node of SAMPLE_NODES) {
      await writeAtomically(paths.reporters[node.name] as string, (tmp) => copyFile(staged(node.name), tmp));
    }
    await writeAtomically(paths.admin, (tmp) =>
      writeKubeconfig({
        path: tmp,
        server: plane?.server as string,
        caCertPath: plane?.ca.certPath as string,
        user: plane?.pki.admin as { certPath: string; keyPath: string },
        namespace: SAMPLE_NAMESPACE,
      }),
    );
    // From now on an operator that exits is restarted, as a cluster would restart its Pod.
    const supervised = supervise(runningOperator, () => startOperator(operatorOptions), {
      print: options.print,
    });
    operator = supervised;
    return {
      dir,
      server: plane.server,
      kubectlPath: plane.binaries.kubectl,
      ports,
      adminKubeconfig: paths.admin,
      reporterKubeconfigs: paths.reporters,
      operatorExit: supervised.gaveUp,
      controlPlane: plane,
      ...(prometheus ? { prometheus: { url: prometheus.url, dir: prometheus.dir } } : {}),
      ...(nodes
        ? { nodes, keepalivedConfig: renderedByAgents ? ('agents' as const) : ('hand' as const) }
        : {}),
      agentTargets: nodes?.agentMetricsTargets() ?? [],
      timings: {
        controlPlane: controlPlaneSeconds,
        install: installSeconds,
        operator: operatorSeconds,
        total: seconds(started),
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Refuses to start a second local mode on the same directory while the first runs. */
export async function takeDirectoryLock(dir: string): Promise<() => Promise<void>> {
  const lock = join(resolve(dir), 'local.pid');
  await mkdir(resolve(dir), { recursive: true, mode: 0o700 });
  try {
    const pid = Number((await readFile(lock, 'utf8')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) {
      let alive = false;
      try {
        process.kill(pid, 0);
        alive = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).includes('local/main.ts');
      } catch {
        alive = false;
      }
      if (alive)
        throw new Error(`local mode already runs on ${resolve(dir)} (pid ${pid}); stop it with Ctrl-C first`);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await writeFile(lock, `${process.pid}\n`);
  return async () => {
    await rm(lock, { force: true });
  };
}
