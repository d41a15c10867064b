import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { apiServerNodeFlags, firstServiceIp } from '../../src/local/controlplane/index.ts';
import { containerdConfig } from '../../src/local/realnode/containerd.ts';
import { mountsUnder } from '../../src/local/realnode/host.ts';
import { kubeletConfig } from '../../src/local/realnode/kubelet.ts';
import { cniConfigList, NODE_NETWORK } from '../../src/local/realnode/network.ts';

const pair = { certPath: '/p/admin.crt', keyPath: '/p/admin.key' };
const serving = { address: '198.18.0.10', serviceCidr: '198.18.64.0/24', podCidr: '198.18.128.0/24' };

describe('the control plane for a real node', () => {
  it('firstServiceIp is the network address plus one', () => {
    expect(firstServiceIp('198.18.64.0/24')).toBe('198.18.64.1');
    expect(firstServiceIp('10.0.0.0/24')).toBe('10.0.0.1');
    expect(firstServiceIp('10.0.0.255/24')).toBe('10.0.1.0');
    expect(() => firstServiceIp('not-a-cidr')).toThrow(/not an IPv4 CIDR/);
    fc.assert(
      fc.property(fc.ipV4(), (ip) => {
        const next = firstServiceIp(`${ip}/24`);
        const toInt = (a: string) => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
        expect(toInt(next)).toBe((toInt(ip) + 1) % 2 ** 32);
      }),
    );
  });

  it('object-only nodes keep the flags the other tiers run with', () => {
    expect(apiServerNodeFlags(undefined, pair)).toEqual([
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      '--service-cluster-ip-range=10.0.0.0/24',
      '--disable-admission-plugins=ServiceAccount',
      '--endpoint-reconciler-type=none',
    ]);
  });

  it('a real node gets the ServiceAccount plugin, its address, lease endpoints and kubelet credentials', () => {
    const flags = apiServerNodeFlags(serving, pair);
    expect(flags.some((f) => f.startsWith('--disable-admission-plugins'))).toBe(false);
    expect(flags).toEqual(
      expect.arrayContaining([
        '--bind-address=198.18.0.10',
        '--advertise-address=198.18.0.10',
        '--service-cluster-ip-range=198.18.64.0/24',
        '--endpoint-reconciler-type=lease',
        '--kubelet-client-certificate=/p/admin.crt',
        '--kubelet-client-key=/p/admin.key',
        '--kubelet-preferred-address-types=InternalIP',
      ]),
    );
  });
});

describe('the real node configuration', () => {
  it('containerd restricts oom_score_adj, keeps netns out of /run/netns, uses cgroupfs and the pinned sandbox', () => {
    const toml = containerdConfig({
      root: '/d/root',
      state: '/d/state',
      socket: '/d/c.sock',
      cniBinDir: '/cni/bin',
      cniConfDir: '/d/net.d',
      runc: '/usr/sbin/runc',
      sandboxImage: 'localhost/harouter-pause:1',
    });
    expect(toml).toMatch(/^version = 3$/m);
    expect(toml).toMatch(/^\s*restrict_oom_score_adj = true$/m);
    expect(toml).toMatch(/^\s*netns_mounts_under_state_dir = true$/m);
    expect(toml).toMatch(/^\s*SystemdCgroup = false$/m);
    expect(toml).toMatch(/^\s*sandbox = "localhost\/harouter-pause:1"$/m);
    expect(toml).toMatch(/^\s*address = "\/d\/c.sock"$/m);
    expect(toml).toMatch(/^\s*bin_dirs = \["\/cni\/bin"\]$/m);
  });

  it('the kubelet runs cgroup v1 with cgroupfs, authenticates every client and binds the node address only', () => {
    const config = kubeletConfig({
      clientCaFile: '/p/ca.crt',
      containerdSocket: '/d/c.sock',
      podLogsDir: '/d/logs',
      cgroupRoot: '/harouter-node',
    }) as Record<string, unknown>;
    expect(parse(JSON.stringify(config))).toMatchObject({
      cgroupDriver: 'cgroupfs',
      failCgroupV1: false,
      failSwapOn: false,
      readOnlyPort: 0,
      address: NODE_NETWORK.address,
      healthzBindAddress: NODE_NETWORK.address,
      authentication: {
        anonymous: { enabled: false },
        webhook: { enabled: true },
        x509: { clientCAFile: '/p/ca.crt' },
      },
      authorization: { mode: 'Webhook' },
      containerRuntimeEndpoint: 'unix:///d/c.sock',
    });
  });

  it('CNI: a gateway bridge without masquerading, host-local addresses in a directory of their own', () => {
    const list = cniConfigList('/d/ipam') as { plugins: Record<string, unknown>[] };
    expect(list.plugins.map((p) => p.type)).toEqual(['bridge', 'portmap']);
    expect(list.plugins[0]).toMatchObject({
      bridge: NODE_NETWORK.bridge,
      isGateway: true,
      ipMasq: false,
      hairpinMode: true,
      ipam: { type: 'host-local', dataDir: '/d/ipam', ranges: [[{ subnet: NODE_NETWORK.podCidr }]] },
    });
  });

  it('the node network is outside the private ranges and interface names fit the kernel limit', () => {
    for (const cidr of [NODE_NETWORK.podCidr, NODE_NETWORK.serviceCidr, `${NODE_NETWORK.address}/32`])
      expect(cidr).toMatch(/^198\.1[89]\./);
    for (const name of [NODE_NETWORK.interface, NODE_NETWORK.bridge])
      expect(name.length).toBeLessThanOrEqual(15);
  });

  it('mountsUnder lists the mounts under a directory, deepest first, and nothing outside it', () => {
    const mountinfo = [
      '22 1 8:1 / / rw - ext4 /dev/vda rw',
      '30 22 0:5 / /tmp/n rw - tmpfs tmpfs rw',
      '31 30 0:6 / /tmp/n/kubelet/pods/x/volumes/token rw - tmpfs tmpfs rw',
      '32 22 0:7 / /tmp/nother rw - tmpfs tmpfs rw',
      '33 30 0:8 / /tmp/n/with\\040space rw - tmpfs tmpfs rw',
    ].join('\n');
    expect(mountsUnder(mountinfo, '/tmp/n')).toEqual([
      '/tmp/n/kubelet/pods/x/volumes/token',
      '/tmp/n/with space',
      '/tmp/n',
    ]);
  });
});
