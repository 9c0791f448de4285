// Fused neural-network ops. Each calls one kernel forward and one backward; each has a composed
// reference built from primitives (src/ops/reference.ts) that the tests compare it against.
import type { AttentionParams, CrossEntropyParams, DType, NormParams, View } from '../backend/backend.js';
import { fmt, normAxis, numel } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { defaultRng, type Rng } from '../tensor/random.js';
import {
  allocOut,
  broadcastView,
  checkDType,
  checkRank,
  contig,
  copyTo,
  kernel,
  narrow,
  record,
  sameBackend,
} from './core.js';
import { arange, fromValues, zeros } from './creation.js';
import { add, eq, mul, where } from './elementwise.js';
import { cast, flatten, reshape, transpose, unsqueeze } from './movement.js';
import { hostCheckedBound, inheritHostCheck } from './indices.js';

const F32: readonly DType[] = ['float32', 'float16', 'bfloat16'];

/** float32 contiguous version for kernels (casts low precision) */
function f32c(t: Tensor): Tensor {
  return contig(t.dtype === 'float32' ? t : cast(t, 'float32'));
}

/** the low-precision storage dtype of x, or null for float32 */
function lowpOf(x: Tensor): DType | null {
  return x.dtype === 'float16' || x.dtype === 'bfloat16' ? x.dtype : null;
}

/** release a float32 temporary made by f32c (a no-op when f32c returned the input itself) */
function drop(temp: Tensor | null, input: Tensor | null): void {
  if (temp && temp !== input) temp.dispose();
}

function lastAxis<T>(x: Tensor, axis: number, op: string, f: (x: Tensor) => T & Tensor): Tensor {
  const a = normAxis(axis, x.ndim, op);
  if (a === x.ndim - 1) return f(x);
  return transpose(f(transpose(x, a, -1)), a, -1);
}

// ---- softmax ----
function softmaxLast(x: Tensor, log: boolean): Tensor {
  const lowp = lowpOf(x);
  const xc = f32c(x);
  const n = x.shape[x.ndim - 1] ?? 1;
  const rows = n === 0 ? 0 : x.size / n;
  const y32 = allocOut(x.shape, 'float32', x);
  kernel(xc, 'softmax')(xc.view(), y32.view(), rows, n, log);
  drop(xc, x);
  const y = narrow(y32, lowp);
  return record(y, log ? 'logSoftmax' : 'softmax', [x], (g) => {
    const [gc, yc] = [f32c(g), f32c(y)];
    const dx = allocOut(x.shape, 'float32', x);
    kernel(gc, 'softmaxBackward')(yc.view(), gc.view(), dx.view(), rows, n, log);
    return [dx];
  });
}

export function softmax(x: Tensor, axis = -1): Tensor {
  checkDType('softmax', 'x', x, F32);
  return lastAxis(x, axis, 'softmax', (t) => softmaxLast(t, false));
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  checkDType('logSoftmax', 'x', x, F32);
  return lastAxis(x, axis, 'logSoftmax', (t) => softmaxLast(t, true));
}

// ---- norms ----
function normParams(
  op: string,
  x: Tensor,
  w: Tensor | null | undefined,
  b: Tensor | null | undefined,
  eps: number,
): NormParams {
  checkDType(op, 'x', x, F32);
  const n = x.shape[x.ndim - 1]!;
  for (const [name, t] of [
    ['weight', w],
    ['bias', b],
  ] as const) {
    if (t && (t.ndim !== 1 || t.shape[0] !== n))
      throw new Error(`${op}: ${name} has shape ${fmt(t.shape)}, expected [${n}] to match input ${fmt(x.shape)}`);
  }
  return { rows: n === 0 ? 0 : x.size / n, n, eps };
}

/** layer norm over the last axis (biased variance, as torch.nn.LayerNorm) */
export function layerNorm(x: Tensor, weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  const p = normParams('layerNorm', x, weight, bias, eps);
  sameBackend('layerNorm', x, weight, bias);
  const [xc, wc, bc] = [f32c(x), weight && f32c(weight), bias && f32c(bias)];
  const out = allocOut(x.shape, 'float32', x);
  const mean = allocOut([p.rows], 'float32', x);
  const rstd = allocOut([p.rows], 'float32', x);
  kernel(xc, 'layerNorm')(xc.view(), wc?.view() ?? null, bc?.view() ?? null, out.view(), mean.view(), rstd.view(), p);
  drop(xc, x);
  drop(wc, weight);
  drop(bc, bias);
  const inputs = [x, weight, bias].filter((t): t is Tensor => !!t);
  return record(narrow(out, lowpOf(x)), 'layerNorm', inputs, (g) => {
    const [gc, xb, wb] = [f32c(g), f32c(x), weight && f32c(weight)];
    const dx = allocOut(x.shape, 'float32', x);
    const dw = weight ? allocOut([p.n], 'float32', x) : null;
    const db = bias ? allocOut([p.n], 'float32', x) : null;
    kernel(gc, 'layerNormBackward')(
      xb.view(),
      wb?.view() ?? null,
      mean.view(),
      rstd.view(),
      gc.view(),
      dx.view(),
      dw?.view() ?? null,
      db?.view() ?? null,
      p,
    );
    return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
  });
}

/** RMS norm over the last axis: x / sqrt(mean(x²) + eps) * weight (LLaMA, T5) */
export function rmsNorm(x: Tensor, weight: Tensor | null = null, eps = 1e-6): Tensor {
  const p = normParams('rmsNorm', x, weight, null, eps);
  sameBackend('rmsNorm', x, weight);
  const [xc, wc] = [f32c(x), weight && f32c(weight)];
  const out = allocOut(x.shape, 'float32', x);
  const rstd = allocOut([p.rows], 'float32', x);
  kernel(xc, 'rmsNorm')(xc.view(), wc?.view() ?? null, out.view(), rstd.view(), p);
  drop(xc, x);
  drop(wc, weight);
  return record(narrow(out, lowpOf(x)), 'rmsNorm', weight ? [x, weight] : [x], (g) => {
    const [gc, xb, wb] = [f32c(g), f32c(x), weight && f32c(weight)];
    const dx = allocOut(x.shape, 'float32', x);
    const dw = weight ? allocOut([p.n], 'float32', x) : null;
    kernel(gc, 'rmsNormBackward')(
      xb.view(),
      wb?.view() ?? null,
      rstd.view(),
      gc.view(),
      dx.view(),
      dw?.view() ?? null,
      p,
    );
    return weight ? [dx, dw] : [dx];
  });
}

// ---- attention ----
export interface AttentionOptions {
  /** causal mask (queries aligned to the end of the keys, for KV-cache decoding) */
  causal?: boolean;
  /** sliding window size (0 or undefined = unlimited) */
  window?: number;
  /** key-padding lengths per batch item (int32 [B]) */
  kvLen?: Tensor | null;
  /** additive bias broadcastable to [B, H, Tq, Tk] (ALiBi, T5 relative bias, -inf masks) */
  bias?: Tensor | null;
  /** defaults to 1/sqrt(Dk) */
  scale?: number;
  /** tanh soft-cap of the scaled scores, cap * tanh(s / cap), applied before bias, mask and softmax (Gemma 2's
   * attn_logit_softcapping); 0 or absent = none. Fast kernels without it decline and the reference runs. */
  softcap?: number;
}

function attentionParams(q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): AttentionParams {
  for (const [n, t] of [
    ['q', q],
    ['k', k],
    ['v', v],
  ] as const) {
    checkRank('attention', n, t, 4);
    checkDType('attention', n, t, F32);
  }
  const [B, H, Tq, Dk] = q.shape as [number, number, number, number];
  const [Bk, Hkv, Tk, Dk2] = k.shape as [number, number, number, number];
  const [Bv, Hv, Tv, Dv] = v.shape as [number, number, number, number];
  if (Bk !== B || Bv !== B || Hv !== Hkv || Tv !== Tk || Dk2 !== Dk || H % Hkv !== 0) {
    throw new Error(
      `attention: incompatible shapes q ${fmt(q.shape)}, k ${fmt(k.shape)}, v ${fmt(v.shape)} (expected q [B,H,Tq,Dk], k [B,Hkv,Tk,Dk], v [B,Hkv,Tk,Dv], H divisible by Hkv)`,
    );
  }
  if (o.kvLen && (o.kvLen.dtype !== 'int32' || o.kvLen.ndim !== 1 || o.kvLen.shape[0] !== B)) {
    throw new Error(`attention: kvLen must be int32 [${B}], got ${o.kvLen.dtype} ${fmt(o.kvLen.shape)}`);
  }
  const window = o.window ?? 0;
  if (!Number.isInteger(window) || window < 0)
    throw new Error(`attention: window must be a non-negative integer, got ${window}`);
  const softcap = o.softcap ?? 0;
  if (!(softcap >= 0 && Number.isFinite(softcap)))
    throw new Error(`attention: softcap must be a finite number >= 0 (0 = none), got ${softcap}`);
  return {
    B,
    H,
    Hkv,
    Tq,
    Tk,
    Dk,
    Dv,
    scale: o.scale ?? 1 / Math.sqrt(Dk),
    causal: !!o.causal,
    window,
    kvLen: null,
    bias: null,
    softcap,
  };
}

/**
 * Fused scaled-dot-product attention: softmax(cap(q kᵀ · scale) + bias + mask) v (cap = optional softcap).
 * q [B, H, Tq, Dk], k [B, Hkv, Tk, Dk], v [B, Hkv, Tk, Dv] -> [B, H, Tq, Dv]. Grouped-query
 * attention when Hkv < H. Extra memory is O(T) on fast backends (blockwise online softmax).
 * A bias that requires grad (e.g. learned T5 buckets) uses the composed path instead.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const p = attentionParams(q, k, v, opts);
  sameBackend('attention', q, k, v, opts.kvLen, opts.bias);
  if (opts.bias?.requiresGrad) return attentionComposed(q, k, v, opts);
  const [qc, kc, vc] = [f32c(q), f32c(k), f32c(v)];
  const kvLen = opts.kvLen ? contig(opts.kvLen) : null;
  const bias = opts.bias ? f32c(opts.bias) : null;
  p.kvLen = kvLen?.view() ?? null;
  p.bias = bias ? broadcastView(bias, [p.B, p.H, p.Tq, p.Tk]) : null;
  const out32 = allocOut([p.B, p.H, p.Tq, p.Dv], 'float32', q);
  const lse = allocOut([p.B, p.H, p.Tq], 'float32', q);
  kernel(qc, 'attention')(qc.view(), kc.view(), vc.view(), out32.view(), lse.view(), p);
  drop(qc, q);
  drop(kc, k);
  drop(vc, v);
  const out = narrow(out32, lowpOf(q));
  return record(out, 'attention', [q, k, v], (g) => {
    const [gc, qb, kb, vb, ob] = [f32c(g), f32c(q), f32c(k), f32c(v), f32c(out)];
    const [dq, dk, dv] = [
      allocOut(q.shape, 'float32', q),
      allocOut(k.shape, 'float32', q),
      allocOut(v.shape, 'float32', q),
    ];
    kernel(gc, 'attentionBackward')(
      qb.view(),
      kb.view(),
      vb.view(),
      ob.view(),
      lse.view(),
      gc.view(),
      dq.view(),
      dk.view(),
      dv.view(),
      p,
    );
    return [dq, dk, dv];
  });
}

/** visibility mask [Tq, Tk] (true = may attend) for causal / window, as a bool tensor */
export function attentionMask(Tq: number, Tk: number, causal: boolean, window = 0): Tensor {
  const vals = new Uint8Array(Tq * Tk);
  for (let i = 0; i < Tq; i++) {
    const pos = i + (Tk - Tq);
    for (let j = 0; j < Tk; j++) vals[i * Tk + j] = (!causal || j <= pos) && (window <= 0 || pos - j < window) ? 1 : 0;
  }
  return fromValues(vals, [Tq, Tk], 'bool');
}

/** attention composed from primitives: the reference the fused kernel is tested against */
export function attentionComposed(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  const p = attentionParams(q, k, v, opts);
  const rep = p.H / p.Hkv;
  // (B, Hkv, Tk, D) -> (B, H, Tk, D) by repeating each kv head `rep` times
  const expandKv = (t: Tensor) => (rep === 1 ? t : reshape(unsqueezeExpand(t, rep), [p.B, p.H, p.Tk, t.shape[3]!]));
  let s = mul(matmulT(q, expandKv(k)), p.scale); // (B, H, Tq, Tk)
  if (p.softcap) s = mul(tanh(mul(s, 1 / p.softcap)), p.softcap);
  if (opts.bias) s = add(s, opts.bias);
  let visible = attentionMask(p.Tq, p.Tk, p.causal, p.window); // (Tq, Tk)
  if (opts.kvLen) {
    const keyOk = reshape(lessThanLen(opts.kvLen, p.Tk), [p.B, 1, 1, p.Tk]);
    visible = logicalAndT(visible, keyOk);
  }
  // a -inf bias hides keys too: rows it masks fully must give 0 (as the fused kernel does), not NaN
  if (opts.bias) visible = logicalAndT(visible, gt(s, -Infinity));
  s = where(visible, s, -Infinity);
  const probs = softmax(s, -1);
  const safe = where(visible, probs, 0); // fully-masked rows give 0, not NaN
  return matmulPlain(safe, expandKv(v));
}

// small helpers kept local to avoid import cycles with linalg
import { matmul } from './linalg.js';
import { expand } from './movement.js';
import { gt, logicalAnd, lt, tanh } from './elementwise.js';
const matmulT = (a: Tensor, b: Tensor) => matmul(a, b, { transB: true });
const matmulPlain = (a: Tensor, b: Tensor) => matmul(a, b);
function unsqueezeExpand(t: Tensor, rep: number): Tensor {
  const [B, Hkv, T, D] = t.shape as [number, number, number, number];
  return expand(unsqueeze(t, 2), [B, Hkv, rep, T, D]); // (B, Hkv, rep, T, D)
}
function lessThanLen(kvLen: Tensor, Tk: number): Tensor {
  return lt(reshape(arange(Tk), [1, Tk]), reshape(kvLen, [-1, 1])); // (B, Tk)
}
const logicalAndT = (a: Tensor, b: Tensor) => logicalAnd(a, b);

// ---- cross-entropy ----
export interface CrossEntropyOptions {
  ignoreIndex?: number;
  labelSmoothing?: number;
  reduction?: 'mean' | 'sum' | 'none';
}

/**
 * logits [..., V], targets int32 [...] -> mean loss over non-ignored targets (torch semantics,
 * including label smoothing). reduction 'none' returns per-position losses (0 where ignored).
 */
export function crossEntropy(logits: Tensor, targets: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, labelSmoothing = 0, reduction = 'mean' } = opts;
  checkDType('crossEntropy', 'logits', logits, F32);
  checkDType('crossEntropy', 'targets', targets, ['int32']);
  const V = logits.shape[logits.ndim - 1]!;
  if (targets.ndim !== logits.ndim - 1 || targets.shape.some((d, i) => d !== logits.shape[i])) {
    throw new Error(
      `crossEntropy: targets ${fmt(targets.shape)} do not match logits ${fmt(logits.shape)} (expected targets = logits shape without the last axis)`,
    );
  }
  if (!(labelSmoothing >= 0 && labelSmoothing < 1))
    throw new Error(`crossEntropy: labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  const tc = contig(targets);
  const counted = checkTargets(tc, V, ignoreIndex);
  const rows = targets.size;
  const p: CrossEntropyParams = { rows, V, ignoreIndex, labelSmoothing };
  const lc = f32c(logits);
  const loss = allocOut(targets.shape, 'float32', logits);
  const lse = allocOut([rows], 'float32', logits);
  kernel(lc, 'crossEntropy')(lc.view(), tc.view(), loss.view(), lse.view(), p);
  const perRow = record(loss, 'crossEntropy', [logits], (g) => {
    const gc = f32c(g);
    const dl = allocOut(logits.shape, 'float32', logits);
    kernel(gc, 'crossEntropyBackward')(lc.view(), tc.view(), lse.view(), gc.view(), dl.view(), p);
    return [dl];
  });
  if (reduction === 'none') return perRow;
  const total = sumAll(perRow);
  return reduction === 'sum' ? total : mul(total, counted === 0 ? NaN : 1 / counted);
}

import { sum as sumReduce } from './reduce.js';
const sumAll = (t: Tensor) => sumReduce(t);

/** range-check targets on the host; returns how many are not ignored */
function checkTargets(t: Tensor, V: number, ignore: number): number {
  const vals = t.data();
  let n = 0;
  for (let i = 0; i < vals.length; i++) {
    const v = vals[i]!;
    if (v === ignore) continue;
    if (v < 0 || v >= V)
      throw new Error(
        `crossEntropy: target ${v} at flat position ${i} is out of range for ${V} classes (ignoreIndex ${ignore})`,
      );
    n++;
  }
  return n;
}

// ---- indexing ----
function checkIndices(op: string, idx: Tensor, n: number): Tensor {
  checkDType(op, 'indices', idx, ['int32']);
  const c = contig(idx);
  const bound = hostCheckedBound(idx);
  if (bound !== undefined && bound <= n) return c; // checked on the host before upload: no read-back
  const vals = c.data();
  for (let i = 0; i < vals.length; i++) {
    if (vals[i]! < 0 || vals[i]! >= n)
      throw new Error(`${op}: index ${vals[i]} at position ${i} is out of range [0, ${n})`);
  }
  return c;
}

/** select entries along `axis` by an int32 index vector: out.shape[axis] = idx.size */
export function indexSelect(x: Tensor, axis: number, idx: Tensor): Tensor {
  const a = normAxis(axis, x.ndim, 'indexSelect');
  sameBackend('indexSelect', x, idx);
  if (idx.ndim !== 1) throw new Error(`indexSelect: indices must be 1-D, got ${fmt(idx.shape)}`);
  const ic = checkIndices('indexSelect', idx, x.shape[a]!);
  const xc = contig(x);
  const outer = numel(x.shape.slice(0, a));
  const inner = numel(x.shape.slice(a + 1));
  const m = idx.size;
  const shape = [...x.shape];
  shape[a] = m;
  const out = allocOut(shape, x.dtype, x);
  kernel(xc, 'gather')(xc.view(), ic.view(), out.view(), outer, x.shape[a]!, inner, m);
  return record(out, 'indexSelect', [x], (g) => [scatterAdd(zeros(x.shape, g.dtype), a, ic, g)]);
}

/** out = x with src rows added at idx along axis (torch index_add) */
export function scatterAdd(x: Tensor, axis: number, idx: Tensor, src: Tensor): Tensor {
  const a = normAxis(axis, x.ndim, 'scatterAdd');
  sameBackend('scatterAdd', x, idx, src);
  const ic = checkIndices('scatterAdd', idx, x.shape[a]!);
  const expect = [...x.shape];
  expect[a] = idx.size;
  if (src.ndim !== x.ndim || src.shape.some((d, i) => d !== expect[i])) {
    throw new Error(
      `scatterAdd: src ${fmt(src.shape)} must have shape ${fmt(expect)} for x ${fmt(x.shape)} and ${idx.size} indices`,
    );
  }
  const out = copyTo(x, 'float32');
  const sc = f32c(src);
  kernel(sc, 'scatterAdd')(
    sc.view(),
    ic.view(),
    out.view(),
    numel(x.shape.slice(0, a)),
    x.shape[a]!,
    numel(x.shape.slice(a + 1)),
    idx.size,
  );
  return record(out, 'scatterAdd', [x, src], (g) => [g, indexSelect(g, a, ic)]);
}

/** embedding lookup: weight [V, C], ids int32 [...] -> [..., C] */
export function embedding(weight: Tensor, ids: Tensor): Tensor {
  checkRank('embedding', 'weight', weight, 2);
  return reshape(indexSelect(weight, 0, inheritHostCheck(ids, flatten(ids))), [...ids.shape, weight.shape[1]!]);
}

/** take_along_axis on the last axis: x [..., n], idx int32 [..., k] -> [..., k] */
export function gatherLast(x: Tensor, idx: Tensor): Tensor {
  const n = x.shape[x.ndim - 1]!;
  const k = idx.shape[idx.ndim - 1]!;
  const rows = x.size / n;
  if (idx.size / k !== rows)
    throw new Error(`gatherLast: index ${fmt(idx.shape)} does not match x ${fmt(x.shape)} in the leading dims`);
  const base = mul(reshape(arange(rows), [rows, 1]), n); // (rows, 1) row offsets
  const flat = reshape(add(base, reshape(idx, [rows, k])), [-1]);
  checkIndices('gatherLast', reshape(idx, [-1]), n);
  return reshape(indexSelect(reshape(x, [-1]), 0, flat), idx.shape);
}

/** top-k along the last axis, sorted descending; values are differentiable */
export function topk(x: Tensor, k: number): { values: Tensor; indices: Tensor } {
  const n = x.shape[x.ndim - 1]!;
  if (!Number.isInteger(k) || k < 1 || k > n)
    throw new Error(`topk: k=${k} is out of range for a last axis of size ${n}`);
  const xc = f32c(x);
  const rows = x.size / n;
  const values = allocOut([...x.shape.slice(0, -1), k], 'float32', x);
  const indices = allocOut([...x.shape.slice(0, -1), k], 'int32', x);
  kernel(xc, 'topk')(xc.view(), values.view(), indices.view(), rows, n, k);
  if (!x.requiresGrad) return { values, indices };
  values.dispose();
  return { values: gatherLast(x, indices), indices };
}

export function oneHot(ids: Tensor, n: number): Tensor {
  checkDType('oneHot', 'ids', ids, ['int32']);
  return cast(eq(unsqueeze(ids, -1), arange(n)), 'float32');
}

/** inclusive cumulative sum along axis */
export function cumsum(x: Tensor, axis = -1, reverse = false): Tensor {
  const a = normAxis(axis, x.ndim, 'cumsum');
  const xc = x.dtype === 'int32' ? contig(x) : f32c(x);
  const out = allocOut(x.shape, xc.dtype, x);
  const dims = [numel(x.shape.slice(0, a)), x.shape[a]!, numel(x.shape.slice(a + 1))] as const;
  kernel(xc, 'cumsum')(xc.view(), out.view(), ...dims, reverse);
  return record(out, 'cumsum', [x], (g) => [cumsum(g, a, !reverse)]);
}

// ---- masks ----
function triMask(rows: number, cols: number, k: number, lower: boolean): Tensor {
  const vals = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++)
    for (let j = 0; j < cols; j++) vals[i * cols + j] = lower ? (j - i <= k ? 1 : 0) : j - i >= k ? 1 : 0;
  return fromValues(vals, [rows, cols], 'bool');
}

/** keep the lower triangle (j - i <= k) of the last two axes, zero elsewhere */
export function tril(x: Tensor, k = 0): Tensor {
  const [r, c] = x.shape.slice(-2) as [number, number];
  return where(triMask(r, c, k, true), x, 0);
}

/** keep the upper triangle (j - i >= k) of the last two axes, zero elsewhere */
export function triu(x: Tensor, k = 0): Tensor {
  const [r, c] = x.shape.slice(-2) as [number, number];
  return where(triMask(r, c, k, false), x, 0);
}

// ---- dropout ----
/** inverted dropout: zero with probability p, scale survivors by 1/(1-p); identity when !training */
export function dropout(x: Tensor, p: number, training = true, rng: Rng = defaultRng()): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: p must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const keepMask = new Uint8Array(x.size);
  for (let i = 0; i < keepMask.length; i++) keepMask[i] = rng.uniform() >= p ? 1 : 0;
  return mul(where(fromValues(keepMask, x.shape, 'bool'), x, 0), 1 / (1 - p));
}

// ---- Mamba primitives ----
/** causal depthwise conv1d: x [B, C, T], w [C, K], bias [C] -> [B, C, T] */
export function conv1dCausal(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  checkRank('conv1dCausal', 'x', x, 3);
  checkRank('conv1dCausal', 'weight', w, 2);
  const [B, C, T] = x.shape as [number, number, number];
  const K = w.shape[1]!;
  if (w.shape[0] !== C || (bias && (bias.ndim !== 1 || bias.shape[0] !== C))) {
    throw new Error(
      `conv1dCausal: weight ${fmt(w.shape)} / bias ${bias ? fmt(bias.shape) : 'none'} do not match ${C} channels of x ${fmt(x.shape)}`,
    );
  }
  const [xc, wc, bc] = [f32c(x), f32c(w), bias && f32c(bias)];
  const out = allocOut(x.shape, 'float32', x);
  kernel(xc, 'conv1d')(xc.view(), wc.view(), bc?.view() ?? null, out.view(), B, C, T, K);
  return record(out, 'conv1dCausal', bias ? [x, w, bias] : [x, w], (g) => {
    const gc = f32c(g);
    const [dx, dw, db] = [
      allocOut(x.shape, 'float32', x),
      allocOut(w.shape, 'float32', x),
      bias ? allocOut([C], 'float32', x) : null,
    ];
    kernel(gc, 'conv1dBackward')(xc.view(), wc.view(), gc.view(), dx.view(), dw.view(), db?.view() ?? null, B, C, T, K);
    return bias ? [dx, dw, db] : [dx, dw];
  });
}

/**
 * Selective scan (Mamba S6). x, delta [B, T, C]; A [C, N]; Bm, Cm [B, T, N]; D [C] | null;
 * h0 [B, C, N] | null. Returns y [B, T, C] (differentiable in every input) and the final state
 * hT [B, C, N] (not differentiable: it feeds the next decoding step).
 */
export function selectiveScan(
  x: Tensor,
  delta: Tensor,
  A: Tensor,
  Bm: Tensor,
  Cm: Tensor,
  D: Tensor | null = null,
  h0: Tensor | null = null,
): { y: Tensor; hT: Tensor } {
  checkRank('selectiveScan', 'x', x, 3);
  const [B, T, C] = x.shape as [number, number, number];
  const N = A.shape[1]!;
  const expect: [string, Tensor | null, number[]][] = [
    ['delta', delta, [B, T, C]],
    ['A', A, [C, N]],
    ['B', Bm, [B, T, N]],
    ['C', Cm, [B, T, N]],
    ['D', D, [C]],
    ['h0', h0, [B, C, N]],
  ];
  for (const [name, t, shape] of expect) {
    if (t && (t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i])))
      throw new Error(`selectiveScan: ${name} has shape ${fmt(t.shape)}, expected ${fmt(shape)}`);
  }
  const cs = [x, delta, A, Bm, Cm].map(f32c) as [Tensor, Tensor, Tensor, Tensor, Tensor];
  const [Dc, hc] = [D && f32c(D), h0 && f32c(h0)];
  const y = allocOut([B, T, C], 'float32', x);
  const hT = allocOut([B, C, N], 'float32', x);
  const p = { B, T, C, N };
  const v = cs.map((t) => t.view()) as [View, View, View, View, View];
  kernel(cs[0], 'scan')(...v, Dc?.view() ?? null, hc?.view() ?? null, y.view(), hT.view(), p);
  const inputs = [x, delta, A, Bm, Cm, ...(D ? [D] : []), ...(h0 ? [h0] : [])];
  const yOut = record(y, 'selectiveScan', inputs, (g) => {
    const gc = f32c(g);
    const grads = [x.shape, delta.shape, A.shape, Bm.shape, Cm.shape].map((s) => allocOut(s, 'float32', x)) as [
      Tensor,
      Tensor,
      Tensor,
      Tensor,
      Tensor,
    ];
    const dD = D ? allocOut([C], 'float32', x) : null;
    const dh0 = h0 ? allocOut([B, C, N], 'float32', x) : null;
    kernel(gc, 'scanBackward')(
      ...v,
      Dc?.view() ?? null,
      hc?.view() ?? null,
      gc.view(),
      null,
      ...(grads.map((t) => t.view()) as [View, View, View, View, View]),
      dD?.view() ?? null,
      dh0?.view() ?? null,
      p,
    );
    return [...grads, ...(D ? [dD] : []), ...(h0 ? [dh0] : [])];
  });
  return { y: yOut, hT };
}

// ---- optimizer update ----
export interface AdamWStep {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  step: number;
}

/** in-place AdamW update of a float32 parameter and its moment buffers (not recorded by autograd) */
export function adamwUpdate(param: Tensor, grad: Tensor, m: Tensor, v: Tensor, s: AdamWStep): void {
  for (const [n, t] of [
    ['param', param],
    ['grad', grad],
    ['m', m],
    ['v', v],
  ] as const) {
    checkDType('adamwUpdate', n, t, ['float32']);
    if (!t.isContiguous || t.size !== param.size)
      throw new Error(`adamwUpdate: ${n} must be contiguous with ${param.size} elements, got ${fmt(t.shape)}`);
  }
  sameBackend('adamwUpdate', param, grad, m, v);
  kernel(param, 'adamw')(param.view(), grad.view(), m.view(), v.view(), { n: param.size, ...s });
}
