// The ownership model: a 10,000-step training loop inside `tidy` runs in flat memory.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as O from '../../src/ops/index.js';
import { getBackend, keep, tidy } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';

test('10,000 training steps in flat memory (tidy + fused AdamW)', () => {
  const backend = getBackend();
  const rng = new Rng(0);
  const w1 = keep(O.randn([8, 16], { rng, std: 0.3 }).requireGrad());
  const w2 = keep(O.randn([16, 4], { rng, std: 0.3 }).requireGrad());
  const params = [w1, w2];
  const state = params.map((p) => ({ m: keep(O.zerosLike(p)), v: keep(O.zerosLike(p)) }));
  const x = keep(O.randn([32, 8], { rng }));
  const y = keep(O.tensor(new Int32Array(Array.from({ length: 32 }, (_, i) => i % 4))));
  const step = (i: number) =>
    tidy(() => {
      const logits = O.matmul(O.gelu(O.matmul(x, w1)), w2);
      const loss = O.crossEntropy(logits, y);
      loss.backward();
      params.forEach((p, j) => {
        O.adamwUpdate(p, p.grad!, state[j]!.m, state[j]!.v, {
          lr: 1e-2,
          beta1: 0.9,
          beta2: 0.99,
          eps: 1e-8,
          weightDecay: 0.01,
          step: i + 1,
        });
        p.zeroGrad();
      });
      return loss.item();
    });
  const first = step(0);
  let baseline = 0;
  let last = first;
  for (let i = 1; i < 10_000; i++) {
    last = step(i);
    if (i === 100) baseline = backend.bytesInUse();
    if (i > 100 && i % 1000 === 0) assert.equal(backend.bytesInUse(), baseline, `memory grew at step ${i}`);
  }
  assert.equal(backend.bytesInUse(), baseline);
  assert.ok(last < first * 0.1, `loss should fall: ${first} -> ${last}`);
});

test('tidy keeps returned tensors (nested in objects) and disposes the rest', () => {
  const before = getBackend().bytesInUse();
  const out = tidy(() => {
    const a = O.ones([100]);
    const b = a.mul(2);
    return { b, list: [a.add(1)] };
  });
  assert.equal(out.b.toList()[0], 2);
  assert.equal(out.list[0]!.toList()[0], 2);
  assert.equal(getBackend().bytesInUse() - before, 2 * 400);
  out.b.dispose();
  out.list[0]!.dispose();
  assert.equal(getBackend().bytesInUse(), before);
});

test('views keep storage alive until the last one is disposed', () => {
  const before = getBackend().bytesInUse();
  const a = O.ones([10]);
  const v: Tensor = a.reshape(2, 5);
  a.dispose();
  assert.equal(
    tidy(() => v.sum().item()),
    10,
  );
  v.dispose();
  assert.equal(getBackend().bytesInUse(), before);
});
