import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HARouter } from '../../src/api/index.ts';
import { desiredRouters } from '../../src/keepalived/desired.ts';
import {
  advertIntSeconds,
  includeLines,
  RenderError,
  renderGlobalConfig,
  renderMainConfig,
  renderRouterConfig,
  routerIdOfFile,
  type VrrpRouterConfig,
} from '../../src/keepalived/render.ts';

const golden = (name: string) =>
  readFileSync(join(import.meta.dirname, 'golden', 'keepalived', name), 'utf8');

const R1 = '0b7e5a2c-1111-4222-8333-444455556666';
const R2 = '9d2f0c31-aaaa-4bbb-8ccc-0123456789ab';
const R3 = '3c1e9a77-0000-4111-8222-333344445555';

const ONE: VrrpRouterConfig = {
  routerId: R1,
  interface: 'eth0',
  vrid: 7,
  priority: 200,
  advertIntervalMs: 1000,
  virtualIPs: ['192.0.2.100/24'],
};

describe('keepalived rendering', () => {
  it('renders one router with one virtual IP as the golden file', () => {
    expect(renderRouterConfig(ONE, '/run/harouter/fence')).toBe(golden('router-one-vip.conf'));
  });

  it('advertises the first IPv6 address and excludes the others; trailing slashes of the fence dir are dropped', () => {
    const text = renderRouterConfig(
      {
        routerId: R2,
        interface: 'bond0.42',
        vrid: 254,
        priority: 1,
        advertIntervalMs: 250,
        virtualIPs: ['2001:db8::1/64', '2001:db8::2/64', '2001:db8:1::10/128'],
      },
      '/var/lib/fences/',
    );
    expect(text).toBe(golden('router-ipv6-excluded.conf'));
  });

  it('renders the global_defs and the main file as the golden files', () => {
    expect(renderGlobalConfig({ fifo: '/run/harouter/notify.fifo' })).toBe(golden('harouter-global.conf'));
    expect(renderMainConfig('/etc/keepalived/harouter/')).toBe(golden('keepalived-main.conf'));
    expect(includeLines('/etc/keepalived/harouter')).toEqual([
      'include /etc/keepalived/harouter/harouter-global.conf',
      'include /etc/keepalived/harouter/*-*-*-*-*.conf',
    ]);
  });

  it.each([
    [100, '0.1'],
    [1000, '1'],
    [1010, '1.01'],
    [1500, '1.5'],
    [40950, '40.95'],
  ])('writes %i ms as advert_int %s', (ms, text) => {
    expect(advertIntSeconds(ms)).toBe(text);
  });

  it('writes every valid interval as a decimal that reads back to the same milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 10, max: 4095 }), (tens) => {
        const text = advertIntSeconds(tens * 10);
        expect(text).toMatch(/^[0-9]+(\.[0-9]{1,2})?$/);
        expect(Math.round(Number(text) * 1000)).toBe(tens * 10);
      }),
    );
  });

  it.each([
    ['a router id that is not a UUID', { routerId: 'VI_1' }, /routerId/],
    ['an interface with a space', { interface: 'eth0 }' }, /interface/],
    ['an interface longer than 15 bytes', { interface: 'a-very-long-name0' }, /interface/],
    ['VRID 0', { vrid: 0 }, /vrid/],
    ['VRID 255', { vrid: 255 }, /vrid/],
    ['priority 255', { priority: 255 }, /priority/],
    ['an advert interval not a multiple of 10', { advertIntervalMs: 1005 }, /advertIntervalMs/],
    ['an advert interval under 100 ms', { advertIntervalMs: 90 }, /advertIntervalMs/],
    ['no virtual IP', { virtualIPs: [] }, /virtual IP/],
    ['a virtual IP that is a word', { virtualIPs: ['gateway'] }, /not an address with its prefix/],
    ['a virtual IP without a prefix length', { virtualIPs: ['192.0.2.1'] }, /not an address with its prefix/],
    ['a prefix too long', { virtualIPs: ['192.0.2.1/33'] }, /not an address with its prefix/],
    ['a virtual IP with a brace', { virtualIPs: ['192.0.2.1/24 }'] }, /not an address with its prefix/],
    ['two families', { virtualIPs: ['192.0.2.1/24', '2001:db8::1/64'] }, /family/],
    ['one address twice', { virtualIPs: ['192.0.2.1/24', '192.0.2.1/32'] }, /once/],
  ] as const)('refuses %s', (_what, change, message) => {
    const router = { ...ONE, ...change } as VrrpRouterConfig;
    expect(() => renderRouterConfig(router, '/run/harouter/fence')).toThrow(RenderError);
    expect(() => renderRouterConfig(router, '/run/harouter/fence')).toThrow(message);
  });

  it('refuses a fence directory or FIFO keepalived would misread', () => {
    expect(() => renderRouterConfig(ONE, 'run/fence')).toThrow(/fence directory/);
    expect(() => renderRouterConfig(ONE, '/run/my fence')).toThrow(/fence directory/);
    expect(() => renderRouterConfig(ONE, '/run/../etc')).toThrow(/fence directory/);
    expect(() => renderGlobalConfig({ fifo: '/run/a"b' })).toThrow(/FIFO/);
  });

  it('names router files by router id only', () => {
    expect(routerIdOfFile(`${R1}.conf`)).toBe(R1);
    expect(routerIdOfFile('harouter-global.conf')).toBeUndefined();
    expect(routerIdOfFile('keepalived.conf')).toBeUndefined();
    expect(routerIdOfFile(R1)).toBeUndefined();
    expect(routerIdOfFile(`.${R1}.conf.1.tmp`)).toBeUndefined();
  });
});

function router(
  id: string,
  options: {
    agents?: { name: string; priority?: number }[];
    vrid?: number;
    vrrp?: Partial<NonNullable<HARouter['spec']['vrrp']>> | null;
    fenced?: string[];
    created?: string;
    conditions?: NonNullable<HARouter['status']>['conditions'];
  } = {},
): HARouter {
  const agents = options.agents ?? [{ name: 'node-a' }, { name: 'node-b' }];
  return {
    metadata: {
      name: id,
      namespace: 'routers',
      creationTimestamp: options.created ?? '2026-01-01T00:00:00Z',
    },
    spec: {
      agents,
      ...(options.vrrp === null
        ? {}
        : { vrrp: { interface: 'eth0', virtualIPs: ['192.0.2.10/24'], ...options.vrrp } }),
    },
    status: {
      ...(options.vrid !== undefined ? { vrrp: { vrid: options.vrid } } : {}),
      agents: agents.map((a) => ({
        name: a.name,
        state: 'Backup' as const,
        ...(options.fenced?.includes(a.name) ? { fenced: true } : {}),
      })),
      ...(options.conditions ? { conditions: options.conditions } : {}),
    },
  } as HARouter;
}

describe('the routers a node renders', () => {
  const FENCE = '/run/harouter/fence';

  it('renders members with spec.vrrp and a recorded VRID, with the default priority by position', () => {
    const { routers, skipped } = desiredRouters(
      [
        router(R1, { vrid: 3 }),
        router(R2, { vrid: 4, agents: [{ name: 'node-b' }] }),
        router(R3, { vrid: 5, vrrp: null }),
        router('11111111-2222-4333-8444-555555555555', {}),
      ],
      'node-b',
      FENCE,
    );
    expect(skipped).toEqual([]);
    expect(routers.map((r) => r.routerId)).toEqual([R1, R2]);
    expect(routers[0]?.config).toContain('  priority 190\n');
    expect(routers[0]?.config).toContain('  virtual_router_id 3\n');
    expect(routers[1]?.config).toContain('  priority 200\n');
    expect(routers.every((r) => !r.fenced)).toBe(true);
  });

  it('uses the spec priority, the advert interval and this agent’s fence only', () => {
    const { routers } = desiredRouters(
      [
        router(R1, {
          vrid: 9,
          agents: [
            { name: 'node-a', priority: 120 },
            { name: 'node-b', priority: 80 },
          ],
          vrrp: { advertIntervalMs: 500 },
          fenced: ['node-b'],
        }),
      ],
      'node-a',
      FENCE,
    );
    expect(routers[0]).toMatchObject({ routerId: R1, namespace: 'routers', fenced: false });
    expect(routers[0]?.config).toContain('  priority 120\n');
    expect(routers[0]?.config).toContain('  advert_int 0.5\n');
    const b = desiredRouters([router(R1, { vrid: 9, fenced: ['node-b'] })], 'node-b', FENCE).routers;
    expect(b[0]?.fenced).toBe(true);
  });

  it('leaves out a VRIDConflict router, a later router with a VRID in use here, and one keepalived would misread', () => {
    const { routers, skipped } = desiredRouters(
      [
        router(R2, { vrid: 4, created: '2026-01-02T00:00:00Z' }),
        router(R1, { vrid: 4, created: '2026-01-01T00:00:00Z' }),
        router(R3, {
          vrid: 5,
          conditions: [
            {
              type: 'Ready',
              status: 'False',
              reason: 'VRIDConflict',
              message: 'x',
              lastTransitionTime: '2026-01-01T00:00:00Z',
            },
          ],
        }),
        router('11111111-2222-4333-8444-555555555555', { vrid: 6, vrrp: { interface: 'bad iface' } }),
        router('22222222-2222-4333-8444-555555555555', { vrid: 4, vrrp: { interface: 'eth1' } }),
      ],
      'node-a',
      FENCE,
    );
    expect(routers.map((r) => r.routerId)).toEqual([R1, '22222222-2222-4333-8444-555555555555']);
    // Oldest first: the older of two routers with one VRID keeps it.
    expect(skipped).toEqual([
      {
        routerId: '11111111-2222-4333-8444-555555555555',
        namespace: 'routers',
        reason: 'Invalid',
        detail: expect.stringMatching(/interface/),
      },
      { routerId: R3, namespace: 'routers', reason: 'VRIDConflict' },
      { routerId: R2, namespace: 'routers', reason: 'DuplicateVRID', detail: `VRID 4 is used by ${R1}` },
    ]);
  });
});
