// Position schemes shared by every transformer family: rotary embeddings (RoPE with linear, dynamic NTK,
// YaRN and Llama-3 frequency scaling, as transformers' modeling_rope_utils computes them), fixed
// sinusoidal tables and ALiBi biases. Tables are computed on the host in float64 and uploaded as float32.
//
// Notation: T positions, hs head size, d rotary dims (d <= hs, even), H heads.
import type { Tensor } from '../tensor/tensor.js';
import { add, concat, contiguous, mul, neg, reshape, slice, tensor, transpose } from '../ops/index.js';
import type { RopeScaling } from './config.js';

// ---- RoPE ----

export interface RopeSpec {
  theta: number;
  /** rotary dims (the first `dim` of each head) */
  dim: number;
  scaling: RopeScaling | null;
  /** the model's max context (dynamic NTK's threshold when scaling.originalMax is null) */
  maxContext: number;
}

/** DeepSeek / YaRN magnitude correction: 0.1 * mscale * ln(scale) + 1 (1 when scale <= 1) */
export function yarnMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

function baseInvFreq(dim: number, base: number): Float64Array {
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) inv[i] = 1 / Math.pow(base, (2 * i) / dim);
  return inv;
}

/** inverse frequencies (d/2) and the factor multiplying cos/sin, for a forward covering `seqLen` positions */
export function ropeInvFreq(spec: RopeSpec, seqLen: number): { invFreq: Float64Array; attentionFactor: number } {
  const { dim, theta, scaling: s } = spec;
  if (s === null) return { invFreq: baseInvFreq(dim, theta), attentionFactor: 1 };
  switch (s.kind) {
    case 'linear':
      return { invFreq: baseInvFreq(dim, theta).map((f) => f / s.factor), attentionFactor: 1 };
    case 'ntk': {
      // transformers' dynamic NTK: the base grows once the sequence exceeds the trained context
      const maxPos = s.originalMax ?? spec.maxContext;
      if (seqLen <= maxPos) return { invFreq: baseInvFreq(dim, theta), attentionFactor: 1 };
      const base = theta * Math.pow((s.factor * seqLen) / maxPos - (s.factor - 1), dim / (dim - 2));
      return { invFreq: baseInvFreq(dim, base), attentionFactor: 1 };
    }
    case 'yarn':
      return yarnInvFreq(dim, theta, s);
    case 'llama3':
      return { invFreq: llama3InvFreq(dim, theta, s), attentionFactor: 1 };
    default:
      return s satisfies never;
  }
}

function yarnInvFreq(
  dim: number,
  base: number,
  s: Extract<RopeScaling, { kind: 'yarn' }>,
): { invFreq: Float64Array; attentionFactor: number } {
  // transformers: attention_factor = mscale ratio when both are set, else get_mscale(factor)
  const attentionFactor =
    s.mscale && s.mscaleAllDim
      ? yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim)
      : yarnMscale(s.factor);
  const corrDim = (rot: number) => (dim * Math.log(s.originalMax / (rot * 2 * Math.PI))) / (2 * Math.log(base));
  const low = Math.max(Math.floor(corrDim(s.betaFast)), 0);
  let high = Math.min(Math.ceil(corrDim(s.betaSlow)), dim - 1);
  if (low === high) high += 0.001;
  const inv = new Float64Array(dim / 2);
  for (let i = 0; i < dim / 2; i++) {
    const posFreq = Math.pow(base, (2 * i) / dim);
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const extrapolation = 1 - ramp; // 1: keep the original frequency, 0: interpolate by factor
    inv[i] = (1 / (s.factor * posFreq)) * (1 - extrapolation) + (1 / posFreq) * extrapolation;
  }
  return { invFreq: inv, attentionFactor };
}

function llama3InvFreq(dim: number, base: number, s: Extract<RopeScaling, { kind: 'llama3' }>): Float64Array {
  const lowWavelen = s.originalMax / s.lowFreqFactor;
  const highWavelen = s.originalMax / s.highFreqFactor;
  return baseInvFreq(dim, base).map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (s.originalMax / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** cos/sin tables [T, d] for positions start..start+T-1 (rotate_half layout: freqs repeated twice) */
export interface RopeTables {
  cos: Tensor;
  sin: Tensor;
  /** sin with its first half negated: rotate_half's sign folded in, so applyRope needs no neg of a slice */
  sinRotate?: Tensor;
}

export function ropeTables(spec: RopeSpec, start: number, T: number, seqLen = start + T): RopeTables {
  return ropeTablesAt(
    spec,
    Array.from({ length: T }, (_, t) => start + t),
    () => seqLen,
  );
}

/**
 * Tables for arbitrary per-token positions (a ragged batch flattened into one row): row t rotates by
 * positions[t]. `seqLenOf(t)`: the length of token t's sequence (dynamic NTK scales per sequence).
 */
export function ropeTablesAt(
  spec: RopeSpec,
  positions: ArrayLike<number>,
  seqLenOf: (t: number) => number,
): RopeTables {
  const T = positions.length;
  const d = spec.dim;
  const cos = new Float32Array(T * d);
  const sin = new Float32Array(T * d);
  const freqs = new Map<number, ReturnType<typeof ropeInvFreq>>();
  for (let t = 0; t < T; t++) {
    const len = seqLenOf(t);
    let f = freqs.get(len);
    if (!f) freqs.set(len, (f = ropeInvFreq(spec, len)));
    for (let i = 0; i < d / 2; i++) {
      const a = positions[t]! * f.invFreq[i]!;
      cos[t * d + i] = cos[t * d + i + d / 2] = Math.cos(a) * f.attentionFactor;
      sin[t * d + i] = sin[t * d + i + d / 2] = Math.sin(a) * f.attentionFactor;
    }
  }
  const sinRotate = sin.slice();
  for (let t = 0; t < T; t++) for (let i = 0; i < d / 2; i++) sinRotate[t * d + i] = -sin[t * d + i]!;
  const table = (a: Float32Array) => tensor(a, { shape: [T, d] });
  return { cos: table(cos), sin: table(sin), sinRotate: table(sinRotate) };
}

/** (x0, x1, x2, x3, ...) -> (x0, x2, ... | x1, x3, ...) on the last axis */
function deinterleave(x: Tensor): Tensor {
  const d = x.shape[x.ndim - 1]!;
  const pairs = reshape(x, [...x.shape.slice(0, -1), d / 2, 2]); // (..., d/2, 2)
  return reshape(transpose(pairs, -1, -2), x.shape); // (..., 2, d/2) -> (..., d)
}

/**
 * Rotates the first `tables.cos.shape[1]` dims of x [..., T, hs] (HF rotate_half convention); the rest
 * pass through. Interleaved layouts are de-interleaved first: queries and keys get the same permutation,
 * so attention scores equal the interleaved rotation's.
 */
export function applyRope(x: Tensor, tables: RopeTables, interleaved = false): Tensor {
  const hs = x.shape[x.ndim - 1]!;
  const d = tables.cos.shape[1]!;
  let xr = d === hs ? x : slice(x, -1, 0, d);
  if (interleaved) xr = deinterleave(xr);
  // contiguous operands keep every op below on the fast kernels (a strided view falls back to the reference)
  if (!xr.isContiguous) xr = contiguous(xr);
  const halves = [slice(xr, -1, d / 2), slice(xr, -1, 0, d / 2)];
  const out = tables.sinRotate
    ? add(mul(xr, tables.cos), mul(concat(halves, -1), tables.sinRotate)) // (-x2 | x1) * sin
    : add(mul(xr, tables.cos), mul(concat([neg(halves[0]!), halves[1]!], -1), tables.sin)); // rotate_half
  return d === hs ? out : concat([out, slice(x, -1, d)], -1);
}

// ---- sinusoidal ----

/**
 * Fixed sinusoidal table [n, D] for positions offset..offset+n-1. 'interleaved': sin on even dims, cos
 * on odd (Vaswani 2017); 'halves': [sin | cos] (Marian / fairseq layout); frequencies 10000^(-2i/D).
 */
export function sinusoidalTable(
  n: number,
  D: number,
  layout: 'interleaved' | 'halves' = 'interleaved',
  offset = 0,
): Tensor {
  const out = new Float32Array(n * D);
  const half = Math.ceil(D / 2);
  for (let p = 0; p < n; p++) {
    for (let i = 0; i < half; i++) {
      const a = (p + offset) / Math.pow(10000, (2 * i) / D);
      if (layout === 'interleaved') {
        out[p * D + 2 * i] = Math.sin(a);
        if (2 * i + 1 < D) out[p * D + 2 * i + 1] = Math.cos(a);
      } else {
        out[p * D + i] = Math.sin(a);
        if (half + i < D) out[p * D + half + i] = Math.cos(a);
      }
    }
  }
  return tensor(out, { shape: [n, D] });
}

// ---- ALiBi ----

/** per-head slopes (Press et al. 2022; non-powers of two interleave the next power's slopes, as BLOOM) */
export function alibiSlopes(H: number): number[] {
  const pow2 = (n: number) => {
    const start = Math.pow(2, -Math.pow(2, -(Math.log2(n) - 3)));
    return Array.from({ length: n }, (_, i) => start * Math.pow(start, i));
  };
  if (Number.isInteger(Math.log2(H))) return pow2(H);
  const closest = Math.pow(2, Math.floor(Math.log2(H)));
  return [
    ...pow2(closest),
    ...alibiSlopes(2 * closest)
      .filter((_, i) => i % 2 === 0)
      .slice(0, H - closest),
  ];
}

/** additive bias [1, H, Tq, Tk] = -slope_h * |q - k| for absolute query/key positions */
export function alibiBias(H: number, qStart: number, Tq: number, kStart: number, Tk: number): Tensor {
  const slopes = alibiSlopes(H);
  const out = new Float32Array(H * Tq * Tk);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < Tq; i++) {
      for (let j = 0; j < Tk; j++) out[(h * Tq + i) * Tk + j] = -slopes[h]! * Math.abs(qStart + i - (kStart + j));
    }
  }
  return tensor(out, { shape: [1, H, Tq, Tk] });
}
