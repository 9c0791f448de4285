// Shared nn blocks: RoPE (rotate_half, interleaved, partial, scaled frequencies), sinusoidal tables,
// ALiBi, window masks, Conv1D, attention (GQA, cross-attention, cached cross K/V), MoE routing vs a dense
// reference, load-balancing / z losses, KV cache buffers.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  add,
  attention,
  attentionComposed,
  concat,
  matmul,
  mean,
  mul,
  oneHot,
  randn,
  reshape,
  slice,
  sum,
  tensor,
  topk,
  transpose,
  unsqueeze,
  where,
  softmax,
  zeros,
} from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import {
  alibiBias,
  alibiSlopes,
  applyRope,
  ropeInvFreq,
  ropeTables,
  sinusoidalTable,
  yarnMscale,
  type RopeSpec,
} from '../../src/nn/positions.js';
import { attentionOptions, windowVisible } from '../../src/nn/masks.js';
import { Conv1D } from '../../src/nn/conv1d.js';
import { Linear } from '../../src/nn/layers.js';
import { Attention, LLAMA_ATTENTION_NAMES, attend } from '../../src/nn/attention.js';
import { LayerCache } from '../../src/nn/cache.js';
import { MoE, MIXTRAL_MOE_NAMES, loadBalancingLoss, routerZLoss, sequenceBalanceLoss } from '../../src/nn/moe.js';
import type { MoeFfn } from '../../src/models/config.js';

function close(a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5, label = ''): void {
  assert.equal(a.length, b.length, `${label} length`);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= tol, `${label}[${i}]: ${a[i]} vs ${b[i]}`);
}

const spec = (dim: number, extra: Partial<RopeSpec> = {}): RopeSpec => ({
  theta: 10000,
  dim,
  scaling: null,
  maxContext: 64,
  ...extra,
});

test('rope: rotate_half convention rotates (i, i + d/2) pairs by pos * theta^(-2i/d)', () => {
  const x = randn([1, 1, 3, 4], { rng: new Rng(1) }); // (B, H, T, hs)
  const out = applyRope(x, ropeTables(spec(4), 5, 3)).data();
  const xs = x.data();
  for (let t = 0; t < 3; t++) {
    for (let i = 0; i < 2; i++) {
      const a = (5 + t) * Math.pow(10000, -(2 * i) / 4);
      const [x1, x2] = [xs[t * 4 + i]!, xs[t * 4 + i + 2]!];
      close(
        [out[t * 4 + i]!, out[t * 4 + i + 2]!],
        [x1 * Math.cos(a) - x2 * Math.sin(a), x2 * Math.cos(a) + x1 * Math.sin(a)],
        1e-5,
      );
    }
  }
});

test('rope: interleaved layout gives the scores of rotating (2i, 2i+1) pairs; partial rotary leaves the tail', () => {
  const [q, k] = [randn([1, 1, 4, 6], { rng: new Rng(2) }), randn([1, 1, 4, 6], { rng: new Rng(3) })];
  const tables = ropeTables(spec(6), 0, 4);
  // direct complex rotation of interleaved pairs
  const rotate = (x: Tensor) => {
    const v = x.data();
    const out = new Float32Array(v.length);
    for (let t = 0; t < 4; t++) {
      for (let i = 0; i < 3; i++) {
        const a = t * Math.pow(10000, -(2 * i) / 6);
        const [re, im] = [v[t * 6 + 2 * i]!, v[t * 6 + 2 * i + 1]!];
        out[t * 6 + 2 * i] = re * Math.cos(a) - im * Math.sin(a);
        out[t * 6 + 2 * i + 1] = re * Math.sin(a) + im * Math.cos(a);
      }
    }
    return tensor(out, { shape: x.shape });
  };
  const scores = (a: Tensor, b: Tensor) => matmul(a, b, { transB: true }).data();
  close(scores(applyRope(q, tables, true), applyRope(k, tables, true)), scores(rotate(q), rotate(k)), 1e-5);
  const partial = applyRope(q, ropeTables(spec(2), 0, 4));
  close(slice(partial, -1, 2).contiguous().data(), slice(q, -1, 2).contiguous().data(), 0);
});

test('rope scaling: linear divides, llama3 keeps high / scales low frequencies, yarn ramps and sets mscale', () => {
  const base = ropeInvFreq(spec(8), 4).invFreq;
  close(
    ropeInvFreq(spec(8, { scaling: { kind: 'linear', factor: 4 } }), 4).invFreq,
    base.map((f) => f / 4),
    1e-12,
  );
  const l3 = ropeInvFreq(
    spec(8, { scaling: { kind: 'llama3', factor: 8, originalMax: 16, lowFreqFactor: 1, highFreqFactor: 2 } }),
    4,
  ).invFreq;
  assert.equal(l3[0], base[0]); // wavelength 2π < 16/2: untouched
  close([l3[3]!], [base[3]! / 8], 1e-12); // wavelength > 16: divided by factor
  const y = ropeInvFreq(
    spec(16, {
      theta: 1000,
      scaling: { kind: 'yarn', factor: 4, originalMax: 512, betaFast: 32, betaSlow: 1, mscale: 1, mscaleAllDim: 0 },
    }),
    4,
  );
  const b16 = ropeInvFreq(spec(16, { theta: 1000 }), 4).invFreq;
  close([y.invFreq[0]!, y.invFreq[1]!], [b16[0]!, b16[1]!], 1e-12); // 2 extrapolated
  close([y.invFreq[6]!, y.invFreq[7]!], [b16[6]! / 4, b16[7]! / 4], 1e-12); // 2 interpolated
  close([y.attentionFactor], [0.1 * Math.log(4) + 1], 1e-12);
  assert.equal(yarnMscale(1, 0.707), 1);
  const ntk = ropeInvFreq(
    spec(8, { scaling: { kind: 'ntk', factor: 2, originalMax: null }, maxContext: 8 }),
    16,
  ).invFreq;
  assert.ok(ntk[1]! < base[1]!);
  close(
    ropeInvFreq(spec(8, { scaling: { kind: 'ntk', factor: 2, originalMax: null }, maxContext: 8 }), 8).invFreq,
    base,
    0,
  );
});

test('sinusoidal tables: interleaved (Vaswani) and halves (Marian) layouts, offsets', () => {
  const t = sinusoidalTable(3, 4).data();
  close([t[4]!, t[5]!, t[6]!, t[7]!], [Math.sin(1), Math.cos(1), Math.sin(0.01), Math.cos(0.01)], 1e-6);
  const h = sinusoidalTable(1, 4, 'halves', 1).data();
  close(h, [Math.sin(1), Math.sin(0.01), Math.cos(1), Math.cos(0.01)], 1e-6);
});

test('alibi: slopes of 8 heads are 2^-1..2^-8; 6 heads interleave the 16-head slopes; bias = -slope·|q-k|', () => {
  close(
    alibiSlopes(8),
    [1, 2, 3, 4, 5, 6, 7, 8].map((i) => 2 ** -i),
    1e-12,
  );
  close(alibiSlopes(6), [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3], 1e-12);
  close(alibiSlopes(2), [2 ** -4, 2 ** -8], 1e-12);
  const b = alibiBias(2, 3, 1, 0, 4).data(); // query at 3, keys 0..3
  close(
    b,
    [3, 2, 1, 0, 3, 2, 1, 0].map((d, i) => -d * (i < 4 ? 2 ** -4 : 2 ** -8)),
    1e-6,
  );
});

test('windows: sliding, dilated, longformer globals and bigbird blocks', () => {
  const sliding = { kind: 'sliding', size: 3, firstFullLayers: 0 } as const;
  assert.deepEqual(
    [5, 4, 3, 2].map((k) => windowVisible(sliding, true, 5, k)),
    [true, true, true, false],
  );
  const dil = { kind: 'dilated', size: 3, dilation: 2 } as const;
  assert.deepEqual(
    [9, 8, 7, 6, 5, 4, 3].map((k) => windowVisible(dil, true, 9, k)),
    [true, false, true, false, true, false, false],
  );
  const lf = { kind: 'longformer', size: 2, globalTokens: 1 } as const;
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => windowVisible(lf, true, 3, k)),
    [true, false, true, true],
  );
  assert.ok(windowVisible(lf, false, 0, 7), 'a global token sees everything');
  const bb = { kind: 'bigbird', blockSize: 2, windowBlocks: 3, globalBlocks: 1, randomBlocks: 0, seed: 0 } as const;
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 7].map((k) => windowVisible(bb, true, 7, k)),
    [true, true, false, false, true, true, true, true],
  );
});

test('attention options: sparse windows and padding become a -inf bias equal to an explicit mask', () => {
  const r = new Rng(4);
  const [q, k, v] = [randn([2, 2, 6, 4], { rng: r }), randn([2, 1, 6, 4], { rng: r }), randn([2, 1, 6, 4], { rng: r })];
  const padding = tensor(
    [
      [1, 1, 1, 1, 1, 1],
      [0, 1, 1, 0, 1, 1],
    ],
    { dtype: 'int32' },
  );
  const window = { kind: 'dilated', size: 2, dilation: 2 } as const;
  const opts = attentionOptions({ causal: true, window, padding }, 0, 6, 0, 6);
  const fused = noGrad(() => attention(q, k, v, opts)).data();
  // explicit mask: causal & dilated & key not padded
  const pad = padding.data();
  const m = new Uint8Array(2 * 6 * 6);
  for (let b = 0; b < 2; b++)
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++)
        m[(b * 6 + i) * 6 + j] = j <= i && windowVisible(window, true, i, j) && pad[b * 6 + j] ? 1 : 0;
  const bias = where(tensor(m, { shape: [2, 1, 6, 6] }), 0, -Infinity);
  // row 1, query 0 sees only a padded key: fully masked rows give 0 in both
  close(fused, attentionComposed(q, k, v, { bias }).data(), 1e-6);
  const right = attentionOptions(
    {
      causal: true,
      window: { kind: 'full' },
      padding: tensor(
        [
          [1, 1, 1, 0, 0, 0],
          [1, 1, 1, 1, 1, 1],
        ],
        { dtype: 'int32' },
      ),
    },
    0,
    6,
    0,
    6,
  );
  assert.deepEqual(right.kvLen!.toList(), [3, 6]);
  assert.equal(right.bias, null);
});

test('Conv1D with weight [in, out] equals Linear with the transposed weight', () => {
  const c = new Conv1D(3, 5, { rng: new Rng(1), std: 1 });
  const l = new Linear(3, 5, { rng: new Rng(2) });
  const [w] = c
    .namedParameters()
    .filter(([n]) => n === 'weight')
    .map(([, t]) => t);
  l.setParameter('weight', transpose(w!).contiguous());
  l.setParameter('bias', add(zeros([5]), 0.5));
  c.setParameter('bias', add(zeros([5]), 0.5));
  const x = randn([2, 3], { rng: new Rng(3) });
  close(c.forward(x).data(), l.forward(x).data(), 1e-6);
});

test('cross-attention: queries from x, keys/values from the source, cached once (no scaling option)', () => {
  const att = new Attention({
    dim: 8,
    kvDim: 6,
    heads: 2,
    kvHeads: 2,
    headDim: 4,
    qkvBias: true,
    outBias: true,
    scale: 1,
    names: LLAMA_ATTENTION_NAMES,
    rng: new Rng(5),
    std: 0.3,
  });
  const x = randn([1, 3, 8], { rng: new Rng(6) });
  const src = randn([1, 5, 6], { rng: new Rng(7) });
  const mask = {
    causal: false,
    window: { kind: 'full' } as const,
    padding: tensor([[1, 1, 1, 1, 0]], { dtype: 'int32' }),
  };
  const full = noGrad(() => att.forward(x, { mask, qStart: 0, kv: src })).data();
  const cache = new LayerCache();
  const step1 = noGrad(() => att.forward(slice(x, 1, 0, 2).contiguous(), { mask, qStart: 0, kv: src, cache })).data();
  const step2 = noGrad(() => att.forward(slice(x, 1, 2).contiguous(), { mask, qStart: 2, kv: src, cache })).data();
  close([...step1, ...step2], full, 1e-6);
  assert.deepEqual([...cache.get('k')!.shape], [1, 2, 5, 4]);
  // manual: softmax(q kᵀ · 1 + pad) v
  const params = new Map(att.namedParameters());
  const proj = (name: string, t: Tensor) =>
    add(matmul(t, params.get(`${name}.weight`)!, { transB: true }), params.get(`${name}.bias`)!);
  const heads = (t: Tensor, T: number) => transpose(reshape(t, [1, T, 2, 4]), 1, 2);
  const [q, k, v] = [heads(proj('q_proj', x), 3), heads(proj('k_proj', src), 5), heads(proj('v_proj', src), 5)];
  const bias = reshape(tensor([0, 0, 0, 0, -Infinity]), [1, 1, 1, 5]);
  const o = matmul(softmax(add(matmul(q, k, { transB: true }), bias), -1), v); // (1, 2, 3, 4)
  close(full, proj('o_proj', reshape(transpose(o, 1, 2), [1, 3, 8])).data(), 1e-5);
});

function moeConfig(extra: Partial<MoeFfn> = {}): MoeFfn {
  return {
    kind: 'moe',
    experts: 4,
    topK: 2,
    expert: 'glu',
    act: 'silu',
    expertHidden: 6,
    bias: false,
    gating: 'softmax',
    normTopK: true,
    routedScale: 1,
    routing: { kind: 'greedy' },
    sharedExperts: 0,
    sharedHidden: 0,
    capacityFactor: null,
    auxLossCoef: 0.01,
    zLossCoef: 0,
    denseLayers: 0,
    layerFreq: 1,
    denseHidden: 0,
    ...extra,
  };
}

/** every expert on every token, weighted by the routing weights (what sparse dispatch must equal) */
function denseMoe(moe: MoE, x: Tensor, cfg: MoeFfn): Tensor {
  const logits = moe.router.forward(x); // (N, E)
  const scores = cfg.gating === 'softmax' ? softmax(logits, -1) : logits.sigmoid();
  const { values, indices } = topk(scores, cfg.topK);
  let w = cfg.normTopK ? values.div(sum(values, -1, true)) : values;
  w = mul(w, cfg.routedScale);
  const perExpert = sum(mul(oneHot(indices, cfg.experts), unsqueeze(w, -1)), 1); // (N, E)
  let out = zeros(x.shape);
  for (let e = 0; e < cfg.experts; e++)
    out = add(out, mul(moe.experts.at(e).forward(x), slice(perExpert, 1, e, e + 1)));
  return moe.shared ? add(out, moe.shared.forward(x)) : out;
}

for (const [label, cfg] of [
  ['softmax top-2 renormalised', moeConfig()],
  [
    'sigmoid, scaled, shared experts',
    moeConfig({ gating: 'sigmoid', normTopK: false, routedScale: 2.5, sharedExperts: 1, sharedHidden: 6 }),
  ],
  ['mlp experts, top-1', moeConfig({ expert: 'mlp', act: 'gelu', topK: 1, normTopK: false, bias: true })],
] as const) {
  test(`MoE sparse dispatch equals the dense reference (${label}): output and gradients`, () => {
    const moe = new MoE(8, cfg, MIXTRAL_MOE_NAMES, { rng: new Rng(11), std: 0.5 });
    const x = randn([10, 8], { rng: new Rng(12) });
    const params = moe.parameters();
    const grads = (f: () => Tensor) => {
      for (const p of params) p.zeroGrad();
      const y = f();
      sum(mul(y, y)).backward();
      return { y: y.data(), g: params.map((p) => p.grad?.data() ?? new Float32Array(p.size)) };
    };
    const sparse = grads(() => reshape(moe.forward(reshape(x, [2, 5, 8])).out, [10, 8]));
    const dense = grads(() => denseMoe(moe, x, cfg));
    close(sparse.y, dense.y, 1e-5, 'output');
    sparse.g.forEach((g, i) => close(g, dense.g[i]!, 1e-4, `grad ${moe.namedParameters()[i]![0]}`));
    const s = moe.lastStats!;
    assert.equal(
      s.tokensPerExpert.reduce((a, b) => a + b, 0),
      10 * cfg.topK,
    );
    assert.equal(s.dropped, 0);
  });
}

test('MoE capacity factor drops assignments beyond ceil(cf·N·k/E), earlier tokens first', () => {
  const moe = new MoE(8, moeConfig({ capacityFactor: 0.5 }), MIXTRAL_MOE_NAMES, { rng: new Rng(3), std: 0.5 });
  const x = randn([1, 12, 8], { rng: new Rng(4) });
  noGrad(() => moe.forward(x));
  const s = moe.lastStats!;
  assert.equal(s.capacity, 3); // ceil(0.5 · 12 · 2 / 4)
  assert.ok(s.tokensPerExpert.every((n) => n <= 3));
  assert.equal(s.tokensPerExpert.reduce((a, b) => a + b, 0) + s.dropped, 24);
  assert.ok(s.dropped > 0);
});

test('MoE group-limited routing only picks experts of the best groups', () => {
  const cfg = moeConfig({ experts: 8, topK: 2, routing: { kind: 'group-limited', groups: 4, topkGroups: 1 } });
  const moe = new MoE(8, cfg, MIXTRAL_MOE_NAMES, { rng: new Rng(5), std: 0.5 });
  const x = randn([1, 6, 8], { rng: new Rng(6) });
  noGrad(() => moe.forward(x));
  // with one group of 2 experts allowed and k = 2, each token uses both experts of one group
  const counts = moe.lastStats!.tokensPerExpert;
  for (let g = 0; g < 4; g++) assert.equal(counts[2 * g], counts[2 * g + 1]);
});

test('load-balancing loss: k for uniform routing, larger when skewed; z-loss = mean lse²', () => {
  const uniform = zeros([6, 4]);
  close([loadBalancingLoss(uniform, 1).item()], [1], 1e-6);
  const skewed = tensor([
    [5, 0, 0, 0],
    [5, 0, 0, 0],
    [5, 0, 0, 0],
  ]);
  assert.ok(loadBalancingLoss(skewed, 1).item() > 3);
  const l = tensor([
    [0, 0],
    [1, 1],
  ]);
  close([routerZLoss(l).item()], [(Math.log(2) ** 2 + (1 + Math.log(2)) ** 2) / 2], 1e-5);
  const g = randn([5, 4], { rng: new Rng(1) }).requireGrad();
  mean(loadBalancingLoss(g, 2)).backward();
  assert.ok(g.grad, 'gradient reaches the router logits');
});

test('KV cache: preallocated buffers equal concatenation; overflow is an error naming maxLength', () => {
  const [a, b] = [new LayerCache(), new LayerCache(null, 5)];
  const k1 = randn([1, 2, 3, 4], { rng: new Rng(1) });
  const k2 = randn([1, 2, 2, 4], { rng: new Rng(2) });
  for (const c of [a, b]) c.extend({ k: k1 });
  const ra = a.extend({ k: k2 }).all.k!;
  const rb = b.extend({ k: k2 }).all.k!;
  close(ra.contiguous().data(), rb.contiguous().data(), 0);
  close(ra.contiguous().data(), concat([k1, k2], 2).data(), 0);
  close(b.get('k')!.contiguous().data(), ra.contiguous().data(), 0);
  assert.throws(() => b.extend({ k: k1 }), /maxLength 5/);
  a.dispose();
  b.dispose();
});

test('attention with probability dropout: the composed path equals the fused op when nothing is dropped', () => {
  const r = new Rng(8);
  const [q, k, v] = [randn([2, 4, 5, 3], { rng: r }), randn([2, 2, 7, 3], { rng: r }), randn([2, 2, 7, 2], { rng: r })];
  const opts = {
    causal: true,
    window: 4,
    kvLen: tensor(Int32Array.from([7, 5])),
    bias: randn([1, 4, 5, 7], { rng: r }),
    scale: 0.7,
  };
  close(attend(q, k, v, opts, 1e-12).data(), attention(q, k, v, opts).data(), 1e-5);
  const dropped = attend(q, k, v, opts, 0.5).data();
  assert.ok(dropped.every((x) => Number.isFinite(x)));
});

test('attention projections at dotted checkpoint paths share their inner containers (BERT layout)', () => {
  const names = { q: 'self.query', k: 'self.key', v: 'self.value', o: 'output.dense' };
  const att = new Attention({
    dim: 8,
    heads: 2,
    kvHeads: 2,
    headDim: 4,
    qkvBias: true,
    outBias: true,
    scale: null,
    names,
  });
  assert.deepEqual(
    att.namedParameters().map(([n]) => n),
    [
      'self.query.weight',
      'self.query.bias',
      'self.key.weight',
      'self.key.bias',
      'self.value.weight',
      'self.value.bias',
      'output.dense.weight',
      'output.dense.bias',
    ],
  );
  const w = randn([8, 8], { rng: new Rng(1) });
  att.loadStateDict(new Map(att.namedParameters().map(([n, t]) => [n, n === 'output.dense.weight' ? w : t] as const)));
  close(new Map(att.namedParameters()).get('output.dense.weight')!.data(), w.data(), 0);
  const deep = new Attention({
    dim: 8,
    heads: 2,
    kvHeads: 2,
    headDim: 4,
    qkvBias: false,
    outBias: false,
    scale: null,
    names: { q: 'a.b.q', k: 'a.b.k', v: 'a.c.v', o: 'o' },
  });
  assert.deepEqual(
    deep.namedParameters().map(([n]) => n),
    ['a.b.q.weight', 'a.b.k.weight', 'a.c.v.weight', 'o.weight'],
  );
});

test('DeepSeek sequence-level balance loss matches its MoEGate formula', () => {
  const [B, T, E, k] = [2, 3, 4, 2];
  const logits = randn([B * T, E], { rng: new Rng(21) });
  const got = sequenceBalanceLoss(logits, B, k).item();
  const l = logits.data();
  let want = 0;
  for (let b = 0; b < B; b++) {
    const ce = new Array<number>(E).fill(0);
    const pbar = new Array<number>(E).fill(0);
    for (let t = 0; t < T; t++) {
      const row = Array.from(l.subarray((b * T + t) * E, (b * T + t + 1) * E));
      const z = row.reduce((s, x) => s + Math.exp(x), 0);
      const p = row.map((x) => Math.exp(x) / z);
      p.forEach((v, e) => (pbar[e]! += v / T));
      [...p.keys()]
        .sort((i, j) => p[j]! - p[i]!)
        .slice(0, k)
        .forEach((e) => (ce[e]! += 1));
    }
    want += ce.reduce((s, c, e) => s + (c / ((T * k) / E)) * pbar[e]!, 0) / B;
  }
  close([got], [want], 1e-5);
});
