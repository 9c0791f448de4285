// DeepSeek-V2 multi-head latent attention (MLA). Queries: q_proj(x), or the low-rank
// q_b_proj(norm(q_a_proj(x))). Keys/values: kv_a_proj_with_mqa(x) = [latent c (r) | k_pe (dr)];
// kv_b_proj(norm(c)) re-expands each head's [k_nope (dn) | v (dv)]; k_pe is ONE rotary key shared by all
// heads. The cache stores only norm(c) and the rotated k_pe (r + dr numbers per token, vs 2·nh·hs), and
// keys/values are re-expanded from the latent at every step.
//
// Notation: B batch, T new tokens, Tk keys, nh heads, r kv latent rank, dn/dr/dv nope/rope/value dims.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import {
  attention,
  cast,
  concat,
  matmul,
  expand,
  reshape,
  slice,
  squeeze,
  transpose,
  unsqueeze,
} from '../ops/index.js';
import type { MlaAttention, NormConfig } from './config.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { makeNorm, type Norm } from './norm.js';
import { applyRope } from './positions.js';
import { attentionOptions } from './masks.js';
import { attend, type AttentionContext } from './attention.js';
import type { AttentionOptions } from '../ops/nn.js';

export interface MlaSpec {
  dim: number;
  att: MlaAttention;
  /** norm of the q / kv latents (DeepSeek: RMSNorm, eps 1e-6 — its constructor default) */
  latentNorm: NormConfig;
  /** softmax scale (DeepSeek: (dn + dr)^-0.5, times the YaRN mscale² in the reference code) */
  scale: number;
  /** dropout on the attention probabilities while training */
  dropout?: number;
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
    this.kv_a_proj_with_mqa = this.child(
      'kv_a_proj_with_mqa',
      new Linear(spec.dim, a.kvLoraRank + a.qkRopeHeadDim, opt),
    );
    this.kv_a_layernorm = this.child('kv_a_layernorm', makeNorm(a.kvLoraRank, spec.latentNorm));
    this.kv_b_proj = this.child('kv_b_proj', new Linear(a.kvLoraRank, a.heads * (a.qkNopeHeadDim + a.vHeadDim), opt));
    this.o_proj = this.child('o_proj', new Linear(a.heads * a.vHeadDim, spec.dim, opt));
  }

  /** [B, T, D] -> [B, nh, T, dn + dr] */
  private queries(x: Tensor): Tensor {
    const a = this.spec.att;
    const [B, T] = x.shape as [number, number];
    const q = this.q_proj
      ? this.q_proj.forward(x)
      : this.q_b_proj!.forward(this.q_a_layernorm!.forward(this.q_a_proj!.forward(x)));
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

  /** kv_b_proj's per-head up-projections from the latent: W_uk [nh, dn, r], W_uv [nh, dv, r] */
  private upProjections(): { wUk: Tensor; wUv: Tensor } {
    const a = this.spec.att;
    const w = reshape(this.kv_b_proj.weight, [a.heads, a.qkNopeHeadDim + a.vHeadDim, a.kvLoraRank]); // (nh, dn+dv, r)
    return { wUk: slice(w, 1, 0, a.qkNopeHeadDim), wUv: slice(w, 1, a.qkNopeHeadDim) };
  }

  forward(x: Tensor, ctx: AttentionContext): Tensor {
    const a = this.spec.att;
    const [B, T] = x.shape as [number, number];
    const q = this.queries(x);
    let { latent, kPe } = this.latents(x);
    let qPe = slice(q, -1, a.qkNopeHeadDim);
    // DeepSeek's rope dims rotate as interleaved pairs (2i, 2i+1)
    if (ctx.rope) [qPe, kPe] = [applyRope(qPe, ctx.rope, true), applyRope(kPe, ctx.rope, true)];
    if (ctx.paged)
      return this.o_proj.forward(
        reshape(transpose(this.pagedAbsorbed(q, qPe, latent, kPe, ctx), 1, 2), [B, T, a.heads * a.vHeadDim]),
      );
    let kStart = ctx.qStart;
    if (ctx.cache) {
      const r = ctx.cache.extend({ latent, kPe });
      [latent, kPe, kStart] = [r.all.latent!, r.all.kPe!, r.start];
    }
    const Tk = latent.shape[2]!;
    const opts = attentionOptions(
      ctx.mask,
      ctx.qStart,
      T,
      kStart,
      Tk,
      ctx.positionBias?.(ctx.qStart, T, kStart, Tk) ?? null,
    );
    const attn = { ...opts, scale: this.spec.scale };
    const qNope = slice(q, -1, 0, a.qkNopeHeadDim);
    const p = this.training ? (this.spec.dropout ?? 0) : 0;
    const o =
      ctx.cache && p === 0
        ? this.absorbed(qNope, qPe, latent, kPe, attn)
        : this.expanded(qNope, qPe, latent, kPe, attn, p);
    return this.o_proj.forward(reshape(transpose(o, 1, 2), [B, T, a.heads * a.vHeadDim])); // (B, T, D)
  }

  /**
   * The absorbed form over a paged cache: the engine stores K = [latent | k_pe] (one shared head of
   * r + dr) and V = latent (r) per token, and attention returns the latent-space output per head.
   */
  private pagedAbsorbed(q: Tensor, qPe: Tensor, latent: Tensor, kPe: Tensor, ctx: AttentionContext): Tensor {
    const a = this.spec.att;
    const { wUk, wUv } = this.upProjections();
    const qLat = matmul(slice(q, -1, 0, a.qkNopeHeadDim), wUk); // (1, nh, T, r)
    const k = concat([latent, kPe], -1); // (1, 1, T, r+dr)
    const oLat = ctx.paged!.attend(concat([qLat, qPe], -1), k, latent, this.spec.scale); // (1, nh, T, r)
    return matmul(oLat, wUv, { transB: true }); // (1, nh, T, dv)
  }

  /** training / prefill form: re-expand per-head keys and values from the latent */
  private expanded(qNope: Tensor, qPe: Tensor, latent: Tensor, kPe: Tensor, opts: AttentionOptions, p: number): Tensor {
    const a = this.spec.att;
    const [B, , Tk] = latent.shape as [number, number, number];
    const { kNope, v } = this.expandLatent(latent);
    const kPe32 = kPe.dtype === kNope.dtype ? kPe : cast(kPe, kNope.dtype); // half-precision caches
    const k = concat([kNope, expand(kPe32, [B, a.heads, Tk, a.qkRopeHeadDim])], -1); // (B, nh, Tk, dn+dr)
    return attend(concat([qNope, qPe], -1), k, v, opts, p); // (B, nh, T, dv)
  }

  /**
   * Decoding form ("weight absorption"): fold W_uk into the queries and W_uv after the attention, so the
   * keys/values are the cached latent itself, shared by every head (multi-query attention over
   * [latent | k_pe]) and nothing is re-expanded per step. Same scores and outputs as `expanded`.
   */
  private absorbed(qNope: Tensor, qPe: Tensor, latent: Tensor, kPe: Tensor, opts: AttentionOptions): Tensor {
    const { wUk, wUv } = this.upProjections();
    const f32 = (t: Tensor) => (t.dtype === 'float32' ? t : cast(t, 'float32'));
    const qLat = matmul(qNope, wUk); // (B, nh, T, dn) @ (nh, dn, r) -> (B, nh, T, r)
    const k = concat([f32(latent), f32(kPe)], -1); // (B, 1, Tk, r+dr)
    const oLat = attention(concat([qLat, qPe], -1), k, f32(latent), opts); // (B, nh, T, r)
    return matmul(oLat, wUv, { transB: true }); // (B, nh, T, r) @ (nh, r, dv) -> (B, nh, T, dv)
  }
}
