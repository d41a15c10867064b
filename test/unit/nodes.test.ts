/**
 * The pure parts of the nodes harness (src/local/nodes): keepalived's
 * configuration, the network plan, run ids and leftovers, command lines.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { agentArgs } from '../../src/local/nodes/agent.ts';
import { keepalivedCommand } from '../../src/local/nodes/keepalived.ts';
import { renderKeepalivedConfig, virtualAddress } from '../../src/local/nodes/keepalived-config.ts';
import { newRunId, parseRunNamespace, planNetwork } from '../../src/local/nodes/network.ts';

describe('renderKeepalivedConfig', () => {
  it('renders global_defs with the FIFO and one BACKUP vrrp_instance per instance', () => {
    const text = renderKeepalivedConfig({
      routerId: 'node-a',
      interface: 'eth0',
      fifo: '/tmp/x/notify.fifo',
      advertInt: 1,
      instances: [
        { name: 'VI_1', virtualRouterId: 1, priority: 150 },
        { name: 'VI_2', virtualRouterId: 2, priority: 100, notify: '/tmp/x/notify.sh 6f1c2a3e' },
      ],
    });
    expect(text).toBe(`global_defs {
  router_id node-a
  vrrp_notify_fifo /tmp/x/notify.fifo
  script_user root
}

vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 1
  priority 150
  advert_int 1
  virtual_ipaddress {
    192.0.2.101/24
  }
}

vrrp_instance VI_2 {
  state BACKUP
  interface eth0
  virtual_router_id 2
  priority 100
  advert_int 1
  virtual_ipaddress {
    192.0.2.102/24
  }
  notify "/tmp/x/notify.sh 6f1c2a3e"
}
`);
  });

  it('refuses what keepalived would misread rather than writing it', () => {
    const base = { routerId: 'n', interface: 'eth0', instances: [] };
    const one = (instance: object) => () =>
      renderKeepalivedConfig({
        ...base,
        instances: [{ name: 'VI_1', virtualRouterId: 1, priority: 100, ...instance }],
      });
    expect(one({ name: 'VI 1' })).toThrow(/instance name/);
    expect(one({ name: 'VI_1"\n}' })).toThrow(/instance name/);
    expect(one({ virtualRouterId: 0 })).toThrow(/virtualRouterId/);
    expect(one({ virtualRouterId: 151 })).toThrow(/virtualRouterId/);
    expect(one({ priority: 255 })).toThrow(/priority/);
    expect(one({ priority: 1.5 })).toThrow(/priority/);
    expect(one({ notify: '/bin/x "quoted"' })).toThrow(/notify/);
    expect(() => renderKeepalivedConfig({ ...base, fifo: 'relative/fifo' })).toThrow(/fifo/);
    expect(() => renderKeepalivedConfig({ ...base, fifo: '/a b' })).toThrow(/fifo/);
    expect(() => renderKeepalivedConfig({ ...base, routerId: 'a b' })).toThrow(/routerId/);
    expect(() =>
      renderKeepalivedConfig({
        ...base,
        instances: [
          { name: 'A', virtualRouterId: 3, priority: 1 },
          { name: 'B', virtualRouterId: 3, priority: 1 },
        ],
      }),
    ).toThrow(/used twice/);
    expect(() =>
      renderKeepalivedConfig({
        ...base,
        instances: [
          { name: 'A', virtualRouterId: 3, priority: 1 },
          { name: 'A', virtualRouterId: 4, priority: 1 },
        ],
      }),
    ).toThrow(/twice/);
  });

  it('gives every router id its own virtual address, away from the nodes', () => {
    const addresses = new Set<string>();
    for (let id = 1; id <= 150; id++) addresses.add(virtualAddress(id));
    expect(addresses.size).toBe(150);
    expect(virtualAddress(1)).toBe('192.0.2.101');
    expect(virtualAddress(150)).toBe('192.0.2.250');
  });
});

describe('network plan and run ids', () => {
  it('plans one namespace per node, addresses in order, a bridge namespace of its own', () => {
    const plan = planNetwork('harouter-e2e-7-abcdef', ['node-a', 'node-b']);
    expect(plan).toEqual({
      bridgeNamespace: 'harouter-e2e-7-abcdef-bridge',
      nodes: [
        {
          name: 'node-a',
          namespace: 'harouter-e2e-7-abcdef-node-a',
          address: '192.0.2.1',
          bridgePort: 'port0',
        },
        {
          name: 'node-b',
          namespace: 'harouter-e2e-7-abcdef-node-b',
          address: '192.0.2.2',
          bridgePort: 'port1',
        },
      ],
    });
    expect(() => planNetwork('r', [])).toThrow(/1 to 16/);
    expect(() => planNetwork('r', ['a', 'a'])).toThrow(/unique/);
    expect(() => planNetwork('r', ['Node_A'])).toThrow(/DNS label/);
    expect(() => planNetwork('r', ['bridge'])).not.toThrow();
  });

  it('a run id names its owner pid; namespaces of other prefixes are never taken for leftovers', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4_194_304 }),
        fc.constantFrom('node-a', 'bridge', 'x'),
        (pid, suffix) => {
          const run = newRunId('harouter-e2e', pid);
          expect(parseRunNamespace('harouter-e2e', `${run}-${suffix}`)).toEqual({ run, pid });
          expect(parseRunNamespace('harouter-local', `${run}-${suffix}`)).toBeUndefined();
          expect(parseRunNamespace('harouter', `${run}-${suffix}`)).toBeUndefined();
        },
      ),
    );
    expect(parseRunNamespace('harouter-e2e', 'harouter-e2e-12-abc-node-a')).toBeUndefined();
    expect(parseRunNamespace('harouter-e2e', 'cni-1234')).toBeUndefined();
    expect(() => newRunId('Bad Prefix')).toThrow(/prefix/);
  });
});

describe('command lines', () => {
  it('runs keepalived in the node namespace, in the foreground, ending with its parent', () => {
    expect(keepalivedCommand('ns-a', '/d')).toEqual({
      binary: 'ip',
      args: [
        'netns',
        'exec',
        'ns-a',
        'setpriv',
        '--pdeathsig',
        'TERM',
        '--',
        'keepalived',
        '-f',
        '/d/keepalived.conf',
        '-p',
        '/d/keepalived.pid',
        '-r',
        '/d/vrrp.pid',
        '-D',
        '-l',
        '-n',
      ],
    });
  });

  it("gives the agent the contract's flags", () => {
    expect(
      agentArgs({
        node: 'node-a',
        fifo: '/d/notify.fifo',
        stateDir: '/d/state',
        kubeconfig: '/k',
        namespace: 'demo',
        instances: { VI_1: 'demo/6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12' },
        metricsAddress: '127.0.0.1:8090',
      }),
    ).toEqual([
      'agent',
      '--fifo=/d/notify.fifo',
      '--state-dir=/d/state',
      '--kubeconfig=/k',
      '--agent=node-a',
      '--namespace=demo',
      '--instance=VI_1=demo/6f1c2a3e-8d4b-4c21-9a57-0e3b5d7f9a12',
      '--metrics-bind-address=127.0.0.1:8090',
      '--log-level=info',
    ]);
  });

  it('gives the agent its keepalived flags when it renders the configuration', () => {
    const args = agentArgs({
      node: 'node-a',
      fifo: '/d/notify.fifo',
      stateDir: '/d/state',
      kubeconfig: '/k',
      namespace: 'demo',
      instances: {},
      metricsAddress: '127.0.0.1:8090',
      keepalived: { configDir: '/d/keepalived.d', fenceDir: '/d/fence', pidFile: '/d/keepalived.pid' },
    });
    expect(args.slice(-3)).toEqual([
      '--keepalived-config-dir=/d/keepalived.d',
      '--fence-dir=/d/fence',
      '--keepalived-pid-file=/d/keepalived.pid',
    ]);
  });
});

describe('renderKeepalivedConfig with the agent’s files', () => {
  it('includes them after global_defs, and refuses anything but an include of an absolute path', () => {
    const base = { routerId: 'node-a', interface: 'eth0', instances: [] };
    expect(
      renderKeepalivedConfig({
        ...base,
        includes: ['include /d/k/harouter-global.conf', 'include /d/k/*-*-*-*-*.conf'],
      }),
    ).toBe(
      `global_defs {
  router_id node-a
  script_user root
}
include /d/k/harouter-global.conf
include /d/k/*-*-*-*-*.conf
`,
    );
    expect(() => renderKeepalivedConfig({ ...base, includes: ['vrrp_instance x {'] })).toThrow(/includes/);
    expect(() => renderKeepalivedConfig({ ...base, includes: ['include /d/a b'] })).toThrow(/includes/);
  });
});
