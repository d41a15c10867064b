/**
 * The chart's node agent (`reporter.agent`): the DaemonSet the contract describes,
 * its instance map and PodMonitor, and arguments the agent's own parser accepts.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { AGENT_NODE_FLAGS, DEFAULT_FIFO } from '../../src/agent/defaults.ts';
import { parseInstancesFile } from '../../src/agent/mapping.ts';
import { parseAgentCommandLine } from '../../src/cli/agent-args.ts';
import { chartDir, findObject, renderChart, repoRoot } from './chart-helpers.ts';

const FULLNAME = 'harouter-operator';

describe('helm template: reporter.agent', { timeout: 60_000 }, () => {
  it("runs the image's compiled harouterctl with the Node flags the agent benchmark measures", () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^WORKDIR \/app$/m);
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist\/bin \.\/bin$/m);
    const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
    expect(values.reporter.agent.nodeFlags).toEqual(AGENT_NODE_FLAGS);
  });

  it('is off by default', async () => {
    const objects = await renderChart();
    expect(objects.filter((o) => o.kind === 'DaemonSet' || o.kind === 'PodMonitor')).toEqual([]);
  });

  it('runs harouterctl agent from the operator image under the reporter account, least privilege', async () => {
    const objects = await renderChart({ scenario: 'agent' });
    const daemonSet = findObject(objects, 'DaemonSet', `${FULLNAME}-agent`);
    const deployment = findObject(objects, 'Deployment', FULLNAME);
    const pod = daemonSet.spec.template.spec;
    const [container] = pod.containers;
    expect(pod.containers).toHaveLength(1);
    expect(container.image).toBe(deployment.spec.template.spec.containers[0].image);
    expect(container.command).toEqual(['node', ...AGENT_NODE_FLAGS, '/app/bin/harouterctl.js']);
    expect(container.args[0]).toBe('agent');
    expect(pod.serviceAccountName).toBe('harouter-reporter');
    expect(pod.automountServiceAccountToken).toBe(true);
    expect(pod.hostNetwork).toBe(false);
    expect(pod.securityContext).toMatchObject({
      runAsUser: 0,
      runAsNonRoot: false,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(pod.nodeSelector).toEqual({ 'node-role.kubernetes.io/network': '' });
    expect(pod.tolerations).toEqual([
      { key: 'node-role.kubernetes.io/network', operator: 'Exists', effect: 'NoSchedule' },
    ]);
    expect(pod.volumes).toEqual([
      { name: 'fifo', hostPath: { path: '/run/harouter', type: 'DirectoryOrCreate' } },
      { name: 'spool', hostPath: { path: '/var/lib/harouter', type: 'DirectoryOrCreate' } },
      { name: 'instances', configMap: { name: `${FULLNAME}-agent-instances` } },
    ]);
    expect(container.resources.limits.memory).toBeDefined();
    expect(container.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(container.env.map((e: { name: string }) => e.name)).toEqual(['NODE_NAME', 'POD_NAMESPACE']);
    expect(container.env[0].valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
  });

  it("passes arguments the agent's own parser accepts: the FIFO, spool, namespace, instances and metrics port", async () => {
    const objects = await renderChart({ scenario: 'agent' });
    const daemonSet = findObject(objects, 'DaemonSet', `${FULLNAME}-agent`);
    const [container] = daemonSet.spec.template.spec.containers;
    const parsed = parseAgentCommandLine(container.args.slice(1), {
      NODE_NAME: 'net-1',
      POD_NAMESPACE: 'harouter-system',
    });
    if (parsed.command !== 'agent') throw new Error('expected the agent command');
    expect(parsed.config).toMatchObject({
      fifo: DEFAULT_FIFO,
      stateDir: '/var/lib/harouter',
      namespace: 'routers',
      instancesFile: '/etc/harouter/instances/instances.yaml',
      agent: 'net-1',
      metricsBind: { port: container.ports[0].containerPort },
    });
    const mounts = Object.fromEntries(
      container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]),
    );
    expect(mounts).toEqual({
      fifo: '/run/harouter',
      spool: '/var/lib/harouter',
      instances: '/etc/harouter/instances',
    });
    const configMap = findObject(objects, 'ConfigMap', `${FULLNAME}-agent-instances`);
    const map = parseInstancesFile(configMap.data['instances.yaml']);
    expect(map).toEqual(
      new Map([
        ['VI_1', { router: '6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12' }],
        ['VI 2', { namespace: 'team-b', router: '0b6f4f64-2d0e-4c55-8f43-3c2b8e1a9d70' }],
      ]),
    );
    expect(parseYaml(configMap.data['instances.yaml'])).toEqual({
      VI_1: '6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12',
      'VI 2': 'team-b/0b6f4f64-2d0e-4c55-8f43-3c2b8e1a9d70',
    });
  });

  it('without instances: no ConfigMap, no --instances, the release namespace for UUID-named instances', async () => {
    const objects = await renderChart({ namespace: 'net', set: ['reporter.agent.enabled=true'] });
    const daemonSet = findObject(objects, 'DaemonSet', `${FULLNAME}-agent`);
    const args: string[] = daemonSet.spec.template.spec.containers[0].args;
    expect(args).toContain('--namespace=net');
    expect(args.some((a) => a.startsWith('--instances'))).toBe(false);
    expect(
      objects.filter((o) => o.kind === 'ConfigMap' && o.metadata.name.endsWith('-agent-instances')),
    ).toEqual([]);
  });

  it('PodMonitor selects the agent Pods on the metrics port', async () => {
    const objects = await renderChart({ scenario: 'agent' });
    const monitor = findObject(objects, 'PodMonitor', `${FULLNAME}-agent`);
    const daemonSet = findObject(objects, 'DaemonSet', `${FULLNAME}-agent`);
    expect(daemonSet.spec.template.metadata.labels).toMatchObject(monitor.spec.selector.matchLabels);
    expect(monitor.spec.podMetricsEndpoints).toEqual([
      { port: 'metrics', path: '/metrics', interval: '30s' },
    ]);
    expect(monitor.metadata.labels.release).toBe('kube-prometheus-stack');
  });

  it("runs in the reporter account's own namespace, not the operator's; the PodMonitor looks there", async () => {
    const objects = await renderChart({ namespace: 'harouter-system', scenario: 'agent' });
    const account = findObject(objects, 'ServiceAccount', 'harouter-reporter');
    expect(account.metadata.namespace).toBe('harouter-reporters');
    for (const [kind, name] of [
      ['DaemonSet', `${FULLNAME}-agent`],
      ['ConfigMap', `${FULLNAME}-agent-instances`],
      ['PodMonitor', `${FULLNAME}-agent`],
    ] as const) {
      expect(findObject(objects, kind, name).metadata.namespace, kind).toBe('harouter-reporters');
    }
    expect(findObject(objects, 'PodMonitor').spec.namespaceSelector).toEqual({
      matchNames: ['harouter-reporters'],
    });
    expect(findObject(objects, 'Deployment', FULLNAME).metadata.namespace).toBe('harouter-system');
    const own = await renderChart({
      namespace: 'harouter-system',
      set: ['reporter.agent.enabled=true', 'reporter.serviceAccount.namespace=edge-agents'],
    });
    expect(findObject(own, 'DaemonSet').metadata.namespace).toBe('edge-agents');
    expect(findObject(own, 'Namespace').metadata.name).toBe('edge-agents');
  });

  it('UUID-named instances report on the first of reporter.namespaces (where the reporter may write)', async () => {
    const objects = await renderChart({
      namespace: 'net',
      set: ['reporter.agent.enabled=true', 'reporter.namespaces={edge,core}'],
    });
    expect(findObject(objects, 'DaemonSet').spec.template.spec.containers[0].args).toContain(
      '--namespace=edge',
    );
  });

  it('reporter.agent.keepalived.run: keepalived in the Pod on the host network, NET_ADMIN and NET_RAW only, files rendered by the agent', async () => {
    const objects = await renderChart({
      set: ['reporter.agent.enabled=true', 'reporter.agent.keepalived.run=true'],
    });
    const pod = findObject(objects, 'DaemonSet', `${FULLNAME}-agent`).spec.template.spec;
    const [container] = pod.containers;
    expect(pod.hostNetwork).toBe(true);
    expect(pod.dnsPolicy).toBe('ClusterFirstWithHostNet');
    expect(container.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW'] },
    });
    const parsed = parseAgentCommandLine(container.args.slice(1), { NODE_NAME: 'net-1' });
    if (parsed.command !== 'agent') throw new Error('expected the agent command');
    expect(parsed.config.keepalived).toEqual({
      configDir: '/etc/keepalived/harouter',
      fenceDir: '/run/harouter/fence',
      pidFile: '/run/harouter/keepalived.pid',
      run: true,
    });
    const mounts = Object.fromEntries(
      container.volumeMounts.map((m: { name: string; mountPath: string }) => [m.name, m.mountPath]),
    );
    // The configuration directory is writable (an emptyDir); the fences and pid file are on the FIFO's host path.
    expect(mounts['keepalived-config']).toBe('/etc/keepalived/harouter');
    expect(mounts.fifo).toBe('/run/harouter');
    expect(pod.volumes).toContainEqual({
      name: 'keepalived-config',
      emptyDir: { medium: 'Memory', sizeLimit: '16Mi' },
    });
  });

  it('without reporter.agent.keepalived.run: no host network, no capability, no keepalived flag', async () => {
    const objects = await renderChart({ scenario: 'agent' });
    const pod = findObject(objects, 'DaemonSet', `${FULLNAME}-agent`).spec.template.spec;
    expect(pod.hostNetwork).toBe(false);
    expect(pod.dnsPolicy).toBeUndefined();
    expect(pod.containers[0].securityContext.capabilities).toEqual({ drop: ['ALL'] });
    expect(pod.containers[0].args.filter((a: string) => /keepalived|fence/.test(a))).toEqual([]);
    expect(pod.volumes.map((v: { name: string }) => v.name)).not.toContain('keepalived-config');
  });

  it('the values schema refuses a keepalived.run that is not a boolean, and unknown keys', async () => {
    for (const set of ['reporter.agent.keepalived.run=yes', 'reporter.agent.keepalived.configDir=/x']) {
      await expect(renderChart({ set: ['reporter.agent.enabled=true', set] })).rejects.toThrow(/keepalived/);
    }
  });

  it('runAsUser: a non-root agent with its group as --fifo-group, arguments its own parser accepts; root by default', async () => {
    const objects = await renderChart({
      scenario: 'agent',
      set: ['reporter.agent.runAsUser=10001', 'reporter.agent.runAsGroup=10002'],
    });
    const pod = findObject(objects, 'DaemonSet').spec.template.spec;
    expect(pod.securityContext).toEqual({
      runAsUser: 10001,
      runAsGroup: 10002,
      runAsNonRoot: true,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const [container] = pod.containers;
    expect(container.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    const parsed = parseAgentCommandLine(container.args.slice(1), { NODE_NAME: 'net-1' });
    if (parsed.command !== 'agent') throw new Error('expected the agent command');
    expect(parsed.config).toMatchObject({ fifo: DEFAULT_FIFO, fifoGroup: 10002 });
    const root = findObject(await renderChart({ scenario: 'agent' }), 'DaemonSet').spec.template.spec;
    expect(root.securityContext).toMatchObject({ runAsUser: 0, runAsGroup: 0, runAsNonRoot: false });
    expect(root.containers[0].args.some((a: string) => a.startsWith('--fifo-group'))).toBe(false);
    await expect(renderChart({ scenario: 'agent', set: ['reporter.agent.runAsUser=10001'] })).rejects.toThrow(
      /reporter.agent.runAsGroup: a non-root agent reads the FIFO through a group of its own/,
    );
    await expect(
      renderChart({
        scenario: 'agent',
        set: [
          'reporter.agent.runAsUser=10001',
          'reporter.agent.runAsGroup=10002',
          'reporter.agent.keepalived.run=true',
        ],
      }),
    ).rejects.toThrow(/keepalived in the agent's Pod runs as root/);
  });

  it("the chart's FIFO, the agent's default and examples/keepalived-agent.conf's global_defs agree", () => {
    const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
    expect(`${values.reporter.agent.fifoDir}/notify.fifo`).toBe(DEFAULT_FIFO);
    const conf = readFileSync(join(repoRoot, 'examples', 'keepalived-agent.conf'), 'utf8');
    expect(conf).toMatch(new RegExp(`^\\s*vrrp_notify_fifo ${DEFAULT_FIFO}$`, 'm'));
  });
});
