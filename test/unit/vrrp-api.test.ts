import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  effectivePriority,
  harouterSpecSchema,
  parseCIDR,
  VRRP_DEFAULTS,
  virtualIPsRefusal,
  vridLeaseName,
} from '../../src/api/index.ts';

describe('effectivePriority', () => {
  const agents = [{ name: 'a' }, { name: 'b', priority: 120 }, { name: 'c' }];
  it.each([
    ['a', 200],
    ['b', 120],
    ['c', 180],
    ['z', undefined],
  ])('%s -> %s (own priority, else 200 minus 10 per position)', (agent, expected) => {
    expect(effectivePriority(agents, agent)).toBe(expected);
  });

  it('gives 16 agents without priorities 16 distinct values from 200 down to 50', () => {
    const sixteen = Array.from({ length: 16 }, (_, i) => ({ name: `n${i}` }));
    const values = sixteen.map((a) => effectivePriority(sixteen, a.name));
    expect(values[0]).toBe(200);
    expect(values[15]).toBe(50);
    expect(new Set(values).size).toBe(16);
  });
});

describe('vridLeaseName', () => {
  it('is harouter-vrid-<segment>-<vrid>', () => {
    expect(vridLeaseName('default', 7)).toBe('harouter-vrid-default-7');
  });
  it('fits a Lease name (DNS-1123 subdomain of at most 253) for the longest segment', () => {
    const name = vridLeaseName('s'.repeat(63), 254);
    expect(name.length).toBeLessThanOrEqual(253);
    expect(name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });
});

describe('parseCIDR', () => {
  it.each([
    ['192.0.2.1/24', 4, [192, 0, 2, 1], 24],
    ['::/0', 6, new Array(16).fill(0), 0],
    ['2001:db8::1/64', 6, [0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 1], 64],
    ['::1.2.3.4/128', 6, [...new Array(12).fill(0), 1, 2, 3, 4], 128],
  ])('%s', (text, family, bytes, prefix) => {
    expect(parseCIDR(text)).toEqual({ family, bytes, prefix });
  });

  it.each([
    '1.2.3/8',
    '1.2.3.4.5/8',
    '1.2.3.4/',
    '1.2.3.4/+8',
    '::ffff:1.2.3.4/96',
    '1::2::3/64',
    ':::/64',
    'a/1',
  ])('refuses %s', (text) => {
    expect(parseCIDR(text)).toBeUndefined();
  });

  it('reads any IPv4 address with any prefix, and its text back to the same bytes', () => {
    fc.assert(
      fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (address, prefix) => {
        expect(parseCIDR(`${address}/${prefix}`)?.bytes.join('.')).toBe(address);
      }),
    );
  });

  it('agrees with Node and WHATWG URL on every IPv6 form fast-check writes (IPv4-mapped refused)', () => {
    const mapped = (address: string) =>
      /^\[::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}\]$/.test(new URL(`http://[${address}]`).hostname);
    fc.assert(
      fc.property(fc.ipV6(), (address) => {
        const expected = isIPv6(address) && !mapped(address);
        expect(parseCIDR(`${address}/64`)?.family === 6).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('virtualIPsRefusal', () => {
  it('names the family rule and the uniqueness rule', () => {
    expect(virtualIPsRefusal(['192.0.2.1/24', '2001:db8::1/64'])).toMatch(/^virtual IP family rule/);
    expect(virtualIPsRefusal(['2001:db8::1/64', '2001:db8:0::1/128'])).toMatch(/^unique virtual IPs rule/);
    expect(virtualIPsRefusal(['192.0.2.1/24', '192.0.2.2/24'])).toBeUndefined();
  });
});

describe('harouterSpecSchema with spec.vrrp', () => {
  it('applies the defaults the CRD applies', () => {
    const spec = harouterSpecSchema.parse({
      agents: [{ name: 'a' }],
      vrrp: { interface: 'eth0', virtualIPs: ['192.0.2.1/24'] },
    });
    expect(spec.vrrp).toEqual({ interface: 'eth0', virtualIPs: ['192.0.2.1/24'], ...VRRP_DEFAULTS });
  });
});
