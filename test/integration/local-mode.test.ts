/**
 * Local mode end to end, as a person runs it: `node src/local/main.ts --dir DIR`
 * in a child process; wait for the kubeconfigs it writes last; run the printed
 * kubectl commands as node-b's and node-a's reporters (the router fails over),
 * the wrong-node report (denied), harouterctl; read the metrics; stop with
 * SIGINT; start again on the same directory (a fresh cluster) with `--prometheus`: Prometheus
 * scrapes the operator with the chart's rules; kill the operator: local mode restarts it.
 * It runs its own control plane (not the run's shared one).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { prometheusBinary } from '../../src/local/controlplane/index.ts';
import { SAMPLE_ROUTER_ID } from '../../src/local/sample.ts';
import { NODE, REPO } from '../support/paths.ts';

const run = promisify(execFile);

interface Local {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function startLocalMode(dir: string, extra: string[] = []): Local {
  const child = spawn(NODE, [join(REPO, 'src', 'local', 'main.ts'), '--dir', dir, '--free-ports', ...extra], {
    cwd: REPO,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
  return { child, output: () => output, exited };
}

/** Waits until local mode printed its summary (after writing the kubeconfigs), or fails with its output. */
async function waitReady(local: Local, dir: string, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < timeoutMs) {
    if (local.child.exitCode !== null) throw new Error(`local mode exited early:\n${local.output()}`);
    if (local.output().includes('Press Ctrl-C to stop everything.')) {
      for (const file of ['admin', 'reporter-node-a', 'reporter-node-b', 'reporter-node-c']) {
        expect(existsSync(join(dir, `${file}.kubeconfig`))).toBe(true);
      }
      return (performance.now() - started) / 1000;
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`local mode not ready after ${timeoutMs} ms:\n${local.output()}`);
}

/** The absolute kubectl path local mode printed. */
function printedKubectl(output: string): string {
  const match = /^ {2}kubectl {9}(\/\S+)$/m.exec(output);
  if (!match?.[1]) throw new Error(`no kubectl path in:\n${output}`);
  return match[1];
}

async function kubectl(binary: string, kubeconfig: string, args: string[]) {
  try {
    const { stdout, stderr } = await run(binary, ['--kubeconfig', kubeconfig, ...args], { cwd: REPO });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failure = error as { code?: number; stdout?: string; stderr?: string };
    return { code: failure.code ?? -1, stdout: failure.stdout ?? '', stderr: failure.stderr ?? '' };
  }
}

async function poll<T>(
  what: string,
  read: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 60_000,
): Promise<T> {
  const started = performance.now();
  let value = await read();
  while (!ok(value)) {
    if (performance.now() - started > timeoutMs)
      throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((r) => setTimeout(r, 500));
    value = await read();
  }
  return value;
}

/** The pid of the operator local mode runs on `dir` (found by its kubeconfig argument). */
async function operatorPid(dir: string): Promise<number | undefined> {
  const kubeconfig = `--kubeconfig=${join(dir, 'cluster', 'admin.kubeconfig')}`;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const args = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    const words = args.split('\0');
    if (words.includes(kubeconfig) && words.some((w) => w.endsWith('harouter-operator.js')))
      return Number(entry);
  }
  return undefined;
}

/** The result of an instant query against local mode's Prometheus. */
async function promQuery(
  url: string,
  expr: string,
): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const response = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  const body = (await response.json()) as { status: string; data: { result: [] } };
  expect(body.status).toBe('success');
  return body.data.result;
}

function portOpen(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((done) => {
    const socket = connect({ host: hostname, port: Number(port) });
    socket.once('connect', () => {
      socket.destroy();
      done(true);
    });
    socket.once('error', () => done(false));
  });
}

describe('local mode', () => {
  let dir: string;
  const started: Local[] = [];

  beforeAll(async () => {
    // Built first (once per machine), so that the second start's wait measures the start only.
    await prometheusBinary();
  }, 1_200_000);

  afterAll(async () => {
    for (const local of started) {
      if (local.child.exitCode === null) {
        local.child.kill('SIGINT');
        await local.exited;
      }
    }
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('brings everything up, fails over on the printed commands, denies the wrong node, stops on SIGINT, restarts fresh', async () => {
    dir = await mkdtemp(join(tmpdir(), 'harouter-local-'));
    const first = startLocalMode(dir);
    started.push(first);
    const coldSeconds = await waitReady(first, dir, 240_000);
    const output = first.output();
    const kubectlPath = printedKubectl(output);
    expect(existsSync(kubectlPath)).toBe(true);
    const admin = join(dir, 'admin.kubeconfig');
    const reporter = (node: string) => join(dir, `reporter-${node}.kubeconfig`);
    const server = /API server {6}(https:\/\/\S+)/.exec(output)?.[1] ?? '';
    const metricsUrl = /metrics {9}(http:\/\/\S+)/.exec(output)?.[1] ?? '';
    expect(server).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    expect(output).toMatch(/operator \| /);

    const active = () =>
      kubectl(kubectlPath, admin, ['get', 'har', SAMPLE_ROUTER_ID, '-o', 'jsonpath={.status.activeAgent}']);
    expect((await active()).stdout).toBe('node-a');

    // node-b becomes MASTER: split brain, node-a stays active.
    const primary = await kubectl(kubectlPath, reporter('node-b'), [
      'apply',
      '-f',
      'examples/report-primary.yaml',
    ]);
    expect(primary.code, primary.stderr).toBe(0);
    await poll(
      'SplitBrain=True',
      () =>
        kubectl(kubectlPath, admin, [
          'get',
          'har',
          SAMPLE_ROUTER_ID,
          '-o',
          'jsonpath={.status.conditions[?(@.type=="SplitBrain")].status}',
        ]),
      (r) => r.stdout === 'True',
    );
    expect((await active()).stdout).toBe('node-a');

    // node-a steps down: the router fails over to node-b, and so does its EndpointSlice.
    const backup = await kubectl(kubectlPath, reporter('node-a'), [
      'apply',
      '-f',
      'examples/report-backup.yaml',
    ]);
    expect(backup.code, backup.stderr).toBe(0);
    await poll('active node-b', active, (r) => r.stdout === 'node-b');
    await poll(
      'the EndpointSlice to point at node-b',
      () =>
        kubectl(kubectlPath, admin, [
          'get',
          'endpointslice',
          'demo-router-harouter',
          '-o',
          'jsonpath={.endpoints[*].addresses[*]}',
        ]),
      (r) => r.stdout === '198.51.100.12',
    );

    // node-b's reporter may not speak for node-c.
    const mismatches = async () => {
      const text = await (await fetch(metricsUrl)).text();
      const m = /^harouter_admission_decisions_total\{decision="denied",reason="NodeMismatch"\} (\d+)/m.exec(
        text,
      );
      return Number(m?.[1] ?? Number.NaN);
    };
    const deniedBefore = await mismatches();
    const wrong = await kubectl(kubectlPath, reporter('node-b'), [
      'apply',
      '-f',
      'examples/report-wrong-node.yaml',
    ]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/denied the request: NodeBinding/);
    const absent = await kubectl(kubectlPath, admin, [
      'get',
      'hars',
      `${SAMPLE_ROUTER_ID}.node-c`,
      '-o',
      'jsonpath={.spec.state}',
    ]);
    expect(absent.stdout).toBe('Backup');

    // What keepalived runs, with the printed reporter kubeconfig.
    const ctl = await run(NODE, [
      join(REPO, 'bin', 'harouterctl.js'),
      'report',
      '--kubeconfig',
      reporter('node-a'),
      '--agent',
      'node-a',
      '--router',
      SAMPLE_ROUTER_ID,
      'INSTANCE',
      'VI_1',
      'MASTER',
      '150',
    ]);
    expect(ctl.stdout).toBe('');
    await poll(
      'node-a Primary again',
      () =>
        kubectl(kubectlPath, admin, [
          'get',
          'hars',
          `${SAMPLE_ROUTER_ID}.node-a`,
          '-o',
          'jsonpath={.spec.state}',
        ]),
      (r) => r.stdout === 'Primary',
    );

    const metrics = await (await fetch(metricsUrl)).text();
    expect(metrics).toMatch(/^harouter_active_changes_total [1-9]/m);
    expect(await mismatches()).toBe(deniedBefore + 1);

    // Ctrl-C: everything stops, the kubeconfigs go.
    first.child.kill('SIGINT');
    const code = await Promise.race([
      first.exited,
      new Promise((r) => setTimeout(() => r('timeout'), 60_000)),
    ]);
    expect(code, first.output()).toBe(0);
    expect(first.output()).toContain('local: stopped');
    expect(await portOpen(server)).toBe(false);
    expect(existsSync(admin)).toBe(false);

    // A second start on the same directory, with Prometheus: a fresh cluster, the sample as new.
    const second = startLocalMode(dir, ['--prometheus']);
    started.push(second);
    const warmSeconds = await waitReady(second, dir, 240_000);
    const again = printedKubectl(second.output());
    expect(
      (await kubectl(again, admin, ['get', 'har', SAMPLE_ROUTER_ID, '-o', 'jsonpath={.status.activeAgent}']))
        .stdout,
    ).toBe('node-a');
    const seed = await kubectl(again, admin, [
      'get',
      'hars',
      `${SAMPLE_ROUTER_ID}.node-b`,
      '-o',
      'jsonpath={.spec.state}',
    ]);
    expect(seed.stdout).toBe('Backup');

    // Prometheus: ready and scraping the operator before the kubeconfigs, with the chart's rules.
    const prometheus = /^ {2}prometheus {6}(http:\/\/127\.0\.0\.1:\d+) /m.exec(second.output())?.[1] ?? '';
    expect(prometheus, second.output()).not.toBe('');
    expect(second.output()).toContain(`curl -s ${prometheus}/api/v1/alerts`);
    const up = await promQuery(prometheus, 'up{job="harouter-operator-metrics"}');
    expect(up.map((s) => s.value[1])).toEqual(['1']);
    const rules = (await (await fetch(`${prometheus}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string }[] }[] };
    };
    expect(rules.data.groups.flatMap((g) => g.rules.map((r) => r.name))).toContain('HARouterSplitBrain');
    expect(await promQuery(prometheus, 'max(harouter_routers{condition="ready"})')).toMatchObject([
      { value: [expect.any(Number), '1'] },
    ]);

    // The operator dies: local mode says so and restarts it; it becomes ready and is scraped again.
    const killed = await operatorPid(dir);
    expect(killed).toBeDefined();
    process.kill(killed as number, 'SIGKILL');
    await poll(
      'the restart message',
      async () => second.output(),
      (text) =>
        /local: harouter-operator exited unexpectedly \(signal SIGKILL; see .*operator\.log\); restarting it in 1 s/.test(
          text,
        ),
    );
    const probes = /probes {10}(http:\/\/127\.0\.0\.1:\d+)\/healthz/.exec(second.output())?.[1] ?? '';
    await poll(
      'the restarted operator to be ready',
      async () => (await fetch(`${probes}/readyz`).catch(() => undefined))?.status,
      (status) => status === 200,
    );
    const restarted = await operatorPid(dir);
    expect(restarted).toBeDefined();
    expect(restarted).not.toBe(killed);
    expect(second.child.exitCode).toBeNull();
    await poll(
      'Prometheus to scrape the restarted operator',
      () => promQuery(prometheus, 'up{job="harouter-operator-metrics"} == 1'),
      (result) => result.length === 1,
    );
    console.log(`local mode start: first ${coldSeconds.toFixed(1)} s, second ${warmSeconds.toFixed(1)} s`);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  }, 600_000);
});
