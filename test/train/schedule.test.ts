import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lrAt, lrCurve, nanoGptLr, validateSchedule, type Schedule } from '../../src/train/schedule.js';

// Values printed by nanoGPT's get_lr (Python) for the shakespeare-char recipe with lr_decay_iters=2000.
const SHAKESPEARE: Schedule = { kind: 'cosine', lr: 1e-3, minLr: 1e-4, warmup: 100, decaySteps: 2000 };
const EXPECTED: [number, number][] = [
  [0, 9.900990099009901e-6],
  [1, 1.9801980198019803e-5],
  [50, 0.000504950495049505],
  [99, 0.0009900990099009901],
  [100, 0.001],
  [101, 0.0009999993848585915],
  [575, 0.0008681980515339464],
  [1050, 0.00055],
  [1999, 0.00010000061514140841],
  [2000, 0.0001],
  [2001, 0.0001],
  [5000, 0.0001],
];

test('cosine schedule equals nanoGPT get_lr (shakespeare-char)', () => {
  for (const [it, want] of EXPECTED) {
    const got = lrAt(SHAKESPEARE, it);
    assert.ok(Math.abs(got - want) <= 1e-15 * Math.max(1, want) + 1e-18, `step ${it}: ${got} != ${want}`);
    assert.equal(nanoGptLr(it, 1e-3, 1e-4, 100, 2000), got);
  }
});

test('constant schedule with and without warmup', () => {
  assert.equal(lrAt({ kind: 'constant', lr: 0.1 }, 0), 0.1);
  assert.equal(lrAt({ kind: 'constant', lr: 0.1 }, 1e6), 0.1);
  assert.equal(lrAt({ kind: 'constant', lr: 0.1, warmup: 9 }, 4), 0.05);
  assert.equal(lrAt({ kind: 'constant', lr: 0.1, warmup: 9 }, 9), 0.1);
});

test('linear decay hits minLr at decaySteps and stays there', () => {
  const s: Schedule = { kind: 'linear', lr: 1, minLr: 0.1, warmup: 0, decaySteps: 100 };
  assert.equal(lrAt(s, 0), 1);
  assert.ok(Math.abs(lrAt(s, 50) - 0.55) < 1e-12);
  assert.equal(lrAt(s, 100), 0.1);
  assert.equal(lrAt(s, 1000), 0.1);
});

test('warmup-stable-decay phases and shapes', () => {
  const base = { kind: 'wsd' as const, lr: 1, minLr: 0, warmup: 10, decayStart: 100, decaySteps: 50 };
  const curve = lrCurve(base, 200);
  for (let i = 1; i < 10; i++) assert.ok(curve[i] > curve[i - 1], 'warmup increases');
  for (let i = 10; i < 100; i++) assert.equal(curve[i], 1);
  assert.ok(Math.abs(lrAt(base, 125) - 0.5) < 1e-12);
  assert.equal(lrAt(base, 150), 0);
  assert.ok(Math.abs(lrAt({ ...base, decayShape: 'sqrt' }, 125) - (1 - Math.sqrt(0.5))) < 1e-12);
  assert.ok(Math.abs(lrAt({ ...base, decayShape: 'cosine' }, 125) - 0.5) < 1e-12);
  for (let i = 101; i < 150; i++) assert.ok(curve[i] < curve[i - 1], 'decay decreases');
});

test('noam schedule peaks at warmup', () => {
  const s: Schedule = { kind: 'noam', dModel: 512, warmup: 4000 };
  const peak = lrAt(s, 3999);
  assert.ok(Math.abs(peak - 512 ** -0.5 * 4000 ** -0.5) < 1e-15);
  assert.ok(lrAt(s, 1000) < peak && lrAt(s, 10000) < peak);
});

test('validateSchedule names the bad field', () => {
  assert.throws(() => validateSchedule({ kind: 'cosine', lr: 1, minLr: 0, warmup: 10, decaySteps: 5 }), /decaySteps/);
  assert.throws(() => validateSchedule({ kind: 'constant', lr: -1 }), /lr/);
  validateSchedule(SHAKESPEARE);
  assert.throws(() => lrAt(SHAKESPEARE, -1), /step/);
});
