// GPT-1/GPT-2 "Conv1D": a linear layer whose weight is stored [in, out] (transposed vs nn.Linear), as
// transformers' pytorch_utils.Conv1D does. Kept as its own layer so checkpoints load without transposes.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { linear, transpose } from '../ops/index.js';
import { Module, initNormal, initZeros } from './module.js';

export class Conv1D extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean; std?: number; rng?: Rng } = {},
  ) {
    super();
    this.param('weight', initNormal([inFeatures, outFeatures], opts.std ?? 0.02, opts.rng ?? new Rng(0)));
    if (opts.bias ?? true) this.param('bias', initZeros([outFeatures]));
    else this.noParam('bias');
  }
  /** x [..., in] -> [..., out]; transposing the [in, out] weight is a free view */
  forward(x: Tensor): Tensor {
    return linear(x, transpose(this.p('weight')), this.pOpt('bias'));
  }
  /** the projection without its bias, and the bias (null if none), like Linear.unbiased */
  unbiased(x: Tensor): [Tensor, Tensor | null] {
    return [linear(x, transpose(this.p('weight')), null), this.pOpt('bias')];
  }
}

/** Anything mapping [..., in] -> [..., out] (Linear or Conv1D). */
export interface Projection extends Module {
  forward(x: Tensor): Tensor;
}

export { Container, registerAt } from './tree.js';
