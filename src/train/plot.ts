// Standalone SVG plots (no dependencies, browser-safe): loss curves with several series, linear or log
// axes, and heatmaps / bar charts for MoE expert-load statistics. Output is a complete <svg> document
// string that browsers, editors and `convert` render directly.

const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];
const FONT = 'font-family="system-ui, -apple-system, \'Segoe UI\', Helvetica, Arial, sans-serif"';
const AXIS = '#444';
const GRID = '#e6e6e6';
const TEXT = '#222';

/** Escapes text for XML content and attribute values. */
export function escapeXml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

/** Compact coordinate formatting keeps files small. */
function f(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

// ---------------------------------------------------------------------------------------------- ticks

/** Round step (1, 2, 2.5, 5 × 10^k) giving about `count` intervals over [min, max]. */
function niceStep(span: number, count: number): number {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const r = raw / mag;
  const m = r <= 1 ? 1 : r <= 2 ? 2 : r <= 2.5 ? 2.5 : r <= 5 ? 5 : 10;
  return m * mag;
}

/** Evenly spaced round ticks covering [min, max] (inclusive where they land). */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (!(max > min)) return [min];
  const step = niceStep(max - min, count);
  const out: number[] = [];
  const start = Math.ceil(min / step - 1e-9);
  for (let k = start; k * step <= max + step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

/** Rounds an axis range outward to nice tick values. */
export function niceDomain(min: number, max: number, count = 6): [number, number] {
  if (!(max > min)) {
    const d = min === 0 ? 1 : Math.abs(min) * 0.1;
    return [min - d, max + d];
  }
  const step = niceStep(max - min, count);
  return [Math.floor(min / step + 1e-9) * step, Math.ceil(max / step - 1e-9) * step];
}

/**
 * Ticks for a log axis: whole decades when the range spans several; 1-2-5 or 1..9 multiples for
 * narrower ranges; plain round linear values when it spans less than about a decade (typical losses).
 */
export function logTicks(min: number, max: number): number[] {
  const lo = Math.floor(Math.log10(min));
  const hi = Math.ceil(Math.log10(max));
  const inRange = (mults: number[]) => {
    const out: number[] = [];
    for (let e = lo; e <= hi; e++) {
      for (const m of mults) {
        const v = Number((m * 10 ** e).toPrecision(12));
        if (v >= min * (1 - 1e-9) && v <= max * (1 + 1e-9)) out.push(v);
      }
    }
    return out;
  };
  const decades = inRange([1]);
  if (decades.length >= 4) {
    const stride = Math.ceil(decades.length / 10);
    return decades.filter((_, i) => i % stride === 0);
  }
  for (const mults of [
    [1, 2, 5],
    [1, 2, 3, 4, 5, 6, 7, 8, 9],
  ]) {
    const t = inRange(mults);
    if (t.length >= 4) return t;
  }
  return niceTicks(min, max, 7).filter((v) => v > 0);
}

/** Short tick label: 0.001, 0.25, 1.5, 250, 2k, 1.5M, 1e-5. */
export function formatTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${Number((v / 1e6).toPrecision(3))}M`;
  if (a >= 1e4) return `${Number((v / 1e3).toPrecision(3))}k`;
  if (a < 1e-3) return Number(v.toPrecision(3)).toExponential();
  return String(Number(v.toPrecision(4)));
}

// ----------------------------------------------------------------------------------------- scales

interface Scale {
  (v: number): number;
  ticks: number[];
  log: boolean;
}

function linearScale(d0: number, d1: number, r0: number, r1: number, ticks: number[]): Scale {
  const s = ((v: number) => r0 + ((v - d0) / (d1 - d0)) * (r1 - r0)) as Scale;
  s.ticks = ticks;
  s.log = false;
  return s;
}

function logScale(d0: number, d1: number, r0: number, r1: number): Scale {
  const l0 = Math.log10(d0);
  const l1 = Math.log10(d1);
  const s = ((v: number) => r0 + ((Math.log10(v) - l0) / (l1 - l0)) * (r1 - r0)) as Scale;
  s.ticks = logTicks(d0, d1);
  s.log = true;
  return s;
}

/** Data extent → scale; log ranges get 5% padding in log space, linear ones are rounded to ticks. */
function makeScale(min: number, max: number, r0: number, r1: number, log: boolean, pad: boolean): Scale {
  if (log) {
    if (!(max > min)) [min, max] = [min / 2, max * 2];
    const k = pad ? (max / min) ** 0.05 : 1;
    return logScale(min / k, max * k, r0, r1);
  }
  let [d0, d1] = niceDomain(min, max);
  if (!pad && max > min) {
    // Without padding, only snap an end to a round value when that adds little empty space (step axes
    // ending at 1999 get a 2000 tick, but 2001 does not stretch to 2500).
    const slack = 0.05 * (max - min);
    if (min - d0 > slack) d0 = min;
    if (d1 - max > slack) d1 = max;
  }
  return linearScale(d0, d1, r0, r1, niceTicks(d0, d1));
}

// ------------------------------------------------------------------------------------ line chart

export type Point = readonly [number, number];

export interface Series {
  name: string;
  /** [x, y] points (e.g. [step, loss]); non-finite y (and y <= 0 on a log axis) break the line. */
  points: ArrayLike<Point>;
  color?: string;
  dashed?: boolean;
  /** Draw circles at the points (default: when the series has at most 60 points). */
  markers?: boolean;
  /** EMA-smooth with this beta: the raw curve is drawn faintly under the smoothed one. */
  smooth?: number;
  /** Line width in px. Default 1.8. */
  width?: number;
}

export interface LineChartOptions {
  series: Series[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  logY?: boolean;
  logX?: boolean;
  width?: number;
  height?: number;
  /** Fixed axis limits (otherwise taken from the data). */
  xMin?: number;
  xMax?: number;
  yMin?: number;
  yMax?: number;
  /** Legend corner. Default 'top-right'. */
  legend?: 'top-right' | 'bottom-left' | 'bottom-right' | 'top-left' | 'none';
}

interface Box {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

function usable(p: Point, logX: boolean, logY: boolean): boolean {
  return Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!logX || p[0] > 0) && (!logY || p[1] > 0);
}

function extent(vals: number[], fixedMin?: number, fixedMax?: number): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of vals) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (lo === Infinity) [lo, hi] = [0, 1];
  return [fixedMin ?? lo, fixedMax ?? hi];
}

function emaPoints(points: Point[], beta: number): Point[] {
  let avg = 0;
  let n = 0;
  return points.map(([x, y]) => {
    if (Number.isFinite(y)) {
      avg = beta * avg + (1 - beta) * y;
      n++;
    }
    return [x, n === 0 ? NaN : avg / (1 - beta ** n)] as Point;
  });
}

/**
 * Keeps the first, min, max and last point of each pixel column so long curves stay small without
 * losing spikes.
 */
function decimate(pts: [number, number][]): [number, number][] {
  if (pts.length < 2000) return pts;
  const out: [number, number][] = [];
  let col: [number, number][] = [];
  const flush = () => {
    if (col.length === 0) return;
    let lo = col[0];
    let hi = col[0];
    for (const p of col) {
      if (p[1] < lo[1]) lo = p;
      if (p[1] > hi[1]) hi = p;
    }
    const keep = [col[0], lo, hi, col[col.length - 1]].sort((a, b) => a[0] - b[0]);
    for (const p of keep) if (out[out.length - 1] !== p) out.push(p);
    col = [];
  };
  for (const p of pts) {
    if (col.length > 0 && Math.round(p[0]) !== Math.round(col[0][0])) flush();
    col.push(p);
  }
  flush();
  return out;
}

/** SVG path data; unusable points start a new subpath. */
function pathData(points: ArrayLike<Point>, sx: Scale, sy: Scale, logX: boolean, logY: boolean): string {
  const runs: [number, number][][] = [[]];
  for (let i = 0; i < points.length; i++) {
    const p = points[i];
    if (!usable(p, logX, logY)) {
      if (runs[runs.length - 1].length > 0) runs.push([]);
      continue;
    }
    runs[runs.length - 1].push([sx(p[0]), sy(p[1])]);
  }
  return runs
    .filter((r) => r.length > 0)
    .map((r) =>
      decimate(r)
        .map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${f(x)},${f(y)}`)
        .join(''),
    )
    .join('');
}

function axisLabels(
  box: Box,
  width: number,
  height: number,
  o: { title?: string; xLabel?: string; yLabel?: string },
): string[] {
  const out: string[] = [];
  const cx = (box.left + box.right) / 2;
  if (o.title)
    out.push(
      `<text x="${f(width / 2)}" y="24" text-anchor="middle" font-size="16" font-weight="600" fill="${TEXT}">${escapeXml(o.title)}</text>`,
    );
  if (o.xLabel)
    out.push(
      `<text x="${f(cx)}" y="${f(height - 10)}" text-anchor="middle" font-size="13" fill="${TEXT}">${escapeXml(o.xLabel)}</text>`,
    );
  if (o.yLabel) {
    const cy = (box.top + box.bottom) / 2;
    out.push(
      `<text x="16" y="${f(cy)}" text-anchor="middle" font-size="13" fill="${TEXT}" transform="rotate(-90 16 ${f(cy)})">${escapeXml(o.yLabel)}</text>`,
    );
  }
  return out;
}

/** Grid lines, axis lines and tick labels for both axes. */
function axes(box: Box, sx: Scale, sy: Scale): string[] {
  const out: string[] = [];
  for (const t of sy.ticks) {
    const y = sy(t);
    if (y < box.top - 0.5 || y > box.bottom + 0.5) continue;
    out.push(
      `<line x1="${f(box.left)}" y1="${f(y)}" x2="${f(box.right)}" y2="${f(y)}" stroke="${GRID}" stroke-width="1"/>`,
    );
    out.push(
      `<text x="${f(box.left - 8)}" y="${f(y + 4)}" text-anchor="end" font-size="11" fill="${AXIS}">${escapeXml(formatTick(t))}</text>`,
    );
  }
  for (const t of sx.ticks) {
    const x = sx(t);
    if (x < box.left - 0.5 || x > box.right + 0.5) continue;
    out.push(
      `<line x1="${f(x)}" y1="${f(box.top)}" x2="${f(x)}" y2="${f(box.bottom)}" stroke="${GRID}" stroke-width="1"/>`,
    );
    out.push(
      `<line x1="${f(x)}" y1="${f(box.bottom)}" x2="${f(x)}" y2="${f(box.bottom + 5)}" stroke="${AXIS}" stroke-width="1"/>`,
    );
    out.push(
      `<text x="${f(x)}" y="${f(box.bottom + 18)}" text-anchor="middle" font-size="11" fill="${AXIS}">${escapeXml(formatTick(t))}</text>`,
    );
  }
  out.push(
    `<path d="M${f(box.left)},${f(box.top)}V${f(box.bottom)}H${f(box.right)}" fill="none" stroke="${AXIS}" stroke-width="1.2"/>`,
  );
  return out;
}

interface LegendEntry {
  name: string;
  color: string;
  dashed?: boolean;
}

function legend(box: Box, entries: LegendEntry[], corner: NonNullable<LineChartOptions['legend']>): string[] {
  if (corner === 'none' || entries.length === 0) return [];
  const rowH = 18;
  const w = 36 + Math.max(...entries.map((e) => e.name.length)) * 6.8;
  const h = entries.length * rowH + 10;
  const x = corner.endsWith('right') ? box.right - w - 10 : box.left + 10;
  const y = corner.startsWith('top') ? box.top + 10 : box.bottom - h - 10;
  const out = [
    `<g class="legend"><rect x="${f(x)}" y="${f(y)}" width="${f(w)}" height="${f(h)}" rx="4" fill="#fff" fill-opacity="0.9" stroke="#ccc"/>`,
  ];
  entries.forEach((e, i) => {
    const ly = y + 14 + i * rowH;
    const dash = e.dashed ? ' stroke-dasharray="6 4"' : '';
    out.push(
      `<line x1="${f(x + 8)}" y1="${f(ly - 4)}" x2="${f(x + 28)}" y2="${f(ly - 4)}" stroke="${e.color}" stroke-width="2.5"${dash}/>`,
    );
    out.push(`<text x="${f(x + 34)}" y="${f(ly)}" font-size="12" fill="${TEXT}">${escapeXml(e.name)}</text>`);
  });
  out.push('</g>');
  return out;
}

function svgDocument(width: number, height: number, body: string[], title?: string): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ${FONT}>`,
    title ? `<title>${escapeXml(title)}</title>` : '',
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...body,
    '</svg>',
  ]
    .filter((s) => s !== '')
    .join('\n');
}

function seriesSvg(s: Series, color: string, sx: Scale, sy: Scale, o: LineChartOptions, clipId: string): string[] {
  const pts = Array.from(s.points);
  const logX = o.logX ?? false;
  const logY = o.logY ?? false;
  const dash = s.dashed ? ' stroke-dasharray="6 4"' : '';
  const w = s.width ?? 1.8;
  const out = [`<g class="series" data-name="${escapeXml(s.name)}" clip-path="url(#${clipId})">`];
  const main = s.smooth !== undefined ? emaPoints(pts, s.smooth) : pts;
  if (s.smooth !== undefined) {
    out.push(
      `<path d="${pathData(pts, sx, sy, logX, logY)}" fill="none" stroke="${color}" stroke-opacity="0.25" stroke-width="1"/>`,
    );
  }
  out.push(
    `<path d="${pathData(main, sx, sy, logX, logY)}" fill="none" stroke="${color}" stroke-width="${w}" stroke-linejoin="round" stroke-linecap="round"${dash}/>`,
  );
  if (s.markers ?? pts.length <= 60) {
    for (const p of main) {
      if (usable(p, logX, logY))
        out.push(
          `<circle cx="${f(sx(p[0]))}" cy="${f(sy(p[1]))}" r="2.8" fill="#fff" stroke="${color}" stroke-width="1.5"/>`,
        );
    }
  }
  out.push('</g>');
  return out;
}

let clipCounter = 0;

/** Line chart of one or more series (train/val loss, lr, ...) as an SVG document string. */
export function lineChart(o: LineChartOptions): string {
  const width = o.width ?? 720;
  const height = o.height ?? 440;
  const logX = o.logX ?? false;
  const logY = o.logY ?? false;
  const box: Box = { left: 70, top: o.title ? 44 : 20, right: width - 24, bottom: height - (o.xLabel ? 52 : 34) };
  const all = o.series.flatMap((s) => Array.from(s.points).filter((p) => usable(p, logX, logY)));
  const [x0, x1] = extent(
    all.map((p) => p[0]),
    o.xMin,
    o.xMax,
  );
  const [y0, y1] = extent(
    all.map((p) => p[1]),
    o.yMin,
    o.yMax,
  );
  const sx = makeScale(x0, x1, box.left, box.right, logX, false);
  const sy = makeScale(y0, y1, box.bottom, box.top, logY, o.yMin === undefined && o.yMax === undefined);
  const clipId = `plot-clip-${clipCounter++}`;
  const body = [
    `<defs><clipPath id="${clipId}"><rect x="${f(box.left)}" y="${f(box.top - 2)}" width="${f(box.right - box.left + 2)}" height="${f(box.bottom - box.top + 4)}"/></clipPath></defs>`,
    ...axes(box, sx, sy),
    ...axisLabels(box, width, height, o),
  ];
  const entries: LegendEntry[] = [];
  o.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    body.push(...seriesSvg(s, color, sx, sy, o, clipId));
    entries.push({ name: s.name, color, dashed: s.dashed });
  });
  body.push(...legend(box, entries, o.legend ?? 'top-right'));
  return svgDocument(width, height, body, o.title);
}

/** Convenience: train (smoothed) and val loss curves from [step, loss] pairs. */
export function lossChart(
  train: ArrayLike<Point>,
  val: ArrayLike<Point> = [],
  opts: Partial<LineChartOptions> & { smooth?: number } = {},
): string {
  const series: Series[] = [{ name: 'train', points: train, smooth: opts.smooth, markers: false }];
  if (val.length > 0) series.push({ name: 'val', points: val, width: 2.2 });
  return lineChart({ title: 'Loss', xLabel: 'step', yLabel: 'loss', ...opts, series });
}

// ------------------------------------------------------------------------------------ heatmap

/** Viridis colormap, 9 anchors linearly interpolated (perceptually uniform, colour-blind safe). */
const VIRIDIS = ['#440154', '#472d7b', '#3b528b', '#2c728e', '#21918c', '#28ae80', '#5ec962', '#addc30', '#fde725'];

function hexToRgb(h: string): [number, number, number] {
  return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
}

/** Colour for t in [0, 1] (clamped; NaN → light grey). */
export function viridis(t: number): string {
  if (!Number.isFinite(t)) return '#dddddd';
  const x = Math.min(1, Math.max(0, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const a = hexToRgb(VIRIDIS[i]);
  const b = hexToRgb(VIRIDIS[i + 1]);
  const u = x - i;
  const c = a.map((v, k) => Math.round(v + (b[k] - v) * u));
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

export interface HeatmapOptions {
  /** values[row][col]. */
  values: ArrayLike<number>[];
  rowLabels?: string[];
  colLabels?: string[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Colour range (default: data min/max). */
  vmin?: number;
  vmax?: number;
  /** Print values in cells (default: when cells are large enough). */
  showValues?: boolean;
  valueFormat?: (v: number) => string;
  /** Label of the colour bar. */
  colorbarLabel?: string;
  width?: number;
  height?: number;
}

/** Every k-th label so that labels never overlap. */
function labelStride(n: number, px: number, minPx: number): number {
  return Math.max(1, Math.ceil((n * minPx) / Math.max(1, px)));
}

function colorbar(x: number, top: number, bottom: number, vmin: number, vmax: number, label?: string): string[] {
  const id = `cbar-${clipCounter++}`;
  // Gradient runs bottom (vmin, dark) to top (vmax, bright).
  const stops = VIRIDIS.map(
    (c, i) => `<stop offset="${f((i / (VIRIDIS.length - 1)) * 100)}%" stop-color="${c}"/>`,
  ).join('');
  const out = [
    `<defs><linearGradient id="${id}" x1="0" y1="1" x2="0" y2="0">${stops}</linearGradient></defs>`,
    `<rect x="${f(x)}" y="${f(top)}" width="14" height="${f(bottom - top)}" fill="url(#${id})" stroke="#999" stroke-width="0.5"/>`,
  ];
  const s = linearScale(vmin, vmax, bottom, top, niceTicks(vmin, vmax, 5));
  for (const t of s.ticks) {
    const y = s(t);
    if (y < top - 0.5 || y > bottom + 0.5) continue;
    out.push(`<line x1="${f(x + 14)}" y1="${f(y)}" x2="${f(x + 18)}" y2="${f(y)}" stroke="${AXIS}"/>`);
    out.push(`<text x="${f(x + 21)}" y="${f(y + 4)}" font-size="11" fill="${AXIS}">${escapeXml(formatTick(t))}</text>`);
  }
  if (label) {
    const cy = (top + bottom) / 2;
    const lx = x + 62;
    out.push(
      `<text x="${f(lx)}" y="${f(cy)}" text-anchor="middle" font-size="12" fill="${TEXT}" transform="rotate(90 ${f(lx)} ${f(cy)})">${escapeXml(label)}</text>`,
    );
  }
  return out;
}

function defaultFormat(v: number): string {
  const a = Math.abs(v);
  return a !== 0 && (a < 0.01 || a >= 1e4) ? formatTick(v) : String(Number(v.toPrecision(a < 1 ? 2 : 3)));
}

/** Rows × columns heatmap with a viridis colour bar. */
export function heatmap(o: HeatmapOptions): string {
  const rows = o.values.length;
  const cols = rows > 0 ? o.values[0].length : 0;
  const width = o.width ?? Math.min(1100, Math.max(420, 140 + cols * 34 + 90));
  const height = o.height ?? Math.min(900, Math.max(260, 100 + rows * 26));
  const box: Box = { left: 70, top: o.title ? 44 : 20, right: width - 92, bottom: height - (o.xLabel ? 52 : 34) };
  const flat = o.values.flatMap((r) => Array.from(r)).filter(Number.isFinite);
  const vmin = o.vmin ?? (flat.length ? Math.min(...flat) : 0);
  const vmax0 = o.vmax ?? (flat.length ? Math.max(...flat) : 1);
  const vmax = vmax0 > vmin ? vmax0 : vmin + 1;
  const cw = (box.right - box.left) / Math.max(1, cols);
  const ch = (box.bottom - box.top) / Math.max(1, rows);
  const fmt = o.valueFormat ?? defaultFormat;
  const show = o.showValues ?? (cw >= 30 && ch >= 16);
  const body: string[] = ['<g class="cells">'];
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = o.values[r][c];
      const t = (v - vmin) / (vmax - vmin);
      const x = box.left + c * cw;
      const y = box.top + r * ch;
      body.push(
        `<rect x="${f(x)}" y="${f(y)}" width="${f(cw + 0.3)}" height="${f(ch + 0.3)}" fill="${viridis(t)}"><title>${escapeXml(`${o.rowLabels?.[r] ?? r}, ${o.colLabels?.[c] ?? c}: ${fmt(v)}`)}</title></rect>`,
      );
      if (show && Number.isFinite(v)) {
        const ink = t > 0.6 ? '#111' : '#fff'; // dark text on the bright end of viridis
        body.push(
          `<text x="${f(x + cw / 2)}" y="${f(y + ch / 2 + 4)}" text-anchor="middle" font-size="${Math.min(12, Math.floor(cw / 3.2))}" fill="${ink}">${escapeXml(fmt(v))}</text>`,
        );
      }
    }
  }
  body.push('</g>');
  body.push(
    `<rect x="${f(box.left)}" y="${f(box.top)}" width="${f(box.right - box.left)}" height="${f(box.bottom - box.top)}" fill="none" stroke="${AXIS}" stroke-width="1"/>`,
  );
  const cs = labelStride(cols, box.right - box.left, 34);
  for (let c = 0; c < cols; c += cs) {
    body.push(
      `<text x="${f(box.left + (c + 0.5) * cw)}" y="${f(box.bottom + 16)}" text-anchor="middle" font-size="11" fill="${AXIS}">${escapeXml(o.colLabels?.[c] ?? String(c))}</text>`,
    );
  }
  const rs = labelStride(rows, box.bottom - box.top, 14);
  for (let r = 0; r < rows; r += rs) {
    body.push(
      `<text x="${f(box.left - 8)}" y="${f(box.top + (r + 0.5) * ch + 4)}" text-anchor="end" font-size="11" fill="${AXIS}">${escapeXml(o.rowLabels?.[r] ?? String(r))}</text>`,
    );
  }
  body.push(...axisLabels(box, width, height, o));
  body.push(...colorbar(box.right + 16, box.top, box.bottom, vmin, vmax, o.colorbarLabel));
  return svgDocument(width, height, body, o.title);
}

/**
 * MoE expert load: counts[layer][expert] (tokens routed) shown as the fraction of each layer's tokens,
 * so imbalance is comparable across layers (a balanced router gives 1/E everywhere).
 */
export function expertLoadHeatmap(counts: ArrayLike<number>[], opts: Partial<HeatmapOptions> = {}): string {
  const frac = counts.map((row) => {
    const total = Array.from(row).reduce((a, b) => a + b, 0);
    return Array.from(row, (v) => (total > 0 ? v / total : NaN));
  });
  const E = frac[0]?.length ?? 0;
  return heatmap({
    title: `Expert load (fraction of tokens; uniform = ${E > 0 ? defaultFormat(1 / E) : '—'})`,
    xLabel: 'expert',
    yLabel: 'layer',
    colorbarLabel: 'fraction of tokens',
    vmin: 0,
    rowLabels: frac.map((_, i) => `L${i}`),
    colLabels: Array.from({ length: E }, (_, i) => String(i)),
    ...opts,
    values: frac,
  });
}

/** Tokens per expert over training: counts[stepIndex][expert] → heatmap with experts as rows. */
export function expertLoadOverSteps(
  steps: number[],
  counts: ArrayLike<number>[],
  opts: Partial<HeatmapOptions> = {},
): string {
  const E = counts[0]?.length ?? 0;
  const values = Array.from({ length: E }, (_, e) => counts.map((row) => row[e]));
  return heatmap({
    title: 'Tokens per expert over training',
    xLabel: 'step',
    yLabel: 'expert',
    colorbarLabel: 'tokens',
    rowLabels: Array.from({ length: E }, (_, i) => `E${i}`),
    colLabels: steps.map((s) => formatTick(s)),
    ...opts,
    values,
  });
}

// ---------------------------------------------------------------------------------------- bar chart

export interface BarChartOptions {
  categories: string[];
  series: { name: string; values: ArrayLike<number>; color?: string }[];
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Stack the series instead of grouping them side by side. */
  stacked?: boolean;
  /** Dashed horizontal reference line (e.g. the uniform expert load). */
  reference?: { value: number; label: string };
  width?: number;
  height?: number;
}

/** Grouped or stacked bars (e.g. tokens per expert for a few layers). */
export function barChart(o: BarChartOptions): string {
  const n = o.categories.length;
  const width = o.width ?? Math.min(1100, Math.max(480, 120 + n * 40));
  const height = o.height ?? 380;
  const box: Box = { left: 70, top: o.title ? 44 : 20, right: width - 24, bottom: height - (o.xLabel ? 52 : 34) };
  const totals = o.categories.map((_, c) => o.series.reduce((a, s) => a + (s.values[c] ?? 0), 0));
  const peaks = o.stacked ? totals : o.series.flatMap((s) => Array.from(s.values));
  const top = Math.max(0, ...peaks.filter(Number.isFinite), o.reference?.value ?? 0);
  const [d0, d1] = niceDomain(0, top > 0 ? top : 1);
  const sy = linearScale(d0, d1, box.bottom, box.top, niceTicks(d0, d1));
  const band = (box.right - box.left) / Math.max(1, n);
  const sx = linearScale(0, 1, box.left, box.right, []);
  const body = axes(box, sx, sy);
  const k = o.series.length;
  const inner = band * 0.8;
  o.series.forEach((s, si) => {
    const color = s.color ?? PALETTE[si % PALETTE.length];
    body.push(`<g class="series" data-name="${escapeXml(s.name)}">`);
    for (let c = 0; c < n; c++) {
      const v = s.values[c] ?? 0;
      if (!Number.isFinite(v)) continue;
      const base = o.stacked ? o.series.slice(0, si).reduce((a, p) => a + (p.values[c] ?? 0), 0) : 0;
      const bw = o.stacked ? inner : inner / k;
      const x = box.left + c * band + band * 0.1 + (o.stacked ? 0 : si * bw);
      const y1 = sy(base + v);
      body.push(
        `<rect x="${f(x)}" y="${f(y1)}" width="${f(Math.max(0.5, bw - 1))}" height="${f(Math.max(0, sy(base) - y1))}" fill="${color}"><title>${escapeXml(`${s.name} ${o.categories[c]}: ${defaultFormat(v)}`)}</title></rect>`,
      );
    }
    body.push('</g>');
  });
  const cs = labelStride(n, box.right - box.left, 30);
  for (let c = 0; c < n; c += cs) {
    body.push(
      `<text x="${f(box.left + (c + 0.5) * band)}" y="${f(box.bottom + 16)}" text-anchor="middle" font-size="11" fill="${AXIS}">${escapeXml(o.categories[c])}</text>`,
    );
  }
  if (o.reference) {
    const y = sy(o.reference.value);
    body.push(
      `<line x1="${f(box.left)}" y1="${f(y)}" x2="${f(box.right)}" y2="${f(y)}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
    body.push(
      `<text x="${f(box.right - 4)}" y="${f(y - 5)}" text-anchor="end" font-size="11" fill="#d62728">${escapeXml(o.reference.label)}</text>`,
    );
  }
  body.push(...axisLabels(box, width, height, o));
  if (k > 1)
    body.push(
      ...legend(
        box,
        o.series.map((s, i) => ({ name: s.name, color: s.color ?? PALETTE[i % PALETTE.length] })),
        'top-right',
      ),
    );
  return svgDocument(width, height, body, o.title);
}
