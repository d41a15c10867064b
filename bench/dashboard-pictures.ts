/**
 * The dashboard's pictures for docs/observability.md (not a test, not a benchmark):
 * a local control plane, the operator (`bin/harouter-operator.js`) and a Prometheus
 * scraping it every second; a failover (node-a's keepalived faults, node-b takes its
 * four routers) and a split brain (node-a claims one router back while node-b holds it,
 * then steps down); then the dashboard's own panel queries, run by Prometheus over
 * each scenario's minute, drawn as PNGs:
 *
 *   npm run dashboard-pictures -- [--out docs/images] [--keep]
 *
 * Writes `dashboard-failover.png` and `dashboard-split-brain.png`. Needs the built binaries
 * (like the tests) and `rsvg-convert` (Debian: `apt-get install librsvg2-bin`).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { freePort, startControlPlane, startProcess, waitUntil } from '../src/local/controlplane/index.ts';
import { instantQuery, OPERATOR_JOB, rangeQuery } from '../src/local/prometheus.ts';
import {
  elect,
  failover,
  splitBrain,
  startScenarioPrometheus,
} from '../test/integration/monitoring-scenarios.ts';
import { Cluster, installCrds } from '../test/integration/reconcile-harness.ts';
import { dashboardPanels, substituteGrafanaVariables } from '../test/unit/chart-helpers.ts';
import { type DrawnPanel, dashboardSvg, legendName, type Placed } from './dashboard-svg.ts';

const repoRoot = resolve(import.meta.dirname, '..');
const NAMESPACE = 'edge';
/** Four routers (a router's name is its id, a UUID); the third one goes through the split brain. */
const ROUTERS = [1, 2, 3, 4].map((n) => `0000000${n}-5eed-4000-8000-00000000000${n}`);
const SPLIT = ROUTERS[2] as string;
/** The dashboard's `$__rate_interval` for a 1 s scrape interval. */
const RATE_INTERVAL = '15s';

const { values: args } = parseArgs({
  options: { out: { type: 'string', default: 'docs/images' }, keep: { type: 'boolean', default: false } },
});
const out = resolve(args.out ?? 'docs/images');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const now = () => Date.now() / 1000;
const say = (line: string) => process.stdout.write(`dashboard-pictures: ${line}\n`);

await promisify(execFile)('rsvg-convert', ['--version']).catch(() => {
  throw new Error('rsvg-convert is needed to turn the SVG into PNG: apt-get install -y librsvg2-bin');
});

const dir = await mkdtemp(join(tmpdir(), 'harouter-pictures-'));
const plane = await startControlPlane({ dir: join(dir, 'cluster') });
const stops: (() => Promise<void>)[] = [() => plane.stop()];
try {
  const kc = new KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  await installCrds(kc);
  await kc.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: NAMESPACE } } });
  const ports = { metrics: await freePort(), probes: await freePort() };
  const operator = startProcess(
    'harouter-operator',
    process.execPath,
    [
      join(repoRoot, 'bin', 'harouter-operator.js'),
      `--kubeconfig=${plane.kubeconfigPath}`,
      `--metrics-bind-address=127.0.0.1:${ports.metrics}`,
      `--health-probe-bind-address=127.0.0.1:${ports.probes}`,
      '--webhook=false',
      '--leader-elect=true',
      `--leader-election-namespace=${NAMESPACE}`,
      '--identity=pictures',
    ],
    join(dir, 'operator.log'),
    { env: { ...process.env, POD_NAMESPACE: NAMESPACE } },
  );
  stops.unshift(() => operator.stop());
  await waitUntil(
    'the operator to be ready',
    60_000,
    async () => (await fetch(`http://127.0.0.1:${ports.probes}/readyz`)).ok,
  );
  const prometheus = await startScenarioPrometheus(dir, ports.metrics);
  stops.unshift(() => prometheus.stop());

  const cluster = new Cluster(kc, NAMESPACE);
  await cluster.setNode('node-a', true, '198.51.100.11');
  await cluster.setNode('node-b', true, '198.51.100.12');
  await cluster.createService('edge');
  const agents = [{ name: 'node-a' }, { name: 'node-b' }];
  for (const router of ROUTERS) {
    await cluster.createRouter(router, {
      agents,
      ...(router === ROUTERS[0]
        ? { endpoint: { serviceName: 'edge', ports: [{ name: 'http', port: 80 }] } }
        : {}),
    });
  }
  say('scenario: four routers elect node-a');
  const failoverStart = now();
  for (const router of ROUTERS) await elect(cluster, router, 'node-a', ['node-b']);
  await sleep(25_000);
  say("scenario: node-a's keepalived faults, node-b takes every router");
  for (const router of ROUTERS) {
    await cluster.report(router, 'node-b', 'Primary', new Date().toISOString());
    await cluster.report(router, 'node-a', 'Fault', new Date().toISOString());
  }
  await sleep(35_000);
  const failoverEnd = now();
  say('scenario: node-a recovers as Backup, then claims the third router too (split brain), then steps down');
  for (const router of ROUTERS) await cluster.report(router, 'node-a', 'Backup', new Date().toISOString());
  await sleep(10_000);
  const splitStart = now() - 10;
  await splitBrain(cluster, SPLIT, 'node-b', 'node-a');
  await sleep(30_000);
  await failover(cluster, SPLIT, 'node-a', 'node-b');
  await sleep(15_000);
  const splitEnd = now();

  const panels = dashboardPanels();
  const variables = { job: OPERATOR_JOB, namespace: NAMESPACE, interval: RATE_INTERVAL };
  const alerting = new Set(['Split brain', 'No primary', 'Degraded']);

  /** One dashboard panel, by title, with its data over [start, end] as Grafana would draw it. */
  async function drawn(title: string, start: number, end: number): Promise<DrawnPanel> {
    const panel = panels.find((p) => p.title === title && p.type !== 'row');
    if (!panel) throw new Error(`the dashboard has no panel "${title}"`);
    const unit: string = panel.fieldConfig?.defaults?.unit ?? 'none';
    const exprs = (panel.targets as { expr: string; legendFormat?: string }[]).map((t) => ({
      expr: substituteGrafanaVariables(t.expr, variables),
      legend: t.legendFormat,
    }));
    if (panel.type === 'stat') {
      const [first] = await instantQuery(prometheus.url, (exprs[0] as { expr: string }).expr, end);
      return { type: 'stat', title, unit, value: first?.value, alert: alerting.has(title) };
    }
    if (panel.type === 'table') {
      const samples = await instantQuery(prometheus.url, (exprs[0] as { expr: string }).expr, end);
      const columns = [...new Set(samples.flatMap((s) => Object.keys(s.metric)))].filter(
        (c) => c !== '__name__',
      );
      return {
        type: 'table',
        title,
        columns: [...columns, 'Value'],
        rows: samples.map((s) => [...columns.map((c) => s.metric[c] ?? ''), String(s.value)]).sort(),
      };
    }
    const series = [];
    for (const { expr, legend } of exprs) {
      for (const s of await rangeQuery(prometheus.url, expr, { start, end, stepSeconds: 1 })) {
        series.push({ name: legendName(legend, s.metric), points: s.points });
      }
    }
    return { type: 'timeseries', title, unit, series };
  }

  const stats = ['Routers', 'Ready', 'Split brain', 'No primary', 'Degraded', 'Active changes (24h)'];
  async function picture(
    name: string,
    title: string,
    subtitle: string,
    window: [number, number],
    grid: [string, number, number, number, number][],
    statsAt = window[1],
  ) {
    const placed: Placed[] = [];
    for (const [i, stat] of stats.entries()) {
      placed.push({ panel: await drawn(stat, window[0], statsAt), x: i * 4, y: 0, w: 4, h: 3 });
    }
    for (const [panelTitle, x, y, w, h] of grid) {
      const table = panels.find((p) => p.title === panelTitle)?.type === 'table';
      placed.push({ panel: await drawn(panelTitle, window[0], table ? statsAt : window[1]), x, y, w, h });
    }
    const svg = dashboardSvg(title, subtitle, placed);
    await mkdir(out, { recursive: true });
    const svgPath = join(dir, `${name}.svg`);
    await writeFile(svgPath, svg);
    await promisify(execFile)('rsvg-convert', [
      '--format=png',
      `--output=${join(out, `${name}.png`)}`,
      svgPath,
    ]);
    say(`wrote ${join(out, `${name}.png`)}`);
  }

  const clock = (s: number) => new Date(s * 1000).toISOString().slice(11, 19);
  await picture(
    'dashboard-failover',
    'harouter-operator dashboard: a failover',
    `Four routers on node-a; at ${clock(failoverStart + 25)} UTC node-a's keepalived reports FAULT and node-b takes over (real operator, real Prometheus, 1 s scrapes, rate window ${RATE_INTERVAL})`,
    [failoverStart, failoverEnd],
    [
      ['Routers by condition', 0, 3, 12, 8],
      ['Active changes', 12, 3, 12, 8],
      ['Report-to-route latency', 0, 11, 12, 8],
      ['Active agent per router', 12, 11, 12, 8],
    ],
  );
  await picture(
    'dashboard-split-brain',
    'harouter-operator dashboard: a split brain',
    `node-a claims router ${SPLIT.slice(0, 8)} as MASTER while node-b holds it (${clock(splitStart + 10)} UTC), then steps down: node-b stays active throughout (stats and tables at ${clock(splitStart + 25)})`,
    [splitStart, splitEnd],
    [
      ['Routers by condition', 0, 3, 12, 8],
      ['Reports by state', 12, 3, 12, 8],
      ['Active agent per router', 0, 11, 12, 8],
      ['Reconciles and errors', 12, 11, 12, 8],
    ],
    splitStart + 25,
  );
} finally {
  for (const stop of stops) await stop().catch(() => undefined);
  if (!args.keep) await rm(dir, { recursive: true, force: true });
  else say(`kept ${dir}`);
}
