// The backend contract: the only thing a new device (native CPU, WebGPU) has to implement.
//
// A backend owns raw buffers (allocate / free / read / write) and runs kernels over them.
// Kernels receive `View`s: a buffer plus shape, element strides and element offset. Unless a
// kernel's comment says "any strides", its inputs are contiguous (row-major from `offset`);
// the op layer (src/ops) guarantees that before calling. Outputs are contiguous (from their
// View's offset), except `copy`, whose output may be any strided window (used by pad/concat/slice
// gradients).
//
// Every kernel has a pure-TypeScript reference implementation (src/backend/reference). A fast
// backend implements any subset of `KernelTable` (`FastKernels`), says which dtype combinations
// it takes (`supports`), and may decline a call it cannot do (a layout it lacks) by returning
// false. Everything missing, unsupported or declined runs the reference kernel through `view()`
// (zero-copy typed-array access): that decision lives in one place, src/backend/dispatch.ts.
//
// Notation used in kernel comments: B batch, H query heads, Hkv key/value heads, Tq/Tk query and
// key lengths, Dk/Dv head dims, R rows, N row length, V vocabulary.

import type { FusedProgram } from './fused.js';

/** Buffer element types. int8 is a storage type of backend buffers only (the engine's quantized KV pools,
 * with float32 scales beside them): no tensor has it (src/backend/dtype.ts DTYPES lists the tensor dtypes). */
export type DType = 'float32' | 'float16' | 'bfloat16' | 'int32' | 'bool' | 'int8';

/** Typed array used to hold each dtype. float16/bfloat16 are stored as raw 16-bit patterns. */
export type StorageArray<D extends DType = DType> = D extends 'float32'
  ? Float32Array
  : D extends 'int32'
    ? Int32Array
    : D extends 'bool'
      ? Uint8Array
      : D extends 'int8'
        ? Int8Array
        : Uint16Array;

export type AnyArray = Float32Array | Int32Array | Uint8Array | Uint16Array | Int8Array;

/** An opaque buffer handle. `ptr` is meaningful to the owning backend only (byte offset in wasm memory). */
export interface Buf {
  readonly backend: Backend;
  readonly dtype: DType;
  /** number of elements */
  readonly length: number;
  readonly ptr: number;
  /** set by free(); any further use is a bug that backends must reject */
  freed: boolean;
}

/** A strided window onto a buffer; strides and offset are in elements. */
export interface View {
  buf: Buf;
  shape: readonly number[];
  strides: readonly number[];
  offset: number;
}

export const UNARY_OPS = [
  'neg',
  'abs',
  'exp',
  'log',
  'sqrt',
  'rsqrt',
  'tanh',
  'sigmoid',
  'relu',
  'gelu',
  'gelu_tanh',
  'silu',
  'softplus',
  'sin',
  'cos',
  'sign',
  'square',
  'reciprocal',
  'erf',
  'log1p',
  'floor',
  'not',
] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];

export const BINARY_OPS = [
  'add',
  'sub',
  'mul',
  'div',
  'pow',
  'maximum',
  'minimum',
  'eq',
  'ne',
  'lt',
  'le',
  'gt',
  'ge',
  'and',
  'or',
] as const;
export type BinaryOp = (typeof BINARY_OPS)[number];

export const REDUCE_OPS = ['sum', 'max', 'min', 'argmax', 'argmin'] as const;
export type ReduceOp = (typeof REDUCE_OPS)[number];

/** out[b] = op(A[b]) @ op(B[b]); op = transpose when the flag is set. */
export interface MatmulParams {
  batch: number;
  M: number;
  N: number;
  K: number;
  /** A is stored [K, M] per batch instead of [M, K] */
  transA: boolean;
  /** B is stored [N, K] per batch instead of [K, N] */
  transB: boolean;
  /** elements between consecutive batch matrices; 0 broadcasts one matrix over the batch */
  strideA: number;
  strideB: number;
}

/**
 * out [M, N] = x [M, K] @ dequant(W)^T, W [N, K] packed in GGUF blocks of 32 (src/backend/reference/quant.ts):
 * bits 8 = q8_0 (34-byte blocks), bits 4 = q4_0 (18-byte blocks); the int32 view `w` holds the raw bytes.
 */
export interface QuantMatmulParams {
  M: number;
  N: number;
  K: number;
  bits: 4 | 8;
}

/** Scaled-dot-product attention. q [B, H, Tq, Dk], k [B, Hkv, Tk, Dk], v [B, Hkv, Tk, Dv]. */
export interface AttentionParams {
  B: number;
  H: number;
  Hkv: number;
  Tq: number;
  Tk: number;
  Dk: number;
  Dv: number;
  scale: number;
  /** query i sits at absolute position i + (Tk - Tq) (KV-cache decoding) and sees keys j <= its position */
  causal: boolean;
  /** sliding window: key j visible only if pos - j < window (0 = unlimited) */
  window: number;
  /** optional key-padding lengths [B] (int32): keys j >= kvLen[b] are masked */
  kvLen: View | null;
  /** optional additive bias broadcastable to [B, H, Tq, Tk] (strides may be 0): ALiBi, T5 buckets, custom masks */
  bias: View | null;
  /** tanh soft-cap of the scaled scores before bias and mask, cap * tanh(s / cap) (Gemma 2); 0 / absent = none.
   * A kernel that lacks it must decline (return false) so the reference runs. */
  softcap?: number;
}

/**
 * Paged attention of the inference engine: T query tokens of a flattened ragged batch, token t of
 * sequence seq[t] at absolute position pos[t], attending to its own sequence's keys at positions
 * max(0, pos - window + 1) .. pos, read in place from a KV block pool through the sequence's block table
 * (slot of position i = tables[seq, i / blockSize] * blockSize + i % blockSize). The pool views' dtype
 * tags the KV storage (a fast backend declines what it does not read; the reference reads float32,
 * float16, bfloat16 and int8). An int8 pool comes with its scales (PagedScales): element x of row r (the
 * row of one slot and kv head) stands for fround(x * scale[r]).
 */
export interface PagedAttentionParams {
  T: number;
  H: number;
  Hkv: number;
  Dk: number;
  Dv: number;
  blockSize: number;
  /** sequences (rows of the table) */
  S: number;
  /** table row length; entries past a sequence's blocks are -1 */
  maxBlocks: number;
  /** 0 = every past key visible */
  window: number;
  scale: number;
}

/** the float32 scales of int8 K and V pools, one per row: k [slots, Hkv], v [slots, Hkv] */
export interface PagedScales {
  k: View;
  v: View;
}

export interface RopeHeadsParams {
  T: number;
  H: number;
  D: number;
  half: number;
}

export interface PagedWriteParams {
  T: number;
  Hkv: number;
  D: number;
}

export interface NormParams {
  rows: number;
  n: number;
  eps: number;
}

export interface CrossEntropyParams {
  rows: number;
  V: number;
  ignoreIndex: number;
  labelSmoothing: number;
}

export interface AdamWParams {
  n: number;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step, for bias correction */
  step: number;
}

/** Selective scan (Mamba, S6): h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t x_t ; y_t = C_t·h_t + D x_t. */
export interface ScanParams {
  B: number;
  T: number;
  /** channels (d_inner) */
  C: number;
  /** state size */
  N: number;
}

/**
 * Kernel table. Every entry is implemented by the reference backend; fast backends implement a
 * subset. Shapes in comments; "out" buffers are preallocated, contiguous, zero-offset.
 */
export interface KernelTable {
  /** x and out any strides, same shape (out may be a strided window of a larger buffer); converts dtypes */
  copy(x: View, out: View): void;
  /** any strides; out contiguous, same shape */
  unary(op: UnaryOp, x: View, out: View): void;
  /** out = dy * op'(x), with y = op(x) the forward output (cheaper derivatives: tanh, sigmoid, exp, gelu); all contiguous */
  unaryBackward(op: UnaryOp, x: View, y: View, dy: View, out: View): void;
  /** a, b any strides, already broadcast to out.shape (stride 0 on broadcast axes) */
  binary(op: BinaryOp, a: View, b: View, out: View): void;
  /** cond (bool), a, b any strides broadcast to out.shape */
  where(cond: View, a: View, b: View, out: View): void;
  /** x contiguous [outer, n, inner] -> out [outer, inner] (int32 for arg ops) */
  reduce(op: ReduceOp, x: View, outer: number, n: number, inner: number, out: View): void;
  /** see MatmulParams; a, b contiguous per their stored layout; out [batch, M, N] */
  matmul(a: View, b: View, out: View, p: MatmulParams): void;
  /** x, out float32 contiguous; w int32 words holding the packed blocks (QuantMatmulParams) */
  quantMatmul(x: View, w: View, out: View, p: QuantMatmulParams): void;
  /** x [rows, n] -> softmax (or log-softmax) along n */
  softmax(x: View, out: View, rows: number, n: number, log: boolean): void;
  /** y = forward output; dx = y*(dy - sum(dy*y)) or dy - softmax*sum(dy) for log */
  softmaxBackward(y: View, dy: View, dx: View, rows: number, n: number, log: boolean): void;
  /** x [rows, n]; weight/bias [n] or null; mean/rstd [rows] saved for backward */
  layerNorm(x: View, w: View | null, b: View | null, out: View, mean: View, rstd: View, p: NormParams): void;
  /** dw/db accumulate-free: written fresh; null when the corresponding param is absent */
  layerNormBackward(
    x: View,
    w: View | null,
    mean: View,
    rstd: View,
    dy: View,
    dx: View,
    dw: View | null,
    db: View | null,
    p: NormParams,
  ): void;
  rmsNorm(x: View, w: View | null, out: View, rstd: View, p: NormParams): void;
  rmsNormBackward(x: View, w: View | null, rstd: View, dy: View, dx: View, dw: View | null, p: NormParams): void;
  /**
   * q [H, T, Dk] -> out [H, T, Dv] over the pools k [slots, Hkv, Dk], v [slots, Hkv, Dv]; tables int32
   * [S, maxBlocks], seq / pos int32 [T] (PagedAttentionParams; the engine validates them first); scales
   * with int8 pools (and only with them)
   */
  pagedAttention(
    q: View,
    k: View,
    v: View,
    tables: View,
    seq: View,
    pos: View,
    out: View,
    p: PagedAttentionParams,
    scales?: PagedScales,
  ): void;
  /**
   * the new keys (or values) of a step into a paged pool: src float32 [Hkv, T, D] -> pool [slots, Hkv, D]
   * (float32, float16, bfloat16 or int8) at rows slots[t] (int32 [T], checked by the engine). float16 rounds to
   * nearest even and saturates finite overflow to +-65504 (a cache holds no infinity the model did not
   * make); bfloat16 rounds to nearest even. An int8 pool also takes its scales (float32 [slots, Hkv]): per
   * row s = max|x| / 127 and q = round(x * (1 / s)) (ties up, as Math.round), in float64, s stored as float32
   * (a row of zeros: s = 0, q = 0; a row holding NaN or an infinity stores that s and q = 0, so it reads back
   * as NaN)
   */
  pagedWrite(src: View, slots: View, pool: View, p: PagedWriteParams, scale?: View): void;
  /**
   * x [T, H, D] (token-major rows, as a projection writes them) -> out [H, T, D] (head-major, as attention
   * reads them), with rotate_half RoPE on the first 2 * half dims of every head: o[i] = x[i] cos - x[i + half]
   * sin, o[i + half] = x[i + half] cos + x[i] sin (cos / sin [T, half]; each product rounded to float32, then
   * the sum, as the reference rope op rounds); dims past 2 * half are copied. half = 0 only transposes.
   */
  ropeHeads(x: View, cos: View, sin: View, out: View, p: RopeHeadsParams): void;
  /** out [B, H, Tq, Dv]; lse [B, H, Tq] (log-sum-exp of scaled scores, saved for backward) */
  attention(q: View, k: View, v: View, out: View, lse: View, p: AttentionParams): void;
  /** dq [B,H,Tq,Dk], dk [B,Hkv,Tk,Dk], dv [B,Hkv,Tk,Dv] written fresh */
  attentionBackward(
    q: View,
    k: View,
    v: View,
    out: View,
    lse: View,
    dout: View,
    dq: View,
    dk: View,
    dv: View,
    p: AttentionParams,
  ): void;
  /** logits [rows, V], targets int32 [rows] -> loss [rows] (0 where ignored); also writes lse [rows] */
  crossEntropy(logits: View, targets: View, loss: View, lse: View, p: CrossEntropyParams): void;
  /** dlogits [rows, V] = dloss[row] * (softmax - smoothed onehot); 0 rows where ignored */
  crossEntropyBackward(logits: View, targets: View, lse: View, dloss: View, dlogits: View, p: CrossEntropyParams): void;
  /** x [outer, n, inner], idx int32 [m] -> out [outer, m, inner]; idx bounds checked by the op layer */
  gather(x: View, idx: View, out: View, outer: number, n: number, inner: number, m: number): void;
  /** out [outer, n, inner] += src [outer, m, inner] scattered along n by idx [m]; out is pre-filled */
  scatterAdd(src: View, idx: View, out: View, outer: number, n: number, inner: number, m: number): void;
  /** x [outer, n, inner] -> inclusive cumulative sum along n (reverse = from the end) */
  cumsum(x: View, out: View, outer: number, n: number, inner: number, reverse: boolean): void;
  /** x [rows, n] -> values/indices [rows, k], sorted descending */
  topk(x: View, values: View, indices: View, rows: number, n: number, k: number): void;
  /** causal depthwise conv: x [B, C, T], w [C, K], bias [C] | null -> out [B, C, T]; out_t = sum_j w_j x_{t-K+1+j} */
  conv1d(x: View, w: View, bias: View | null, out: View, B: number, C: number, T: number, K: number): void;
  conv1dBackward(
    x: View,
    w: View,
    dy: View,
    dx: View,
    dw: View,
    db: View | null,
    B: number,
    C: number,
    T: number,
    K: number,
  ): void;
  /**
   * selective scan. x, delta [B, T, C]; A [C, N]; Bm, Cm [B, T, N]; D [C] | null; h0 [B, C, N] | null
   * -> y [B, T, C], hT [B, C, N] (final state)
   */
  scan(
    x: View,
    delta: View,
    A: View,
    Bm: View,
    Cm: View,
    D: View | null,
    h0: View | null,
    y: View,
    hT: View,
    p: ScanParams,
  ): void;
  /** gradients of scan (recomputes states); dD / dh0 null when absent */
  scanBackward(
    x: View,
    delta: View,
    A: View,
    Bm: View,
    Cm: View,
    D: View | null,
    h0: View | null,
    dy: View,
    dhT: View | null,
    dx: View,
    ddelta: View,
    dA: View,
    dB: View,
    dC: View,
    dD: View | null,
    dh0: View | null,
    p: ScanParams,
  ): void;
  /** in-place AdamW on float32 param/m/v with float32 grad */
  adamw(param: View, grad: View, m: View, v: View, p: AdamWParams): void;
  /**
   * fused elementwise chain (src/backend/fused.ts): out = program(inputs) in one pass; inputs float32
   * contiguous, each of out's numel, 1 element (scalar) or a trailing block repeated; out float32
   */
  fused(program: FusedProgram, inputs: readonly View[], out: View): void;
}

export type KernelName = keyof KernelTable;

/** A fast backend's kernels: any subset; a kernel returns false to decline a call (reference runs). */
export type FastKernels = { [K in KernelName]?: (...args: Parameters<KernelTable[K]>) => void | false };

export interface Backend {
  readonly name: string;
  /** buffer of `length` elements, zero-filled unless `zero` is false (outputs a kernel fully overwrites) */
  allocate(dtype: DType, length: number, zero?: boolean): Buf;
  free(buf: Buf): void;
  /** copy out `length` elements starting at `offset` */
  read(buf: Buf, offset?: number, length?: number): AnyArray;
  write(buf: Buf, data: AnyArray, offset?: number): void;
  /** zero-copy typed-array view when the memory is host-visible, else null (e.g. WebGPU) */
  view(buf: Buf): AnyArray | null;
  /** fast kernels; anything missing, unsupported or declined runs the reference implementation */
  readonly kernels: FastKernels;
  /** whether the fast kernel `name` takes arguments of these dtypes (view arguments in order, nulls
   * skipped); absent = every dtype its kernels are given */
  supports?(name: KernelName, dtypes: readonly DType[]): boolean;
  /** bytes currently allocated (for memory tests and benchmarks) */
  bytesInUse(): number;
  /** high-water mark of bytesInUse since the last resetPeak (memory reports: checkpointing, mixed precision) */
  peakBytesInUse?(): number;
  resetPeak?(): void;
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'float32':
    case 'int32':
      return 4;
    case 'float16':
    case 'bfloat16':
      return 2;
    case 'bool':
    case 'int8':
      return 1;
    default:
      return dtype satisfies never;
  }
}

/** the sub-table of a kernel op-code table for `ops` (e.g. the ops that also have a derivative kernel);
 * an op the table lacks is a programming error, caught when the backend module loads */
export function codesOf<K extends string>(
  table: Partial<Record<K, number>>,
  ops: readonly K[],
): Partial<Record<K, number>> {
  const out: Partial<Record<K, number>> = {};
  for (const op of ops) {
    const code = table[op];
    if (code === undefined) throw new Error(`codesOf: op '${op}' has no code in the table`);
    out[op] = code;
  }
  return out;
}
