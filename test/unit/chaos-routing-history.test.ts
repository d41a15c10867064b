/**
 * The chaos run's NotReady invariant (test/chaos/invariants.ts): a slice version
 * that newly points at a node NotReady at its revision is a violation; a slice
 * left pointing there from before is the withdrawal, timed.
 */
import { describe, expect, it } from 'vitest';
import { RoutingHistory } from '../chaos/invariants.ts';

describe('RoutingHistory.judge', () => {
  it('counts a slice newly pointed at a NotReady node, not one that still pointed there before', () => {
    const h = new RoutingHistory();
    h.recordNode('a', 10n, true, 0);
    h.recordNode('b', 11n, true, 0);
    h.recordSlice('s1', 12n, 'a', 0);
    h.recordSlice('s2', 13n, 'b', 0);
    h.recordNode('a', 20n, false, 1000);
    // s1 still points at a (a version written for another reason), then is withdrawn 400 ms later.
    h.recordSlice('s1', 21n, 'a', 1100);
    h.recordSlice('s1', 22n, 'b', 1400);
    // s2 is pointed at a while a is NotReady: wrong.
    h.recordSlice('s2', 23n, 'a', 1500);
    h.recordNode('a', 30n, true, 5000);
    // Pointing at a once it is Ready again is right.
    h.recordSlice('s1', 31n, 'a', 5100);
    const judged = h.judge(200);
    expect(judged.notReadyRoutes).toBe(1);
    expect(judged.notReadyRaces).toBe(0);
    expect(judged.examples[0]).toContain('slice s2 pointed at a at revision 23');
    expect(judged.withdrawMaxMs).toBe(400);
    expect(judged.sliceVersions).toBe(6);
  });

  it('a slice pointed there within the grace after the NotReady event is a race, not a violation', () => {
    const h = new RoutingHistory();
    h.recordNode('a', 10n, true, 0);
    h.recordSlice('s', 11n, 'b', 0);
    h.recordNode('a', 20n, false, 1000);
    h.recordSlice('s', 21n, 'a', 1150);
    const judged = h.judge(200);
    expect(judged.notReadyRoutes).toBe(0);
    expect(judged.notReadyRaces).toBe(1);
  });

  it('a slice version at a revision before the node went NotReady is not a violation', () => {
    const h = new RoutingHistory();
    h.recordNode('a', 5n, true);
    h.recordSlice('s', 19n, 'a');
    h.recordNode('a', 20n, false);
    h.recordSlice('s', 21n, undefined);
    expect(h.judge().notReadyRoutes).toBe(0);
  });

  it("a version learnt from the checker's relist is timed by the server's clock, not by its late arrival", () => {
    const h = new RoutingHistory();
    h.recordNode('a', 10n, true, 0);
    h.recordSlice('s', 11n, 'b', 0);
    h.recordNode('a', 20n, false, 10_000, { source: 'watch', serverAt: 10_000 });
    // Written 1 s after the NotReady change (a race), seen 8 s later when the checker's watch relisted.
    h.recordSlice('s', 21n, 'a', 18_000, { source: 'list', serverAt: 11_000 });
    // The same slice written 6 s after it, seen live: a violation.
    h.recordSlice('t', 12n, 'b', 0);
    h.recordSlice('t', 22n, 'a', 16_000, { source: 'watch', serverAt: 16_000 });
    const judged = h.judge(2000);
    expect(judged.notReadyRaces).toBe(1);
    expect(judged.notReadyRoutes).toBe(1);
    expect(judged.examples[1]).toContain(
      'slice t pointed at a at revision 22, 6000 ms after it went NotReady',
    );
  });

  it('times a withdrawal learnt from a relist by the server clock, and names the longest one', () => {
    const h = new RoutingHistory();
    h.recordNode('a', 10n, true, 0);
    h.recordSlice('s', 11n, 'a', 0);
    h.recordSlice('t', 12n, 'a', 0);
    h.recordNode('a', 20n, false, 10_000, { source: 'watch', serverAt: 10_000 });
    // s is withdrawn 1 s after the NotReady change, seen 9 s later through the checker's relist.
    h.recordSlice('s', 21n, undefined, 19_000, { source: 'list', serverAt: 11_000 });
    // t is withdrawn 3 s after it, seen live.
    h.recordSlice('t', 22n, 'b', 13_000, { source: 'watch', serverAt: 13_000 });
    const judged = h.judge(2000);
    expect(judged.withdrawMaxMs).toBe(3000);
    expect(judged.withdrawMaxExample).toBe(
      'slice t left a at revision 22 (watch), 3000 ms after it went NotReady at revision 20 (watch); ' +
        'server times: slice written 1970-01-01T00:00:13.000Z, node changed 1970-01-01T00:00:10.000Z',
    );
    expect(judged).toMatchObject({ withdrawals: 2, withdrawP50Ms: 3000, withdrawP95Ms: 3000 });
  });
});
