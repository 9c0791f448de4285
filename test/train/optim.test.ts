// Optimizers against torch.optim (values from PyTorch 1.13, float64, see the table below), gradient
// clipping, parameter groups and state save/load.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor, type Tensor } from '../../src/index.js';
import {
  Adam,
  AdamW,
  SGD,
  clipGradNorm,
  createOptimizer,
  gradNorm,
  paramGroups,
  type Optimizer,
} from '../../src/train/optim.js';

// torch: p = [1, -2, 0.5, 3]; grad at step s (0-based) = [0.1, -0.3, 0.25, 0.05]·(s+1) + 0.1·p
const TORCH: Record<string, number[][]> = {
  sgd: [
    [0.98, -1.95, 0.47, 2.965],
    [0.9502, -1.8705, 0.4153, 2.92535],
    [0.910698, -1.761795, 0.336147, 2.8810965],
  ],
  sgd_mom: [
    [0.979, -1.948, 0.4695, 2.962],
    [0.929331, -1.819772, 0.3868855, 2.885218],
    [0.844406259, -1.594349308, 0.2332767095, 2.769376802],
  ],
  sgd_nest: [
    [0.962, -1.905, 0.443, 2.9335],
    [0.889522, -1.714305, 0.315283, 2.8304135],
    [0.777048882, -1.410252705, 0.100834323, 2.6907592935],
  ],
  adam: [
    [0.9900000003, -1.9900000001, 0.4900000003, 2.9900000002],
    [0.980030847, -1.9800680494, 0.4802044055, 2.9799893935],
    [0.9700735574, -1.9701679231, 0.4704815446, 2.9699615874],
  ],
  adamw: [
    [0.9890000005, -1.9880000002, 0.4895000003, 2.9870000003],
    [0.9781090241, -1.9761593839, 0.4792796729, 2.9740031836],
    [0.9672734371, -1.9643909677, 0.4691502664, 2.9610014537],
  ],
};

const BASE = [0.1, -0.3, 0.25, 0.05];

function setGrad(p: Tensor, s: number): void {
  const cur = p.toList();
  p.grad?.dispose();
  p.grad = tensor(BASE.map((b, i) => b * (s + 1) + 0.1 * cur[i]!));
}

function runSteps(make: (p: Tensor) => Optimizer, steps = 3): number[][] {
  const p = tensor([1, -2, 0.5, 3], { requiresGrad: true });
  const opt = make(p);
  const out: number[][] = [];
  for (let s = 0; s < steps; s++) {
    setGrad(p, s);
    opt.step();
    out.push(p.toList());
  }
  opt.dispose();
  return out;
}

function close(actual: number[][], expected: number[][], tol: number, what: string): void {
  actual.forEach((row, s) =>
    row.forEach((v, i) =>
      assert.ok(Math.abs(v - expected[s]![i]!) < tol, `${what} step ${s} [${i}]: ${v} vs torch ${expected[s]![i]}`),
    ),
  );
}

const group = (p: Tensor, wd = 0) => [{ params: [p], names: ['p'], weightDecay: wd }];

test('SGD matches torch.optim.SGD (plain, momentum + weight decay, nesterov)', () => {
  close(
    runSteps((p) => new SGD(group(p), { lr: 0.1 })),
    TORCH.sgd!,
    1e-6,
    'sgd',
  );
  close(
    runSteps((p) => new SGD(group(p, 0.01), { lr: 0.1, momentum: 0.9 })),
    TORCH.sgd_mom!,
    1e-6,
    'sgd momentum',
  );
  close(
    runSteps((p) => new SGD(group(p), { lr: 0.1, momentum: 0.9, nesterov: true })),
    TORCH.sgd_nest!,
    1e-6,
    'sgd nesterov',
  );
});

test('Adam (L2 decay) and AdamW (decoupled decay) match torch, through the fused kernel', () => {
  close(
    runSteps((p) => new Adam(group(p, 0.1), { lr: 0.01, beta1: 0.9, beta2: 0.99 })),
    TORCH.adam!,
    2e-6,
    'adam',
  );
  close(
    runSteps((p) => new AdamW(group(p, 0.1), { lr: 0.01, beta1: 0.9, beta2: 0.99 })),
    TORCH.adamw!,
    2e-6,
    'adamw',
  );
});

test('lrScale multiplies the scheduled learning rate per group; parameters without grad are skipped', () => {
  const a = tensor([1, 1], { requiresGrad: true });
  const b = tensor([1, 1], { requiresGrad: true });
  const c = tensor([5], { requiresGrad: true });
  const opt = new SGD(
    [
      { params: [a], names: ['a'], lrScale: 1 },
      { params: [b, c], names: ['b', 'c'], lrScale: 0.5 },
    ],
    { lr: 0.2 },
  );
  a.grad = tensor([1, 2]);
  b.grad = tensor([1, 2]);
  opt.step();
  assert.deepEqual(
    a.toList().map((v) => +v.toFixed(6)),
    [0.8, 0.6],
  );
  assert.deepEqual(
    b.toList().map((v) => +v.toFixed(6)),
    [0.9, 0.8],
  );
  assert.deepEqual(c.toList(), [5]);
});

test('parameter groups: nanoGPT decays >=2-D tensors; the default spares norms, biases and embeddings', () => {
  const named: [string, Tensor][] = [
    ['transformer.wte.weight', tensor([[1, 2]], { requiresGrad: true })],
    ['transformer.h.0.attn.c_attn.weight', tensor([[1, 2]], { requiresGrad: true })],
    ['transformer.h.0.attn.c_attn.bias', tensor([1, 2], { requiresGrad: true })],
    ['transformer.h.0.ln_1.weight', tensor([1, 2], { requiresGrad: true })],
    ['frozen.weight', tensor([[1, 2]])],
  ];
  const names = (gs: ReturnType<typeof paramGroups>) => gs.map((g) => [g.weightDecay, g.names]);
  assert.deepEqual(names(paramGroups(named, 0.1, 'matrices')), [
    [0.1, ['transformer.wte.weight', 'transformer.h.0.attn.c_attn.weight']],
    [0, ['transformer.h.0.attn.c_attn.bias', 'transformer.h.0.ln_1.weight']],
  ]);
  assert.deepEqual(names(paramGroups(named, 0.1)), [
    [0.1, ['transformer.h.0.attn.c_attn.weight']],
    [0, ['transformer.wte.weight', 'transformer.h.0.attn.c_attn.bias', 'transformer.h.0.ln_1.weight']],
  ]);
  assert.deepEqual(names(paramGroups(named, 0.1, (n) => n.includes('ln_'))), [
    [0.1, ['transformer.h.0.ln_1.weight']],
    [0, ['transformer.wte.weight', 'transformer.h.0.attn.c_attn.weight', 'transformer.h.0.attn.c_attn.bias']],
  ]);
  assert.throws(
    () =>
      new SGD(
        [
          { params: [named[0]![1]], names: ['x'] },
          { params: [named[0]![1]], names: ['y'] },
        ],
        { lr: 1 },
      ),
    /more than one group/,
  );
});

test('clipGradNorm scales by maxNorm / (norm + 1e-6) and returns the norm before clipping', () => {
  const a = tensor([3, 0], { requiresGrad: true });
  const b = tensor([4], { requiresGrad: true });
  a.grad = tensor([3, 0]);
  b.grad = tensor([4]);
  assert.ok(Math.abs(gradNorm([a, b]) - 5) < 1e-6);
  const n = clipGradNorm([a, b], 1);
  assert.ok(Math.abs(n - 5) < 1e-6);
  const coef = 1 / (5 + 1e-6);
  assert.ok(Math.abs(a.grad.toList()[0]! - 3 * coef) < 1e-6 && Math.abs(b.grad.toList()[0]! - 4 * coef) < 1e-6);
  const n2 = clipGradNorm([a, b], 10); // below the limit: untouched
  assert.ok(Math.abs(n2 - 1) < 1e-5);
  assert.ok(Math.abs(b.grad.toList()[0]! - 4 * coef) < 1e-6);
  b.grad = tensor([Infinity]);
  assert.equal(clipGradNorm([a, b], 1), Infinity);
});

test('optimizer state round-trips: 3 steps + save + load + 2 steps == 5 steps', () => {
  for (const kind of ['adamw', 'sgd'] as const) {
    const make = (p: Tensor) =>
      createOptimizer([['w', p]], { kind, lr: 0.05, weightDecay: 0.1, decay: 'all', momentum: 0.9 });
    const straight = runSteps(make, 5);
    const p = tensor([1, -2, 0.5, 3], { requiresGrad: true });
    const first = make(p);
    for (let s = 0; s < 3; s++) {
      setGrad(p, s);
      first.step();
    }
    const state = JSON.parse(
      JSON.stringify(first.stateDict(), (_k, v) => (v instanceof Float32Array ? { f32: Array.from(v) } : v)),
      (_k, v) => (v && v.f32 ? Float32Array.from(v.f32) : v),
    );
    first.dispose();
    const p2 = tensor(p.toList(), { requiresGrad: true });
    const second = make(p2);
    second.loadStateDict(state);
    assert.equal(second.stepCount, 3);
    for (let s = 3; s < 5; s++) {
      setGrad(p2, s);
      second.step();
    }
    assert.deepEqual(p2.toList(), straight[4], `${kind}: resumed optimizer diverged`);
    assert.throws(
      () =>
        createOptimizer([['w', p2]], { kind: kind === 'sgd' ? 'adamw' : 'sgd', lr: 1, momentum: 0.9 }).loadStateDict(
          state,
        ),
      /state is for optimizer/,
    );
  }
});

test('optimizers refuse low-precision parameters with a clear message', () => {
  const p = tensor([1, 2], { requiresGrad: true, dtype: 'bfloat16' });
  p.grad = tensor([1, 1], { dtype: 'bfloat16' });
  assert.throws(() => new AdamW([['p', p]], { lr: 0.1 }).step(), /bfloat16.*MixedPrecision/);
});
