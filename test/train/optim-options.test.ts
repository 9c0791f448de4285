// Optimizer hyper-parameters are checked at construction with errors naming the option (the ranges
// validateTrainConfig applies to config files), and a disposed optimizer refuses to step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, type Tensor } from '../../src/index.js';
import { Adam, AdamW, SGD, createOptimizer } from '../../src/train/optim.js';

const params = (): [string, Tensor][] => [['w', tensor([1, 2, 3], { requiresGrad: true })]];

test('optimizer options out of range are errors naming the option', () => {
  const cases: [() => unknown, RegExp][] = [
    [() => new AdamW(params(), { lr: NaN }), /AdamW: lr must be a finite number >= 0, got NaN$/],
    [() => new AdamW(params(), { lr: -1 }), /AdamW: lr must be a finite number >= 0, got -1$/],
    [() => new AdamW(params(), { lr: Infinity }), /AdamW: lr must be a finite number >= 0, got Infinity/],
    [() => new AdamW(params(), { lr: '1e-3' as unknown as number }), /AdamW: lr must be .* got "1e-3"/],
    [() => new AdamW(params(), { lr: 1e-3, beta1: 2 }), /AdamW: beta1 must be a number in \[0, 1\), got 2$/],
    [() => new Adam(params(), { lr: 1e-3, beta2: -1 }), /Adam: beta2 must be a number in \[0, 1\), got -1$/],
    [() => new Adam(params(), { lr: 1e-3, beta2: 1 }), /Adam: beta2 must be a number in \[0, 1\), got 1$/],
    [() => new AdamW(params(), { lr: 1e-3, eps: -1 }), /AdamW: eps must be a finite number > 0, got -1$/],
    [() => new AdamW(params(), { lr: 1e-3, eps: 0 }), /AdamW: eps must be a finite number > 0, got 0$/],
    [() => new AdamW(params(), { lr: 1e-3, weightDecay: NaN }), /AdamW: weightDecay must be .* got NaN$/],
    [() => new SGD(params(), { lr: 0.1, momentum: 1 }), /SGD: momentum must be a number in \[0, 1\), got 1$/],
    [() => new SGD(params(), { lr: 0.1, dampening: 2 }), /SGD: dampening must be a number in \[0, 1\], got 2$/],
    [() => new SGD(params(), { lr: 0.1, weightDecay: -0.1 }), /SGD: weightDecay must be .* got -0.1$/],
    [() => createOptimizer(params(), { kind: 'adamw', lr: 1e-3, weightDecay: -1 }), /weightDecay must be .* got -1/],
    [() => createOptimizer(params(), { kind: 'sgd', lr: 1e-3, momentum: NaN }), /SGD: momentum must be .* got NaN/],
  ];
  for (const [fn, re] of cases) assert.throws(fn, re);
  // the edges are allowed
  new AdamW(params(), { lr: 0, beta1: 0, beta2: 0, weightDecay: 0 });
  new SGD(params(), { lr: 0, momentum: 0.99, dampening: 1 });
});

test('a NaN learning rate set between steps is refused before it reaches the weights', () => {
  const ps = params();
  const opt = new AdamW(ps, { lr: 1e-3 });
  ps[0]![1].grad = tensor([0.1, 0.2, 0.3]);
  opt.lr = NaN;
  assert.throws(() => opt.step(), /AdamW: lr must be a finite number >= 0, got NaN/);
  assert.deepEqual(Array.from(ps[0]![1].data()), [1, 2, 3]);
  opt.dispose();
});

test('a disposed optimizer refuses to step instead of restarting from zero moments', () => {
  const ps = params();
  const opt = new Adam(ps, { lr: 1e-3 });
  ps[0]![1].grad = tensor([0.1, 0.2, 0.3]);
  opt.step();
  opt.dispose();
  assert.equal(opt.isDisposed, true);
  assert.throws(() => opt.step(), /Error: Adam: step\(\) after dispose\(\)$/);
  assert.throws(() => opt.stateDict(), /Adam: stateDict\(\) after dispose\(\)/);
  opt.dispose(); // idempotent
});
