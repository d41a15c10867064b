import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { claimLease, claimOf, type VRIDClaim, vridLeaseName } from '../../src/api/index.ts';
import { claimsToRelease, keptVRID, lowestFreeVRID, vridRefusal } from '../../src/reconcile/vrid.ts';

const claim = (segment: string, vrid: number, holder = 'ns/r1'): VRIDClaim => ({
  name: vridLeaseName(segment, vrid),
  uid: `uid-${segment}-${vrid}`,
  segment,
  vrid,
  holder,
});

describe('lowestFreeVRID', () => {
  it.each([
    [[], [], 1],
    [[1, 2, 4], [], 3],
    [[1, 2], [3], 4],
    [[], Array.from({ length: 253 }, (_, i) => i + 1), 254],
    [Array.from({ length: 254 }, (_, i) => i + 1), [], undefined],
  ])('taken %j, reserved %j -> %s', (taken, reserved, expected) => {
    expect(lowestFreeVRID(new Set(taken), new Set(reserved))).toBe(expected);
  });

  it('is never taken nor reserved, and nothing lower is free', () => {
    const set = fc.uniqueArray(fc.integer({ min: 1, max: 254 }), { maxLength: 254 });
    fc.assert(
      fc.property(set, set, (taken, reserved) => {
        const vrid = lowestFreeVRID(new Set(taken), new Set(reserved));
        const blocked = new Set([...taken, ...reserved]);
        if (vrid === undefined) return expect(blocked.size).toBe(254);
        expect(blocked.has(vrid)).toBe(false);
        for (let lower = 1; lower < vrid; lower++) expect(blocked.has(lower)).toBe(true);
      }),
    );
  });
});

describe('keptVRID', () => {
  it.each([
    ['the recorded VRID', { segment: 's' }, { segment: 's', vrid: 7 }, [], 7],
    [
      'the recorded VRID matching a hand-set one',
      { segment: 's', vrid: 7 },
      { segment: 's', vrid: 7 },
      [],
      7,
    ],
    [
      'nothing when the recorded VRID is of another segment',
      { segment: 't' },
      { segment: 's', vrid: 7 },
      [],
      undefined,
    ],
    [
      'the lowest claim held in the segment',
      { segment: 's' },
      undefined,
      [claim('s', 9), claim('s', 3), claim('t', 1)],
      3,
    ],
    [
      'a held claim only if it is the hand-set VRID',
      { segment: 's', vrid: 9 },
      undefined,
      [claim('s', 3)],
      undefined,
    ],
    ['nothing without a record or a claim', { segment: 's' }, undefined, [], undefined],
  ])('%s', (_name, spec, recorded, held, expected) => {
    expect(keptVRID(spec, recorded, held)).toBe(expected);
  });
});

describe('claimsToRelease', () => {
  it('keeps the one claim in use and releases every other', () => {
    const held = [claim('s', 1), claim('s', 2), claim('t', 1)];
    expect(claimsToRelease(held, { segment: 's', vrid: 2 }).map((c) => c.name)).toEqual([
      'harouter-vrid-s-1',
      'harouter-vrid-t-1',
    ]);
    expect(claimsToRelease(held, undefined)).toHaveLength(3);
  });
});

describe('claims as Leases', () => {
  it('a claim Lease reads back as the claim', () => {
    const lease = claimLease('edge', 12, 'tenant', 'r1');
    expect(claimOf({ ...lease, metadata: { ...lease.metadata, uid: 'u' } })).toEqual({
      name: 'harouter-vrid-edge-12',
      uid: 'u',
      segment: 'edge',
      vrid: 12,
      holder: 'tenant/r1',
    });
  });
  it.each([
    [
      'a name that does not match the labels',
      {
        ...claimLease('edge', 12, 'ns', 'r'),
        metadata: {
          name: 'harouter-vrid-edge-13',
          labels: claimLease('edge', 12, 'ns', 'r').metadata?.labels,
        },
      },
    ],
    ['no holder', { metadata: claimLease('edge', 12, 'ns', 'r').metadata, spec: {} }],
    ['a holder without a namespace', { ...claimLease('edge', 12, 'ns', 'r'), spec: { holderIdentity: 'r' } }],
    ['no labels', { metadata: { name: 'harouter-vrid-edge-12' }, spec: { holderIdentity: 'ns/r' } }],
  ])('ignores a Lease with %s', (_name, lease) => {
    expect(claimOf(lease)).toBeUndefined();
  });
});

describe('vridRefusal', () => {
  it('names VRIDConflict with the holder, NoVRIDAvailable with the segment, nothing for a recorded VRID', () => {
    expect(vridRefusal({ kind: 'conflict', segment: 's', vrid: 5, holder: 'ns/r9' })).toMatchObject({
      reason: 'VRIDConflict',
      message: expect.stringContaining('ns/r9'),
    });
    expect(vridRefusal({ kind: 'exhausted', segment: 's' })?.reason).toBe('NoVRIDAvailable');
    expect(vridRefusal({ kind: 'recorded', segment: 's', vrid: 5 })).toBeUndefined();
    expect(vridRefusal(undefined)).toBeUndefined();
  });
});
