// One transformer layer: attention (standard or MLA) + feed-forward (MLP, GLU or MoE), wired pre-norm
// (x + f(norm(x))), post-norm (norm(x + f(x))) or parallel (x + attn(norm1(x)) + ffn(norm2(x))).
// Child names come from the family (GPT `ln_1`/`attn`/`ln_2`/`mlp`; Llama `input_layernorm`/`self_attn`/
// `post_attention_layernorm`/`mlp`; Mixtral `block_sparse_moe`).
import type { Tensor } from '../tensor/tensor.js';
import { add, dropout } from '../ops/index.js';
import type { ResidualKind } from './config.js';
import { Module } from './module.js';
import type { Norm } from './norm.js';
import type { AttentionContext } from './attention.js';
import { MoE } from './moe.js';
import type { DenseFfn } from './ffn.js';

export interface BlockNames {
  norm1: string;
  attn: string;
  norm2: string;
  ffn: string;
}

export type AttentionLike = Module & { forward(x: Tensor, ctx: AttentionContext): Tensor };

export interface BlockOutput {
  x: Tensor;
  /** [N, E] router logits when the FFN is a mixture of experts */
  routerLogits: Tensor | null;
}

export class TransformerLayer extends Module {
  readonly norm1: Norm;
  readonly attn: AttentionLike;
  readonly norm2: Norm;
  readonly ffn: DenseFfn | MoE;

  constructor(
    readonly residual: ResidualKind,
    names: BlockNames,
    parts: { norm1: Norm; attn: AttentionLike; norm2: Norm; ffn: DenseFfn | MoE },
    readonly residualDropout = 0,
  ) {
    super();
    // registration order follows transformers' modules (norm, attention, norm, mlp)
    this.norm1 = this.child(names.norm1, parts.norm1);
    this.attn = this.child(names.attn, parts.attn);
    this.norm2 = this.child(names.norm2, parts.norm2);
    this.ffn = this.child(names.ffn, parts.ffn);
  }

  private drop(x: Tensor): Tensor {
    return dropout(x, this.residualDropout, this.training);
  }

  private runFfn(x: Tensor): { y: Tensor; routerLogits: Tensor | null } {
    if (this.ffn instanceof MoE) {
      const r = this.ffn.forward(x);
      return { y: r.out, routerLogits: r.routerLogits };
    }
    return { y: this.ffn.forward(x), routerLogits: null };
  }

  forward(x: Tensor, ctx: AttentionContext): BlockOutput {
    switch (this.residual) {
      case 'pre': {
        const h = add(x, this.drop(this.attn.forward(this.norm1.forward(x), ctx)));
        const f = this.runFfn(this.norm2.forward(h));
        return { x: add(h, this.drop(f.y)), routerLogits: f.routerLogits };
      }
      case 'post': {
        const h = this.norm1.forward(add(x, this.drop(this.attn.forward(x, ctx))));
        const f = this.runFfn(h);
        return { x: this.norm2.forward(add(h, this.drop(f.y))), routerLogits: f.routerLogits };
      }
      case 'parallel': {
        const a = this.drop(this.attn.forward(this.norm1.forward(x), ctx));
        const f = this.runFfn(this.norm2.forward(x));
        return { x: add(add(x, a), this.drop(f.y)), routerLogits: f.routerLogits };
      }
      default:
        return this.residual satisfies never;
    }
  }
}
