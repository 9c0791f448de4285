// Shared machinery of the op layer: allocation on the inputs' backend, kernel dispatch with the
// reference fallback, autograd recording, broadcasting views and gradient reduction.
import type { DType, KernelName, KernelTable, View } from '../backend/backend.js';
import { kernelFor } from '../backend/dispatch.js';
import { DTYPES } from '../backend/dtype.js';
import { Storage, getBackend, isGradEnabled } from '../tensor/engine.js';
import { broadcastShapes, fmt, numel, type Shape } from '../tensor/shape.js';
import { Tensor } from '../tensor/tensor.js';

export type TensorLike = Tensor | number;

/**
 * A dtype given by the user (creation functions, casts), checked before any backend sees it: every
 * backend then fails the same way (an unknown string used to reach the allocator, or on the reference
 * backend give a tensor of that "dtype").
 */
export function checkDTypeName(op: string, d: unknown): DType {
  if (typeof d === 'string' && (DTYPES as readonly string[]).includes(d)) return d as DType;
  const list = DTYPES.join(', ');
  if (d === 'int8') throw new Error(`${op}: dtype "int8" is a storage type, not a tensor dtype (${list})`);
  if (typeof d === 'string') throw new Error(`${op}: unknown dtype ${JSON.stringify(d)} (${list})`);
  throw new Error(`${op}: dtype must be one of ${list}, got ${describeValue(d)}`);
}

export function describeValue(v: unknown): string {
  if (v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : typeof v;
}

/** output on the same backend as `like` (or the current backend); zero-filled unless `zero` is false */
export function alloc(shape: Shape, dtype: DType, like?: Tensor, zero = true): Tensor {
  const backend = like ? like.backend : getBackend();
  return new Tensor(new Storage(backend.allocate(dtype, numel(shape), zero)), shape, dtype);
}

/** output that the kernel about to run overwrites completely: skips zero-filling */
export function allocOut(shape: Shape, dtype: DType, like: Tensor): Tensor {
  return alloc(shape, dtype, like, false);
}

/** a view sharing t's storage */
export function aliasView(t: Tensor, shape: Shape, strides: readonly number[], offset: number): Tensor {
  t.assertAlive('view');
  return new Tensor(t.storage, shape, t.dtype, strides, offset);
}

/** kernel `name` on t's backend, with the reference fallback (src/backend/dispatch.ts) */
export function kernel<K extends KernelName>(t: Tensor, name: K): (...args: Parameters<KernelTable[K]>) => void {
  return kernelFor(t.backend, name);
}

export function sameBackend(op: string, ...ts: (Tensor | null | undefined)[]): void {
  const first = ts.find((t) => t)!;
  for (const t of ts) {
    if (!t) continue;
    t.assertAlive(op);
    if (t.backend !== first.backend)
      throw new Error(`${op}: tensors live on different backends ('${first.backend.name}' and '${t.backend.name}')`);
  }
}

/** attach a gradient rule when recording is on and some input needs a gradient */
export function record(out: Tensor, op: string, inputs: Tensor[], backward: (g: Tensor) => (Tensor | null)[]): Tensor {
  if (!isGradEnabled() || !inputs.some((x) => x.requiresGrad)) return out;
  out.requiresGrad = true;
  out.node = { op, inputs, backward };
  return out;
}

export function checkDType(op: string, arg: string, t: Tensor, allowed: readonly DType[]): void {
  if (!allowed.includes(t.dtype)) {
    throw new Error(
      `${op}: argument '${arg}' has dtype ${t.dtype}, expected ${allowed.join(' or ')} (shape ${fmt(t.shape)})`,
    );
  }
}

export function checkRank(op: string, arg: string, t: Tensor, rank: number): void {
  if (t.ndim !== rank)
    throw new Error(`${op}: argument '${arg}' must have ${rank} dimensions, got shape ${fmt(t.shape)}`);
}

/** view of t broadcast to `shape` (stride 0 on expanded axes) */
export function broadcastView(t: Tensor, shape: Shape): View {
  const v = t.view();
  const lead = shape.length - t.ndim;
  const strides = shape.map((d, i) => {
    const j = i - lead;
    if (j < 0) return 0;
    return t.shape[j] === 1 && d !== 1 ? 0 : t.strides[j]!;
  });
  return { buf: v.buf, shape, strides, offset: v.offset };
}

/**
 * Binary-kernel views with the broadcast operand's repeated block collapsed: when `out` and one operand
 * are contiguous and the other is a contiguous block of trailing axes repeated over the leading ones
 * (strides [0, .., 0, contiguous..]: e.g. RoPE tables [T, d] against [B, nh, T, d]), all three become
 * 2-D [n / R, R] views, the last-axis row broadcast fast kernels take. Otherwise the views as given.
 */
export function collapseRowBroadcast(a: View, b: View, out: View): [View, View, View] {
  const shape = out.shape;
  const n = numel(shape);
  const [ad, bd] = [denseFrom(a, 0), denseFrom(b, 0)];
  if (shape.length < 3 || n === 0 || !denseFrom(out, 0) || ad === bd) return [a, b, out];
  const bc = ad ? b : a;
  let k = 0; // first axis of the repeated block
  while (k < shape.length && (shape[k] === 1 || bc.strides[k] === 0)) k++;
  if (k === 0 || k === shape.length || !denseFrom(bc, k)) return [a, b, out];
  const R = numel(shape.slice(k));
  const flat = (v: View, row: boolean): View => ({
    buf: v.buf,
    shape: [n / R, R],
    strides: [row ? 0 : R, 1],
    offset: v.offset,
  });
  return [flat(a, !ad), flat(b, !bd), flat(out, false)];
}

/** axes from..end of v are row-major contiguous (axes of size 1 may have any stride) */
function denseFrom(v: View, from: number): boolean {
  let s = 1;
  for (let d = v.shape.length - 1; d >= from; d--) {
    if (v.shape[d] !== 1 && v.strides[d] !== s) return false;
    s *= v.shape[d]!;
  }
  return true;
}

export function broadcast2(op: string, a: Tensor, b: Tensor): number[] {
  return broadcastShapes(a.shape, b.shape, op);
}

/** contiguous version of t for kernels that need it (an alias when already contiguous) */
export function contig(t: Tensor): Tensor {
  return t.isContiguous ? t : copyTo(t, t.dtype);
}

/** fresh contiguous copy, converting dtype */
export function copyTo(t: Tensor, dtype: DType): Tensor {
  const out = allocOut(t.shape, dtype, t);
  kernel(t, 'copy')(t.view(), out.view());
  return out;
}

// ---- mixed precision ----
// Ops on float16/bfloat16 tensors compute in float32 on temporaries freed at once and store their
// results in the low precision, so activations kept for backward stay 2 bytes per element.

/** fn sees a float32 copy of t that is freed right after (t itself when already float32) */
export function widened<T>(t: Tensor, fn: (t32: Tensor) => T): T {
  if (t.dtype === 'float32') return fn(t);
  const t32 = copyTo(t, 'float32');
  try {
    return fn(t32);
  } finally {
    t32.dispose();
  }
}

/** store a float32 result as `dtype` (no-op for null), freeing the float32 tensor */
export function narrow(y32: Tensor, dtype: DType | null): Tensor {
  if (!dtype || y32.dtype === dtype) return y32;
  const y = copyTo(y32, dtype);
  y32.dispose();
  return y;
}
