// Dtypes: float32 is the compute type; float16/bfloat16 are storage types (converted on the way
// in and out of kernels); int32 holds indices; bool holds masks (one byte per element); int8 is a buffer
// storage type only (quantized KV pools), never a tensor's.
import type { AnyArray, DType } from './backend.js';

export type { DType } from './backend.js';
/** the tensor dtypes (every DType but int8) */
export const DTYPES: readonly DType[] = ['float32', 'float16', 'bfloat16', 'int32', 'bool'];

export function isFloat(d: DType): boolean {
  return d === 'float32' || d === 'float16' || d === 'bfloat16';
}

export function assertDType(d: string, where: string): DType {
  if (!(DTYPES as readonly string[]).includes(d)) {
    throw new Error(`${where}: unknown dtype '${d}' (expected one of ${DTYPES.join(', ')})`);
  }
  return d as DType;
}

export function newArray(dtype: DType, n: number): AnyArray {
  switch (dtype) {
    case 'float32':
      return new Float32Array(n);
    case 'int32':
      return new Int32Array(n);
    case 'bool':
      return new Uint8Array(n);
    case 'int8':
      return new Int8Array(n);
    case 'float16':
    case 'bfloat16':
      return new Uint16Array(n);
    default:
      return dtype satisfies never;
  }
}

// ---- float16 / bfloat16 <-> float32 (round to nearest even) ----
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff; // NaN stays NaN
  const rounding = 0x7fff + ((bits >>> 16) & 1);
  return ((bits + rounding) >>> 16) & 0xffff;
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export function f32ToF16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // inf / NaN
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    if (e < -10) return sign; // underflow -> signed zero
    mant |= 0x800000; // subnormal: shift in the implicit bit, round to nearest even
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let h = sign | (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++; // may carry into the exponent: correct
  return h;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** read element i of a storage array as a JS number */
export function readAs(dtype: DType, arr: AnyArray, i: number): number {
  if (dtype === 'float16') return f16ToF32(arr[i]!);
  if (dtype === 'bfloat16') return bf16ToF32(arr[i]!);
  return arr[i]!;
}

/** encode a JS number for storage in `dtype` */
export function encodeAs(dtype: DType, x: number): number {
  switch (dtype) {
    case 'float16':
      return f32ToF16(x);
    case 'bfloat16':
      return f32ToBf16(x);
    case 'int32':
      return Math.trunc(x) | 0;
    case 'bool':
      return x ? 1 : 0;
    case 'int8':
      return Math.max(-128, Math.min(127, Math.round(x))) | 0;
    case 'float32':
      return x;
    default:
      return dtype satisfies never;
  }
}
