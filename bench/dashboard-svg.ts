/**
 * Draws Grafana dashboard panels as one SVG picture, from query results: stat panels
 * (the last value, large), time series (lines with a legend and axes) and tables (the
 * labels and the value). A small look-alike of Grafana's dark theme for the docs'
 * pictures, not a Grafana replacement. Pure: data in, SVG text out (see
 * bench/dashboard-pictures.ts, which queries Prometheus and converts the SVG to PNG).
 */

/** One series of a time series panel, already named by the panel's legend format. */
export interface DrawnSeries {
  name: string;
  points: [number, number][];
}

/** A panel with its data: what the picture shows of it. */
export type DrawnPanel =
  | { type: 'stat'; title: string; value: number | undefined; unit: string; alert?: boolean }
  | { type: 'timeseries'; title: string; unit: string; series: DrawnSeries[] }
  | { type: 'table'; title: string; columns: string[]; rows: string[][] };

/** A panel's place on the picture's 24-column grid (Grafana's gridPos, in grid units). */
export interface Placed {
  panel: DrawnPanel;
  x: number;
  y: number;
  w: number;
  h: number;
}

const CELL_WIDTH = 50;
const CELL_HEIGHT = 30;
const GAP = 8;
const THEME = {
  background: '#111217',
  panel: '#181b1f',
  border: '#2c3235',
  text: '#ccccdc',
  dim: '#8e8e9e',
  grid: '#2c3235',
  palette: ['#73bf69', '#f2cc0c', '#8ab8ff', '#ff780a', '#f2495c', '#5794f2', '#b877d9', '#fade2a'],
};
const FONT = 'DejaVu Sans, Verdana, sans-serif';

/** Text with XML's special characters escaped (labels come from the metrics). */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A value with its unit the way the dashboard's units read: `s` as ms or s, `reqps`, `ops`, `bytes`. */
export function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return String(value);
  const round = (v: number) =>
    Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : v.toFixed(2);
  switch (unit) {
    case 's':
      return value !== 0 && Math.abs(value) < 1 ? `${round(value * 1000)} ms` : `${round(value)} s`;
    case 'reqps':
      return `${round(value)} req/s`;
    case 'ops':
      return `${round(value)} ops/s`;
    case 'bytes':
      return value >= 2 ** 20 ? `${round(value / 2 ** 20)} MiB` : `${round(value / 1024)} KiB`;
    default:
      return Number.isInteger(value) ? String(value) : round(value);
  }
}

/** Grafana's legend format (`{{label}}`) applied to a series' labels. */
export function legendName(format: string | undefined, labels: Record<string, string>): string {
  if (!format) {
    const shown = Object.entries(labels).filter(([k]) => k !== '__name__');
    return shown.length === 0 ? 'value' : `{${shown.map(([k, v]) => `${k}="${v}"`).join(', ')}}`;
  }
  return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_all, name: string) => labels[name] ?? '');
}

/** "Nice" tick values covering [min, max]. */
export function ticks(min: number, max: number, count = 4): number[] {
  if (max <= min) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step)
    out.push(Number(v.toPrecision(12)));
  return out;
}

function clock(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(11, 19);
}

function text(x: number, y: number, content: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="${FONT}" ${attrs}>${escapeXml(content)}</text>`;
}

function clip(content: string, max: number): string {
  return content.length > max ? `${content.slice(0, max - 1)}…` : content;
}

function drawStat(panel: Extract<DrawnPanel, { type: 'stat' }>, w: number, h: number): string {
  const shown = panel.value === undefined ? 'No data' : formatValue(panel.value, panel.unit);
  const color =
    panel.value === undefined ? THEME.dim : panel.alert && panel.value > 0 ? '#f2495c' : '#73bf69';
  return text(
    w / 2,
    h / 2 + 22,
    shown,
    `font-size="34" font-weight="bold" fill="${color}" text-anchor="middle"`,
  );
}

function drawTimeseries(panel: Extract<DrawnPanel, { type: 'timeseries' }>, w: number, h: number): string {
  const points = panel.series.flatMap((s) => s.points);
  if (points.length === 0)
    return text(w / 2, h / 2, 'No data', `font-size="14" fill="${THEME.dim}" text-anchor="middle"`);
  const legendLines = Math.min(panel.series.length, 4);
  const plot = { left: 70, top: 34, right: w - 14, bottom: h - 26 - legendLines * 16 };
  const [t0, t1] = [Math.min(...points.map((p) => p[0])), Math.max(...points.map((p) => p[0]))];
  const values = points.map((p) => p[1]).filter(Number.isFinite);
  const vMax = Math.max(...values, 0);
  const vMin = Math.min(...values, 0);
  const top = vMax === vMin ? vMin + 1 : vMax + (vMax - vMin) * 0.08;
  const x = (t: number) => plot.left + ((t - t0) / Math.max(t1 - t0, 1)) * (plot.right - plot.left);
  const y = (v: number) => plot.bottom - ((v - vMin) / (top - vMin)) * (plot.bottom - plot.top);
  const parts: string[] = [];
  for (const v of ticks(vMin, top)) {
    parts.push(
      `<line x1="${plot.left}" x2="${plot.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${THEME.grid}"/>`,
    );
    parts.push(
      text(
        plot.left - 6,
        y(v) + 4,
        formatValue(v, panel.unit),
        `font-size="11" fill="${THEME.dim}" text-anchor="end"`,
      ),
    );
  }
  const timeTicks = ticks(t0, t1, Math.max(2, Math.floor((plot.right - plot.left) / 110)));
  for (const t of timeTicks) {
    parts.push(
      text(x(t), plot.bottom + 15, clock(t), `font-size="11" fill="${THEME.dim}" text-anchor="middle"`),
    );
  }
  panel.series.forEach((series, i) => {
    const color = THEME.palette[i % THEME.palette.length];
    // A gap in the data (no sample at a step) breaks the line, as in Grafana.
    const runs: [number, number][][] = [];
    let run: [number, number][] = [];
    const step =
      series.points.length > 1
        ? Math.min(...series.points.slice(1).map((p, j) => p[0] - (series.points[j] as [number, number])[0]))
        : 0;
    series.points.forEach((p, j) => {
      const previous = series.points[j - 1];
      if (previous && step > 0 && p[0] - previous[0] > step * 1.5) {
        runs.push(run);
        run = [];
      }
      if (Number.isFinite(p[1])) run.push(p);
    });
    runs.push(run);
    for (const r of runs) {
      if (r.length === 1) {
        const [t, v] = r[0] as [number, number];
        parts.push(`<circle cx="${x(t).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.5" fill="${color}"/>`);
      } else if (r.length > 1) {
        const path = r.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
        parts.push(`<polyline points="${path}" fill="none" stroke="${color}" stroke-width="2"/>`);
      }
    }
  });
  panel.series.slice(0, legendLines).forEach((series, i) => {
    const color = THEME.palette[i % THEME.palette.length];
    const ly = plot.bottom + 32 + i * 16;
    parts.push(`<rect x="${plot.left}" y="${ly - 8}" width="14" height="4" fill="${color}"/>`);
    parts.push(
      text(
        plot.left + 20,
        ly - 2,
        clip(series.name, Math.floor((w - 100) / 6.5)),
        `font-size="11" fill="${THEME.text}"`,
      ),
    );
  });
  if (panel.series.length > legendLines) {
    parts.push(
      text(
        plot.right,
        plot.bottom + 32,
        `+${panel.series.length - legendLines} more`,
        `font-size="11" fill="${THEME.dim}" text-anchor="end"`,
      ),
    );
  }
  return parts.join('\n');
}

function drawTable(panel: Extract<DrawnPanel, { type: 'table' }>, w: number, h: number): string {
  if (panel.rows.length === 0)
    return text(w / 2, h / 2, 'No data', `font-size="14" fill="${THEME.dim}" text-anchor="middle"`);
  // The value column (last) is narrow; the label columns share the rest.
  const valueWidth = 60;
  const width = (w - 24 - valueWidth) / Math.max(1, panel.columns.length - 1);
  const left = (i: number) => 12 + i * width;
  const maxChars = Math.floor(width / 7.6);
  const parts = [`<line x1="12" x2="${w - 12}" y1="58" y2="58" stroke="${THEME.border}"/>`];
  panel.columns.forEach((c, i) => {
    parts.push(
      text(left(i), 52, clip(c, maxChars), `font-size="12" font-weight="bold" fill="${THEME.text}"`),
    );
  });
  const fits = Math.floor((h - 70) / 20);
  panel.rows.slice(0, fits).forEach((row, r) => {
    row.forEach((cell, i) => {
      parts.push(text(left(i), 76 + r * 20, clip(cell, maxChars), `font-size="12" fill="${THEME.text}"`));
    });
  });
  return parts.join('\n');
}

/** The picture: a title line, then each panel on the 24-column grid. */
export function dashboardSvg(title: string, subtitle: string, placed: readonly Placed[]): string {
  const columns = 24;
  const rows = Math.max(...placed.map((p) => p.y + p.h));
  const width = columns * CELL_WIDTH + GAP;
  const height = 56 + rows * CELL_HEIGHT + GAP;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="${THEME.background}"/>`,
    text(GAP + 4, 26, title, `font-size="18" font-weight="bold" fill="${THEME.text}"`),
    text(GAP + 4, 46, subtitle, `font-size="12" fill="${THEME.dim}"`),
  ];
  for (const { panel, x, y, w, h } of placed) {
    const [px, py] = [GAP + x * CELL_WIDTH, 56 + y * CELL_HEIGHT];
    const [pw, ph] = [w * CELL_WIDTH - GAP, h * CELL_HEIGHT - GAP];
    const body =
      panel.type === 'stat'
        ? drawStat(panel, pw, ph)
        : panel.type === 'table'
          ? drawTable(panel, pw, ph)
          : drawTimeseries(panel, pw, ph);
    parts.push(
      `<g transform="translate(${px},${py})">`,
      `<rect width="${pw}" height="${ph}" rx="3" fill="${THEME.panel}" stroke="${THEME.border}"/>`,
      text(10, 20, panel.title, `font-size="13" font-weight="bold" fill="${THEME.text}"`),
      body,
      '</g>',
    );
  }
  parts.push('</svg>');
  return parts.join('\n');
}
