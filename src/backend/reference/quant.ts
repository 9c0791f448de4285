// GGUF's q8_0 / q4_0 weight blocks (ggml's block_q8_0 / block_q4_0, 32 weights per block), the reference
// codec and the reference quantized matmul kernel. Bytes are laid out exactly as in a GGUF tensor, so an
// export is a copy:
//
//   q8_0: 34 bytes = float16 d (little-endian) + int8 q[32];             w[i] = d * q[i]
//   q4_0: 18 bytes = float16 d + uint8 qs[16];                             w[i] = d * ((qs[i] & 15) - 8),
//                                                                           w[i + 16] = d * ((qs[i] >> 4) - 8)
//
// A weight matrix W [N, K] (out, in) is N rows of K/32 blocks each; K must be a multiple of 32.
// Scales follow ggml's reference quantizers: q8_0 d = max|x| / 127, q = round(x / d); q4_0 d = m / -8 with m
// the element of largest magnitude (its sign kept, so it maps to -8 exactly), q = min(15, trunc(x / d + 8.5)).
import type { QuantMatmulParams, View } from '../backend.js';
import { f16ToF32, f32ToF16 } from '../dtype.js';

export type QuantBits = 4 | 8;

/** weights per block (GGUF's QK8_0 = QK4_0 = 32) */
export const QUANT_BLOCK = 32;

/** bytes of one block */
export function quantBlockBytes(bits: QuantBits): number {
  return bits === 8 ? 34 : 18;
}

/** bytes of one packed row of K weights */
export function quantRowBytes(K: number, bits: QuantBits): number {
  if (K % QUANT_BLOCK !== 0)
    throw new Error(`quantization: the input dimension ${K} is not a multiple of ${QUANT_BLOCK}`);
  return (K / QUANT_BLOCK) * quantBlockBytes(bits);
}

/** C's roundf: halves away from zero (exact for the float32 values it is given) */
function roundAway(x: number): number {
  return x < 0 ? -Math.floor(-x + 0.5) : Math.floor(x + 0.5);
}

function writeHalf(out: Uint8Array, at: number, h: number): void {
  out[at] = h & 255;
  out[at + 1] = h >> 8;
}

const f32 = Math.fround;

/**
 * W [N, K] float32 (row-major) -> N * K/32 blocks, byte for byte what ggml's reference quantizers
 * (quantize_row_q8_0_ref / quantize_row_q4_0_ref) write: every step they compute in float32 is rounded to float32
 * here (d, 1/d, x * id, x * id + 8.5), so values whose quotient lands exactly on .5 round as they do in ggml.
 */
export function quantizeRows(w: Float32Array, N: number, K: number, bits: QuantBits): Uint8Array {
  if (w.length !== N * K) throw new Error(`quantizeRows: ${w.length} values for a [${N}, ${K}] matrix`);
  const bb = quantBlockBytes(bits);
  const out = new Uint8Array(N * quantRowBytes(K, bits));
  const nb = K / QUANT_BLOCK;
  for (let blk = 0; blk < N * nb; blk++) {
    const x = blk * QUANT_BLOCK; // rows are contiguous: block blk of the whole matrix
    const o = blk * bb;
    if (bits === 8) {
      let amax = 0;
      for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(w[x + i]!));
      const d = f32(amax / 127);
      const id = d ? f32(1 / d) : 0;
      writeHalf(out, o, f32ToF16(d));
      for (let i = 0; i < 32; i++) out[o + 2 + i] = roundAway(f32(w[x + i]! * id)) & 255;
    } else {
      let amax = 0;
      let max = 0;
      for (let i = 0; i < 32; i++) {
        const v = w[x + i]!;
        if (Math.abs(v) > amax) [amax, max] = [Math.abs(v), v];
      }
      const d = f32(max / -8);
      const id = d ? f32(1 / d) : 0;
      writeHalf(out, o, f32ToF16(d));
      for (let i = 0; i < 16; i++) {
        const q0 = Math.min(15, Math.trunc(f32(f32(w[x + i]! * id) + 8.5)));
        const q1 = Math.min(15, Math.trunc(f32(f32(w[x + i + 16]! * id) + 8.5)));
        out[o + 2 + i] = q0 | (q1 << 4);
      }
    }
  }
  return out;
}

/** dequantizes row j (K weights) of the packed matrix into out[0:K] */
export function dequantizeRow(bytes: Uint8Array, j: number, K: number, bits: QuantBits, out: Float32Array): void {
  const bb = quantBlockBytes(bits);
  const row = j * quantRowBytes(K, bits);
  for (let b = 0; b < K / QUANT_BLOCK; b++) {
    const o = row + b * bb;
    const d = f16ToF32(bytes[o]! | (bytes[o + 1]! << 8));
    const x = b * QUANT_BLOCK;
    if (bits === 8) {
      for (let i = 0; i < 32; i++) out[x + i] = d * ((bytes[o + 2 + i]! << 24) >> 24);
    } else {
      for (let i = 0; i < 16; i++) {
        const v = bytes[o + 2 + i]!;
        out[x + i] = d * ((v & 15) - 8);
        out[x + i + 16] = d * ((v >> 4) - 8);
      }
    }
  }
}

/** the packed matrix as float32 W [N, K] */
export function dequantizeRows(bytes: Uint8Array, N: number, K: number, bits: QuantBits): Float32Array {
  const out = new Float32Array(N * K);
  for (let j = 0; j < N; j++) dequantizeRow(bytes, j, K, bits, out.subarray(j * K, (j + 1) * K));
  return out;
}

/** the bytes behind an int32 view of packed blocks */
export function quantBytesOf(w: View, N: number, K: number, bits: QuantBits): Uint8Array {
  const arr = w.buf.backend.view(w.buf) ?? w.buf.backend.read(w.buf);
  const bytes = N * quantRowBytes(K, bits);
  if (arr.BYTES_PER_ELEMENT !== 4 || (arr.length - w.offset) * 4 < bytes) {
    throw new Error(
      `quantMatmul: the packed weight holds ${(arr.length - w.offset) * arr.BYTES_PER_ELEMENT} bytes, [${N}, ${K}] q${bits} needs ${bytes}`,
    );
  }
  return new Uint8Array(arr.buffer, arr.byteOffset + w.offset * 4, bytes);
}

/** reference kernel: one dequantized row of W at a time, float64 accumulation */
export function quantMatmul(x: View, w: View, out: View, p: QuantMatmulParams): void {
  const { M, N, K, bits } = p;
  const bytes = quantBytesOf(w, N, K, bits);
  const xa = (x.buf.backend.view(x.buf) ?? x.buf.backend.read(x.buf)) as Float32Array;
  const oa = out.buf.backend.view(out.buf) as Float32Array | null;
  const res = oa ?? new Float32Array(M * N);
  const o0 = oa ? out.offset : 0;
  const row = new Float32Array(K);
  for (let j = 0; j < N; j++) {
    dequantizeRow(bytes, j, K, bits, row);
    for (let m = 0; m < M; m++) {
      const xo = x.offset + m * K;
      let s = 0;
      for (let k = 0; k < K; k++) s += xa[xo + k]! * row[k]!;
      res[o0 + m * N + j] = s;
    }
  }
  if (!oa) out.buf.backend.write(out.buf, res, out.offset);
}
