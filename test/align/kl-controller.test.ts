// The KL coefficient's controllers: TRL's AdaptiveKLController update rule (proportional error clipped to
// ±0.2, scaled by n / horizon) on hand-computed values, its direction and rate limits, and the fixed one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { klControl, updateKlCoef } from '../../src/align/kl-controller.js';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

test('adaptive KL controller: β ← β·(1 + clip(KL/target − 1, ±0.2)·n/horizon), by hand', () => {
  const c = klControl(0.1, 6, 10000);
  assert.deepEqual(c, { kind: 'adaptive', coef: 0.1, target: 6, horizon: 10000 });
  near(updateKlCoef(c, 0.1, 6.6, 256), 0.1 * (1 + 0.1 * 0.0256), 'KL 10% above target');
  near(updateKlCoef(c, 0.1, 5.4, 256), 0.1 * (1 - 0.1 * 0.0256), 'KL 10% below target');
  near(updateKlCoef(c, 0.1, 30, 256), 0.1 * (1 + 0.2 * 0.0256), 'error clipped at +0.2');
  near(updateKlCoef(c, 0.1, 0, 256), 0.1 * (1 - 0.2 * 0.0256), 'error clipped at −0.2 (KL 0)');
  near(updateKlCoef(c, 0.1, -3, 256), 0.1 * (1 - 0.2 * 0.0256), 'negative KL estimate: clipped too');
  near(updateKlCoef(c, 0.1, 6, 256), 0.1, 'on target: unchanged');
  near(updateKlCoef(c, 0.37, 7.2, 1000), 0.37 * (1 + 0.2 * 0.1), 'rate grows with the rollout size n');
});

test('adaptive KL controller: β rises while KL stays above target, falls below, at most 0.2·n/horizon a step', () => {
  const c = klControl(0.05, 2, 100);
  let beta = 0.05;
  for (let i = 0; i < 20; i++) {
    const next = updateKlCoef(c, beta, 5, 10);
    assert.ok(next > beta && next <= beta * (1 + 0.2 * 0.1) + 1e-15, `step ${i}: ${beta} -> ${next}`);
    beta = next;
  }
  near(beta, 0.05 * 1.02 ** 20, 'twenty clipped steps');
  for (let i = 0; i < 5; i++) beta = updateKlCoef(c, beta, 1, 10);
  near(beta, 0.05 * 1.02 ** 20 * 0.98 ** 5, 'then five steps below target');
});

test('fixed KL controller keeps β; bad settings are named', () => {
  const c = klControl(0.2);
  assert.deepEqual(c, { kind: 'fixed', coef: 0.2 });
  assert.equal(updateKlCoef(c, 0.2, 100, 512), 0.2);
  assert.deepEqual(klControl(0.1, 3), { kind: 'adaptive', coef: 0.1, target: 3, horizon: 10000 });
  assert.throws(() => klControl(0.1, 0), /--kl-target must be > 0/);
  assert.throws(() => klControl(0.1, 3, -1), /--kl-horizon must be > 0/);
  assert.throws(() => klControl(0.1, undefined, 50), /--kl-horizon needs --kl-target/);
  assert.throws(() => klControl(0, 3), /needs a positive initial coefficient/);
});
