// Fallbacks live in one place: a fast backend's missing, unsupported (by dtype) or declined kernels
// run the reference kernel; supported calls run the fast kernel and nothing else.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DType, FastKernels, KernelName } from '../../src/backend/backend.js';
import { ReferenceBackend } from '../../src/backend/reference/backend.js';
import { kernelFor } from '../../src/backend/dispatch.js';
import { setBackend, getBackend } from '../../src/tensor/engine.js';
import { tensor, exp, add } from '../../src/ops/index.js';

/** a reference backend whose only fast kernel is `unary`: float32 only, contiguous only, counting calls */
function fakeFast(): Backend & { calls: string[] } {
  const base = new ReferenceBackend();
  const calls: string[] = [];
  const kernels: FastKernels = {
    unary: (op, x, out) => {
      if (x.strides[x.strides.length - 1] !== 1) return false; // declines a layout it lacks
      calls.push(op);
      base.kernels.unary(op, x, out);
    },
  };
  return Object.assign(Object.create(base) as Backend, {
    name: 'fake-fast',
    kernels,
    calls,
    supports: (name: KernelName, d: readonly DType[]) => name === 'unary' && d.every((x) => x === 'float32'),
  });
}

test('dispatch: fast when supported, reference when missing, unsupported or declined', () => {
  const prev = getBackend();
  const fast = fakeFast();
  setBackend(fast);
  try {
    const x = tensor([0, 1, 2]);
    assert.deepEqual(
      exp(x)
        .toList()
        .map((v) => +v.toFixed(4)),
      [1, 2.7183, 7.3891],
    );
    assert.deepEqual(fast.calls, ['exp'], 'the fast kernel ran');
    const h = tensor([3, -1], { dtype: 'int32' });
    const ho = tensor([9, 9], { dtype: 'int32' });
    kernelFor(fast, 'unary')('neg', h.view(), ho.view());
    assert.equal(fast.calls.length, 1, 'int32 is not supported: reference ran');
    assert.deepEqual(ho.toList(), [-3, 1]);
    const strided = tensor([
      [1, 2],
      [3, 4],
    ]).transpose(0, 1);
    assert.deepEqual(
      exp(strided)
        .toList()
        .map((v) => Math.round(v)),
      [3, 20, 7, 55],
    );
    assert.equal(fast.calls.length, 1, 'the declined layout ran on the reference');
    assert.deepEqual(add(x, 1).toList(), [1, 2, 3], 'a kernel the backend lacks runs on the reference');
  } finally {
    setBackend(prev);
  }
});
