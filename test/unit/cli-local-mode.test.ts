import { readFileSync } from 'node:fs';
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { compareObservedAt, harouterSchema, harouterStateSchema, ROUTER_LABEL } from '../../src/api/index.ts';
import { writeKubeconfig } from '../../src/local/controlplane/index.ts';
import { parseLocalArgs, prometheusSummary, summary } from '../../src/local/main.ts';
import type { Nodes } from '../../src/local/nodes/index.ts';
import { operatorArgs } from '../../src/local/operator.ts';
import { formatLogLine } from '../../src/local/pretty.ts';
import {
  EXAMPLE_OBSERVED_AT,
  SAMPLE_NAMESPACE,
  SAMPLE_NODES,
  SAMPLE_ROUTER_ID,
  SEED_OBSERVED_AT,
  sampleRouterManifests,
} from '../../src/local/sample.ts';

const examples = resolve(import.meta.dirname, '../../examples');
const load = (file: string) =>
  parseAllDocuments(readFileSync(join(examples, file), 'utf8')).map(
    (doc) => doc.toJS() as { metadata?: object; spec: { selector?: unknown } & Record<string, unknown> },
  );

describe('examples agree with the local-mode sample', () => {
  it('harouter.yaml is the sample router and its selector-less Service', () => {
    const [service, router] = load('harouter.yaml');
    const [sampleService, sampleRouter] = sampleRouterManifests();
    expect(harouterSchema.parse(router).spec).toEqual(sampleRouter?.spec);
    expect(router?.metadata).toMatchObject({ name: SAMPLE_ROUTER_ID, namespace: SAMPLE_NAMESPACE });
    expect(service?.spec).toEqual(sampleService?.spec);
    expect(service?.spec.selector).toBeUndefined();
    for (const opted of [service, sampleService]) {
      expect(opted?.metadata).toMatchObject({ labels: { [ROUTER_LABEL]: SAMPLE_ROUTER_ID } });
      expect(opted?.metadata).not.toHaveProperty('annotations');
    }
  });

  it("with --keepalived the sample router carries spec.vrrp, valid by the API's schema", () => {
    const [, plain] = sampleRouterManifests();
    const [, driven] = sampleRouterManifests({ vrrp: true });
    expect(plain?.spec).not.toHaveProperty('vrrp');
    const spec = harouterSchema.parse(driven).spec;
    expect(spec.vrrp).toMatchObject({
      interface: 'eth0',
      virtualIPs: ['192.0.2.101/24'],
      fenceHoldSeconds: 10,
    });
    expect(spec.vrrp?.vrid).toBeUndefined();
  });

  it.each([
    ['report-primary.yaml', 'node-b', 'Primary'],
    ['report-backup.yaml', 'node-a', 'Backup'],
    ['report-wrong-node.yaml', 'node-c', 'Primary'],
  ])('%s is a valid report by %s (%s), newer than the seeds, with no namespace', (file, agent, state) => {
    const [report] = load(file);
    const parsed = harouterStateSchema.parse(report);
    expect(parsed.metadata.name).toBe(`${SAMPLE_ROUTER_ID}.${agent}`);
    expect(parsed.metadata.namespace).toBeUndefined();
    expect(parsed.spec).toMatchObject({
      routerId: SAMPLE_ROUTER_ID,
      agent,
      state,
      observedAt: EXAMPLE_OBSERVED_AT,
    });
    expect(compareObservedAt(parsed.spec.observedAt, SEED_OBSERVED_AT)).toBe(1);
    expect(Date.parse(parsed.spec.observedAt)).toBeLessThan(Date.now());
  });

  it('the keepalived.conf notify line is a valid harouterctl command for the sample router', () => {
    const conf = readFileSync(join(examples, 'keepalived.conf'), 'utf8');
    expect(conf).toContain(`notify "/usr/local/bin/harouterctl report --router ${SAMPLE_ROUTER_ID}`);
  });

  it('the sample nodes have distinct documentation-range addresses', () => {
    expect(SAMPLE_NODES.map((n) => n.ip)).toEqual(['198.51.100.11', '198.51.100.12', '198.51.100.13']);
  });
});

describe('parseLocalArgs', () => {
  it('defaults to .local and info', () => {
    expect(parseLocalArgs([])).toEqual({
      dir: '.local',
      logLevel: 'info',
      freePorts: false,
      prometheus: false,
      keepalived: false,
      node: false,
    });
    expect(
      parseLocalArgs([
        '--dir',
        '/tmp/x',
        '--log-level',
        'debug',
        '--free-ports',
        '--prometheus',
        '--keepalived',
      ]),
    ).toEqual({
      dir: '/tmp/x',
      logLevel: 'debug',
      freePorts: true,
      prometheus: true,
      keepalived: true,
      node: false,
    });
    expect(parseLocalArgs(['--node'])).toMatchObject({ node: true, keepalived: false });
    expect(parseLocalArgs(['-h'])).toEqual({ help: true });
  });

  it('refuses unknown flags and levels', () => {
    expect(() => parseLocalArgs(['--port', '1'])).toThrow();
    expect(() => parseLocalArgs(['--log-level', 'loud'])).toThrow(/log-level/);
  });
});

describe('operatorArgs', () => {
  it('binds every port on loopback and passes the cert dir, the client CA and kubeconfig', () => {
    const args = operatorArgs({
      kubeconfig: '/d/cluster/admin.kubeconfig',
      certDir: '/d/webhook',
      webhookClientCa: '/d/cluster/pki/webhook-client-ca.crt',
      ports: { metrics: 18080, probes: 18081, webhook: 19443 },
      logLevel: 'info',
    });
    expect(args[0]).toMatch(/bin\/harouter-operator\.js$/);
    expect(args).toContain('--metrics-bind-address=127.0.0.1:18080');
    expect(args).toContain('--health-probe-bind-address=127.0.0.1:18081');
    expect(args).toContain('--webhook-bind-address=127.0.0.1:19443');
    expect(args).toContain('--cert-dir=/d/webhook');
    expect(args).toContain('--webhook-client-ca=/d/cluster/pki/webhook-client-ca.crt');
    expect(args).toContain('--kubeconfig=/d/cluster/admin.kubeconfig');
  });
});

describe('formatLogLine', () => {
  it('turns a pino line into time, level, message and fields', () => {
    const line = JSON.stringify({
      level: 30,
      time: '2026-11-25T12:05:01.123Z',
      pid: 7,
      msg: 'active agent changed',
      router: 'demo/6f1c',
      from: 'node-a',
      to: 'node-b',
      note: 'two words',
    });
    expect(formatLogLine(line)).toBe(
      '12:05:01.123 INFO  active agent changed router=demo/6f1c from=node-a to=node-b note="two words"',
    );
  });

  it('escapes control characters in values and passes other text through', () => {
    expect(formatLogLine(JSON.stringify({ level: 40, msg: 'x', agent: 'a\nb' }))).toBe(
      'WARN  x agent="a\\nb"',
    );
    // No whitespace but terminal escapes (ESC, CSI, bidi override): quoted and escaped, never raw.
    expect(
      formatLogLine(
        JSON.stringify({ level: 30, msg: 'm\u001b', user: '\u001b]0;x\u0007', name: 'a\u009bb\u202e' }),
      ),
    ).toBe('INFO  m\\u001b user="\\u001b]0;x\\u0007" name="a\\u009bb\\u202e"');
    expect(formatLogLine('plain text')).toBe('plain text');
    expect(formatLogLine('[1,2]')).toBe('[1,2]');
  });

  it('shows an error by its message', () => {
    expect(
      formatLogLine(
        JSON.stringify({ level: 50, msg: 'failed', err: { type: 'Error', message: 'boom', stack: 's' } }),
      ),
    ).toBe('ERROR failed err="boom"');
  });
});

describe('summary', () => {
  it('prints the kubectl commands with the absolute kubectl path and the metrics URL', () => {
    const repo = resolve(import.meta.dirname, '../..');
    const text = summary(
      {
        dir: `${repo}/.local`,
        server: 'https://127.0.0.1:40000',
        kubectlPath: '/root/.cache/harouter/kubernetes-v1.36.3/bin/kubectl',
        ports: { metrics: 8080, probes: 8081, webhook: 9443 },
        adminKubeconfig: `${repo}/.local/admin.kubeconfig`,
        reporterKubeconfigs: {
          'node-a': `${repo}/.local/reporter-node-a.kubeconfig`,
          'node-b': `${repo}/.local/reporter-node-b.kubeconfig`,
          'node-c': `${repo}/.local/reporter-node-c.kubeconfig`,
        },
        operatorExit: new Promise<string>(() => {}),
        agentTargets: [],
        timings: { controlPlane: 5, install: 3, operator: 2, total: 10 },
        stop: async () => {},
      },
      repo,
    );
    expect(text).toContain(
      '/root/.cache/harouter/kubernetes-v1.36.3/bin/kubectl --kubeconfig .local/reporter-node-b.kubeconfig apply -f examples/report-primary.yaml',
    );
    expect(text).toContain('--kubeconfig .local/admin.kubeconfig get har -w');
    expect(text).toContain('http://127.0.0.1:8080/metrics');
    expect(text).not.toContain('prometheus');
  });

  it('with Prometheus, names its URL, a query and the alerts URL', () => {
    const text = prometheusSummary('http://127.0.0.1:9090');
    expect(text).toContain('prometheus      http://127.0.0.1:9090');
    expect(text).toContain(
      "curl -sG http://127.0.0.1:9090/api/v1/query --data-urlencode 'query=max by (condition) (harouter_routers)'",
    );
    expect(text).toContain('curl -s http://127.0.0.1:9090/api/v1/alerts');
  });
});

describe('summary with --keepalived', () => {
  const repo = resolve(import.meta.dirname, '../..');
  const run = 'harouter-local-42-abcdef';
  const fakeNodes = ['node-a', 'node-b', 'node-c'].map((name, i) => ({
    name,
    namespace: `${run}-${name}`,
    address: `192.0.2.${i + 1}`,
    dir: `${repo}/.local/nodes/${name}`,
    configDir: `${repo}/.local/nodes/${name}/keepalived.d`,
    fenceDir: `${repo}/.local/nodes/${name}/fence`,
    fifo: `${repo}/.local/nodes/${name}/notify.fifo`,
    agent: { options: { metricsAddress: `127.0.0.1:${8090 + i}` } },
  }));
  const nodes = {
    run,
    bridgeNamespace: `${run}-bridge`,
    nodes: fakeNodes,
    node: (name: string) => fakeNodes.find((n) => n.name === name),
    agentMetricsTargets: () => fakeNodes.map((n) => n.agent.options.metricsAddress),
  } as unknown as Nodes;
  const text = (keepalivedConfig: 'agents' | 'hand') =>
    summary(
      {
        dir: `${repo}/.local`,
        server: 'https://127.0.0.1:40000',
        kubectlPath: '/k/kubectl',
        ports: { metrics: 8080, probes: 8081, webhook: 9443 },
        adminKubeconfig: `${repo}/.local/admin.kubeconfig`,
        reporterKubeconfigs: {
          'node-a': `${repo}/.local/reporter-node-a.kubeconfig`,
          'node-b': `${repo}/.local/reporter-node-b.kubeconfig`,
          'node-c': `${repo}/.local/reporter-node-c.kubeconfig`,
        },
        operatorExit: new Promise<string>(() => {}),
        nodes,
        keepalivedConfig,
        agentTargets: nodes.agentMetricsTargets(),
        timings: { controlPlane: 5, install: 3, operator: 6, total: 14 },
        stop: async () => {},
      },
      repo,
    );

  it('hand-written configuration: lists the agents and prints how to stop keepalived on a node, cut a node off and bring it back', () => {
    const printed = text('hand');
    expect(printed).toContain('node-a http://127.0.0.1:8090/metrics');
    expect(printed).toContain('node-c http://127.0.0.1:8092/metrics');
    expect(printed).toContain('kill $(cat .local/nodes/node-a/keepalived.pid)');
    expect(printed).toContain(
      `ip netns exec ${run}-node-a keepalived -f .local/nodes/node-a/keepalived.conf -p .local/nodes/node-a/keepalived.pid -r .local/nodes/node-a/vrrp.pid -D -l -n`,
    );
    expect(printed).toContain(`ip -n ${run}-bridge link set port0 nomaster`);
    expect(printed).toContain(`ip -n ${run}-bridge link set port0 master br0`);
    expect(printed).toContain('/k/kubectl --kubeconfig .local/admin.kubeconfig get har -w');
    // The hand-written reports of the silent mode would fight the agents: not offered.
    expect(printed).not.toContain('report-primary.yaml');
  });

  it('configuration rendered by the agents: a switchover, a cordon and uncordon, the split brain and its fence', () => {
    const printed = text('agents');
    expect(printed).toContain('has spec.vrrp');
    expect(printed).toContain(`cat .local/nodes/node-a/keepalived.d/${SAMPLE_ROUTER_ID}.conf`);
    expect(printed).toContain(
      `npx harouterctl switchover ${SAMPLE_ROUTER_ID} --to node-b --namespace demo --kubeconfig .local/admin.kubeconfig`,
    );
    expect(printed).toContain('/k/kubectl --kubeconfig .local/admin.kubeconfig cordon node-b');
    expect(printed).toContain('/k/kubectl --kubeconfig .local/admin.kubeconfig uncordon node-b');
    expect(printed).toContain(`ip -n ${run}-bridge link set port2 nomaster`);
    expect(printed).toContain(`cat .local/nodes/node-c/fence/${SAMPLE_ROUTER_ID}`);
    expect(printed).toContain(`ip -n ${run}-bridge link set port2 master br0`);
    expect(printed).toContain(`ip -n ${run}-node-b -br addr show eth0`);
    // keepalived is the agents' to reload: no hand-started keepalived, no hand-written reports.
    expect(printed).not.toContain('keepalived -f');
    expect(printed).not.toContain('report-primary.yaml');
  });
});

describe('writeKubeconfig', () => {
  it('leaves the file private (0600), even when an earlier file had another mode', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'local-kubeconfig-'));
    const ca = join(dir, 'ca.crt');
    const path = join(dir, 'reporter.kubeconfig');
    await writeFile(ca, 'not read as a certificate here');
    await writeFile(path, 'old', { mode: 0o644 });
    await writeKubeconfig({ path, server: 'https://127.0.0.1:1', caCertPath: ca, user: { token: 't' } });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });
});
