import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import {
  type BuildProgress,
  type ManagedProcess,
  prometheusBinary,
  startProcess,
  waitUntil,
} from './controlplane/index.ts';

const repoRoot = resolve(import.meta.dirname, '../..');

/** The chart's alert rules, loaded by local mode's Prometheus exactly as they ship. */
export const CHART_ALERT_RULES = join(
  repoRoot,
  'charts',
  'harouter-operator',
  'files',
  'alerts',
  'harouter.rules.yaml',
);

/**
 * The operator's `job` label: what the chart's ServiceMonitor gives it (the Prometheus Operator
 * names the job after the metrics Service, `<release>-harouter-operator-metrics`, here the
 * release `harouter-operator`).
 */
export const OPERATOR_JOB = 'harouter-operator-metrics';

/** Prometheus's default port, used by local mode when free on 127.0.0.1. */
export const PROMETHEUS_PORT = 9090;

/** One endpoint for Prometheus to scrape, with the `job` label its series get. */
export interface ScrapeTarget {
  job: string;
  /** `http://host:port/path` */
  url: string;
}

/** How often local mode's Prometheus scrapes and evaluates rules (alerts become pending within seconds). */
export const LOCAL_INTERVALS = { scrape: '2s', evaluation: '2s' } as const;

/**
 * The Prometheus configuration: one scrape job reading its targets from the JSON files
 * in `targetsDir` (file service discovery: a file written later, by {@link writeScrapeTargets},
 * is picked up without a restart), keeping the metrics' own labels like the chart's
 * ServiceMonitor (`honor_labels`), and the given rule files. Pure.
 */
export function prometheusConfig(options: {
  targetsDir: string;
  ruleFiles: readonly string[];
  scrapeInterval?: string;
  evaluationInterval?: string;
}): string {
  const scrape = options.scrapeInterval ?? LOCAL_INTERVALS.scrape;
  return stringify({
    global: {
      scrape_interval: scrape,
      scrape_timeout: scrape,
      evaluation_interval: options.evaluationInterval ?? LOCAL_INTERVALS.evaluation,
    },
    rule_files: [...options.ruleFiles],
    scrape_configs: [
      {
        job_name: 'local',
        honor_labels: true,
        file_sd_configs: [{ files: [join(options.targetsDir, '*.json')], refresh_interval: '2s' }],
      },
    ],
  });
}

/**
 * The file-discovery target groups for `targets` (the job, scheme and path travel as labels).
 * Throws on a URL Prometheus cannot scrape. Pure.
 */
export function targetGroups(targets: readonly ScrapeTarget[]): unknown[] {
  return targets.map((target) => {
    const url = new URL(target.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`scrape target ${target.job}: ${target.url} is not an http(s) URL`);
    }
    const port = url.port || (url.protocol === 'https:' ? '443' : '80');
    return {
      targets: [`${url.hostname}:${port}`],
      labels: { job: target.job, __scheme__: url.protocol.slice(0, -1), __metrics_path__: url.pathname },
    };
  });
}

/**
 * Sets the targets of one named group (`operator`, `agents`, ...) of a running Prometheus:
 * written atomically to `<dir>/targets/<name>.json`, picked up within seconds. An empty list
 * removes the group's targets.
 */
export async function writeScrapeTargets(
  dir: string,
  name: string,
  targets: readonly ScrapeTarget[],
): Promise<void> {
  if (!/^[a-z0-9-]+$/.test(name))
    throw new Error(`scrape target group name ${JSON.stringify(name)}: use a-z, 0-9 and -`);
  const targetsDir = join(dir, 'targets');
  await mkdir(targetsDir, { recursive: true, mode: 0o700 });
  const path = join(targetsDir, `${name}.json`);
  await writeFile(`${path}.tmp`, JSON.stringify(targetGroups(targets), null, 2));
  await rename(`${path}.tmp`, path);
}

/** Options of {@link startPrometheus}. */
export interface PrometheusOptions {
  /** Its directory: configuration, target files and `data/` (replaced at each start). */
  dir: string;
  port: number;
  /** The initial targets, by group name (more can be written later with {@link writeScrapeTargets}). */
  targets: Record<string, readonly ScrapeTarget[]>;
  ruleFiles: readonly string[];
  logPath: string;
  scrapeInterval?: string;
  evaluationInterval?: string;
  /** Where a first-time build of the Prometheus binary reports its progress. */
  buildProgress?: BuildProgress;
  /** Longest wait for `/-/ready` (default 60 s). */
  readyTimeoutMs?: number;
}

/** A running Prometheus. */
export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly dir: string;
  readonly process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Builds Prometheus when missing, starts it on 127.0.0.1 with fresh data and resolves once
 * `/-/ready` answers and the rule files are loaded (they are checked at start: a broken file fails
 * here, with Prometheus's log). Stops it again when it does not become ready.
 */
export async function startPrometheus(options: PrometheusOptions): Promise<RunningPrometheus> {
  const binary = await prometheusBinary(options.buildProgress);
  const dir = resolve(options.dir);
  await rm(join(dir, 'data'), { recursive: true, force: true });
  await rm(join(dir, 'targets'), { recursive: true, force: true });
  await mkdir(join(dir, 'data'), { recursive: true, mode: 0o700 });
  for (const [name, targets] of Object.entries(options.targets)) await writeScrapeTargets(dir, name, targets);
  const configPath = join(dir, 'prometheus.yml');
  await writeFile(
    configPath,
    prometheusConfig({
      targetsDir: join(dir, 'targets'),
      ruleFiles: options.ruleFiles,
      ...(options.scrapeInterval ? { scrapeInterval: options.scrapeInterval } : {}),
      ...(options.evaluationInterval ? { evaluationInterval: options.evaluationInterval } : {}),
    }),
  );
  const url = `http://127.0.0.1:${options.port}`;
  const server = startProcess(
    'prometheus',
    binary,
    [
      `--config.file=${configPath}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${options.port}`,
      '--storage.tsdb.retention.time=2d',
    ],
    options.logPath,
  );
  try {
    await waitUntil(
      `Prometheus to be ready (${url}/-/ready)`,
      options.readyTimeoutMs ?? 60_000,
      async () => (await fetch(`${url}/-/ready`)).status === 200,
      () => {
        const exit = server.exited();
        return exit ? `Prometheus exited (${exit}); see ${options.logPath}` : undefined;
      },
    );
  } catch (error) {
    await server.stop();
    throw error;
  }
  return { url, dir, process: server, stop: () => server.stop() };
}

/** One series of an instant query's result. */
export interface PromSample {
  metric: Record<string, string>;
  value: number;
}

/**
 * An instant query through Prometheus's HTTP API (`/api/v1/query`), now or at
 * `atSeconds` (Unix time). Rejects with
 * Prometheus's error (a query that does not parse or cannot run); a scalar or string
 * result comes back as one sample without labels.
 */
export async function instantQuery(url: string, expr: string, atSeconds?: number): Promise<PromSample[]> {
  const params = new URLSearchParams({
    query: expr,
    ...(atSeconds === undefined ? {} : { time: String(atSeconds) }),
  });
  const response = await fetch(`${url}/api/v1/query?${params}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as {
    status: string;
    error?: string;
    data?: { resultType: string; result: unknown };
  };
  if (body.status !== 'success' || !body.data) {
    throw new Error(`Prometheus query ${JSON.stringify(expr)} failed: ${body.error ?? response.status}`);
  }
  const { resultType, result } = body.data;
  if (resultType === 'scalar' || resultType === 'string') {
    return [{ metric: {}, value: Number((result as [number, string])[1]) }];
  }
  if (resultType !== 'vector')
    throw new Error(`Prometheus query ${JSON.stringify(expr)}: a ${resultType}, not a vector`);
  return (result as { metric: Record<string, string>; value: [number, string] }[]).map((s) => ({
    metric: s.metric,
    value: Number(s.value[1]),
  }));
}

/** One series of a range query's result: its labels and its `[unix seconds, value]` points. */
export interface PromSeries {
  metric: Record<string, string>;
  points: [number, number][];
}

/** A range query through Prometheus's HTTP API (`/api/v1/query_range`), as a Grafana time series panel runs it. */
export async function rangeQuery(
  url: string,
  expr: string,
  range: { start: number; end: number; stepSeconds: number },
): Promise<PromSeries[]> {
  const params = new URLSearchParams({
    query: expr,
    start: String(range.start),
    end: String(range.end),
    step: String(range.stepSeconds),
  });
  const response = await fetch(`${url}/api/v1/query_range?${params}`, {
    signal: AbortSignal.timeout(10_000),
  });
  const body = (await response.json()) as {
    status: string;
    error?: string;
    data?: { result: { metric: Record<string, string>; values: [number, string][] }[] };
  };
  if (body.status !== 'success' || !body.data) {
    throw new Error(
      `Prometheus range query ${JSON.stringify(expr)} failed: ${body.error ?? response.status}`,
    );
  }
  return body.data.result.map((s) => ({
    metric: s.metric,
    points: s.values.map(([t, v]) => [t, Number(v)] as [number, number]),
  }));
}
