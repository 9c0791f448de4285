// Activation functions by config name (see `Activation` in src/models/config.ts).
import type { Tensor } from '../tensor/tensor.js';
import { gelu, relu, silu } from '../ops/index.js';
import type { Activation } from './config.js';

const ACTIVATIONS: { [A in Activation]: (x: Tensor) => Tensor } = {
  relu,
  gelu: (x) => gelu(x, 'none'),
  gelu_tanh: (x) => gelu(x, 'tanh'),
  silu,
};

export function activate(x: Tensor, act: Activation): Tensor {
  const f = ACTIVATIONS[act];
  if (!f)
    throw new Error(
      `activate: unknown activation ${JSON.stringify(act)} (known: ${Object.keys(ACTIVATIONS).join(', ')})`,
    );
  return f(x);
}
