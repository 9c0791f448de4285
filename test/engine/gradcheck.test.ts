// Every differentiable op against central finite differences in float64.
import { test } from 'node:test';
import { gradcheck, inF64, leaf } from '../helpers/gradcheck.js';
import * as O from '../../src/ops/index.js';
import { UNARY_OPS } from '../../src/backend/backend.js';
import { Rng } from '../../src/tensor/random.js';
import { checkpoint } from '../../src/autograd/checkpoint.js';
import { tensor } from '../../src/ops/index.js';

const NON_DIFF = new Set(['sign', 'floor', 'not']);

test('unary ops', () => {
  for (const op of UNARY_OPS) {
    if (NON_DIFF.has(op)) continue;
    const positive = ['log', 'sqrt', 'rsqrt', 'reciprocal', 'log1p'].includes(op);
    const x = inF64(() => (positive ? O.add(O.abs(leaf([3, 5], 1)), 0.5).detach() : leaf([3, 5], 1)));
    x.requiresGrad = true;
    gradcheck(op, (t) => O.unary(op, t), [x]);
  }
});

test('binary ops with broadcasting', () => {
  for (const op of ['add', 'sub', 'mul', 'div', 'maximum', 'minimum'] as const) {
    const [a, b] = inF64(() => [leaf([2, 3, 4], 2), leaf([3, 1], 3)]);
    gradcheck(op, (x, y) => O.binary(op, x, y), [a, b]);
  }
  const [a, b] = inF64(() => [O.add(O.abs(leaf([4, 3], 4)), 0.5).detach(), leaf([3], 5)]);
  a.requiresGrad = true;
  gradcheck('pow', (x, y) => O.pow(x, y), [a, b]);
  gradcheck('pow scalar', (x) => O.pow(x, 3), [a]);
  gradcheck('scalar first', (x) => O.sub(2, O.div(1, x)), [a]);
});

test('where and clamp', () => {
  const [a, b] = inF64(() => [leaf([3, 4], 6), leaf([4], 7)]);
  gradcheck('where', (x, y) => O.where(O.gt(x, 0), x, y), [a, b]);
  gradcheck('clamp', (x) => O.clamp(x, -0.5, 0.7), [a]);
});

test('reductions', () => {
  const x = inF64(() => leaf([3, 4, 5], 8));
  gradcheck('sum all', (t) => O.sum(t), [x]);
  gradcheck('sum axes', (t) => O.sum(t, [0, 2]), [x]);
  gradcheck('sum keepdim', (t) => O.sum(t, 1, true), [x]);
  gradcheck('mean', (t) => O.mean(t, -1), [x]);
  gradcheck('max', (t) => O.max(t, 1), [x]);
  gradcheck('min', (t) => O.min(t, [0, 2]), [x]);
  gradcheck('logsumexp', (t) => O.logsumexp(t, -1), [x]);
  gradcheck('variance', (t) => O.variance(t, [1, 2], false, 1), [x]);
});

test('matmul: plain, transposed, batched, broadcast, vectors', () => {
  const [a, b, c, v] = inF64(() => [leaf([2, 3, 4], 9), leaf([4, 5], 10), leaf([2, 5, 4], 11), leaf([4], 12)]);
  gradcheck('matmul broadcast', (x, y) => O.matmul(x, y), [a, b]);
  gradcheck('matmul transB', (x, y) => O.matmul(x, y, { transB: true }), [a, c]);
  gradcheck('matmul transA view', (x, y) => O.matmul(O.transpose(x), y), [a, inF64(() => leaf([2, 3, 5], 45))]);
  gradcheck('matmul vector', (x, y) => O.matmul(x, y), [a, v]);
  gradcheck('linear', (x, w, bb) => O.linear(x, w, bb), [a, inF64(() => leaf([6, 4], 13)), inF64(() => leaf([6], 14))]);
});

test('movement ops', () => {
  const x = inF64(() => leaf([2, 3, 4], 15));
  const y = inF64(() => leaf([2, 2, 4], 16));
  gradcheck('reshape', (t) => O.reshape(t, [4, -1]), [x]);
  gradcheck('permute+reshape (copy)', (t) => O.reshape(O.permute(t, [2, 0, 1]), [8, 3]), [x]);
  gradcheck('expand', (t) => O.expand(O.unsqueeze(t, 0), [3, 2, 3, 4]), [x]);
  gradcheck('slice step', (t) => O.slice(t, 2, 1, 4, 2), [x]);
  gradcheck('slice negative', (t) => O.slice(t, 1, -2), [x]);
  gradcheck(
    'pad',
    (t) =>
      O.pad(t, [
        [0, 0],
        [1, 2],
        [0, 1],
      ]),
    [x],
  );
  gradcheck('concat', (a, b) => O.concat([a, b], 1), [x, y]);
  gradcheck('stack', (a) => O.stack([a, O.mul(a, 2)], 1), [x]);
  gradcheck('split', (a) => O.mul(O.split(a, [1, 3], 2)[1]!, 3), [x]);
  gradcheck('squeeze/flatten', (a) => O.flatten(O.squeeze(O.unsqueeze(a, 1), 1), 1), [x]);
  gradcheck('contiguous of view', (a) => O.contiguous(O.transpose(a, 0, 2)), [x]);
  gradcheck('tril/triu', (a) => O.add(O.tril(a, 1), O.triu(a, 2)), [x]);
  gradcheck('cumsum', (a) => O.cumsum(a, 1), [x]);
});

test('softmax, log-softmax, norms', () => {
  const x = inF64(() => leaf([3, 7], 17));
  gradcheck('softmax', (t) => O.softmax(t, -1), [x]);
  gradcheck('softmax axis 0', (t) => O.softmax(t, 0), [x]);
  gradcheck('logSoftmax', (t) => O.logSoftmax(t, -1), [x]);
  const [w, b] = inF64(() => [leaf([7], 18, 0.5, 1), leaf([7], 19)]);
  gradcheck('layerNorm', (t, ww, bb) => O.layerNorm(t, ww, bb, 1e-5), [x, w, b]);
  gradcheck('layerNorm no affine', (t) => O.layerNorm(t, null, null), [x]);
  gradcheck('rmsNorm', (t, ww) => O.rmsNorm(t, ww, 1e-6), [x, w]);
});

test('fused attention: masks, GQA, Dk != Dv, bias', () => {
  const [q, k, v] = inF64(() => [leaf([2, 4, 5, 3], 20), leaf([2, 2, 6, 3], 21), leaf([2, 2, 6, 2], 22)]);
  const kvLen = inF64(() => tensor(new Int32Array([6, 4])));
  const bias = inF64(() => O.randn([1, 4, 5, 6], { rng: new Rng(3) }));
  gradcheck('attention full', (a, b, c) => O.attention(a, b, c), [q, k, v]);
  gradcheck('attention causal+window', (a, b, c) => O.attention(a, b, c, { causal: true, window: 3 }), [q, k, v]);
  gradcheck('attention kvLen+bias', (a, b, c) => O.attention(a, b, c, { kvLen, bias, scale: 0.7 }), [q, k, v]);
  const lb = inF64(() => leaf([1, 4, 5, 6], 23));
  gradcheck('attention learned bias (composed path)', (a, b, c, d) => O.attention(a, b, c, { bias: d, causal: true }), [
    q,
    k,
    v,
    lb,
  ]);
});

test('cross-entropy with ignore index and label smoothing', () => {
  const logits = inF64(() => leaf([2, 3, 5], 24));
  const t = inF64(() => tensor(new Int32Array([1, 4, -100, 0, 2, 3]), { shape: [2, 3] }));
  gradcheck('ce', (z) => O.crossEntropy(z, t), [logits]);
  gradcheck('ce smoothing', (z) => O.crossEntropy(z, t, { labelSmoothing: 0.1 }), [logits]);
  gradcheck('ce none', (z) => O.crossEntropy(z, t, { reduction: 'none' }), [logits]);
});

test('indexing: embedding, indexSelect, scatterAdd, gatherLast, topk', () => {
  const w = inF64(() => leaf([6, 3], 25));
  const ids = inF64(() => tensor(new Int32Array([1, 5, 1, 0]), { shape: [2, 2] }));
  gradcheck('embedding (repeated ids)', (x) => O.embedding(x, ids), [w]);
  const idx = inF64(() => tensor(new Int32Array([2, 0, 2])));
  gradcheck('indexSelect axis 1', (x) => O.indexSelect(x, 1, idx), [inF64(() => leaf([2, 3, 2], 26))]);
  const [x, src] = inF64(() => [leaf([4, 3], 27), leaf([3, 3], 28)]);
  gradcheck('scatterAdd', (a, b) => O.scatterAdd(a, 0, idx, b), [x, src]);
  const gi = inF64(() => tensor(new Int32Array([2, 0, 1, 1]), { shape: [2, 2] }));
  gradcheck('gatherLast', (a) => O.gatherLast(a, gi), [inF64(() => leaf([2, 3], 29))]);
  gradcheck('topk values', (a) => O.topk(a, 2).values, [inF64(() => leaf([3, 5], 30))]);
  gradcheck('dropout (fixed mask)', (a) => O.dropout(a, 0.3, true, new Rng(5)), [inF64(() => leaf([4, 4], 31))]);
});

test('Mamba primitives: causal conv1d and selective scan', () => {
  const [x, w, b] = inF64(() => [leaf([2, 3, 6], 32), leaf([3, 4], 33), leaf([3], 34)]);
  gradcheck('conv1dCausal', (a, ww, bb) => O.conv1dCausal(a, ww, bb), [x, w, b]);
  const B = 2,
    T = 5,
    C = 3,
    N = 4;
  const xs = inF64(() => leaf([B, T, C], 35));
  const dt = inF64(() => O.add(O.abs(leaf([B, T, C], 36, 0.3)), 0.05).detach());
  dt.requiresGrad = true;
  const A = inF64(() => O.neg(O.add(O.abs(leaf([C, N], 37)), 0.2)).detach());
  A.requiresGrad = true;
  const [Bm, Cm, D, h0] = inF64(() => [leaf([B, T, N], 38), leaf([B, T, N], 39), leaf([C], 40), leaf([B, C, N], 41)]);
  gradcheck('selectiveScan', (a, d, aa, bb, cc, dd, hh) => O.selectiveScan(a, d, aa, bb, cc, dd, hh).y, [
    xs,
    dt,
    A,
    Bm,
    Cm,
    D,
    h0,
  ]);
});

test('gradient checkpointing gives the same gradients', () => {
  const [x, w] = inF64(() => [leaf([3, 4], 42), leaf([4, 4], 43)]);
  const block = (t: ReturnType<typeof leaf>) => O.tanh(O.matmul(O.gelu(O.matmul(t, w)), w));
  gradcheck('checkpoint', (a) => checkpoint((t) => block(t), [a], [w]), [x]);
});

test('low-precision casts pass gradients through', () => {
  const x = inF64(() => leaf([3, 3], 44));
  gradcheck('cast float16 roundtrip', (a) => O.cast(O.cast(a, 'float16'), 'float32'), [x], {
    rtol: 1e-2,
    atol: 1e-2,
    eps: 1e-1,
  });
});
