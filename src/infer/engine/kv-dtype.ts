// Element types of the paged KV cache. A block stores K/V in one of four dtypes; writes convert or
// quantize on the fly, attention kernels read and dequantize in place (no float32 copy of the cache).
//
//   float32   4 bytes per element
//   float16   2 bytes, IEEE binary16, round to nearest even; magnitudes above 65504 saturate to ±65504
//             (a KV cache has no use for ±Inf, and saturating keeps softmax finite)
//   bfloat16  2 bytes, the top half of a float32, round to nearest even
//   int8      1 byte + one float32 scale per token per KV head (symmetric: x ≈ q * scale, q ∈ [-127, 127],
//             scale = max|x| / 127 over that head's row), so a row's outliers cost only that row's precision
//
// Codes are shared with the WebAssembly kernel (asm/paged.ts): 0 float32, 1 float16, 2 bfloat16, 3 int8.

import { quantizeKvRow } from '../../backend/reference/paged.js';

export type KvDtype = 'float32' | 'float16' | 'bfloat16' | 'int8';

export const KV_DTYPES: readonly KvDtype[] = ['float32', 'float16', 'bfloat16', 'int8'];

/** storage of one K or V pool */
export type KvArray = Float32Array | Uint16Array | Int8Array;

export interface KvDtypeInfo {
  /** bytes per element */
  bytes: number;
  /** the kernel's code for it */
  code: number;
  /** a zeroed array of n elements over `buffer` at `byteOffset` (or fresh) */
  make: (n: number, buffer?: ArrayBufferLike, byteOffset?: number) => KvArray;
}

export const KV_DTYPE_INFO: { readonly [D in KvDtype]: KvDtypeInfo } = {
  float32: { bytes: 4, code: 0, make: (n, b, o) => (b ? new Float32Array(b, o, n) : new Float32Array(n)) },
  float16: { bytes: 2, code: 1, make: (n, b, o) => (b ? new Uint16Array(b, o, n) : new Uint16Array(n)) },
  bfloat16: { bytes: 2, code: 2, make: (n, b, o) => (b ? new Uint16Array(b, o, n) : new Uint16Array(n)) },
  int8: { bytes: 1, code: 3, make: (n, b, o) => (b ? new Int8Array(b, o, n) : new Int8Array(n)) },
};

export function checkKvDtype(d: unknown, where: string): KvDtype {
  if (typeof d === 'string' && (KV_DTYPES as readonly string[]).includes(d)) return d as KvDtype;
  throw new Error(`${where}: KV dtype must be one of ${KV_DTYPES.join(', ')}, got ${String(d)}`);
}

/** bytes one token takes in one layer: K and V rows of every head, plus int8's per-head scales */
export function bytesPerTokenLayer(d: KvDtype, kvHeads: number, kDim: number, vDim: number): number {
  const scales = d === 'int8' ? 2 * kvHeads * 4 : 0;
  return kvHeads * (kDim + vDim) * KV_DTYPE_INFO[d].bytes + scales;
}

// ---- scalar conversions ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 -> binary16 bits, round to nearest even, saturating finite overflow (NaN stays NaN) */
export function toHalf(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  const m = b & 0x7fffff;
  if (e === 0xff && m !== 0) return sign | 0x7e00;
  if (e >= 143) return sign | 0x7bff; // |x| >= 65536 (or Inf): saturate to 65504
  if (e >= 113) {
    // normal half: 10 mantissa bits, round to nearest even on the 13 dropped ones
    let h = ((e - 112) << 10) | (m >>> 13);
    const rest = m & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    return sign | Math.min(h, 0x7bff); // rounding up past 65504 saturates too
  }
  if (e < 102) return sign; // below half the smallest subnormal: zero
  // subnormal half: value = mant * 2^-24
  const full = m | 0x800000;
  const shift = 126 - e; // 14..24
  let h = full >>> shift;
  const rest = full & ((1 << shift) - 1);
  const halfway = 1 << (shift - 1);
  if (rest > halfway || (rest === halfway && (h & 1) === 1)) h++;
  return sign | h;
}

/** float32 -> bfloat16 bits, round to nearest even (NaN stays NaN) */
export function toBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7f800000) === 0x7f800000 && (b & 0x7fffff) !== 0) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

let halfTable: Float32Array | null = null;
let bf16Table: Float32Array | null = null;

/** binary16 bits -> float32, all 65536 of them (256 KiB, built once) */
export function halfTableF32(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  return (halfTable = t);
}

/** bfloat16 bits -> float32, all 65536 of them */
export function bf16TableF32(): Float32Array {
  if (bf16Table) return bf16Table;
  const t = new Float32Array(65536);
  const w = new Uint32Array(t.buffer);
  for (let h = 0; h < 65536; h++) w[h] = h << 16;
  return (bf16Table = t);
}

// ---- rows ----

/**
 * writes the float32 row src[so .. so+n) into element row `row` (of n elements) of `dst`;
 * int8 also writes the row's scale into scales[row]
 */
export function encodeRow(
  d: KvDtype,
  dst: KvArray,
  scales: Float32Array | null,
  row: number,
  src: Float32Array,
  so: number,
  n: number,
): void {
  const o = row * n;
  switch (d) {
    case 'float32':
      (dst as Float32Array).set(src.subarray(so, so + n), o);
      return;
    case 'float16':
      for (let i = 0; i < n; i++) dst[o + i] = toHalf(src[so + i]!);
      return;
    case 'bfloat16':
      for (let i = 0; i < n; i++) dst[o + i] = toBf16(src[so + i]!);
      return;
    case 'int8':
      scales![row] = quantizeKvRow(src, so, n, dst as Int8Array, o);
      return;
    default:
      d satisfies never;
  }
}

/** a reader of one dtype's element rows, dequantizing element by element (the host kernel's view) */
export interface RowReader {
  /** sum_i q[qo + i] * x[row * n + i] (dequantized) */
  dot(q: Float32Array, qo: number, row: number, n: number): number;
  /** out[oo + i] += w * x[row * n + i] (dequantized) */
  axpy(out: Float32Array, oo: number, w: number, row: number, n: number): void;
}

export function rowReader(d: KvDtype, x: KvArray, scales: Float32Array | null): RowReader {
  const table = d === 'float16' ? halfTableF32() : d === 'bfloat16' ? bf16TableF32() : null;
  const scaleOf = (row: number) => (scales ? scales[row]! : 1);
  if (table === null) {
    // float32 and int8 read their elements as numbers directly
    return {
      dot(q, qo, row, n) {
        let s = 0;
        const o = row * n;
        for (let i = 0; i < n; i++) s += q[qo + i]! * x[o + i]!;
        return s * scaleOf(row);
      },
      axpy(out, oo, w, row, n) {
        const o = row * n;
        const ws = w * scaleOf(row);
        for (let i = 0; i < n; i++) out[oo + i]! += ws * x[o + i]!;
      },
    };
  }
  return {
    dot(q, qo, row, n) {
      let s = 0;
      const o = row * n;
      for (let i = 0; i < n; i++) s += q[qo + i]! * table[x[o + i]!]!;
      return s;
    },
    axpy(out, oo, w, row, n) {
      const o = row * n;
      for (let i = 0; i < n; i++) out[oo + i]! += w * table[x[o + i]!]!;
    },
  };
}

/** element row `row` of n elements, dequantized (tests and debugging; kernels never copy the cache) */
export function decodeRow(d: KvDtype, x: KvArray, scales: Float32Array | null, row: number, n: number): Float32Array {
  const out = new Float32Array(n);
  rowReader(d, x, scales).axpy(out, 0, 1, row, n);
  return out;
}
