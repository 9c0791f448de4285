// Forward semantics of the op layer: values, views, broadcasting, dtypes, errors, printing.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as O from '../../src/ops/index.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { f16ToF32, f32ToF16, bf16ToF32, f32ToBf16 } from '../../src/backend/dtype.js';
import { Rng, manualSeed } from '../../src/tensor/random.js';

const close = (a: number[], b: number[], tol = 1e-5) => {
  assert.equal(a.length, b.length, `length ${a.length} vs ${b.length}`);
  a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) <= tol * (1 + Math.abs(b[i]!)), `[${i}] ${x} vs ${b[i]}`));
};

test('creation: tensor, zeros, ones, full, arange, seeded random', () => {
  assert.deepEqual(
    O.tensor([
      [1, 2],
      [3, 4],
    ]).toArray(),
    [
      [1, 2],
      [3, 4],
    ],
  );
  assert.deepEqual(O.zeros([2, 1]).toList(), [0, 0]);
  assert.deepEqual(O.full([3], 7, 'int32').toList(), [7, 7, 7]);
  assert.deepEqual(O.arange(2, 8, 2).toList(), [2, 4, 6]);
  assert.deepEqual(O.tensor([true, false]).dtype, 'bool');
  const a = O.randn([5], { rng: new Rng(7) }).toList();
  const b = O.randn([5], { rng: new Rng(7) }).toList();
  assert.deepEqual(a, b);
  manualSeed(3);
  const c = O.rand([4]).toList();
  manualSeed(3);
  assert.deepEqual(O.rand([4]).toList(), c);
  assert.throws(() => O.tensor([[1, 2], [3]]), /ragged/);
});

test('views share storage: reshape, permute, slice, expand, squeeze', () => {
  const x = O.arange(24, undefined, 1, 'float32').reshape(2, 3, 4);
  const p = x.permute(2, 0, 1);
  assert.equal(p.storage, x.storage);
  assert.deepEqual(p.shape, [4, 2, 3]);
  assert.equal(p.toArray() instanceof Array, true);
  assert.deepEqual((p.toArray() as number[][][])[1]![0], [1, 5, 9]);
  const s = x.slice(2, 1, 4, 2);
  assert.equal(s.storage, x.storage);
  assert.deepEqual(s.toList(), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]);
  const e = O.tensor([1, 2, 3]).reshape(3, 1).expand(3, 2);
  assert.deepEqual(e.toList(), [1, 1, 2, 2, 3, 3]);
  assert.deepEqual(e.strides, [1, 0]);
  const r = x.transpose(0, 2).reshape(-1); // not viewable: copies
  assert.notEqual(r.storage, x.storage);
  assert.equal(r.toList()[1], 12);
  assert.deepEqual(x.unsqueeze(0).squeeze(0).shape, [2, 3, 4]);
});

test('broadcasting arithmetic, comparisons, where, int32', () => {
  const a = O.tensor([
    [1, 2, 3],
    [4, 5, 6],
  ]);
  const b = O.tensor([10, 20, 30]);
  assert.deepEqual(a.add(b).toList(), [11, 22, 33, 14, 25, 36]);
  assert.deepEqual(a.gt(3).toList(), [0, 0, 0, 1, 1, 1]);
  assert.deepEqual(O.where(a.gt(3), a, 0).toList(), [0, 0, 0, 4, 5, 6]);
  const i = O.arange(4);
  assert.equal(i.mul(3).dtype, 'int32');
  assert.deepEqual(i.mul(3).toList(), [0, 3, 6, 9]);
  assert.equal(i.div(2).dtype, 'float32');
  assert.throws(() => O.add(O.zeros([2, 3]), O.zeros([4])), /add: shapes \[2, 3\] and \[4\] cannot be broadcast/);
});

test('unary math matches Math', () => {
  const xs = [-2.5, -0.3, 0.7, 3];
  const x = O.tensor(xs);
  close(x.exp().toList(), xs.map(Math.exp));
  close(x.tanh().toList(), xs.map(Math.tanh));
  close(
    x.sigmoid().toList(),
    xs.map((v) => 1 / (1 + Math.exp(-v))),
  );
  close(
    x.silu().toList(),
    xs.map((v) => v / (1 + Math.exp(-v))),
  );
  close(x.gelu().toList(), [-0.015524, -0.114627, 0.530625, 2.99595], 1e-5);
  close(x.gelu('tanh').toList(), [-0.015084, -0.114629, 0.53057, 2.996363], 1e-5);
  close(
    x.softplus().toList(),
    xs.map((v) => Math.log1p(Math.exp(v))),
  );
});

test('reductions: sum/mean/max/argmax/logsumexp/variance over axes', () => {
  const x = O.tensor([
    [1, 5, 3],
    [4, 2, 6],
  ]);
  assert.deepEqual(x.sum().toList(), [21]);
  assert.deepEqual(x.sum(0).toList(), [5, 7, 9]);
  assert.deepEqual(x.max(1, true).shape, [2, 1]);
  assert.deepEqual(x.max(1).toList(), [5, 6]);
  assert.deepEqual(x.argmax(1).toList(), [1, 2]);
  assert.deepEqual(x.min([0, 1]).toList(), [1]);
  close(x.mean(1).toList(), [3, 4]);
  close(x.logsumexp(1).toList(), [
    Math.log(Math.exp(1) + Math.exp(5) + Math.exp(3)),
    Math.log(Math.exp(4) + Math.exp(2) + Math.exp(6)),
  ]);
  close(x.variance(1, false, 1).toList(), [4, 4]);
  const y = O.randn([3, 4, 5], { rng: new Rng(1) });
  close(y.sum([0, 2]).toList(), y.permute(1, 0, 2).reshape(4, 15).sum(1).toList(), 1e-5);
  assert.deepEqual(O.full([2], -Infinity).reshape(1, 2).logsumexp(1).toList(), [-Infinity]);
});

test('matmul shapes: batched broadcast, vectors, transposed views, errors', () => {
  const a = O.randn([2, 3, 4], { rng: new Rng(2) });
  const b = O.randn([4, 5], { rng: new Rng(3) });
  const c = a.matmul(b);
  assert.deepEqual(c.shape, [2, 3, 5]);
  const ref = O.stack([a.slice(0, 0, 1).squeeze(0).matmul(b), a.slice(0, 1, 2).squeeze(0).matmul(b)]);
  close(c.toList(), ref.toList());
  const bt = O.randn([5, 4], { rng: new Rng(4) });
  close(a.matmul(bt.transpose()).toList(), a.matmul(bt.transpose().contiguous()).toList());
  assert.deepEqual(O.matmul(O.ones([4]), O.ones([4])).shape, []);
  assert.throws(() => O.matmul(a, O.zeros([3, 5])), /matmul: inner dimensions differ: a \[2, 3, 4\] @ b \[3, 5\]/);
});

test('concat, split, stack, pad, tril, cumsum, topk, oneHot', () => {
  const a = O.tensor([
    [1, 2],
    [3, 4],
  ]);
  const b = O.tensor([[5, 6]]);
  assert.deepEqual(O.concat([a, b], 0).toList(), [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(
    O.split(O.arange(5), [2, 3]).map((t) => t.toList()),
    [
      [0, 1],
      [2, 3, 4],
    ],
  );
  assert.deepEqual(O.stack([a, a], 2).shape, [2, 2, 2]);
  assert.deepEqual(
    O.pad(
      b,
      [
        [1, 0],
        [0, 1],
      ],
      9,
    ).toList(),
    [9, 9, 9, 5, 6, 9],
  );
  assert.deepEqual(O.tril(O.ones([3, 3])).toList(), [1, 0, 0, 1, 1, 0, 1, 1, 1]);
  assert.deepEqual(O.cumsum(O.tensor([1, 2, 3, 4])).toList(), [1, 3, 6, 10]);
  const { values, indices } = O.topk(O.tensor([[3, 1, 4, 1, 5]]), 3);
  assert.deepEqual(values.toList(), [5, 4, 3]);
  assert.deepEqual(indices.toList(), [4, 2, 0]);
  assert.deepEqual(O.oneHot(O.tensor(new Int32Array([2, 0])), 3).toList(), [0, 0, 1, 1, 0, 0]);
  assert.throws(() => O.concat([a, O.zeros([1, 3])], 0), /concat: tensor 1 has shape \[1, 3\]/);
});

test('float16 / bfloat16 storage: conversion and round-to-nearest-even', () => {
  assert.equal(f16ToF32(f32ToF16(1 / 3)), 0.333251953125);
  assert.equal(f16ToF32(f32ToF16(65520)), Infinity);
  assert.equal(f16ToF32(f32ToF16(5.96e-8)), 5.960464477539063e-8); // smallest subnormal
  assert.equal(bf16ToF32(f32ToBf16(1.00390625)), 1); // tie rounds to even
  assert.equal(bf16ToF32(f32ToBf16(1.01171875)), 1.015625);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  const x = O.tensor([0.1, -2.5, 1000.7]);
  const h = x.to('float16');
  assert.equal(h.dtype, 'float16');
  close(h.toList(), [0.0999755859375, -2.5, 1000.5], 0);
  const bsum = x.to('bfloat16').add(x.to('bfloat16'));
  assert.equal(bsum.dtype, 'bfloat16');
  assert.equal(x.to('bfloat16').add(x).dtype, 'float32');
});

test('errors name the op, argument and shapes', () => {
  assert.throws(
    () => O.reshape(O.zeros([2, 3]), [4, 2]),
    /reshape: cannot reshape \[2, 3\] \(6 elements\) to \[4, 2\]/,
  );
  assert.throws(
    () => O.embedding(O.zeros([5, 2]), O.tensor(new Int32Array([7]))),
    /indexSelect: index 7 at position 0 is out of range \[0, 5\)/,
  );
  assert.throws(
    () => O.crossEntropy(O.zeros([2, 3]), O.tensor(new Int32Array([0, 3]))),
    /crossEntropy: target 3 at flat position 1 is out of range for 3 classes/,
  );
  assert.throws(
    () => O.crossEntropy(O.zeros([2, 3]), O.tensor([0, 1])),
    /crossEntropy: argument 'targets' has dtype float32, expected int32/,
  );
  assert.throws(
    () => O.attention(O.zeros([1, 3, 4, 8]), O.zeros([1, 2, 4, 8]), O.zeros([1, 2, 4, 8])),
    /attention: incompatible shapes q \[1, 3, 4, 8\]/,
  );
  assert.throws(() => O.layerNorm(O.zeros([2, 4]), O.ones([3])), /layerNorm: weight has shape \[3\], expected \[4\]/);
  assert.throws(() => O.zeros([2]).item(), /item: tensor has 2 elements/);
  const t = O.zeros([2]);
  t.dispose();
  assert.throws(() => t.add(1), /was disposed/);
  assert.throws(() => O.zeros([2, 3]).backward(), /does not require grad/);
});

test('printing is readable and elides large tensors', () => {
  const s = O.tensor([
    [1, 2],
    [3, 4],
  ]).toString();
  assert.match(s, /tensor\(\[\[1\.0000, 2\.0000\],\n\s+\[3\.0000, 4\.0000\]\], shape=\[2, 2\], dtype=float32\)/);
  const big = O.zeros([100, 100]).toString();
  assert.ok(big.includes('...') && big.length < 2000);
  assert.ok(O.arange(3).toString().includes('dtype=int32'));
});

test('Tensor.empty and backward accumulation into .grad', () => {
  const w = O.tensor([1, 2, 3], { requiresGrad: true });
  w.mul(w).sum().backward();
  w.mul(3).sum().backward();
  assert.deepEqual(w.grad!.toList(), [5, 7, 9]);
  w.zeroGrad();
  assert.equal(w.grad, null);
  assert.ok(Tensor.empty([2]) instanceof Tensor);
});
