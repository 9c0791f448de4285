// A block of trailing axes broadcast over leading ones (RoPE tables [T, d] against [B, nh, T, d]) runs as
// the fast backends' last-axis row broadcast: the views collapse to [n / R, R], results unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import type { Backend, View } from '../../src/backend/backend.js';
import { collapseRowBroadcast } from '../../src/ops/core.js';
import { add, mul, reshape, sub, tensor, transpose } from '../../src/ops/index.js';
import { getBackend, setBackend } from '../../src/tensor/engine.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { strides } from '../backend/kernel-helpers.js';

const view = (shape: number[], st: number[] = strides(shape)): View => ({
  buf: null as unknown as View['buf'],
  shape,
  strides: st,
  offset: 0,
});

test('collapseRowBroadcast: [2, 3, 4, 5] with a [4, 5] block becomes [6, 20] rows', () => {
  const [a, b, out] = collapseRowBroadcast(view([2, 3, 4, 5]), view([2, 3, 4, 5], [0, 0, 5, 1]), view([2, 3, 4, 5]));
  assert.deepEqual(
    [a.shape, a.strides],
    [
      [6, 20],
      [20, 1],
    ],
  );
  assert.deepEqual(
    [b.shape, b.strides],
    [
      [6, 20],
      [0, 1],
    ],
  );
  assert.deepEqual(
    [out.shape, out.strides],
    [
      [6, 20],
      [20, 1],
    ],
  );
  // the broadcast operand first
  const [a2, b2] = collapseRowBroadcast(view([2, 3, 4], [0, 4, 1]), view([2, 3, 4]), view([2, 3, 4]));
  assert.deepEqual(
    [a2.shape, a2.strides, b2.strides],
    [
      [2, 12],
      [0, 1],
      [12, 1],
    ],
  );
});

test('collapseRowBroadcast leaves other layouts alone', () => {
  const same = (a: View, b: View, out: View) => {
    const r = collapseRowBroadcast(a, b, out);
    assert.ok(r[0] === a && r[1] === b && r[2] === out, `${a.strides} / ${b.strides}`);
  };
  const o = view([2, 3, 4]);
  same(view([2, 3, 4]), view([2, 3, 4]), o); // both dense
  same(view([2, 3, 4]), view([2, 3, 4], [0, 0, 0]), o); // scalar
  same(view([2, 3, 4]), view([2, 3, 4], [0, 1, 0]), o); // a column, not a trailing block
  same(view([2, 3, 4]), view([2, 3, 4], [12, 0, 1]), o); // repeated in the middle
  same(view([2, 3, 4], [12, 1, 3]), view([2, 3, 4], [0, 4, 1]), o); // the other operand is strided
  same(view([3, 4]), view([3, 4], [0, 1]), view([3, 4])); // already 2-D
});

async function onWasm<T>(fn: () => T): Promise<T> {
  const prev: Backend = getBackend();
  const be = await createWasmBackend({ threads: 1 });
  setBackend(be);
  try {
    return fn();
  } finally {
    setBackend(prev);
    await be.dispose();
  }
}

test('binary ops with a trailing block broadcast give the reference results on the wasm backend', async () => {
  const x = Float32Array.from({ length: 2 * 3 * 4 * 5 }, (_, i) => Math.sin(i) * 3);
  const c = Float32Array.from({ length: 4 * 5 }, (_, i) => Math.cos(i) + 0.5);
  const run = () => {
    const a = tensor(x, { shape: [2, 3, 4, 5] });
    const b = tensor(c, { shape: [4, 5] });
    const at = transpose(reshape(a, [2, 4, 3, 5]), 1, 2); // strided: stays on the general path
    return [mul(a, b), add(b, a), sub(a, b), mul(at, b)].map((t) => Array.from(t.data() as Float32Array));
  };
  const want = run(); // reference backend
  const got = await onWasm(run);
  assert.deepEqual(got, want);
});
