// Fused elementwise ops (src/ops/fused.ts): gradients by central finite differences in float64 (the
// fused path: the reference backend has the `fused` kernel), and on the native backend the fused forward
// and gradients against the composed ops they replace, with broadcasting and non-contiguous inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradcheck, inF64, leaf } from '../helpers/gradcheck.js';
import * as O from '../../src/ops/index.js';
import '../../src/autograd/index.js'; // installs Tensor.backward
import { FUSED_ACTIVATIONS, addN, biasActivation, elementwise, gluActivation, setFusion } from '../../src/ops/fused.js';
import { getBackend, setBackend } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { createNativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';

test('gluActivation: finite differences, every activation, broadcast up', () => {
  for (const act of FUSED_ACTIVATIONS) {
    const [g, u, ub] = inF64(() => [leaf([3, 7], 1, 1.5), leaf([3, 7], 2), leaf([7], 3)]);
    gradcheck(`glu ${act}`, (a, b) => gluActivation(a, b, act), [g, u]);
    gradcheck(`glu ${act} broadcast`, (a, b) => gluActivation(a, b, act), [g, ub]);
    const y = inF64(() => gluActivation(g, u, act));
    assert.equal(y.node?.op, `glu_${act}`, 'the fused path ran');
  }
});

test('biasActivation: finite differences, with and without bias, 3-d input', () => {
  for (const act of FUSED_ACTIVATIONS) {
    const [x, b] = inF64(() => [leaf([2, 3, 5], 4, 1.5), leaf([5], 5)]);
    gradcheck(`bias ${act}`, (a, c) => biasActivation(a, c, act), [x, b]);
    gradcheck(`${act} no bias`, (a) => biasActivation(a, null, act), [x]);
    assert.equal(inF64(() => biasActivation(x, b, act)).node?.op, `bias_${act}`);
  }
  inF64(() =>
    assert.throws(
      () => biasActivation(O.zeros([2, 4]), O.zeros([3]), 'gelu'),
      /bias \[3\] does not match the last axis of x \[2, 4\]/,
    ),
  );
});

test('addN: finite differences with broadcasting operands; more inputs than one program takes', () => {
  const xs = inF64(() => [leaf([2, 3, 4], 6), leaf([4], 7), leaf([3, 1], 8), leaf([2, 3, 4], 9)]);
  gradcheck('addN', (...t) => addN(...t), xs);
  const many = inF64(() => Array.from({ length: 11 }, (_, i) => leaf([5], 20 + i)));
  gradcheck('addN 11', (...t) => addN(...t), many);
});

test('elementwise: a program over tensors; bad input is a clear error', () => {
  inF64(() => {
    const x = O.tensor([
      [1, 2],
      [3, 4],
    ]);
    const y = elementwise(
      [
        { op: 'input', index: 0 },
        { op: 'input', index: 1 },
        { op: 'mul', a: 0, b: 1 },
      ],
      [x, O.tensor([10, 100])],
    );
    assert.deepEqual(y.toList(), [10, 200, 30, 400]);
    assert.throws(
      () => elementwise([{ op: 'input', index: 0 }], [O.tensor([1, 2], { dtype: 'int32' })]),
      /input 0 has dtype int32/,
    );
    assert.throws(() => elementwise([{ op: 'input', index: 2 }], [x]), /node 0 reads input 2/);
    assert.throws(() => elementwise([{ op: 'input', index: 0 }], [x, O.zeros([3])]), /cannot be broadcast/);
  });
});

/** forward and input gradients of L = sum(f(...) * w) */
function run(f: (...t: Tensor[]) => Tensor, inputs: Tensor[], seed: number): number[][] {
  for (const x of inputs) x.zeroGrad();
  const y = f(...inputs);
  const w = O.randn([...y.shape], { rng: new Rng(seed) });
  O.sum(O.mul(y, w)).backward();
  return [y.toList() as number[], ...inputs.map((x) => (x.grad ? (x.grad.toList() as number[]) : []))];
}

function closeLists(a: number[][], b: number[][], tol: number, what: string): void {
  a.forEach((xs, i) =>
    xs.forEach((x, j) => {
      const w = b[i]![j]!;
      assert.ok(Math.abs(x - w) <= tol * (1 + Math.abs(w)), `${what}: output ${i}[${j}] ${x} vs ${w}`);
    }),
  );
}

const { addon } = loadNativeAddon();
test(
  'native: fused forward and gradients equal the composed ops; strided and broadcast inputs',
  { skip: addon ? false : 'no addon' },
  () => {
    const prev = getBackend();
    for (const threads of [1, 2]) {
      setBackend(createNativeBackend(addon!, { threads, forceParallel: threads > 1 }));
      try {
        const rng = new Rng(threads);
        const leafN = (shape: number[]) => {
          const t = O.randn(shape, { rng, std: 1.5 });
          t.requiresGrad = true;
          return t;
        };
        for (const act of FUSED_ACTIVATIONS) {
          // gate | up halves of one projection: non-contiguous views
          const gu = leafN([3, 37, 2 * 301]);
          const split = (f: (g: Tensor, u: Tensor) => Tensor) => (t: Tensor) => {
            const [g, u] = O.split(t, [301, 301], -1);
            return f(g!, u!);
          };
          const fused = run(
            split((g, u) => gluActivation(g, u, act)),
            [gu],
            1,
          );
          setFusion(false);
          const composed = run(
            split((g, u) => O.mul(O.unary(act, g), u)),
            [gu],
            1,
          );
          setFusion(true);
          closeLists(fused, composed, 2e-5, `glu ${act} threads=${threads}`);

          const [x, b] = [leafN([4, 9, 257]), leafN([257])];
          const xt = (t: Tensor) => O.transpose(t, 0, 1); // (9, 4, 257), non-contiguous
          const f2 = run((a, c) => biasActivation(xt(a), c, act), [x, b], 2);
          const c2 = run((a, c) => O.unary(act, O.add(xt(a), c)), [x, b], 2);
          closeLists(f2, c2, 2e-5, `bias ${act} threads=${threads}`);
        }
        // expanded views read as their repeated block: the ones-gradient of a plain sum, an expanded bias
        const [gg, uu, bb] = [leafN([6, 33]), leafN([6, 33]), leafN([33])];
        const sumGrads = (f: (a: Tensor, c: Tensor) => Tensor) => {
          for (const t of [gg, uu]) t.zeroGrad();
          O.sum(f(gg, uu)).backward();
          return [gg.grad!.toList() as number[], uu.grad!.toList() as number[]];
        };
        closeLists(
          sumGrads((a, c) => gluActivation(a, c, 'silu')),
          sumGrads((a, c) => O.mul(O.silu(a), c)),
          2e-5,
          'sum-gradient',
        );
        closeLists(
          [addN(gg, O.expand(bb, [6, 33]), O.expand(O.reshape(bb, [1, 1, 33]), [2, 6, 33])).toList() as number[]],
          [O.add(O.add(gg, bb), O.expand(O.reshape(bb, [1, 1, 33]), [2, 6, 33])).toList() as number[]],
          1e-6,
          'expanded inputs',
        );
        const xs = [leafN([2, 5, 300]), leafN([2, 1, 300]), leafN([300]), leafN([1])];
        closeLists(
          run((...t) => addN(...t), xs, 3),
          run((...t) => t.slice(1).reduce((s, v) => O.add(s, v), t[0]!), xs, 3),
          1e-6,
          `addN threads=${threads}`,
        );
      } finally {
        setBackend(prev);
      }
    }
  },
);

test('wasm: the fused path runs there too; setFusion(false) runs the composed ops', async () => {
  const prev = getBackend();
  const be = await createWasmBackend({ threads: 1 });
  setBackend(be);
  try {
    const g = O.randn([4, 8], { rng: new Rng(1) });
    const u = O.randn([4, 8], { rng: new Rng(2) });
    g.requiresGrad = true;
    const y = gluActivation(g, u, 'silu');
    assert.equal(y.node?.op, 'glu_silu');
    setFusion(false);
    const z = gluActivation(g, u, 'silu');
    setFusion(true);
    assert.equal(z.node?.op, 'mul', 'composed: silu then mul');
    closeLists([y.toList() as number[]], [z.toList() as number[]], 1e-6, 'wasm glu');
  } finally {
    setFusion(true);
    setBackend(prev);
    await be.dispose();
  }
});
