import { describe, expect, it } from 'vitest';
import { dashboardSvg, escapeXml, formatValue, legendName, ticks } from '../../bench/dashboard-svg.ts';

describe('the dashboard pictures (bench/dashboard-svg.ts)', () => {
  it("formats values in the dashboard's units", () => {
    expect(formatValue(0.0123, 's')).toBe('12.3 ms');
    expect(formatValue(2.5, 's')).toBe('2.50 s');
    expect(formatValue(0.5, 'reqps')).toBe('0.50 req/s');
    expect(formatValue(3 * 2 ** 20, 'bytes')).toBe('3.00 MiB');
    expect(formatValue(4, 'none')).toBe('4');
  });

  it("names series by Grafana's legend format, or by their labels", () => {
    expect(legendName('{{decision}} {{reason}}', { decision: 'denied', reason: 'NotAReporter' })).toBe(
      'denied NotAReporter',
    );
    expect(legendName(undefined, { __name__: 'x', code: '200' })).toBe('{code="200"}');
    expect(legendName('', {})).toBe('value');
  });

  it('picks round ticks covering the range', () => {
    expect(ticks(0, 4)).toEqual([0, 1, 2, 3, 4]);
    expect(ticks(0, 0.1)).toEqual([0, 0.025, 0.05, 0.075, 0.1]);
    expect(ticks(5, 5)).toEqual([5]);
  });

  it('escapes label values, which come from the metrics', () => {
    expect(escapeXml('<a & "b">')).toBe('&#60;a &#38; &#34;b&#34;&#62;');
    const svg = dashboardSvg('t', 's', [
      {
        panel: { type: 'table', title: 'T', columns: ['router'], rows: [['<script>']] },
        x: 0,
        y: 0,
        w: 12,
        h: 4,
      },
    ]);
    expect(svg).not.toContain('<script>');
    expect(svg).toContain('&#60;script&#62;');
  });
});
