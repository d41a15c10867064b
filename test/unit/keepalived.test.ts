import { describe, expect, it } from 'vitest';
import { parseKeepalivedArgs, stateFromKeepalived } from '../../src/report/keepalived.ts';

describe('stateFromKeepalived', () => {
  it.each([
    ['MASTER', 'Primary'],
    ['BACKUP', 'Backup'],
    ['FAULT', 'Fault'],
    ['STOP', 'Stopped'],
    ['DELETED', 'Stopped'],
  ])('maps %s to %s', (word, state) => {
    expect(stateFromKeepalived(word)).toBe(state);
  });

  it.each(['master', 'Primary', 'UNKNOWN', '', 'toString', '__proto__', 'MASTER '])('refuses %j', (word) => {
    expect(stateFromKeepalived(word)).toBeUndefined();
  });
});

describe('parseKeepalivedArgs', () => {
  it('reads the four arguments keepalived appends', () => {
    expect(parseKeepalivedArgs(['INSTANCE', 'VI_1', 'MASTER', '100'])).toEqual({
      type: 'INSTANCE',
      name: 'VI_1',
      state: 'Primary',
      keepalivedState: 'MASTER',
      priority: 100,
    });
  });

  it('accepts a group without a priority', () => {
    expect(parseKeepalivedArgs(['GROUP', 'G1', 'DELETED'])).toEqual({
      type: 'GROUP',
      name: 'G1',
      state: 'Stopped',
      keepalivedState: 'DELETED',
    });
  });

  it.each([
    [['INSTANCE', 'VI_1'], /expected keepalived's notify arguments/],
    [['INSTANCE', 'VI_1', 'MASTER', '100', 'extra'], /expected keepalived's notify arguments/],
    [['VRRP', 'VI_1', 'MASTER', '100'], /INSTANCE or GROUP/],
    [['INSTANCE', '', 'MASTER', '100'], /name is empty/],
    [['INSTANCE', 'VI_1', 'PRIMARY', '100'], /MASTER, BACKUP, FAULT, STOP, DELETED/],
    [['INSTANCE', 'VI_1', 'MASTER', '256'], /0 to 255/],
    [['INSTANCE', 'VI_1', 'MASTER', '-1'], /0 to 255/],
    [['INSTANCE', 'VI_1', 'MASTER', '1e2'], /0 to 255/],
  ])('refuses %j', (args, error) => {
    const result = parseKeepalivedArgs(args);
    expect(result).toHaveProperty('error');
    expect((result as { error: string }).error).toMatch(error);
  });
});
