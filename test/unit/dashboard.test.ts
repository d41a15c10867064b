import { describe, expect, it } from 'vitest';
import {
  dashboard,
  dashboardPanels,
  dashboardQueries,
  promqlProblems,
  substituteGrafanaVariables,
} from './chart-helpers.ts';

/** How every panel names its data source: Grafana's `datasource` variable (not a JS template). */
const DATASOURCE = { type: 'prometheus', uid: ['$', '{datasource}'].join('') };

describe('Grafana dashboard (files/dashboards/harouter.json)', () => {
  const d = dashboard();
  const panels = dashboardPanels(d);
  const queries = dashboardQueries(d);

  it('has a stable uid, a title and the datasource variable every panel uses', () => {
    expect(d.uid).toBe('harouter-operator');
    expect(d.title).toEqual(expect.any(String));
    const variables = d.templating.list.map((v: { name: string }) => v.name);
    expect(variables).toEqual(expect.arrayContaining(['datasource', 'job', 'namespace']));
    for (const panel of panels.filter((p) => p.type !== 'row')) {
      expect(panel.datasource, panel.title).toEqual(DATASOURCE);
      for (const target of panel.targets) expect(target.datasource, panel.title).toEqual(panel.datasource);
    }
  });

  it('panel ids are unique and panels do not overlap', () => {
    const ids = panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w, p.title).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          const cell = `${i},${j}`;
          expect(cells.has(cell), `${p.title} overlaps at ${cell}`).toBe(false);
          cells.add(cell);
        }
      }
    }
  });

  it('shows what a network engineer opens it for', () => {
    const titles = panels.map((p) => p.title);
    expect(titles).toEqual(
      expect.arrayContaining([
        'Routers by condition',
        'Routers without a primary',
        'Split brain: recently changed routers',
        'Active changes',
        'Report-to-route latency',
        'Admission decisions by reason',
        'Work queue depth',
        'Reconcile latency',
        'Reconciles and errors',
        'Leader',
        'Process memory',
      ]),
    );
  });

  it.each(queries.map((q) => [q.where, q.expr] as const))('%s parses as PromQL', (_where, expr) => {
    expect(promqlProblems(expr)).toEqual([]);
  });

  it('table panels are instant queries in table format', () => {
    for (const panel of panels.filter((p) => p.type === 'table')) {
      for (const target of panel.targets) {
        expect(target.instant, panel.title).toBe(true);
        expect(target.format, panel.title).toBe('table');
      }
    }
  });

  it('the variable substitution keeps PromQL valid, with given values or "All"', () => {
    expect(substituteGrafanaVariables('rate(x{job=~"$job"}[$__rate_interval])')).toBe(
      'rate(x{job=~".*"}[5m])',
    );
    expect(
      substituteGrafanaVariables(
        `rate(x{job=~"${['$', '{job}'].join('')}", namespace=~"$namespace"}[$__interval])`,
        {
          job: 'j',
          interval: '30s',
        },
      ),
    ).toBe('rate(x{job=~"j", namespace=~".*"}[30s])');
    expect(promqlProblems('sum(rate(harouter_reports_total[5m])')).not.toEqual([]);
    expect(promqlProblems('{__name__=~"harouter_.*"}')).not.toEqual([]);
  });
});
