// One transformer layer: attention (standard or MLA) + feed-forward (MLP, GLU or MoE), wired pre-norm
// (x + f(norm(x))), post-norm (norm(x + f(x))), parallel (x + attn(norm1(x)) + ffn(norm2(x))) or sandwich
// (x + postNorm(f(norm(x))), Gemma 2).
// Child names come from the family (GPT `ln_1`/`attn`/`ln_2`/`mlp`; Llama `input_layernorm`/`self_attn`/
// `post_attention_layernorm`/`mlp`; Mixtral `block_sparse_moe`).
import type { Tensor } from '../tensor/tensor.js';
import { add, addN, dropout, mul } from '../ops/index.js';
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
  /** 'sandwich' blocks: the norms after attention and after the FFN (Gemma 2 `post_attention_layernorm`,
   * `post_feedforward_layernorm`; its pre-FFN norm is then `norm2` = `pre_feedforward_layernorm`) */
  postNorm1?: string;
  postNorm2?: string;
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
  readonly postNorm1: Norm | null = null;
  readonly postNorm2: Norm | null = null;
  /** multiplier of each residual branch (MiniCPM's scale_depth / sqrt(layers); 1 elsewhere) */
  readonly branchScale: number;

  constructor(
    readonly residual: ResidualKind,
    names: BlockNames,
    parts: { norm1: Norm; attn: AttentionLike; norm2: Norm; ffn: DenseFfn | MoE; postNorm1?: Norm; postNorm2?: Norm },
    readonly residualDropout = 0,
    opts: { branchScale?: number } = {},
  ) {
    super();
    // registration order follows transformers' modules (norm, attention, norm, mlp)
    this.norm1 = this.child(names.norm1, parts.norm1);
    this.attn = this.child(names.attn, parts.attn);
    this.norm2 = this.child(names.norm2, parts.norm2);
    this.ffn = this.child(names.ffn, parts.ffn);
    this.branchScale = opts.branchScale ?? 1;
    if (residual !== 'sandwich') return;
    if (!parts.postNorm1 || !parts.postNorm2 || !names.postNorm1 || !names.postNorm2)
      throw new Error("TransformerLayer: a 'sandwich' block needs postNorm1 / postNorm2 norms and names");
    this.postNorm1 = this.child(names.postNorm1, parts.postNorm1);
    this.postNorm2 = this.child(names.postNorm2, parts.postNorm2);
  }

  /** a residual branch's output: scaled (µP depth scaling) and dropped out */
  private drop(x: Tensor): Tensor {
    const y = this.branchScale === 1 ? x : mul(x, this.branchScale);
    return dropout(y, this.residualDropout, this.training);
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
      case 'sandwich': {
        const a = this.postNorm1!.forward(this.attn.forward(this.norm1.forward(x), ctx));
        const h = add(x, this.drop(a));
        const f = this.runFfn(this.norm2.forward(h));
        return { x: add(h, this.drop(this.postNorm2!.forward(f.y))), routerLogits: f.routerLogits };
      }
      case 'parallel': {
        const a = this.drop(this.attn.forward(this.norm1.forward(x), ctx));
        const f = this.runFfn(this.norm2.forward(x));
        return { x: addN(x, a, this.drop(f.y)), routerLogits: f.routerLogits }; // one fused pass
      }
      default:
        return this.residual satisfies never;
    }
  }
}
