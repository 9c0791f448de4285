// Weight-only quantized matrix products: out[m, j] = sum_k a[m, k] * W[j, k] with W [N, K] stored in GGUF's
// block layouts and dequantized on the fly (no float32 copy of W exists; activations stay float32).
//
//   q8_0 (bits 8): per row, K/32 blocks of 34 bytes: float16 scale d, 32 int8 q;        w = d * q
//   q4_0 (bits 4): per row, K/32 blocks of 18 bytes: float16 scale d, 16 bytes qs;       w = d * (nibble - 8)
//                  element i < 16 is the low nibble of qs[i], element i + 16 its high nibble
//
// K is a multiple of 32 (the host checks). Rows are (K/32) * blockBytes apart, blocks are unaligned.
import { gemmBlock, imin, packA, part, vfma } from './common';

/** float16 bits -> float32, exact for normal and subnormal halves (scales are finite) */
@inline function h2f(h: u32): f32 {
  const mag = reinterpret<f32>((h & 0x7fff) << 13) * reinterpret<f32>(0x77800000); // * 2^112
  return reinterpret<f32>(reinterpret<u32>(mag) | ((h & 0x8000) << 16));
}

@inline function blockBytes(bits: i32): usize {
  return bits == 8 ? 34 : 18;
}

/** 16 signed bytes times 16 floats at x, as 4 lanes of partial sums (two independent FMA chains) */
@inline function dot16(q: v128, x: usize): v128 {
  const lo = i16x8.extend_low_i8x16_s(q);
  const hi = i16x8.extend_high_i8x16_s(q);
  const a = vfma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), v128.load(x, 16),
    f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)), v128.load(x)));
  const b = vfma(f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), v128.load(x, 48),
    f32x4.mul(f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), v128.load(x, 32)));
  return f32x4.add(a, b);
}

/** dot(x[0:K], dequant(row)) for one q8_0 row */
function dotQ8(x: usize, w: usize, nb: i32): f32 {
  let acc = f32x4.splat(0);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 34;
    const s = f32x4.add(dot16(v128.load(p, 2), x), dot16(v128.load(p, 18), x + 64));
    acc = vfma(s, f32x4.splat(h2f(<u32>load<u16>(p))), acc);
    x += 128;
  }
  return f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
}

/** dot(x[0:K], dequant(row)) for one q4_0 row */
function dotQ4(x: usize, w: usize, nb: i32): f32 {
  let acc = f32x4.splat(0);
  const mask = i8x16.splat(0x0f);
  const eight = i8x16.splat(8);
  for (let b = 0; b < nb; b++) {
    const p = w + <usize>b * 18;
    const q = v128.load(p, 2);
    const s = f32x4.add(dot16(i8x16.sub(v128.and(q, mask), eight), x), dot16(i8x16.sub(i8x16.shr_u(q, 4), eight), x + 64));
    acc = vfma(s, f32x4.splat(h2f(<u32>load<u16>(p))), acc);
    x += 128;
  }
  return f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
}

/**
 * Few rows (decoding): out[m, j] for the (m, j) pairs of this thread's share; W is streamed once per row
 * of a. a [M, K] and out [M, N] contiguous float32.
 */
export function qgemv(tid: i32, nth: i32, bits: i32, a: usize, w: usize, c: usize, M: i32, N: i32, K: i32): void {
  const nb = K >> 5;
  const rowBytes = <usize>nb * blockBytes(bits);
  const items = M * N;
  const lo = part(items, nth, tid);
  const hi = part(items, nth, tid + 1);
  for (let it = lo; it < hi; it++) {
    const m = it / N;
    const j = it % N;
    const x = a + ((<usize>m * <usize>K) << 2);
    const wr = w + <usize>j * rowBytes;
    store<f32>(c + ((<usize>it) << 2), bits == 8 ? dotQ8(x, wr, nb) : dotQ4(x, wr, nb));
  }
}

const MC: i32 = 128;
const KC: i32 = 256; // a multiple of 32: panels start on block boundaries
const NC: i32 = 512;

/** scratch bytes one thread needs for qgemm */
export function qgemmScratchBytes(): i32 {
  return (MC * KC + KC * NC) * 4 + 128;
}

/**
 * Dequantizes W rows [j0, j0 + nc) x k [k0, k0 + kc) into 8-column B panels [kc][8] (the layout packB
 * makes for gemmBlock; panel stride kc*32 bytes). Rows past nc are zero.
 */
function packQ(dst: usize, w: usize, rowBytes: usize, bits: i32, j0: i32, nc: i32, k0: i32, kc: i32): void {
  const bb = blockBytes(bits);
  const nblk = kc >> 5;
  for (let p0 = 0; p0 < nc; p0 += 8) {
    const panel = dst + <usize>(p0 >> 3) * (<usize>kc << 5);
    for (let r = 0; r < 8; r++) {
      const col = panel + (<usize>r << 2);
      if (p0 + r >= nc) {
        for (let k = 0; k < kc; k++) store<f32>(col + (<usize>k << 5), 0);
        continue;
      }
      const row = w + <usize>(j0 + p0 + r) * rowBytes + <usize>(k0 >> 5) * bb;
      for (let b = 0; b < nblk; b++) {
        const p = row + <usize>b * bb;
        const d = h2f(<u32>load<u16>(p));
        const out = col + (<usize>(b << 5) << 5);
        if (bits == 8) {
          for (let i = 0; i < 32; i++) store<f32>(out + (<usize>i << 5), d * <f32>load<i8>(p + 2 + <usize>i));
        } else {
          for (let i = 0; i < 16; i++) {
            const v = <i32>load<u8>(p + 2 + <usize>i);
            store<f32>(out + (<usize>i << 5), d * <f32>((v & 15) - 8));
            store<f32>(out + (<usize>(i + 16) << 5), d * <f32>((v >> 4) - 8));
          }
        }
      }
    }
  }
}

/**
 * Many rows (prefill, batches): C[M, N] = A[M, K] @ dequant(W)^T, GotoBLAS blocking as in gemm.ts with the
 * B panels dequantized from the blocks (a KC x NC tile per thread, reused by every row of A). Column
 * chunks of 8 are claimed from the shared `counter` (zeroed by the host).
 */
export function qgemm(
  tid: i32, nth: i32, bits: i32, a: usize, w: usize, c: usize, M: i32, N: i32, K: i32,
  counter: usize, scratch: usize, scratchPer: usize,
): void {
  const ws = scratch + <usize>tid * scratchPer;
  const Ap = ws;
  const Bp = Ap + <usize>(MC * KC * 4);
  const tmp = Bp + <usize>(KC * NC * 4);
  const rowBytes = <usize>(K >> 5) * blockBytes(bits);
  const units = (N + 7) >> 3;
  const chunks = imin(nth == 1 ? 1 : 2 * nth, units);
  let it = nth == 1 ? 0 : atomic.add<i32>(counter, 1);
  while (it < chunks) {
    const n0 = imin(N, part(units, chunks, it) << 3);
    const n1 = imin(N, part(units, chunks, it + 1) << 3);
    for (let jc = n0; jc < n1; jc += NC) {
      const nc = imin(NC, n1 - jc);
      for (let pc = 0; pc < K; pc += KC) {
        const kc = imin(KC, K - pc);
        packQ(Bp, w, rowBytes, bits, jc, nc, pc, kc);
        for (let ic = 0; ic < M; ic += MC) {
          const mc = imin(MC, M - ic);
          packA(Ap, a + ((<usize>ic * <usize>K + <usize>pc) << 2), K, 1, mc, kc);
          gemmBlock(Ap, <usize>kc << 4, Bp, <usize>kc << 5, mc, nc, kc, c + ((<usize>ic * <usize>N + <usize>jc) << 2), <usize>N << 2, pc > 0, tmp);
        }
      }
    }
    it = nth == 1 ? it + 1 : atomic.add<i32>(counter, 1);
  }
}
