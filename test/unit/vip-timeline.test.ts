/**
 * The data-plane oracle's pure part (test/support/vip-timeline.ts): what `ip`
 * prints, parsed from fixtures taken from iproute2 6.1, and the holder
 * arithmetic (spans, gaps, two holders) on hand-made and generated timelines.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  changes,
  gaps,
  type HoldEvent,
  holderSpans,
  holdersAt,
  overlaps,
  parseBriefAddresses,
  parseIpTimestamp,
  parseMonitorLine,
  settledHolder,
} from '../support/vip-timeline.ts';

/** `TZ=UTC ip -n NS -ts -o monitor address`, as iproute2 6.1 prints it (the `\` joins the lines of one message). */
const MONITOR_FIXTURE = String.raw`[2026-12-08T01:59:11.443138] 3: eth0    inet 192.0.2.1/24 scope global eth0\       valid_lft forever preferred_lft forever
[2026-12-08T01:59:11.474826] 3: eth0    inet 192.0.2.101/24 scope global secondary eth0\       valid_lft forever preferred_lft forever
[2026-12-08T01:59:11.501855] 3: eth0    inet6 2001:DB8::5/64 scope global nodad \       valid_lft forever preferred_lft forever
[2026-12-08T01:59:11.546109] Deleted 3: eth0    inet 192.0.2.101/24 scope global secondary eth0\       valid_lft forever preferred_lft forever
[2026-12-08T01:59:14.974875] 3: eth0    inet 203.0.113.7/32 scope global eth0
       valid_lft forever preferred_lft forever
[2026-12-08T01:59:15.000000] 12: eth0    link/ether 9e:31:ba:23:fa:b4 brd ff:ff:ff:ff:ff:ff`;

/** `ip -n NS -br addr show` of a node holding a VIP. */
const BRIEF_FIXTURE = `lo               UNKNOWN        127.0.0.1/8 ::1/128 
eth0@if5         UP             192.0.2.1/24 203.0.113.7/32 2001:db8::5/64 fe80::f01f:c5ff:fe6f:133f/64 
port0@eth0       DOWN           
`;

describe('parseIpTimestamp', () => {
  it("reads ip's stamp as UTC with its microseconds", () => {
    expect(parseIpTimestamp('[2026-12-08T01:59:11.443138]')).toBeCloseTo(
      Date.UTC(2026, 11, 8, 1, 59, 11) + 443.138,
      6,
    );
    expect(parseIpTimestamp('[2026-12-08T01:59:11]')).toBe(Date.UTC(2026, 11, 8, 1, 59, 11));
  });

  it('refuses what is not a stamp', () => {
    for (const text of ['2026-12-08T01:59:11.443138', '[Tue Dec  8 01:59:11 2026]', '[]', '[2026-12-08]'])
      expect(parseIpTimestamp(text)).toBeUndefined();
  });
});

describe('parseMonitorLine', () => {
  it('parses additions and deletions of IPv4 and IPv6 addresses, prefix dropped, lower case', () => {
    const parsed = MONITOR_FIXTURE.split('\n').map(parseMonitorLine);
    expect(parsed.map((p) => p && [p.held, p.interface, p.family, p.address])).toEqual([
      [true, 'eth0', 'inet', '192.0.2.1'],
      [true, 'eth0', 'inet', '192.0.2.101'],
      [true, 'eth0', 'inet6', '2001:db8::5'],
      [false, 'eth0', 'inet', '192.0.2.101'],
      [true, 'eth0', 'inet', '203.0.113.7'],
      undefined,
      undefined,
    ]);
    expect(parsed[3]?.at).toBeCloseTo(Date.UTC(2026, 11, 8, 1, 59, 11) + 546.109, 6);
  });

  it('ignores lines without a stamp and events that are not addresses', () => {
    expect(parseMonitorLine('3: eth0    inet 192.0.2.1/24 scope global eth0')).toBeUndefined();
    expect(parseMonitorLine('')).toBeUndefined();
    expect(parseMonitorLine('[2026-12-08T01:59:11.443138] Deleted 3: eth0    link/ether x')).toBeUndefined();
  });
});

describe('parseBriefAddresses', () => {
  it('lists each interface without its @peer, with its addresses without prefix lengths', () => {
    expect(parseBriefAddresses(BRIEF_FIXTURE)).toEqual([
      { interface: 'lo', state: 'UNKNOWN', addresses: ['127.0.0.1', '::1'] },
      {
        interface: 'eth0',
        state: 'UP',
        addresses: ['192.0.2.1', '203.0.113.7', '2001:db8::5', 'fe80::f01f:c5ff:fe6f:133f'],
      },
      { interface: 'port0', state: 'DOWN', addresses: [] },
    ]);
    expect(parseBriefAddresses('')).toEqual([]);
  });
});

const VIP = '203.0.113.7';
const ev = (at: number, holder: string, held: boolean, vip = VIP): HoldEvent => ({ at, vip, holder, held });

describe('holder arithmetic', () => {
  it('a clean switchover: a gap between the old holder leaving and the new one arriving', () => {
    const events = [
      ev(0, 'a', true),
      ev(1000, 'a', false),
      ev(1240, 'b', true),
      ev(0, 'x', true, '203.0.113.8'),
    ];
    const spans = holderSpans(events, VIP, 500, 3000);
    expect(spans).toEqual([
      { from: 500, to: 1000, holders: ['a'] },
      { from: 1000, to: 1240, holders: [] },
      { from: 1240, to: 3000, holders: ['b'] },
    ]);
    expect(gaps(spans)).toEqual([{ from: 1000, to: 1240, ms: 240 }]);
    expect(overlaps(spans)).toEqual([]);
    expect(changes(spans)).toBe(2);
    expect(settledHolder(spans)).toEqual({ holder: 'b', since: 1240 });
    expect(holdersAt(events, VIP, 1100)).toEqual([]);
    expect(holdersAt(events, VIP, 1240)).toEqual(['b']);
  });

  it('two holders at once are an overlap; a window before the events sees none', () => {
    const events = [ev(0, 'a', true), ev(1000, 'b', true), ev(1300, 'a', false)];
    const spans = holderSpans(events, VIP, 0, 2000);
    expect(overlaps(spans)).toEqual([{ from: 1000, to: 1300, ms: 300 }]);
    expect(gaps(spans)).toEqual([]);
    expect(settledHolder(spans)).toEqual({ holder: 'b', since: 1300 });
    expect(holderSpans(events, VIP, -500, -100)).toEqual([{ from: -500, to: -100, holders: [] }]);
  });

  it('repeated states, events at one instant and events after the window change nothing', () => {
    const events = [
      ev(0, 'a', true),
      ev(100, 'a', true),
      ev(200, 'a', false),
      ev(200, 'a', true),
      ev(900, 'b', true),
    ];
    expect(holderSpans(events, VIP, 0, 800)).toEqual([{ from: 0, to: 800, holders: ['a'] }]);
    expect(changes(holderSpans(events, VIP, 0, 800))).toBe(0);
  });

  it('a change at the end of the window is its last state', () => {
    const events = [ev(0, 'a', true), ev(800, 'a', false)];
    const spans = holderSpans(events, VIP, 0, 800);
    expect(spans).toEqual([
      { from: 0, to: 800, holders: ['a'] },
      { from: 800, to: 800, holders: [] },
    ]);
    expect(settledHolder(spans)).toBeUndefined();
  });

  it('refuses a window that ends before it begins', () => {
    expect(() => holderSpans([], VIP, 10, 5)).toThrow(/ends/);
  });

  it('generated timelines: spans tile the window, alternate, and agree with holdersAt', () => {
    const event = fc.record({
      at: fc.integer({ min: 0, max: 1000 }),
      holder: fc.constantFrom('a', 'b', 'c'),
      held: fc.boolean(),
    });
    fc.assert(
      fc.property(
        fc.array(event, { maxLength: 40 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.integer({ min: 0, max: 1000 }),
        (raw, x, y) => {
          const events = raw.map((e) => ({ ...e, vip: VIP }));
          const [from, to] = x <= y ? [x, y] : [y, x];
          const spans = holderSpans(events, VIP, from, to);
          expect(spans[0]?.from).toBe(from);
          expect(spans.at(-1)?.to).toBe(to);
          for (let i = 1; i < spans.length; i++) {
            const [before, span] = [spans[i - 1], spans[i]];
            expect(span?.from).toBe(before?.to);
            expect(span?.holders).not.toEqual(before?.holders);
          }
          for (const span of spans) {
            if (span.to > span.from) expect(holdersAt(events, VIP, span.from)).toEqual(span.holders);
          }
          const total =
            gaps(spans).reduce((s, g) => s + g.ms, 0) + overlaps(spans).reduce((s, g) => s + g.ms, 0);
          const single = spans.filter((s) => s.holders.length === 1).reduce((s, g) => s + g.to - g.from, 0);
          expect(total + single).toBe(to - from);
        },
      ),
    );
  });
});
