// A decoder with a scalar head (a reward model: transformers' *ForSequenceClassification with one label,
// `score.weight`; a PPO value head). The wrapper registers the decoder's own top-level submodules under
// their names, so parameter names stay the decoder's (`transformer.h.0...`) plus `score.weight`.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { indexSelect, reshape, tensor } from '../ops/index.js';
import { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import type { LanguageModel, ModelInputs, ModelOutputs } from '../models/model.js';

export class ScalarHeadModel extends Module implements LanguageModel {
  readonly config: LanguageModel['config'];
  readonly head: Linear;

  constructor(
    readonly lm: LanguageModel,
    readonly headName = 'score',
    seed = 0,
  ) {
    super();
    this.config = lm.config;
    for (const [path, m] of lm.namedModules()) if (path && !path.includes('.')) this.child(path, m);
    if (lm.namedParameters().some(([n]) => !n.includes('.')))
      throw new Error('ScalarHeadModel: the decoder has top-level parameters');
    const D = (lm.config as { hidden?: number }).hidden;
    if (!D) throw new Error(`ScalarHeadModel: the ${lm.config.family} config has no hidden size`);
    this.head = this.child(headName, new Linear(D, 1, { bias: false, std: 1 / Math.sqrt(D), rng: new Rng(seed) }));
  }

  forward(inputs: ModelInputs): ModelOutputs {
    return this.lm.forward(inputs);
  }

  /** hidden (B, T, D) → (B, T) scores */
  scoreAll(hidden: Tensor): Tensor {
    const [B, T] = hidden.shape as [number, number];
    return reshape(this.head.forward(hidden), [B, T]);
  }

  /** hidden (B, T, D), one position per row → (B) scores */
  scoreAt(hidden: Tensor, positions: readonly number[]): Tensor {
    const [B, T, D] = hidden.shape as [number, number, number];
    const idx = tensor(
      Int32Array.from(positions, (p, b) => b * T + p),
      { shape: [B], dtype: 'int32' },
    );
    const h = indexSelect(reshape(hidden, [B * T, D]), 0, idx); // (B, D)
    return reshape(this.head.forward(h), [B]);
  }
}
