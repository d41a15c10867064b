/**
 * The alert rules run by Prometheus's own rule engine: `promtool check rules` on the rule file
 * (expressions and annotation templates), and `promtool test rules` on synthetic series, so that
 * each alert fires when it should, after its `for`, with its labels, and stays quiet otherwise.
 * promtool is built from the `github.com/prometheus/prometheus` Go module into the per-machine
 * cache when missing (a few minutes once; see promtoolBinary()).
 *
 * The rule-test copy of the file drops the annotations (promtool compares them verbatim, and the
 * runbooks are long); `promtool check rules` validates their templates on the real file.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { alertRuleGroups, alertRulesPath, promtoolBinary } from './chart-helpers.ts';

const run = promisify(execFile);

interface AlertCase {
  eval_time: string;
  alertname: string;
  exp_alerts: { exp_labels: Record<string, string> }[];
}

interface TestGroup {
  name: string;
  interval: string;
  input_series: { series: string; values: string }[];
  alert_rule_test: AlertCase[];
}

const none = (alertname: string, evalTime: string): AlertCase => ({
  eval_time: evalTime,
  alertname,
  exp_alerts: [],
});
const fires = (alertname: string, evalTime: string, ...labels: Record<string, string>[]): AlertCase => ({
  eval_time: evalTime,
  alertname,
  exp_alerts: labels.map((l) => ({ exp_labels: l })),
});

/** Synthetic scrapes of a leader (instance a) and a follower (instance b). */
const TESTS: TestGroup[] = [
  {
    name: 'split brain after 1m, from the leader; the follower exports zeros',
    interval: '1m',
    input_series: [
      { series: 'harouter_routers{condition="split_brain",instance="a"}', values: '0 0 1x10' },
      { series: 'harouter_routers{condition="split_brain",instance="b"}', values: '0x12' },
    ],
    alert_rule_test: [
      none('HARouterSplitBrain', '2m'),
      none('HARouterSplitBrain', '2m30s'),
      fires('HARouterSplitBrain', '4m', { severity: 'critical' }),
    ],
  },
  {
    name: 'no primary per router after 2m; a routed router stays quiet',
    interval: '1m',
    input_series: [
      {
        series: 'harouter_router_info{namespace="n1",router="r1",active_agent="",instance="a"}',
        values: '1x10',
      },
      {
        series: 'harouter_router_info{namespace="n1",router="r2",active_agent="node-a",instance="a"}',
        values: '1x10',
      },
    ],
    alert_rule_test: [
      none('HARouterNoPrimary', '1m'),
      fires('HARouterNoPrimary', '3m', { severity: 'critical', namespace: 'n1', router: 'r1' }),
    ],
  },
  {
    name: 'degraded after 10m',
    interval: '1m',
    input_series: [{ series: 'harouter_routers{condition="degraded",instance="a"}', values: '2x20' }],
    alert_rule_test: [
      none('HARouterDegraded', '9m'),
      fires('HARouterDegraded', '11m', { severity: 'warning' }),
    ],
  },
  {
    name: 'flapping: 9 active changes in a day fire, 8 do not',
    interval: '5m',
    input_series: [
      {
        series: 'harouter_router_transitions_total{namespace="n1",router="nine",instance="a"}',
        values: '0+1x9 9x20',
      },
      {
        series: 'harouter_router_transitions_total{namespace="n1",router="eight",instance="a"}',
        values: '0+1x8 8x20',
      },
    ],
    alert_rule_test: [
      fires('HARouterFlapping', '1h30m', { severity: 'warning', namespace: 'n1', router: 'nine' }),
    ],
  },
  {
    name: 'admission denials: 20 a minute fire per reason, 1 a minute does not',
    interval: '1m',
    input_series: [
      {
        series: 'harouter_admission_decisions_total{decision="denied",reason="NodeMismatch"}',
        values: '0+20x20',
      },
      {
        series: 'harouter_admission_decisions_total{decision="denied",reason="StaleReport"}',
        values: '0+1x20',
      },
      {
        series: 'harouter_admission_decisions_total{decision="allowed",reason="Reporter"}',
        values: '0+100x20',
      },
    ],
    alert_rule_test: [
      none('HARouterAdmissionDenialsSpiking', '4m'),
      fires('HARouterAdmissionDenialsSpiking', '12m', { severity: 'warning', reason: 'NodeMismatch' }),
    ],
  },
  {
    name: 'webhook errors above 5 % fire; another webhook path is ignored',
    interval: '1m',
    input_series: [
      {
        series: 'controller_runtime_webhook_requests_total{webhook="/validate",code="200"}',
        values: '0+100x20',
      },
      {
        series: 'controller_runtime_webhook_requests_total{webhook="/validate",code="500"}',
        values: '0+10x20',
      },
      {
        series: 'controller_runtime_webhook_requests_total{webhook="/validate-other",code="500"}',
        values: '0+1000x20',
      },
    ],
    alert_rule_test: [fires('HARouterWebhookErrors', '12m', { severity: 'critical' })],
  },
  {
    name: 'webhook errors at 1 % stay quiet',
    interval: '1m',
    input_series: [
      {
        series: 'controller_runtime_webhook_requests_total{webhook="/validate",code="200"}',
        values: '0+100x20',
      },
      {
        series: 'controller_runtime_webhook_requests_total{webhook="/validate",code="400"}',
        values: '0+1x20',
      },
    ],
    alert_rule_test: [none('HARouterWebhookErrors', '12m')],
  },
  {
    name: 'webhook p99 above 1 s after 10m',
    interval: '1m',
    input_series: [
      {
        series: 'controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="0.5"}',
        values: '0x30',
      },
      {
        series: 'controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="1"}',
        values: '0x30',
      },
      {
        series: 'controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="2.5"}',
        values: '0+10x30',
      },
      {
        series: 'controller_runtime_webhook_latency_seconds_bucket{webhook="/validate",le="+Inf"}',
        values: '0+10x30',
      },
    ],
    alert_rule_test: [
      none('HARouterWebhookSlow', '8m'),
      fires('HARouterWebhookSlow', '20m', { severity: 'warning' }),
    ],
  },
  {
    name: 'no leader: every replica at 0',
    interval: '1m',
    input_series: [
      { series: 'leader_election_master_status{name="harouter-operator",instance="a"}', values: '1 0x10' },
      { series: 'leader_election_master_status{name="harouter-operator",instance="b"}', values: '0x11' },
      { series: 'leader_election_master_status{name="other-operator",instance="c"}', values: '1x11' },
    ],
    alert_rule_test: [
      none('HARouterOperatorNoLeader', '2m'),
      fires('HARouterOperatorNoLeader', '4m', { severity: 'critical' }),
    ],
  },
  {
    name: 'no leader: no replica reports at all',
    interval: '1m',
    input_series: [
      { series: 'leader_election_master_status{name="other-operator",instance="c"}', values: '1x10' },
    ],
    alert_rule_test: [
      fires('HARouterOperatorNoLeader', '5m', { severity: 'critical', name: 'harouter-operator' }),
    ],
  },
  {
    name: 'a leader: quiet',
    interval: '1m',
    input_series: [
      { series: 'leader_election_master_status{name="harouter-operator",instance="a"}', values: '1x10' },
      { series: 'leader_election_master_status{name="harouter-operator",instance="b"}', values: '0x10' },
    ],
    alert_rule_test: [none('HARouterOperatorNoLeader', '8m')],
  },
  {
    name: "reconcile errors for 15m fire; another controller's errors do not",
    interval: '1m',
    input_series: [
      { series: 'controller_runtime_reconcile_errors_total{controller="harouter"}', values: '0+1x30' },
      { series: 'controller_runtime_reconcile_errors_total{controller="other"}', values: '0+50x30' },
    ],
    alert_rule_test: [
      none('HARouterReconcileErrors', '12m'),
      fires('HARouterReconcileErrors', '25m', { severity: 'warning' }),
    ],
  },
  {
    name: 'reconcile errors that stopped: quiet',
    interval: '1m',
    input_series: [
      { series: 'controller_runtime_reconcile_errors_total{controller="harouter"}', values: '0+1x5 5x30' },
    ],
    alert_rule_test: [none('HARouterReconcileErrors', '30m')],
  },
];

let dir: string;
let promtool: string;

beforeAll(async () => {
  promtool = await promtoolBinary();
  dir = await mkdtemp(join(tmpdir(), 'harouter-promtool-'));
}, 900_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function promtoolRun(args: string[]): Promise<{ code: number; output: string }> {
  try {
    const { stdout, stderr } = await run(promtool, args, { cwd: dir, maxBuffer: 16 * 1024 * 1024 });
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, output: (failure.stdout ?? '') + (failure.stderr ?? '') };
  }
}

/** Runs one test group with `promtool test rules` against the rule file without its annotations. */
async function ruleTest(test: TestGroup, tag: string): Promise<{ code: number; output: string }> {
  const groups = alertRuleGroups().map((g) => ({
    ...g,
    rules: g.rules.map(({ annotations: _annotations, ...rule }) => rule),
  }));
  const rules = join(dir, `rules-${tag}.yaml`);
  const tests = join(dir, `tests-${tag}.yaml`);
  await writeFile(rules, stringify({ groups }));
  await writeFile(tests, stringify({ rule_files: [rules], evaluation_interval: '1m', tests: [test] }));
  return promtoolRun(['test', 'rules', tests]);
}

describe('promtool', () => {
  it('check rules accepts the rule file (expressions and annotation templates)', async () => {
    const result = await promtoolRun(['check', 'rules', alertRulesPath]);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.code).toBe(0);
  });

  it('every alert has at least one firing case below', () => {
    const tested = new Set(
      TESTS.flatMap((t) => t.alert_rule_test.filter((c) => c.exp_alerts.length > 0).map((c) => c.alertname)),
    );
    const alerts = alertRuleGroups().flatMap((g) => g.rules.map((r) => r.alert));
    expect(alerts.filter((a) => a && !tested.has(a))).toEqual([]);
  });

  it.each(TESTS.map((t) => [t.name, t] as const))('test rules: %s', async (_name, test) => {
    const result = await ruleTest(test, String(TESTS.indexOf(test)));
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.code).toBe(0);
  });

  it('test rules does catch a wrong expectation (the harness is not vacuous)', async () => {
    const wrong: TestGroup = {
      name: 'a degraded count that should not fire after 1m',
      interval: '1m',
      input_series: [{ series: 'harouter_routers{condition="degraded",instance="a"}', values: '2x20' }],
      alert_rule_test: [fires('HARouterDegraded', '1m', { severity: 'warning' })],
    };
    const result = await ruleTest(wrong, 'wrong');
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/FAILED/);
  });
});
