// Finite-difference gradient checking on the float64 reference backend.
import assert from 'node:assert/strict';
import { ReferenceBackend } from '../../src/backend/reference/backend.js';
import { getBackend, noGrad, setBackend } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { mul, randn, sum, tensor } from '../../src/ops/index.js';

export const f64 = new ReferenceBackend({ float64: true });

/** run fn with the float64 reference backend as the current backend */
export function inF64<T>(fn: () => T): T {
  const prev = getBackend();
  setBackend(f64);
  try {
    return fn();
  } finally {
    setBackend(prev);
  }
}

/** a float64-backed leaf requiring grad */
export function leaf(shape: number[], seed: number, scale = 1, shift = 0): Tensor {
  const t = randn(shape, { rng: new Rng(seed), std: scale, mean: shift });
  t.requiresGrad = true;
  return t;
}

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  /** check at most this many elements per input (chosen deterministically) */
  maxPerInput?: number;
}

/**
 * Compare autograd gradients of L = sum(f(inputs) * W) (W random, fixed) with central differences.
 * All inputs must be contiguous float32 leaves created on the float64 backend.
 */
export function gradcheck(
  name: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: GradcheckOptions = {},
): void {
  const { eps = 1e-6, atol = 1e-6, rtol = 1e-5, maxPerInput = 24 } = opts;
  inF64(() => {
    const y0 = noGrad(() => f(...inputs));
    const w = randn([...y0.shape], { rng: new Rng(1234) });
    const loss = () => noGrad(() => sum(mul(f(...inputs), w)).item());
    for (const x of inputs) x.zeroGrad();
    sum(mul(f(...inputs), w)).backward();
    inputs.forEach((x, xi) => {
      if (!x.requiresGrad) return;
      assert.ok(x.grad, `${name}: input ${xi} got no gradient`);
      const analytic = x.grad!.toList();
      const host = f64.view(x.storage.buf) as unknown as Float64Array;
      const rng = new Rng(99 + xi);
      const picks =
        x.size <= maxPerInput ? [...Array(x.size).keys()] : Array.from({ length: maxPerInput }, () => rng.int(x.size));
      for (const i of picks) {
        const at = x.offset + i;
        const orig = host[at]!;
        host[at] = orig + eps;
        const lp = loss();
        host[at] = orig - eps;
        const lm = loss();
        host[at] = orig;
        const numeric = (lp - lm) / (2 * eps);
        const a = analytic[i]!;
        assert.ok(
          Math.abs(a - numeric) <= atol + rtol * Math.abs(numeric),
          `${name}: d/d(input ${xi})[${i}] analytic ${a} vs numeric ${numeric}`,
        );
      }
    });
  });
}

export { tensor };
