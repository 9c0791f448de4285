// Each fused op against its composition from primitives (forward and gradients), random shapes.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as O from '../../src/ops/index.js';
import { Rng } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

function maxDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual(a.shape, b.shape);
  const x = a.toList();
  const y = b.toList();
  return x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);
}

function leaf(shape: number[], seed: number): Tensor {
  return O.randn(shape, { rng: new Rng(seed) }).requireGrad();
}

test('softmax / logSoftmax vs exp / sum composition', () => {
  const x = O.randn([5, 17], { rng: new Rng(1) });
  const m = x.max(-1, true);
  const e = x.sub(m).exp();
  assert.ok(maxDiff(O.softmax(x), e.div(e.sum(-1, true))) < 1e-6);
  assert.ok(maxDiff(O.logSoftmax(x), x.sub(x.logsumexp(-1, true))) < 1e-5);
});

test('layerNorm / rmsNorm vs composition (forward and grads)', () => {
  const x = leaf([4, 9], 2);
  const w = leaf([9], 3);
  const b = leaf([9], 4);
  const composed = (t: Tensor) => t.sub(t.mean(-1, true)).div(t.variance(-1, true).add(1e-5).sqrt()).mul(w).add(b);
  assert.ok(maxDiff(O.layerNorm(x, w, b), composed(x)) < 1e-5);
  O.layerNorm(x, w, b).square().sum().backward();
  const g1 = [x.grad!.toList(), w.grad!.toList()];
  x.zeroGrad();
  w.zeroGrad();
  composed(x).square().sum().backward();
  [x.grad!.toList(), w.grad!.toList()].forEach((g, i) =>
    g.forEach((v, j) => assert.ok(Math.abs(v - g1[i]![j]!) < 1e-4)),
  );
  const rms = (t: Tensor) => t.mul(t.square().mean(-1, true).add(1e-6).rsqrt()).mul(w);
  assert.ok(maxDiff(O.rmsNorm(x, w), rms(x)) < 1e-5);
});

test('fused attention vs composed attention on random shapes and masks', () => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 12; trial++) {
    const B = 1 + rng.int(2),
      Hkv = 1 + rng.int(2),
      rep = 1 + rng.int(3),
      H = Hkv * rep;
    const Tk = 1 + rng.int(13),
      Tq = 1 + rng.int(Tk),
      Dk = 1 + rng.int(9),
      Dv = 1 + rng.int(9);
    const q = leaf([B, H, Tq, Dk], 10 + trial),
      k = leaf([B, Hkv, Tk, Dk], 30 + trial),
      v = leaf([B, Hkv, Tk, Dv], 50 + trial);
    const opts = {
      causal: rng.uniform() < 0.5,
      window: rng.uniform() < 0.3 ? 1 + rng.int(4) : 0,
      kvLen: rng.uniform() < 0.3 ? O.tensor(new Int32Array(Array.from({ length: B }, () => 1 + rng.int(Tk)))) : null,
      bias: rng.uniform() < 0.3 ? O.randn([1, H, Tq, Tk], { rng }) : null,
    };
    const fused = O.attention(q, k, v, opts);
    const ref = O.attentionComposed(q, k, v, opts);
    assert.ok(maxDiff(fused, ref) < 1e-5, `trial ${trial} forward ${JSON.stringify({ B, H, Hkv, Tq, Tk, Dk, Dv })}`);
    const grads = (y: Tensor) => {
      for (const t of [q, k, v]) t.zeroGrad();
      y.mul(O.randn(y.shape as number[], { rng: new Rng(trial) }))
        .sum()
        .backward();
      return [q, k, v].map((t) => O.clone(t.grad!));
    };
    const gf = grads(O.attention(q, k, v, opts));
    const gr = grads(O.attentionComposed(q, k, v, opts));
    gf.forEach((g, i) => assert.ok(maxDiff(g, gr[i]!) < 1e-4, `trial ${trial} grad ${i}`));
  }
});

test('crossEntropy vs logSoftmax + gather composition', () => {
  const z = O.randn([6, 11], { rng: new Rng(6) });
  const t = O.tensor(new Int32Array([0, 3, 10, -100, 5, 5]));
  const valid = [0, 1, 2, 4, 5];
  const lp = O.logSoftmax(z);
  const picked = valid.map(
    (r) =>
      -lp
        .slice(0, r, r + 1)
        .reshape(11)
        .toList()[t.toList()[r]!]!,
  );
  const expected = picked.reduce((a, b) => a + b, 0) / valid.length;
  assert.ok(Math.abs(O.crossEntropy(z, t).item() - expected) < 1e-5);
  const eps = 0.2;
  const smooth = valid.map(
    (r, i) =>
      (1 - eps) * picked[i]! -
      (eps / 11) *
        lp
          .slice(0, r, r + 1)
          .sum()
          .item(),
  );
  assert.ok(
    Math.abs(O.crossEntropy(z, t, { labelSmoothing: eps }).item() - smooth.reduce((a, b) => a + b, 0) / valid.length) <
      1e-5,
  );
});

test('selective scan vs an explicit recurrence composed from primitives', () => {
  const B = 2,
    T = 4,
    C = 3,
    N = 2;
  const x = O.randn([B, T, C], { rng: new Rng(7) });
  const dt = O.randn([B, T, C], { rng: new Rng(8) })
    .abs()
    .mul(0.5);
  const A = O.randn([C, N], { rng: new Rng(9) })
    .abs()
    .neg();
  const Bm = O.randn([B, T, N], { rng: new Rng(10) });
  const Cm = O.randn([B, T, N], { rng: new Rng(11) });
  const D = O.randn([C], { rng: new Rng(12) });
  const { y, hT } = O.selectiveScan(x, dt, A, Bm, Cm, D);
  let h = O.zeros([B, C, N]);
  const ys: Tensor[] = [];
  for (let t = 0; t < T; t++) {
    const xt = x.slice(1, t, t + 1).reshape(B, C, 1);
    const dtt = dt.slice(1, t, t + 1).reshape(B, C, 1);
    const bt = Bm.slice(1, t, t + 1).reshape(B, 1, N);
    const ct = Cm.slice(1, t, t + 1).reshape(B, 1, N);
    h = dtt.mul(A).exp().mul(h).add(dtt.mul(bt).mul(xt)); // (B, C, N)
    ys.push(h.mul(ct).sum(-1).add(xt.reshape(B, C).mul(D))); // (B, C)
  }
  assert.ok(maxDiff(y, O.stack(ys, 1)) < 1e-5);
  assert.ok(maxDiff(hT, h) < 1e-5);
});
