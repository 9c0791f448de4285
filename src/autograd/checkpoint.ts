// Gradient checkpointing: run a block without keeping its activations, and recompute them
// during backward. Memory for the block drops from all intermediates to its inputs only.
import type { Tensor } from '../tensor/tensor.js';
import { isGradEnabled, noGrad, tidy, track, withGrad } from '../tensor/engine.js';
import { record } from '../ops/core.js';
import { backward } from './backward.js';
import { defaultRng } from '../tensor/random.js';

/**
 * y = fn(...inputs), recomputed in backward. `params` are the leaves fn reads through closure
 * (the block's parameters): their gradients accumulate into `.grad` during the recomputation.
 */
export function checkpoint(fn: (...xs: Tensor[]) => Tensor, inputs: Tensor[], params: Tensor[]): Tensor {
  if (!isGradEnabled() || ![...inputs, ...params].some((t) => t.requiresGrad)) return fn(...inputs);
  const rngState = defaultRng().getState(); // replayed in the recomputation: same dropout masks
  const out = noGrad(() => tidy(() => fn(...inputs)));
  return record(out, 'checkpoint', [...inputs, ...params], (g) => {
    return tidy(() => {
      const leaves = inputs.map((x) => {
        const d = x.detach();
        d.requiresGrad = x.requiresGrad;
        return d;
      });
      const now = defaultRng().getState();
      defaultRng().setState(rngState);
      const y = withGrad(() => fn(...leaves));
      defaultRng().setState(now);
      backward(y, g);
      const grads = leaves.map((l) => l.grad);
      for (const l of leaves) l.grad = null;
      for (const t of grads) if (t) track(t); // kept by accumulation; hand back to the scopes
      return [...grads, ...params.map(() => null)];
    });
  });
}
