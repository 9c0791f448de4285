// A small terminal progress bar shared by the CLI (tokenizer training, model training, downloads).
// TTY: one line redrawn in place (throttled). Not a TTY (pipes, CI logs): plain lines, less often.

export interface ProgressStream {
  write(s: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressBarOptions {
  total: number;
  label?: string;
  stream?: ProgressStream;
  /** Minimum ms between redraws on a TTY (default 100). */
  throttleMs?: number;
  /** Minimum ms between plain lines when the stream is not a TTY (default 2000). */
  plainIntervalMs?: number;
  /** Unit shown in the rate, e.g. "tok" -> "1.2k tok/s" (default "it"). */
  unit?: string;
  /** Clock in ms (tests inject one). */
  now?: () => number;
}

export type ProgressFields = Record<string, string | number>;

/** 1234567 -> "1.23M"; keeps 3 significant digits. */
export function formatCount(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toPrecision(3) + 'G';
  if (a >= 1e6) return (n / 1e6).toPrecision(3) + 'M';
  if (a >= 1e4) return (n / 1e3).toPrecision(3) + 'k';
  if (Number.isInteger(n) || a >= 100) return String(Math.round(n));
  return n.toPrecision(3);
}

/** Seconds -> "m:ss" or "h:mm:ss". */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  s = Math.round(s);
  const h = Math.floor(s / 3600),
    m = Math.floor((s % 3600) / 60),
    sec = s % 60;
  const mm = h ? String(m).padStart(2, '0') : String(m);
  return (h ? `${h}:` : '') + `${mm}:${String(sec).padStart(2, '0')}`;
}

function formatField(v: string | number): string {
  if (typeof v === 'string') return v;
  const a = Math.abs(v);
  if (Number.isInteger(v) || a >= 1000) return formatCount(Math.round(v));
  return a !== 0 && a < 1e-3 ? v.toExponential(2) : v.toPrecision(4);
}

export class ProgressBar {
  total: number;
  label: string;
  private stream: ProgressStream;
  private tty: boolean;
  private throttleMs: number;
  private plainMs: number;
  private unit: string;
  private now: () => number;
  private start: number;
  private lastDraw = -Infinity;
  private lastDone = 0;
  private lastFields: ProgressFields | undefined;
  private finished = false;
  private drawnDone = NaN;

  constructor(opts: ProgressBarOptions) {
    if (!(opts.total >= 0)) throw new Error(`ProgressBar: total must be a non-negative number, got ${opts.total}`);
    this.total = opts.total;
    this.label = opts.label ?? '';
    // process is only touched when no stream is given (the CLI case); tests pass their own
    this.stream = opts.stream ?? process.stderr;
    this.tty = !!this.stream.isTTY;
    this.throttleMs = opts.throttleMs ?? 100;
    this.plainMs = opts.plainIntervalMs ?? 2000;
    this.unit = opts.unit ?? 'it';
    this.now = opts.now ?? (() => performance.now());
    this.start = this.now();
  }

  /** Records progress; redraws at most every throttleMs (TTY) / plainIntervalMs (otherwise). */
  update(done: number, fields?: ProgressFields): void {
    if (this.finished) return;
    this.lastDone = done;
    if (fields) this.lastFields = fields;
    const t = this.now();
    const interval = this.tty ? this.throttleMs : this.plainMs;
    if (t - this.lastDraw < interval && done < this.total) return;
    this.lastDraw = t;
    this.draw(t);
  }

  /** update(done + by): for loops that count steps. */
  tick(by = 1, fields?: ProgressFields): void {
    this.update(this.lastDone + by, fields);
  }

  /** Final draw (shows 100% if done reached total) and newline. Idempotent. */
  done(fields?: ProgressFields): void {
    if (this.finished) return;
    if (fields) this.lastFields = fields;
    // a plain-line stream already has the final state when the last update drew it
    if (this.tty || fields || this.drawnDone !== this.lastDone) this.draw(this.now());
    if (this.tty) this.stream.write('\n');
    this.finished = true;
  }

  /** The status line for the current state (exported for tests and log files). */
  render(t = this.now(), width = 80): string {
    const done = this.lastDone,
      total = this.total;
    const frac = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
    const elapsed = (t - this.start) / 1000;
    // no rate (nor ETA) until some time has passed: the first update often comes right after construction
    const rate = elapsed >= 0.25 ? done / elapsed : 0;
    const eta = rate > 0 ? (total - done) / rate : NaN;
    const pct = (frac * 100).toFixed(1).padStart(5) + '%';
    const counts = `${formatCount(done)}/${formatCount(total)}`;
    const speed = `${rate > 0 ? formatCount(rate) : '?'} ${this.unit}/s`;
    const time = done >= total ? formatDuration(elapsed) : `ETA ${formatDuration(eta)}`;
    const fields = this.lastFields
      ? Object.entries(this.lastFields)
          .map(([k, v]) => `${k}=${formatField(v)}`)
          .join(' ')
      : '';
    const tail = [pct, counts, speed, time, fields].filter(Boolean).join(' ');
    const head = this.label ? this.label + ' ' : '';
    const barWidth = Math.max(10, Math.min(30, width - head.length - tail.length - 4));
    const filled = Math.round(frac * barWidth);
    const bar =
      '[' +
      '='.repeat(Math.max(0, filled - 1)) +
      (filled > 0 ? (frac >= 1 ? '=' : '>') : '') +
      ' '.repeat(barWidth - filled) +
      ']';
    return `${head}${bar} ${tail}`;
  }

  private draw(t: number) {
    this.drawnDone = this.lastDone;
    if (this.tty) {
      const width = this.stream.columns ?? 80;
      let line = this.render(t, width);
      if (line.length > width - 1) line = line.slice(0, width - 1);
      this.stream.write('\r' + line + '\x1b[K');
    } else {
      this.stream.write(this.render(t) + '\n');
    }
  }
}
