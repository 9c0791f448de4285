// DeepSeek-V3 multi-token prediction module (paper §2.2). Module k combines the previous depth's states
// h (the main model's final states for k = 1) with the embedding of the token k positions ahead:
// h' = eh_proj([enorm(emb) | hnorm(h)]) (the checkpoints and the serving engines concatenate the embedding
// first), runs one transformer block of the main stack's kind over h', and predicts one token further
// through shared_head.norm and the main output head. The embedding and head are the main model's; the V3
// checkpoint stores copies (`embed_tokens`, `shared_head.head`), which the loader drops.
//
// Notation: B batch, T positions, D width.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { concat } from '../ops/index.js';
import type { NormConfig, ResidualKind } from './config.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { makeNorm, type Norm } from './norm.js';
import { TransformerLayer, type AttentionLike, type BlockNames } from './block.js';
import type { DenseFfn } from './ffn.js';
import type { MoE } from './moe.js';

/** `shared_head`: the final norm before the shared output head */
export class MtpHead extends Module {
  readonly norm: Norm;
  constructor(dim: number, norm: NormConfig) {
    super();
    this.norm = this.child('norm', makeNorm(dim, norm));
  }
}

/** One MTP depth: a transformer layer (`self_attn`, `mlp`, its norms) plus enorm, hnorm, eh_proj, shared_head. */
export class MtpLayer extends TransformerLayer {
  readonly enorm: Norm;
  readonly hnorm: Norm;
  readonly eh_proj: Linear;
  readonly shared_head: MtpHead;

  constructor(
    residual: ResidualKind,
    names: BlockNames,
    parts: { norm1: Norm; attn: AttentionLike; norm2: Norm; ffn: DenseFfn | MoE },
    spec: { dim: number; norm: NormConfig; std: number; rng: Rng; residualDropout?: number },
  ) {
    super(residual, names, parts, spec.residualDropout ?? 0);
    const d = spec.dim;
    this.enorm = this.child('enorm', makeNorm(d, spec.norm));
    this.hnorm = this.child('hnorm', makeNorm(d, spec.norm));
    this.eh_proj = this.child('eh_proj', new Linear(2 * d, d, { bias: false, std: spec.std, rng: spec.rng }));
    this.shared_head = this.child('shared_head', new MtpHead(d, spec.norm));
  }

  /** prev [B, T, D] states of the previous depth, emb [B, T, D] embeddings of the tokens k ahead -> [B, T, D] */
  combine(prev: Tensor, emb: Tensor): Tensor {
    return this.eh_proj.forward(concat([this.enorm.forward(emb), this.hnorm.forward(prev)], -1)); // (B, T, 2D) -> (B, T, D)
  }
}
