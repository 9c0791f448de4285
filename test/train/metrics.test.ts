import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  Ema,
  MetricsLogger,
  Throughput,
  emaSmooth,
  etaSeconds,
  formatCount,
  formatDuration,
  parseMetricsJsonl,
} from '../../src/train/metrics.js';
import { jsonlFileSink, readMetricsFile } from '../../src/train/metrics-node.js';

test('MetricsLogger writes JSON lines and keeps history', () => {
  let t = 1000;
  const lines: string[] = [];
  const log = new MetricsLogger({ sink: (l) => lines.push(l), now: () => t });
  t = 3000;
  log.log(0, { loss: 4.2, lr: 1e-3 });
  log.log(10, { loss: NaN });
  log.log(20, { val_loss: 3.9 });
  assert.deepEqual(JSON.parse(lines[0]), { step: 0, time: 2, loss: 4.2, lr: 1e-3 });
  assert.equal(JSON.parse(lines[1]).loss, 'NaN', 'a NaN loss stays visible');
  assert.deepEqual(
    log.series('loss').map((p) => p[0]),
    [0, 10],
  );
  assert.ok(Number.isNaN(log.series('loss')[1][1]));
  assert.equal(log.last('loss'), NaN);
  assert.equal(log.last('val_loss'), 3.9);
  const parsed = parseMetricsJsonl(lines.join('\n') + '\n{"step": 30, "lo');
  assert.equal(parsed.length, 3, 'torn final line skipped');
  assert.throws(() => parseMetricsJsonl('{bad\n{"step":1}\n'), /metrics.jsonl:1/);
});

test('jsonlFileSink appends to metrics.jsonl', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lineage-metrics-'));
  const file = path.join(dir, 'run', 'metrics.jsonl');
  const log = new MetricsLogger({ sink: jsonlFileSink(file) });
  log.log(1, { loss: 2 });
  log.log(2, { loss: 1.5 });
  const recs = readMetricsFile(file);
  assert.deepEqual(
    recs.map((r) => r.loss),
    [2, 1.5],
  );
  assert.equal(fs.readFileSync(file, 'utf8').split('\n').length, 3);
});

test('Ema is bias-corrected and skips non-finite values', () => {
  const e = new Ema(0.9);
  assert.ok(Number.isNaN(e.value));
  assert.equal(e.update(5), 5);
  e.update(NaN);
  assert.ok(Math.abs(e.value - 5) < 1e-12);
  const s = emaSmooth([1, 1, 1, 10], 0.5);
  assert.ok(Math.abs(s[2] - 1) < 1e-12);
  assert.ok(s[3] > 1 && s[3] < 10);
});

test('throughput, ETA and formatting', () => {
  const tp = new Throughput(4);
  assert.ok(Number.isNaN(tp.tokensPerSecond));
  for (let i = 0; i <= 10; i++) tp.mark(1000, i * 100);
  assert.equal(tp.tokensPerSecond, 10000);
  assert.equal(tp.msPerStep, 100);
  assert.equal(etaSeconds(100, 5100, 100), 500);
  assert.equal(formatDuration(500), '8m20s');
  assert.equal(formatDuration(3725), '1h02m');
  assert.equal(formatDuration(NaN), '—');
  assert.equal(formatCount(12345), '12.3k');
  assert.equal(formatCount(2.5e6), '2.50M');
});
