// Multi-head attention (MHA / GQA / MQA share one module: `kvHeads` = heads, a divisor, or 1) over the
// fused `attention` op, usable as causal self-attention, bidirectional self-attention, or
// cross-attention (queries from x, keys/values from `ctx.kv`, computed once and cached).
// Parameter names are the caller's (HF names per family): separate q/k/v/o projections, or GPT's fused
// Conv1D `c_attn` + `c_proj`.
//
// Notation: B batch, T new tokens, Tk keys, nh query heads, nkv key/value heads, hs head size.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import {
  add,
  arange,
  attention,
  attentionMask,
  dropout,
  expand,
  logicalAnd,
  lt,
  matmul,
  maximum,
  mul,
  reshape,
  softmax,
  split,
  tanh,
  transpose,
  unsqueeze,
  where,
} from '../ops/index.js';
import type { AttentionOptions } from '../ops/nn.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { Conv1D, type Projection } from './conv1d.js';
import { type Container, registerAt } from './tree.js';
import { applyRope, type RopeTables } from './positions.js';
import { attentionOptions, type MaskSpec } from './masks.js';
import type { LayerCache } from './cache.js';
import type { NormConfig } from './config.js';
import { makeNorm, type Norm } from './norm.js';

/** checkpoint names of the projections; `fused` set = one [D, (nh + 2 nkv) hs] Conv1D (GPT), or with
 * `fusedLinear` one nn.Linear [(nh + 2 nkv) hs, D] whose rows are q | k | v (Phi-3 `qkv_proj`) */
export interface AttentionNames {
  q: string;
  k: string;
  v: string;
  o: string;
  fused?: string;
  fusedLinear?: boolean;
}

export const LLAMA_ATTENTION_NAMES: AttentionNames = { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'o_proj' };
export const GPT_ATTENTION_NAMES: AttentionNames = { q: '', k: '', v: '', o: 'c_proj', fused: 'c_attn' };
export const PHI3_ATTENTION_NAMES: AttentionNames = {
  q: '',
  k: '',
  v: '',
  o: 'o_proj',
  fused: 'qkv_proj',
  fusedLinear: true,
};

export interface AttentionSpec {
  /** width of the query input (model width D) */
  dim: number;
  /** width of the key/value input for cross-attention (default dim) */
  kvDim?: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  qkvBias: boolean;
  outBias: boolean;
  /** logit multiplier; null = 1/sqrt(hs) (T5 uses 1) */
  scale: number | null;
  names: AttentionNames;
  /** rotate with interleaved pairs (GPT-J) instead of rotate_half (Llama) */
  interleavedRope?: boolean;
  /** per-head norm of queries and keys before RoPE (Qwen3 `q_norm` / `k_norm`, width headDim); null/absent = none */
  qkNorm?: NormConfig | null;
  /** tanh soft-cap of the scores, cap * tanh(s / cap), before mask and softmax (Gemma 2); null/absent = none */
  softcap?: number | null;
  /** dropout on the attention probabilities while training (config dropout.attention) */
  dropout?: number;
  std?: number;
  rng?: Rng;
}

/** What one call needs beyond the input: positions, masks, cache, extra bias, cross-attention source. */
export interface AttentionContext {
  mask: MaskSpec;
  /** absolute position of the first query */
  qStart: number;
  /** rotary tables for the new tokens' positions (self-attention only) */
  rope?: RopeTables | null;
  /** this layer's cache (self-attention: K/V grow; cross-attention: K/V computed once) */
  cache?: LayerCache | null;
  /** extra additive bias for (queries qStart.., keys kStart..) e.g. ALiBi or T5 relative buckets */
  positionBias?: ((qStart: number, Tq: number, kStart: number, Tk: number) => Tensor | null) | null;
  /** cross-attention source [B, S, kvDim]; its keys sit at positions 0..S-1 */
  kv?: Tensor | null;
  /** a ragged batch flattened into one row (B = 1) over a paged KV cache: replaces `cache` and the mask */
  paged?: PagedLayer | null;
}

/**
 * One layer of a paged KV cache seen from attention (implemented by the inference engine). The new
 * tokens of every sequence are flattened into one row; the engine knows which sequence and position
 * each belongs to, writes their keys/values into its blocks and attends each query to its own
 * sequence's keys (causal, and the layer's sliding window), reading the blocks in place.
 */
export interface PagedLayer {
  /** q [1, nh, T, dk], k [1, nkv, T, dk], v [1, nkv, T, dv] -> [1, nh, T, dv]; `softcap` > 0 caps the
   * scores as cap * tanh(s / cap) before the softmax (Gemma 2), 0 or absent = none */
  attend(q: Tensor, k: Tensor, v: Tensor, scale: number, softcap?: number): Tensor;
  /** cross-attention whose keys/values are already in the cache (an encoder-decoder's encoder K/V, written
   * once per request): q [1, nh, T, dk] -> [1, nh, T, dv]. When set, the layer projects only the queries */
  attendCross?(q: Tensor, scale: number): Tensor;
}

export class Attention extends Module {
  private readonly projections = new Map<string, Projection>();
  private readonly containers = new Map<string, Container>();
  private readonly qNorm: Norm | null = null;
  private readonly kNorm: Norm | null = null;

  constructor(readonly spec: AttentionSpec) {
    super();
    const s = spec;
    const rng = s.rng ?? new Rng(0);
    const opt = { std: s.std ?? 0.02, rng };
    const kvDim = s.kvDim ?? s.dim;
    if (s.names.fused) {
      const Proj = s.names.fusedLinear ? Linear : Conv1D;
      this.add(s.names.fused, new Proj(s.dim, (s.heads + 2 * s.kvHeads) * s.headDim, { ...opt, bias: s.qkvBias }));
      this.add(s.names.o, new Proj(s.heads * s.headDim, s.dim, { ...opt, bias: s.outBias }));
      return;
    }
    this.add(s.names.q, new Linear(s.dim, s.heads * s.headDim, { ...opt, bias: s.qkvBias }));
    this.add(s.names.k, new Linear(kvDim, s.kvHeads * s.headDim, { ...opt, bias: s.qkvBias }));
    this.add(s.names.v, new Linear(kvDim, s.kvHeads * s.headDim, { ...opt, bias: s.qkvBias }));
    this.add(s.names.o, new Linear(s.heads * s.headDim, s.dim, { ...opt, bias: s.outBias }));
    if (s.qkNorm) {
      // registered after o_proj, as transformers' Qwen3Attention does
      this.qNorm = this.child('q_norm', makeNorm(s.headDim, s.qkNorm));
      this.kNorm = this.child('k_norm', makeNorm(s.headDim, s.qkNorm));
    }
  }

  private add(path: string, m: Projection): void {
    this.projections.set(
      path,
      registerAt((n, c) => this.child(n, c), path, m, this.containers),
    );
  }

  private proj(path: string, x: Tensor): Tensor {
    return this.projections.get(path)!.forward(x);
  }

  /** [B, T, h * hs] -> [B, h, T, hs] */
  private heads(x: Tensor, h: number): Tensor {
    const [B, T] = x.shape as [number, number];
    return transpose(reshape(x, [B, T, h, this.spec.headDim]), 1, 2); // (B, h, T, hs)
  }

  /** the optional per-head norm over the last (head) axis; keys are cached already normalized */
  private normHeads(norm: Norm | null, x: Tensor): Tensor {
    return norm ? norm.forward(x) : x;
  }

  /** queries, and keys/values of the new tokens (self) or of the source (cross) */
  private project(x: Tensor, ctx: AttentionContext): { q: Tensor; k: Tensor; v: Tensor } {
    const s = this.spec;
    if (s.names.fused) {
      if (ctx.kv)
        throw new Error(
          'Attention: a fused q|k|v projection (GPT c_attn) cannot do cross-attention; give separate q/k/v names',
        );
      if (s.qkNorm) throw new Error('Attention: qkNorm needs separate q/k/v projections, not a fused c_attn');
      const [q, k, v] = split(
        this.proj(s.names.fused, x),
        [s.heads * s.headDim, s.kvHeads * s.headDim, s.kvHeads * s.headDim],
        -1,
      );
      return { q: this.heads(q!, s.heads), k: this.heads(k!, s.kvHeads), v: this.heads(v!, s.kvHeads) };
    }
    const q = this.queries(x); // (B, nh, T, hs)
    const cached = ctx.kv && ctx.cache?.get('k');
    if (cached) return { q, k: cached, v: ctx.cache!.get('v')! };
    return { q, ...this.projectKv(ctx.kv ?? x) }; // k, v (B, nkv, Tk, hs)
  }

  /** x [B, T, D] -> queries [B, nh, T, hs] (separate q projection, q-norm applied) */
  private queries(x: Tensor): Tensor {
    return this.normHeads(this.qNorm, this.heads(this.proj(this.spec.names.q, x), this.spec.heads));
  }

  /** keys and values of a cross-attention source [B, S, kvDim] -> k, v [B, nkv, S, hs] (a paged cache stores them) */
  projectKv(src: Tensor): { k: Tensor; v: Tensor } {
    const s = this.spec;
    if (s.names.fused) throw new Error('Attention.projectKv: a fused q|k|v projection has no separate keys');
    const k = this.normHeads(this.kNorm, this.heads(this.proj(s.names.k, src), s.kvHeads)); // (B, nkv, S, hs)
    return { k, v: this.heads(this.proj(s.names.v, src), s.kvHeads) };
  }

  /** cross-attention through a paged cache that holds the keys/values: only the queries are projected */
  private pagedCross(x: Tensor, paged: PagedLayer): Tensor {
    const s = this.spec;
    const [B, T] = x.shape as [number, number];
    const q = this.queries(x); // (1, nh, T, hs)
    const o = paged.attendCross!(q, s.scale ?? 1 / Math.sqrt(s.headDim)); // (1, nh, T, hs)
    return this.proj(s.names.o, reshape(transpose(o, 1, 2), [B, T, s.heads * s.headDim])); // (1, T, D)
  }

  /** x [B, T, D] -> [B, T, D] */
  forward(x: Tensor, ctx: AttentionContext): Tensor {
    const s = this.spec;
    const [B, T] = x.shape as [number, number];
    if (ctx.paged?.attendCross) return this.pagedCross(x, ctx.paged);
    let { q, k, v } = this.project(x, ctx);
    if (ctx.rope && !ctx.kv) {
      q = applyRope(q, ctx.rope, s.interleavedRope);
      k = applyRope(k, ctx.rope, s.interleavedRope);
    }
    if (ctx.paged) {
      if (ctx.kv || ctx.positionBias)
        throw new Error('Attention: the paged KV cache supports self-attention without an extra position bias');
      const o = ctx.paged.attend(q, k, v, s.scale ?? 1 / Math.sqrt(s.headDim), s.softcap ?? 0); // (1, nh, T, hs)
      return this.proj(s.names.o, reshape(transpose(o, 1, 2), [B, T, s.heads * s.headDim])); // (1, T, D)
    }
    let kStart = ctx.kv ? 0 : ctx.qStart;
    if (ctx.cache && ctx.kv) {
      if (!ctx.cache.get('k')) [k, v] = [ctx.cache.setStatic('k', k), ctx.cache.setStatic('v', v)];
    } else if (ctx.cache) {
      const r = ctx.cache.extend({ k, v });
      [k, v, kStart] = [r.all.k!, r.all.v!, r.start];
    }
    const Tk = k.shape[2]!;
    const opts = attentionOptions(
      ctx.mask,
      ctx.qStart,
      T,
      kStart,
      Tk,
      ctx.positionBias?.(ctx.qStart, T, kStart, Tk) ?? null,
    );
    if (s.scale !== null) opts.scale = s.scale;
    if (s.softcap) opts.softcap = s.softcap;
    const o = attend(q, k, v, opts, this.training ? (s.dropout ?? 0) : 0); // (B, nh, T, hs)
    return this.proj(s.names.o, reshape(transpose(o, 1, 2), [B, T, s.heads * s.headDim])); // (B, T, D)
  }
}

/**
 * The fused attention op, or, when attention-probability dropout is active (training), the same math
 * composed from primitives so the probabilities can be dropped. Fully masked rows use a large finite
 * negative instead of -inf there (uniform weights, as transformers' finfo.min masks give), never NaN.
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions, dropoutP: number): Tensor {
  if (dropoutP <= 0) return attention(q, k, v, opts);
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const [, Hkv, Tk] = k.shape as [number, number, number];
  const repeat = (t: Tensor) =>
    H === Hkv ? t : reshape(expand(unsqueeze(t, 2), [B, Hkv, H / Hkv, Tk, t.shape[3]!]), [B, H, Tk, t.shape[3]!]); // (B, H, Tk, d)
  let s = mul(matmul(q, repeat(k), { transB: true }), opts.scale ?? 1 / Math.sqrt(D)); // (B, H, Tq, Tk)
  if (opts.softcap) s = mul(tanh(mul(s, 1 / opts.softcap)), opts.softcap);
  if (opts.bias) s = add(s, opts.bias);
  let visible = attentionMask(Tq, Tk, !!opts.causal, opts.window ?? 0); // (Tq, Tk)
  if (opts.kvLen)
    visible = logicalAnd(
      visible,
      reshape(lt(reshape(arange(Tk), [1, Tk]), reshape(opts.kvLen, [B, 1])), [B, 1, 1, Tk]),
    );
  s = maximum(where(visible, s, -Infinity), -1e30);
  return matmul(dropout(softmax(s, -1), dropoutP, true), repeat(v)); // (B, H, Tq, dv)
}
