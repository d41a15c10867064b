import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type ConnectionState,
  chooseEviction,
  EVICTION_YOUNG_MS,
  overdue,
  type PacingLimits,
  STALLED_HANDSHAKE_MS,
  slowestConnection,
} from '../../src/http/connection-pacing.ts';
import { WEBHOOK_LIMITS } from '../../src/http/limits.ts';

const LIMITS: PacingLimits = {
  maxConnections: 4,
  maxConnectionsPerAddress: 3,
  handshakeTimeoutMs: 5000,
  requestTimeoutMs: 10_000,
  minBytesPerSecond: 4096,
  rateGraceMs: 1000,
};
const NOW = 100_000;
const conn = (
  phase: ConnectionState['phase'],
  ageMs: number,
  bytes: number,
  address = '10.0.0.1',
): ConnectionState => ({ phase, since: NOW - ageMs, bytes, address });

describe('overdue', () => {
  it('closes a request past its whole-request deadline, however fast it was', () => {
    expect(overdue(conn('request', 10_001, 10_000_000), NOW, LIMITS)).toBe('request deadline');
    expect(overdue(conn('request', 10_000, 10_000_000), NOW, LIMITS)).toBeUndefined();
  });

  it('asks no rate in the grace period, then the minimum rate on what followed it', () => {
    expect(overdue(conn('request', 1000, 0), NOW, LIMITS)).toBeUndefined();
    // 1.5 s in: 0.5 s past the grace owes 2048 bytes.
    expect(overdue(conn('request', 1500, 2047), NOW, LIMITS)).toBe('too slow');
    expect(overdue(conn('request', 1500, 2048), NOW, LIMITS)).toBeUndefined();
  });

  it("catches the issue's slow client (1 KB of headers, then a byte every 4 s) within 1.5 s", () => {
    const firstFailing = [1100, 1200, 1300, 1400, 1500].find(
      (age) => overdue(conn('request', age, 1000), NOW, LIMITS) === 'too slow',
    );
    expect(firstFailing).toBeDefined();
  });

  it('bounds a handshake by its deadline, and leaves answered and idle connections alone', () => {
    expect(overdue(conn('handshake', 5001, 0), NOW, LIMITS)).toBe('handshake deadline');
    expect(overdue(conn('handshake', 4000, 0), NOW, LIMITS)).toBeUndefined();
    expect(overdue(conn('processing', 60_000, 0), NOW, LIMITS)).toBeUndefined();
    expect(overdue(conn('idle', 60_000, 0), NOW, LIMITS)).toBeUndefined();
  });

  it('the webhook sends a real review (a few KiB, arriving at once) through, and stops a trickle', () => {
    expect(overdue(conn('request', 5, 6000), NOW, WEBHOOK_LIMITS)).toBeUndefined();
    expect(overdue(conn('request', 3000, 1200), NOW, WEBHOOK_LIMITS)).toBe('too slow');
  });
});

describe('slowestConnection', () => {
  it('evicts the slowest stalled sender first, then young requests, then young handshakes, then the oldest idle', () => {
    const stalledSlow = conn('request', 2000, 100);
    const stalledFaster = conn('request', 2000, 5000);
    const stalledHandshake = conn('handshake', STALLED_HANDSHAKE_MS + 1, 50);
    const idleOld = conn('idle', 30_000, 0);
    const idleNew = conn('idle', 10, 0);
    const youngRequest = conn('request', EVICTION_YOUNG_MS - 1, 10);
    const youngHandshake = conn('handshake', 5, 0);
    const answering = conn('processing', 60_000, 0);
    const order: ConnectionState[] = [];
    let left = [
      answering,
      youngHandshake,
      youngRequest,
      idleNew,
      idleOld,
      stalledFaster,
      stalledHandshake,
      stalledSlow,
    ];
    for (;;) {
      const next = slowestConnection(left, NOW);
      if (!next) break;
      order.push(next);
      left = left.filter((c) => c !== next);
    }
    expect(order).toEqual([
      stalledHandshake,
      stalledSlow,
      stalledFaster,
      youngRequest,
      youngHandshake,
      idleOld,
      idleNew,
    ]);
    expect(left).toEqual([answering]);
  });

  it('never picks a connection whose request has arrived whole', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            phase: fc.constantFrom('handshake', 'request', 'processing', 'idle'),
            since: fc.integer({ min: 0, max: NOW }),
            bytes: fc.nat(),
            address: fc.constantFrom('a', 'b'),
          }),
        ),
        (open: ConnectionState[]) => {
          const victim = slowestConnection(open, NOW);
          if (victim) expect(victim.phase).not.toBe('processing');
          else expect(open.every((c) => c.phase === 'processing')).toBe(true);
        },
      ),
    );
  });
});

describe('chooseEviction', () => {
  it('admits while there is room, for the server and for the address', () => {
    expect(chooseEviction([conn('request', 5000, 0, 'x')], 'y', NOW, LIMITS)).toEqual({ action: 'admit' });
  });

  it('at the address cap evicts from that address only, even when another holds a slower one', () => {
    const mine = [
      conn('request', 2000, 4000, 'a'),
      conn('request', 2000, 3000, 'a'),
      conn('idle', 9000, 0, 'a'),
    ];
    const slowerElsewhere = conn('request', 2000, 1, 'b');
    const decision = chooseEviction([...mine, slowerElsewhere], 'a', NOW, LIMITS);
    expect(decision).toEqual({ action: 'evict', victim: mine[1] });
  });

  it('when the server is full, evicts the slowest busy connection rather than refuse the new one', () => {
    const open = [
      conn('processing', 100, 0, 'a'),
      conn('request', 3000, 700, 'b'),
      conn('request', 3000, 200, 'c'),
      conn('request', 3000, 9000, 'd'),
    ];
    expect(chooseEviction(open, 'e', NOW, LIMITS)).toEqual({ action: 'evict', victim: open[2] });
  });

  it('refuses only when every connection is answering a request', () => {
    const open = ['a', 'b', 'c', 'd'].map((a) => conn('processing', 10, 0, a));
    expect(chooseEviction(open, 'e', NOW, LIMITS)).toEqual({ action: 'refuse' });
  });
});
