// Weight-only quantized matrix products: out[m, j] = sum_k a[m, k] * W[j, k] with W [N, K] stored in GGUF's
// block layouts and dequantized on the fly (no float32 copy of W exists; activations stay float32). One kernel,
// qgemv, serves every row count with the same per-row arithmetic (batch invariance: see qgemv).
//
//   q8_0 (bits 8): per row, K/32 blocks of 34 bytes: float16 scale d, 32 int8 q;        w = d * q
//   q4_0 (bits 4): per row, K/32 blocks of 18 bytes: float16 scale d, 16 bytes qs;       w = d * (nibble - 8)
//                  element i < 16 is the low nibble of qs[i], element i + 16 its high nibble
//
// K is a multiple of 32 (the host checks). Rows are (K/32) * blockBytes apart, blocks are unaligned.
import { imax, imin, part, vfma } from './common';

/** float16 bits -> float32, exact for normal and subnormal halves (scales are finite) */
@inline function h2f(h: u32): f32 {
  const mag = reinterpret<f32>((h & 0x7fff) << 13) * reinterpret<f32>(0x77800000); // * 2^112
  return reinterpret<f32>(reinterpret<u32>(mag) | ((h & 0x8000) << 16));
}

@inline function blockBytes(bits: i32): usize {
  return bits == 8 ? 34 : 18;
}

/** 16 weights (4 f32x4 of 4 consecutive weights) times 16 floats at x, as 4 lanes of partial sums */
@inline function dot16f(w0: v128, w1: v128, w2: v128, w3: v128, x: usize): v128 {
  const a = vfma(w1, v128.load(x, 16), f32x4.mul(w0, v128.load(x)));
  const b = vfma(w3, v128.load(x, 48), f32x4.mul(w2, v128.load(x, 32)));
  return f32x4.add(a, b);
}

@inline function lanes(v: v128): f32 {
  return f32x4.extract_lane(v, 0) + f32x4.extract_lane(v, 1) + f32x4.extract_lane(v, 2) + f32x4.extract_lane(v, 3);
}

/** one block's contribution to one row: acc + d * (dot16(w[0:16], x) + dot16(w[16:32], x + 64)) */
@inline function blockStep(
  acc: v128, d: v128, x: usize,
  w0: v128, w1: v128, w2: v128, w3: v128, w4: v128, w5: v128, w6: v128, w7: v128,
): v128 {
  return vfma(f32x4.add(dot16f(w0, w1, w2, w3, x), dot16f(w4, w5, w6, w7, x + 64)), d, acc);
}

/**
 * out[r, j] for rows r < nr (nr <= 4, K floats apart from a) and columns j in [j0, j1): each block of W is
 * dequantized once (i8 -> i16 -> i32 -> f32) and used by every row. Every output is the same chain of
 * operations whatever nr is (its own accumulator, blocks in order, the same final sum).
 */
function qrows(bits: i32, a: usize, K: i32, nr: i32, w: usize, rowBytes: usize, c: usize, N: i32, j0: i32, j1: i32): void {
  const nb = K >> 5;
  const bb = blockBytes(bits);
  const rs = <usize>K << 2;
  const mask = i8x16.splat(0x0f);
  const eight = i8x16.splat(8);
  for (let j = j0; j < j1; j++) {
    let acc0 = f32x4.splat(0);
    let acc1 = acc0;
    let acc2 = acc0;
    let acc3 = acc0;
    let p = w + <usize>j * rowBytes;
    let x = a;
    for (let b = 0; b < nb; b++) {
      let qa: v128;
      let qb: v128;
      if (bits == 8) {
        qa = v128.load(p, 2);
        qb = v128.load(p, 18);
      } else {
        const q = v128.load(p, 2);
        qa = i8x16.sub(v128.and(q, mask), eight);
        qb = i8x16.sub(i8x16.shr_u(q, 4), eight);
      }
      const la = i16x8.extend_low_i8x16_s(qa);
      const ha = i16x8.extend_high_i8x16_s(qa);
      const lb = i16x8.extend_low_i8x16_s(qb);
      const hb = i16x8.extend_high_i8x16_s(qb);
      const w0 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(la));
      const w1 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(la));
      const w2 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(ha));
      const w3 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(ha));
      const w4 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lb));
      const w5 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lb));
      const w6 = f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hb));
      const w7 = f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hb));
      const d = f32x4.splat(h2f(<u32>load<u16>(p)));
      acc0 = blockStep(acc0, d, x, w0, w1, w2, w3, w4, w5, w6, w7);
      if (nr > 1) acc1 = blockStep(acc1, d, x + rs, w0, w1, w2, w3, w4, w5, w6, w7);
      if (nr > 2) acc2 = blockStep(acc2, d, x + 2 * rs, w0, w1, w2, w3, w4, w5, w6, w7);
      if (nr > 3) acc3 = blockStep(acc3, d, x + 3 * rs, w0, w1, w2, w3, w4, w5, w6, w7);
      p += bb;
      x += 128;
    }
    const o = c + ((<usize>j) << 2);
    const ns = <usize>N << 2;
    store<f32>(o, lanes(acc0));
    if (nr > 1) store<f32>(o + ns, lanes(acc1));
    if (nr > 2) store<f32>(o + 2 * ns, lanes(acc2));
    if (nr > 3) store<f32>(o + 3 * ns, lanes(acc3));
  }
}

/**
 * out[M, N] = a[M, K] @ dequant(W)^T for every M (decode, batches, prefill chunks, speculative verify rows) with
 * one per-row arithmetic: this thread's share of W's columns, one cache tile (about 128 KiB of blocks) at a time,
 * with every group of up to 4 rows passed over it. A row's result is bit for bit its M = 1 result on any thread
 * count. a [M, K] and out [M, N] contiguous float32.
 */
export function qgemv(tid: i32, nth: i32, bits: i32, a: usize, w: usize, c: usize, M: i32, N: i32, K: i32): void {
  const rowBytes = <usize>(K >> 5) * blockBytes(bits);
  const lo = part(N, nth, tid);
  const hi = part(N, nth, tid + 1);
  const tile = imax(2, <i32>((<usize>128 << 10) / rowBytes));
  for (let t0 = lo; t0 < hi; t0 += tile) {
    const t1 = imin(hi, t0 + tile);
    for (let r0 = 0; r0 < M; r0 += 4) {
      const off = <usize>r0;
      qrows(bits, a + ((off * <usize>K) << 2), K, imin(4, M - r0), w, rowBytes, c + ((off * <usize>N) << 2), N, t0, t1);
    }
  }
}
