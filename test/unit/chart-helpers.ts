/**
 * Helpers for the chart, dashboard and alert tests (unit and integration tiers):
 * running the built helm binary on the chart, reading the dashboard and the alert
 * rules, and finding the metric names a PromQL expression selects.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parser } from '@prometheus-io/lezer-promql';
import { parseAllDocuments, parse as parseYaml } from 'yaml';
import { buildTools, KUBERNETES_VERSION, toolBinary } from '../../src/local/controlplane/binaries.ts';
import { createMetrics } from '../../src/metrics.ts';

export const repoRoot = resolve(import.meta.dirname, '../..');
export const chartDir = join(repoRoot, 'charts', 'harouter-operator');
export const alertRulesPath = join(chartDir, 'files', 'alerts', 'harouter.rules.yaml');
export const dashboardPath = join(chartDir, 'files', 'dashboards', 'harouter.json');

// biome-ignore lint/suspicious/noExplicitAny: rendered Kubernetes objects are open-ended JSON.
type Json = any;
export type KubeObject = { apiVersion: string; kind: string; metadata: Record<string, Json> } & Record<
  string,
  Json
>;

let helmChecked = false;

/**
 * The helm binary built from its Go module into the per-machine cache, with Helm's
 * Kubernetes-version link flags (so it renders for Kubernetes 1.36 without `--kube-version`);
 * built (about a minute) when missing or built with another recipe, so a fresh machine fails
 * only if the build does. Checked once per test file.
 */
export function helmBinary(): string {
  if (!helmChecked) {
    execFileSync('bash', [join(repoRoot, 'test', 'tools', 'build-binaries.sh'), 'helm'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    helmChecked = true;
  }
  return toolBinary('helm');
}

/**
 * promtool, built by `test/tools/build-binaries.sh promtool` (`go install` of
 * `github.com/prometheus/prometheus/cmd/promtool`, a module without replace directives) into the
 * per-machine cache when missing: several minutes once per machine, nothing afterwards.
 */
export async function promtoolBinary(): Promise<string> {
  await buildTools(['promtool']);
  return toolBinary('promtool');
}

/** helm with its own empty config, cache and data directories (no user repositories or plugins). */
function helmEnv(): NodeJS.ProcessEnv {
  const home = mkdtempSync(join(tmpdir(), 'harouter-helm-'));
  return {
    ...process.env,
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
}

export interface HelmResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs helm; resolves with the exit code and output (never rejects on a non-zero exit). */
export async function helm(args: string[], options: { kubeconfig?: string } = {}): Promise<HelmResult> {
  const env = helmEnv();
  if (options.kubeconfig) env.KUBECONFIG = options.kubeconfig;
  try {
    const { stdout, stderr } = await promisify(execFile)(helmBinary(), args, {
      env,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof failure.code !== 'number') throw error;
    return { code: failure.code, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

/** The Kubernetes version the tests' control plane runs (the project's helm assumes its minor version). */
export const KUBE_VERSION = KUBERNETES_VERSION;

/** Parses a multi-document YAML stream into its non-empty documents. */
export function parseManifests(text: string): KubeObject[] {
  const objects: KubeObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`invalid YAML: ${doc.errors[0]?.message}`);
    const value = doc.toJS() as KubeObject | null;
    if (value) objects.push(value);
  }
  return objects;
}

/** The values files of the chart-testing scenarios, `ci/<name>-values.yaml`. */
export function scenarioValues(name: string): string {
  return join(chartDir, 'ci', `${name}-values.yaml`);
}

/** The scenarios every render and dry-run test covers (default values first). */
export const SCENARIOS = [
  'default',
  'policy',
  'both',
  'cert-manager',
  'monitoring',
  'networkpolicy',
  'agent',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface RenderOptions {
  release?: string;
  namespace?: string;
  scenario?: Scenario;
  set?: string[];
  extraArgs?: string[];
}

/** `helm template` of the chart; throws with helm's stderr when the render fails. */
export async function renderChart(options: RenderOptions = {}): Promise<KubeObject[]> {
  const args = ['template', options.release ?? 'harouter-operator', chartDir];
  args.push('--namespace', options.namespace ?? 'harouter-system');
  if (options.scenario && options.scenario !== 'default') args.push('-f', scenarioValues(options.scenario));
  for (const set of options.set ?? []) args.push('--set', set);
  args.push(...(options.extraArgs ?? []));
  const result = await helm(args);
  if (result.code !== 0) throw new Error(`helm template failed (${result.code}): ${result.stderr}`);
  return parseManifests(result.stdout);
}

/** The CA and leaf of a chart-generated `kubernetes.io/tls` Secret, and whether its key is the leaf's. */
export function tlsSecretCertificates(secret: KubeObject): {
  ca: X509Certificate;
  leaf: X509Certificate;
  keyMatches: boolean;
} {
  const decode = (key: string) => Buffer.from(secret.data[key], 'base64').toString('utf8');
  const leaf = new X509Certificate(decode('tls.crt'));
  return {
    ca: new X509Certificate(decode('ca.crt')),
    leaf,
    keyMatches: leaf.checkPrivateKey(createPrivateKey(decode('tls.key'))),
  };
}

/** Finds exactly one object of a kind (and name, when given). */
export function findObject(objects: KubeObject[], kind: string, name?: string): KubeObject {
  const matches = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (matches.length !== 1) {
    throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${matches.length}`);
  }
  return matches[0] as KubeObject;
}

export function kindsOf(objects: KubeObject[]): string[] {
  return objects.map((o) => o.kind);
}

// ---------------------------------------------------------------------------------------------
// PromQL

export interface PromqlAnalysis {
  /** Metric names selected by the expression's vector selectors. */
  metrics: string[];
  /** Text of the parse tree's error nodes (empty when the expression parses). */
  errors: string[];
  /** Vector selectors without a metric name (e.g. `{__name__=~"..."}`), which this project forbids. */
  namelessSelectors: string[];
}

/** Parses a PromQL expression with the Prometheus project's lezer grammar. */
export function analysePromql(expr: string): PromqlAnalysis {
  const tree = parser.parse(expr);
  const metrics = new Set<string>();
  const errors: string[] = [];
  const namelessSelectors: string[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError)
        errors.push(`${node.from}: ${JSON.stringify(expr.slice(node.from, node.to + 10))}`);
      if (node.name === 'VectorSelector') {
        const identifier = node.node.getChild('Identifier');
        if (identifier) metrics.add(expr.slice(identifier.from, identifier.to));
        else namelessSelectors.push(expr.slice(node.from, node.to));
      }
    },
  });
  return { metrics: [...metrics].sort(), errors, namelessSelectors };
}

/** A named PromQL expression (where it comes from, and the expression). */
export interface Query {
  where: string;
  expr: string;
}

/** The problems of one expression: parse errors, name-less selectors, or no metric at all. */
export function promqlProblems(expr: string): string[] {
  const analysis = analysePromql(expr);
  const problems = [
    ...analysis.errors.map((e) => `parse error at ${e}`),
    ...analysis.namelessSelectors.map((s) => `selector without a metric name: ${s}`),
  ];
  if (analysis.metrics.length === 0) problems.push('selects no metric');
  return problems;
}

export interface LabelMatcher {
  name: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

/** Every vector selector of an expression with its label matchers. */
export function vectorSelectors(expr: string): { metric: string; matchers: LabelMatcher[] }[] {
  const selectors: { metric: string; matchers: LabelMatcher[] }[] = [];
  parser.parse(expr).iterate({
    enter(node) {
      if (node.name !== 'VectorSelector') return;
      const identifier = node.node.getChild('Identifier');
      const matchers: LabelMatcher[] = [];
      for (const matcher of node.node.getChild('LabelMatchers')?.getChildren('UnquotedLabelMatcher') ?? []) {
        const name = matcher.getChild('LabelName');
        const op = matcher.getChild('MatchOp');
        const literal = matcher.getChild('StringLiteral');
        if (!name || !op || !literal) continue;
        const raw = expr.slice(literal.from, literal.to);
        matchers.push({
          name: expr.slice(name.from, name.to),
          op: expr.slice(op.from, op.to) as LabelMatcher['op'],
          value: raw.startsWith('"') ? (JSON.parse(raw) as string) : raw.slice(1, -1),
        });
      }
      selectors.push({ metric: identifier ? expr.slice(identifier.from, identifier.to) : '', matchers });
    },
  });
  return selectors;
}

/** Values for Grafana's variables: `interval` for `$__interval`, `$__rate_interval` and `$__range`, else by name. */
export type GrafanaValues = Record<string, string>;

/**
 * Replaces Grafana's variables with values that keep the expression valid PromQL: the
 * given ones, else 5m for the intervals and `.*` (Grafana's "All") for the others.
 */
export function substituteGrafanaVariables(expr: string, values: GrafanaValues = {}): string {
  return expr
    .replaceAll(/\$__(rate_)?interval|\$__range/g, values.interval ?? '5m')
    .replaceAll(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_all, name: string) => values[name] ?? '.*');
}

/**
 * Every series name the operator exports: the names registered by `createMetrics()`
 * (with each histogram's `_bucket`, `_sum`, `_count` and summary's `_sum`, `_count`),
 * which includes prom-client's default process and Node.js metrics.
 */
export async function exportedMetricNames(): Promise<Set<string>> {
  const metrics = createMetrics();
  const names = new Set<string>();
  for (const metric of await metrics.registry.getMetricsAsJSON()) {
    const type = String(metric.type);
    names.add(metric.name);
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(metric.name + s);
    if (type === 'summary') for (const s of ['_sum', '_count']) names.add(metric.name + s);
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// Alerts and dashboard

export interface AlertRule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export function alertRuleGroups(): RuleGroup[] {
  const file = parseYaml(readFileSync(alertRulesPath, 'utf8')) as { groups: RuleGroup[] };
  return file.groups;
}

export function alertRules(): AlertRule[] {
  return alertRuleGroups().flatMap((g) => g.rules);
}

export function alertQueries(): Query[] {
  return alertRules().map((r) => ({ where: `alert ${r.alert ?? r.record}`, expr: r.expr }));
}

// biome-ignore lint/suspicious/noExplicitAny: a Grafana dashboard is open-ended JSON.
export type Dashboard = Record<string, any>;

export function dashboard(): Dashboard {
  return JSON.parse(readFileSync(dashboardPath, 'utf8')) as Dashboard;
}

// biome-ignore lint/suspicious/noExplicitAny: see Dashboard.
export function dashboardPanels(d: Dashboard = dashboard()): any[] {
  // biome-ignore lint/suspicious/noExplicitAny: see Dashboard.
  const panels: any[] = [];
  // biome-ignore lint/suspicious/noExplicitAny: see Dashboard.
  const walk = (list: any[] | undefined) => {
    for (const p of list ?? []) {
      panels.push(p);
      walk(p.panels);
    }
  };
  walk(d.panels);
  return panels;
}

/** Every PromQL expression of the dashboard: panel targets, and the metrics of `label_values()` variables. */
export function dashboardQueries(d: Dashboard = dashboard(), values: GrafanaValues = {}): Query[] {
  const queries: Query[] = [];
  for (const panel of dashboardPanels(d)) {
    for (const target of panel.targets ?? []) {
      queries.push({
        where: `panel "${panel.title}" ${target.refId}`,
        expr: substituteGrafanaVariables(target.expr, values),
      });
    }
  }
  for (const variable of d.templating?.list ?? []) {
    if (variable.type !== 'query') continue;
    const query: string = typeof variable.query === 'string' ? variable.query : variable.query.query;
    const labelValues = /^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$/.exec(query);
    queries.push({
      where: `variable ${variable.name}`,
      expr: substituteGrafanaVariables(labelValues ? (labelValues[1] as string) : query, values),
    });
  }
  return queries;
}
