// Basic layers: Linear, Embedding, LayerNorm, RMSNorm. PyTorch layouts and parameter names.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { add, embedding, layerNorm, linear, rmsNorm } from '../ops/index.js';
import { Module, initNormal, initOnes, initZeros } from './module.js';

export interface LinearOptions {
  bias?: boolean;
  /** std of the normal init (default 0.02, GPT-2 style) */
  std?: number;
  rng?: Rng;
}

/** y = x Wᵀ + b with W stored [out, in] */
export class Linear extends Module {
  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: LinearOptions = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.param('weight', initNormal([outFeatures, inFeatures], opts.std ?? 0.02, rng));
    if (opts.bias ?? true) this.param('bias', initZeros([outFeatures]));
    else this.noParam('bias');
  }
  forward(x: Tensor): Tensor {
    return linear(x, this.p('weight'), this.pOpt('bias'));
  }
  /** x Wᵀ without the bias, and the bias (null if none): lets a caller fuse the bias into what follows */
  unbiased(x: Tensor): [Tensor, Tensor | null] {
    return [linear(x, this.p('weight'), null), this.pOpt('bias')];
  }
  /** the current [out, in] weight (read at call time, like every parameter) */
  get weight(): Tensor {
    return this.p('weight');
  }
}

export class Embedding extends Module {
  constructor(
    readonly num: number,
    readonly dim: number,
    opts: { std?: number; rng?: Rng } = {},
  ) {
    super();
    this.param('weight', initNormal([num, dim], opts.std ?? 0.02, opts.rng ?? new Rng(0)));
  }
  /** ids int32 [...] -> [..., dim] */
  forward(ids: Tensor): Tensor {
    return embedding(this.p('weight'), ids);
  }
  get weight(): Tensor {
    return this.p('weight');
  }
}

export class LayerNorm extends Module {
  constructor(
    readonly dim: number,
    readonly opts: { eps?: number; bias?: boolean; affine?: boolean } = {},
  ) {
    super();
    if (opts.affine ?? true) this.param('weight', initOnes([dim]));
    else this.noParam('weight');
    if ((opts.affine ?? true) && (opts.bias ?? true)) this.param('bias', initZeros([dim]));
    else this.noParam('bias');
  }
  forward(x: Tensor): Tensor {
    return layerNorm(x, this.pOpt('weight'), this.pOpt('bias'), this.opts.eps ?? 1e-5);
  }
}

export class RMSNorm extends Module {
  /** `unitOffset`: the scale is 1 + weight with weight starting at zero (Gemma), so decay pulls it to 1 */
  readonly unitOffset: boolean;
  constructor(
    readonly dim: number,
    readonly eps = 1e-6,
    opts: { unitOffset?: boolean } = {},
  ) {
    super();
    this.unitOffset = opts.unitOffset ?? false;
    this.param('weight', this.unitOffset ? initZeros([dim]) : initOnes([dim]));
  }
  forward(x: Tensor): Tensor {
    const w = this.p('weight');
    return rmsNorm(x, this.unitOffset ? add(w, 1) : w, this.eps);
  }
}
