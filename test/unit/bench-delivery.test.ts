import { describe, expect, it } from 'vitest';
import { nanosRfc3339, rfc3339Nanos } from '../../bench/delivery-watch.ts';
import { childCpuMs } from '../../bench/timed-process.ts';

describe('the agent benchmark’s own timestamp arithmetic', () => {
  it('orders RFC 3339 times at full precision, offsets included', () => {
    expect(rfc3339Nanos('2026-12-08T02:00:00.5Z')).toBeGreaterThan(rfc3339Nanos('2026-12-08T02:00:00Z'));
    expect(
      rfc3339Nanos('2026-12-08T02:00:00.000000002Z') - rfc3339Nanos('2026-12-08T02:00:00.000000001Z'),
    ).toBe(1n);
    expect(rfc3339Nanos('2026-12-08T03:00:00.25+01:00')).toBe(rfc3339Nanos('2026-12-08T02:00:00.250Z'));
    expect(() => rfc3339Nanos('yesterday')).toThrow(/not an RFC 3339 time/);
  });

  it('formats nanoseconds with nine digits and reads them back unchanged', () => {
    const nanos = 1_796_695_200_123_456_789n;
    expect(nanosRfc3339(nanos)).toBe('2026-12-08T02:00:00.123456789Z');
    expect(rfc3339Nanos(nanosRfc3339(nanos))).toBe(nanos);
  });
});

describe('a child’s CPU time from /proc/<pid>/stat', () => {
  it('reads cutime and cstime, whatever the process name holds', () => {
    const fields = Array.from({ length: 50 }, (_, i) => String(i + 3));
    fields[13] = '7'; // cutime
    fields[14] = '5'; // cstime
    const stat = `4242 (sh (odd) name) ${fields.join(' ')}`;
    expect(childCpuMs(stat)).toBe(120);
  });
});
