// Training metrics: JSON-lines records (one object per line, easy to tail/grep/plot), an in-memory
// history, EMA smoothing, throughput and ETA. The file sink is injected (see metrics-node.ts) so this
// module runs in browsers.

export type MetricValue = number | string | boolean | null;
export interface MetricRecord {
  step: number;
  /** Seconds since the logger was created, plus `elapsed` (a resumed run's earlier time). */
  time?: number;
  [key: string]: MetricValue | undefined;
}

export interface MetricsLoggerOptions {
  /** Receives each serialized line (without newline), e.g. an append-to-file function. */
  sink?: (line: string) => void;
  /** Clock in milliseconds (injectable for deterministic tests). Default Date.now. */
  now?: () => number;
  /** Keep at most this many records in memory (oldest dropped). Default unlimited. */
  maxHistory?: number;
  /** Seconds already elapsed when the logger starts (a resumed run continues its clock). Default 0. */
  elapsed?: number;
}

/** Non-finite numbers become null in JSON; keep them as strings so a NaN loss stays visible in the log. */
function replacer(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
}

/** Appends JSON lines to a sink and keeps an in-memory history. */
export class MetricsLogger {
  readonly history: MetricRecord[] = [];
  private readonly sink?: (line: string) => void;
  private readonly now: () => number;
  private readonly start: number;
  private readonly maxHistory: number;
  private readonly elapsed: number;

  constructor(opts: MetricsLoggerOptions = {}) {
    this.sink = opts.sink;
    this.now = opts.now ?? Date.now;
    this.start = this.now();
    this.maxHistory = opts.maxHistory ?? Infinity;
    this.elapsed = opts.elapsed ?? 0;
  }

  /** Records metrics for a step (time is added unless given) and writes one line. */
  log(step: number, values: Record<string, MetricValue>): MetricRecord {
    const rec: MetricRecord = {
      step,
      time: Math.round(this.elapsed * 1000 + this.now() - this.start) / 1000,
      ...values,
    };
    this.history.push(rec);
    if (this.history.length > this.maxHistory) this.history.shift();
    this.sink?.(JSON.stringify(rec, replacer));
    return rec;
  }

  /** [step, value] pairs of one numeric metric (records without it are skipped). */
  series(key: string): [number, number][] {
    return seriesOf(this.history, key);
  }

  /** Most recent value of a metric. */
  last(key: string): MetricValue | undefined {
    for (let i = this.history.length - 1; i >= 0; i--) if (key in this.history[i]) return this.history[i][key];
    return undefined;
  }
}

/** [step, value] pairs of a numeric metric in a list of records ('NaN'/'Infinity' strings parsed back). */
export function seriesOf(records: MetricRecord[], key: string): [number, number][] {
  const out: [number, number][] = [];
  for (const r of records) {
    const v = r[key];
    const num = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : NaN;
    if (typeof v === 'number' || (typeof v === 'string' && !Number.isNaN(num))) out.push([r.step, num]);
  }
  return out;
}

/** Parses metrics.jsonl text; a torn last line (a run killed mid-write) is skipped, other bad lines throw. */
export function parseMetricsJsonl(text: string, where = 'metrics.jsonl'): MetricRecord[] {
  const lines = text.split('\n');
  const out: MetricRecord[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push(JSON.parse(line) as MetricRecord);
    } catch (e) {
      if (i === lines.length - 1) return; // unterminated final line: partial write
      throw new Error(`${where}:${i + 1}: invalid JSON (${(e as Error).message})`);
    }
  });
  return out;
}

/**
 * Exponential moving average with bias correction (like Adam's and TensorBoard's smoothing): the first
 * values are not dragged toward 0.
 */
export class Ema {
  readonly beta: number;
  private avg = 0;
  private n = 0;

  constructor(beta = 0.9) {
    if (!(beta >= 0 && beta < 1)) throw new Error(`Ema: beta must be in [0, 1), got ${beta}`);
    this.beta = beta;
  }

  /** Adds a value (non-finite values are ignored so one NaN does not poison the curve) and returns the smoothed value. */
  update(x: number): number {
    if (Number.isFinite(x)) {
      this.avg = this.beta * this.avg + (1 - this.beta) * x;
      this.n++;
    }
    return this.value;
  }

  /** Current smoothed value (NaN before the first update). */
  get value(): number {
    return this.n === 0 ? NaN : this.avg / (1 - this.beta ** this.n);
  }

  get count(): number {
    return this.n;
  }
}

/** Smooths a whole series with a bias-corrected EMA. */
export function emaSmooth(values: ArrayLike<number>, beta = 0.9): number[] {
  const e = new Ema(beta);
  return Array.from(values, (v) => e.update(v));
}

/**
 * Throughput over a sliding window of recent steps (ignores the slow first steps once the window fills).
 */
export class Throughput {
  private readonly window: number;
  private readonly marks: { t: number; tokens: number }[] = [];
  private total = 0;

  constructor(window = 20) {
    this.window = window;
  }

  /** Call once per step with the tokens processed and the time in ms (e.g. performance.now()). */
  mark(tokens: number, timeMs: number): void {
    this.total += tokens;
    this.marks.push({ t: timeMs, tokens: this.total });
    if (this.marks.length > this.window + 1) this.marks.shift();
  }

  /** Tokens per second over the window (NaN until two marks exist). */
  get tokensPerSecond(): number {
    if (this.marks.length < 2) return NaN;
    const a = this.marks[0];
    const b = this.marks[this.marks.length - 1];
    return b.t > a.t ? ((b.tokens - a.tokens) * 1000) / (b.t - a.t) : NaN;
  }

  /** Milliseconds per step over the window. */
  get msPerStep(): number {
    if (this.marks.length < 2) return NaN;
    return (this.marks[this.marks.length - 1].t - this.marks[0].t) / (this.marks.length - 1);
  }
}

/** Seconds remaining given the steps done, the total, and the recent time per step. */
export function etaSeconds(stepsDone: number, totalSteps: number, msPerStep: number): number {
  return (Math.max(0, totalSteps - stepsDone) * msPerStep) / 1000;
}

/** '1h02m', '3m05s', '42s', '—' for unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m`;
  if (m > 0) return `${m}m${pad(sec)}s`;
  return `${sec}s`;
}

/** '12.3k tok/s' style compact number. */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return `${(n / 1e9).toFixed(2)}G`;
  if (a >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (a >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return a >= 100 ? n.toFixed(0) : n.toPrecision(3);
}
