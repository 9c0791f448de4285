// DeepSeek-V2 multi-head latent attention (MLA). Queries: q_proj(x), or the low-rank
// q_b_proj(norm(q_a_proj(x))). Keys/values: kv_a_proj_with_mqa(x) = [latent c (r) | k_pe (dr)];
// kv_b_proj(norm(c)) re-expands each head's [k_nope (dn) | v (dv)]; k_pe is ONE rotary key shared by all
// heads. The cache stores only norm(c) and the rotated k_pe (r + dr numbers per token, vs 2·nh·hs), and
// keys/values are re-expanded from the latent at every step.
//
// Notation: B batch, T new tokens, Tk keys, nh heads, r kv latent rank, dn/dr/dv nope/rope/value dims.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { attention, concat, expand, reshape, slice, squeeze, transpose, unsqueeze } from '../ops/index.js';
import type { MlaAttention, NormConfig } from '../models/config.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { makeNorm, type Norm } from './norm.js';
import { applyRope } from './positions.js';
import { attentionOptions } from './masks.js';
import type { AttentionContext } from './attention.js';

export interface MlaSpec {
  dim: number;
  att: MlaAttention;
  /** norm of the q / kv latents (DeepSeek: RMSNorm, eps 1e-6 — its constructor default) */
  latentNorm: NormConfig;
  /** softmax scale (DeepSeek: (dn + dr)^-0.5, times the YaRN mscale² in the reference code) */
  scale: number;
  std?: number;
  rng?: Rng;
}

export class MultiHeadLatentAttention extends Module {
  readonly q_proj: Linear | null = null;
  readonly q_a_proj: Linear | null = null;
  readonly q_a_layernorm: Norm | null = null;
  readonly q_b_proj: Linear | null = null;
  readonly kv_a_proj_with_mqa: Linear;
  readonly kv_a_layernorm: Norm;
  readonly kv_b_proj: Linear;
  readonly o_proj: Linear;

  constructor(readonly spec: MlaSpec) {
    super();
    const a = spec.att;
    const opt = { std: spec.std ?? 0.02, rng: spec.rng ?? new Rng(0), bias: false };
    const qk = a.qkNopeHeadDim + a.qkRopeHeadDim;
    if (a.qLoraRank === null) {
      this.q_proj = this.child('q_proj', new Linear(spec.dim, a.heads * qk, opt));
    } else {
      this.q_a_proj = this.child('q_a_proj', new Linear(spec.dim, a.qLoraRank, opt));
      this.q_a_layernorm = this.child('q_a_layernorm', makeNorm(a.qLoraRank, spec.latentNorm));
      this.q_b_proj = this.child('q_b_proj', new Linear(a.qLoraRank, a.heads * qk, opt));
    }
    this.kv_a_proj_with_mqa = this.child('kv_a_proj_with_mqa', new Linear(spec.dim, a.kvLoraRank + a.qkRopeHeadDim, opt));
    this.kv_a_layernorm = this.child('kv_a_layernorm', makeNorm(a.kvLoraRank, spec.latentNorm));
    this.kv_b_proj = this.child('kv_b_proj', new Linear(a.kvLoraRank, a.heads * (a.qkNopeHeadDim + a.vHeadDim), opt));
    this.o_proj = this.child('o_proj', new Linear(a.heads * a.vHeadDim, spec.dim, opt));
  }

  /** [B, T, D] -> [B, nh, T, dn + dr] */
  private queries(x: Tensor): Tensor {
    const a = this.spec.att;
    const [B, T] = x.shape as [number, number];
    const q = this.q_proj ? this.q_proj.forward(x) : this.q_b_proj!.forward(this.q_a_layernorm!.forward(this.q_a_proj!.forward(x)));
    return transpose(reshape(q, [B, T, a.heads, a.qkNopeHeadDim + a.qkRopeHeadDim]), 1, 2); // (B, nh, T, dn+dr)
  }

  /** the cacheable part of the new tokens: latent [B, 1, T, r] and the unrotated shared key [B, 1, T, dr] */
  private latents(x: Tensor): { latent: Tensor; kPe: Tensor } {
    const r = this.spec.att.kvLoraRank;
    const ckv = this.kv_a_proj_with_mqa.forward(x); // (B, T, r+dr)
    const latent = this.kv_a_layernorm.forward(slice(ckv, -1, 0, r));
    return { latent: unsqueeze(latent, 1), kPe: unsqueeze(slice(ckv, -1, r), 1) }; // (B, 1, T, r), (B, 1, T, dr)
  }

  /** re-expand keys (without the rope part) and values from the latent: [B, nh, Tk, dn], [B, nh, Tk, dv] */
  private expandLatent(latent: Tensor): { kNope: Tensor; v: Tensor } {
    const a = this.spec.att;
    const [B, , Tk] = latent.shape as [number, number, number];
    const kv = this.kv_b_proj.forward(squeeze(latent, 1)); // (B, Tk, nh*(dn+dv))
    const heads = transpose(reshape(kv, [B, Tk, a.heads, a.qkNopeHeadDim + a.vHeadDim]), 1, 2); // (B, nh, Tk, dn+dv)
    return { kNope: slice(heads, -1, 0, a.qkNopeHeadDim), v: slice(heads, -1, a.qkNopeHeadDim) };
  }

  forward(x: Tensor, ctx: AttentionContext): Tensor {
    const a = this.spec.att;
    const [B, T] = x.shape as [number, number];
    const q = this.queries(x);
    let { latent, kPe } = this.latents(x);
    let qPe = slice(q, -1, a.qkNopeHeadDim);
    if (ctx.rope) [qPe, kPe] = [applyRope(qPe, ctx.rope, true), applyRope(kPe, ctx.rope, true)];
    let kStart = ctx.qStart;
    if (ctx.cache) {
      const r = ctx.cache.extend({ latent, kPe });
      [latent, kPe, kStart] = [r.all.latent!, r.all.kPe!, r.start];
    }
    const Tk = latent.shape[2]!;
    const { kNope, v } = this.expandLatent(latent);
    const k = concat([kNope, expand(kPe, [B, a.heads, Tk, a.qkRopeHeadDim])], -1); // (B, nh, Tk, dn+dr)
    const qFull = concat([slice(q, -1, 0, a.qkNopeHeadDim), qPe], -1); // (B, nh, T, dn+dr)
    const opts = attentionOptions(ctx.mask, ctx.qStart, T, kStart, Tk, ctx.positionBias?.(ctx.qStart, T, kStart, Tk) ?? null);
    const o = attention(qFull, k, v, { ...opts, scale: this.spec.scale }); // (B, nh, T, dv)
    return this.o_proj.forward(reshape(transpose(o, 1, 2), [B, T, a.heads * a.vHeadDim])); // (B, T, D)
  }
}
