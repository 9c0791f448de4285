// Shared building blocks of the kernels: FMA selection, the 4x8 GEMM micro-kernel over packed
// panels, panel packers, vectorised exp.
//
// Memory model: every pointer is a byte offset into the one shared memory. Kernels use no globals
// and no shadow stack; per-thread scratch is passed in by the host (each worker has its own area).
//
// Packed layouts (the micro-kernel reads both operands sequentially):
//   A panel: 4 rows, k-major: [k][4]  (panel stride given in bytes, usually kc*16)
//   B panel: 8 columns, k-major: [k][8] (panel stride given in bytes, usually kc*32)

/** a*b + c: one fused instruction with relaxed SIMD, separate mul + add otherwise (accumulator first). */
@inline export function vfma(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

@inline export function imin(a: i32, b: i32): i32 {
  return a < b ? a : b;
}
@inline export function imax(a: i32, b: i32): i32 {
  return a > b ? a : b;
}
@inline export function roundUp(x: i32, m: i32): i32 {
  return ((x + m - 1) / m) * m;
}

/**
 * C[4][8] (+)= sum_k A[k][0..4] (x) B[k][0..8]. kc >= 1. ldc in bytes.
 * Loop shape matters to V8: do-while, all four A broadcasts first, accumulator as the FMA addend.
 */
export function micro4x8(ap: usize, bp: usize, kc: i32, c: usize, ldc: usize, acc: bool): void {
  let c00: v128, c01: v128, c10: v128, c11: v128, c20: v128, c21: v128, c30: v128, c31: v128;
  const c1 = c + ldc;
  const c2 = c1 + ldc;
  const c3 = c2 + ldc;
  if (acc) {
    c00 = v128.load(c); c01 = v128.load(c, 16);
    c10 = v128.load(c1); c11 = v128.load(c1, 16);
    c20 = v128.load(c2); c21 = v128.load(c2, 16);
    c30 = v128.load(c3); c31 = v128.load(c3, 16);
  } else {
    c00 = f32x4.splat(0); c01 = c00; c10 = c00; c11 = c00; c20 = c00; c21 = c00; c30 = c00; c31 = c00;
  }
  let k = kc;
  do {
    const a0 = v128.load32_splat(ap);
    const a1 = v128.load32_splat(ap, 4);
    const a2 = v128.load32_splat(ap, 8);
    const a3 = v128.load32_splat(ap, 12);
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    c00 = vfma(a0, b0, c00);
    c01 = vfma(a0, b1, c01);
    c10 = vfma(a1, b0, c10);
    c11 = vfma(a1, b1, c11);
    c20 = vfma(a2, b0, c20);
    c21 = vfma(a2, b1, c21);
    c30 = vfma(a3, b0, c30);
    c31 = vfma(a3, b1, c31);
    ap += 16;
    bp += 32;
  } while (--k);
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(c1, c10); v128.store(c1, c11, 16);
  v128.store(c2, c20); v128.store(c2, c21, 16);
  v128.store(c3, c30); v128.store(c3, c31, 16);
}

/**
 * C[mc][nc] (+)= Apacked[mc][kc] @ Bpacked[kc][nc]. Edge tiles go through `tmp` (128 bytes).
 * ldc in bytes. kc >= 1.
 */
export function gemmBlock(
  ap: usize, aPanel: usize, bp: usize, bPanel: usize, mc: i32, nc: i32, kc: i32, c: usize, ldc: usize, acc: bool, tmp: usize,
): void {
  for (let jr = 0; jr < nc; jr += 8) {
    const bpan = bp + <usize>(jr >> 3) * bPanel;
    const nr = imin(8, nc - jr);
    for (let ir = 0; ir < mc; ir += 4) {
      const apan = ap + <usize>(ir >> 2) * aPanel;
      const mr = imin(4, mc - ir);
      const cp = c + <usize>ir * ldc + (<usize>jr << 2);
      if (mr == 4 && nr == 8) {
        micro4x8(apan, bpan, kc, cp, ldc, acc);
      } else {
        micro4x8(apan, bpan, kc, tmp, 32, false);
        for (let r = 0; r < mr; r++) {
          const crow = cp + <usize>r * ldc;
          const trow = tmp + (<usize>r << 5);
          for (let q = 0; q < nr; q++) {
            const o = <usize>q << 2;
            let x = load<f32>(trow + o);
            if (acc) x += load<f32>(crow + o);
            store<f32>(crow + o, x);
          }
        }
      }
    }
  }
}

/** Transposes the 4x4 block whose rows start at p0..p3 and stores the 4 columns at dst, dst+stride, ... */
@inline function transpose4(p0: usize, p1: usize, p2: usize, p3: usize, dst: usize, stride: usize): void {
  const r0 = v128.load(p0);
  const r1 = v128.load(p1);
  const r2 = v128.load(p2);
  const r3 = v128.load(p3);
  const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
  const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
  const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
  v128.store(dst + stride, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
  v128.store(dst + 2 * stride, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * stride, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
}

/**
 * Packs rows [0, mc) x k [0, kc) of a matrix whose element (i, k) is at src + 4*(i*si + k*sk)
 * into 4-row panels [k][4] (panel stride kc*16 bytes). Rows past mc are zero.
 */
export function packA(dst: usize, src: usize, si: i32, sk: i32, mc: i32, kc: i32): void {
  const bsi = <usize>si << 2;
  const bsk = <usize>sk << 2;
  for (let i0 = 0; i0 < mc; i0 += 4) {
    const mr = imin(4, mc - i0);
    const base = src + <usize>i0 * bsi;
    if (mr == 4 && si == 1) {
      // the 4 rows are adjacent in memory at every k (A stored transposed)
      let p = base;
      for (let k = 0; k < kc; k++) {
        v128.store(dst, v128.load(p));
        dst += 16;
        p += bsk;
      }
    } else if (mr == 4 && sk == 1) {
      // each row contiguous along k: 4x4 transposes
      const p0 = base;
      const p1 = p0 + bsi;
      const p2 = p1 + bsi;
      const p3 = p2 + bsi;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const o = <usize>k << 2;
        transpose4(p0 + o, p1 + o, p2 + o, p3 + o, dst, 16);
        dst += 64;
      }
      for (; k < kc; k++) {
        const o = <usize>k << 2;
        store<f32>(dst, load<f32>(p0 + o));
        store<f32>(dst, load<f32>(p1 + o), 4);
        store<f32>(dst, load<f32>(p2 + o), 8);
        store<f32>(dst, load<f32>(p3 + o), 12);
        dst += 16;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const pk = base + <usize>k * bsk;
        for (let r = 0; r < 4; r++) {
          store<f32>(dst + (<usize>r << 2), r < mr ? load<f32>(pk + <usize>r * bsi) : 0);
        }
        dst += 16;
      }
    }
  }
}

/**
 * Packs k [0, kc) x columns [0, nc) of a matrix whose element (k, j) is at src + 4*(k*sk + j*sj)
 * into 8-column panels [kcPad][8], panel stride kcPad*32 bytes. Columns past nc and rows kc..kcPad are zero.
 */
export function packB(dst: usize, src: usize, sk: i32, sj: i32, kc: i32, nc: i32, kcPad: i32): void {
  const bsk = <usize>sk << 2;
  const bsj = <usize>sj << 2;
  for (let j0 = 0; j0 < nc; j0 += 8) {
    const nr = imin(8, nc - j0);
    const base = src + <usize>j0 * bsj;
    let d = dst;
    if (nr == 8 && sj == 1) {
      let p = base;
      for (let k = 0; k < kc; k++) {
        v128.store(d, v128.load(p));
        v128.store(d, v128.load(p, 16), 16);
        d += 32;
        p += bsk;
      }
    } else if (nr == 8 && sk == 1) {
      // B stored transposed: each column contiguous along k
      const p0 = base;
      const p4 = base + 4 * bsj;
      let k = 0;
      for (; k + 4 <= kc; k += 4) {
        const o = <usize>k << 2;
        transpose4(p0 + o, p0 + bsj + o, p0 + 2 * bsj + o, p0 + 3 * bsj + o, d, 32);
        transpose4(p4 + o, p4 + bsj + o, p4 + 2 * bsj + o, p4 + 3 * bsj + o, d + 16, 32);
        d += 128;
      }
      for (; k < kc; k++) {
        const o = <usize>k << 2;
        for (let q = 0; q < 8; q++) store<f32>(d + (<usize>q << 2), load<f32>(base + <usize>q * bsj + o));
        d += 32;
      }
    } else {
      for (let k = 0; k < kc; k++) {
        const pk = base + <usize>k * bsk;
        for (let q = 0; q < 8; q++) {
          store<f32>(d + (<usize>q << 2), q < nr ? load<f32>(pk + <usize>q * bsj) : 0);
        }
        d += 32;
      }
    }
    for (let k = kc; k < kcPad; k++) {
      v128.store(d, f32x4.splat(0));
      v128.store(d, f32x4.splat(0), 16);
      d += 32;
    }
    dst += <usize>kcPad << 5;
  }
}

// ---- exp ---------------------------------------------------------------------------------------
// Constants live in memory and are loaded once per call: V8 re-materialises v128.const inside loops.
export const EXPC: usize = memory.data<f32>([
  -87.0, // 0  below: exp -> 0
  88.72283172607421875, // 1  above: exp -> +inf (the largest float32 whose exp is below FLT_MAX)
  1.44269504088896341, // 2  log2(e)
  12582912.0, // 3  1.5 * 2^23: adding it rounds to an integer kept in the low mantissa bits
  0.693359375, // 4  ln2 high part
  -2.12194440e-4, // 5  ln2 low part
  1.9875691500e-4, // 6  Cephes expf polynomial
  1.3981999507e-3, // 7
  8.3334519073e-3, // 8
  4.1665795894e-2, // 9
  1.6666665459e-1, // 10
  5.0000001201e-1, // 11
  1.0, // 12
  Infinity, // 13
  0.0, // 14
  -Infinity, // 15
  -126.0, // 16  exp2: below -> 0
  0.6931468558033623, // 17  exp2 polynomial on [-0.5, 0.5], degree 5 (least squares on Chebyshev nodes, rel err 1.1e-7)
  0.2402223786017347, // 18
  0.055508930567465836, // 19
  0.009671707225010578, // 20
  0.001321867729738014, // 21
  0.49999142424247445, // 22  exp(r) on [-ln2/2, ln2/2]: 1 + r + r^2 (c2 + c3 r + c4 r^2 + c5 r^3), rel err 1.8e-7 in f32
  0.16666886383087268, // 23
  0.041898598068199025, // 24
  0.008333842587343649, // 25
], 16);

/**
 * 2^x for x <= 0 (softmax in the log2 domain: scores pre-multiplied by log2 e). x < -126 gives 0.
 * Constants come in as locals loaded before the caller's loop.
 */
@inline export function vexp2(x: v128, lo: v128, magic: v128, c1: v128, c2: v128, c3: v128, c4: v128, c5: v128, one: v128): v128 {
  const xc = f32x4.pmax(x, lo);
  const t = f32x4.add(xc, magic);
  const f = f32x4.sub(xc, f32x4.sub(t, magic));
  let p = vfma(c5, f, c4);
  p = vfma(p, f, c3);
  p = vfma(p, f, c2);
  p = vfma(p, f, c1);
  p = vfma(p, f, one);
  const y = i32x4.add(p, i32x4.shl(i32x4.sub(t, magic), 23));
  return v128.andnot(y, f32x4.lt(x, lo));
}

/**
 * exp(x) lanewise; inputs below -87 give 0, above ln(FLT_MAX) = 88.7228 give +inf, NaN stays NaN. The scale
 * 2^n is applied as 2^(n >> 1) * 2^(n - (n >> 1)): n reaches 128 near the top of the range, where 2^n itself
 * is not a float32 (a single exponent add overflowed from 88.38 on).
 */
@inline export function vexp(x: v128): v128 {
  const lo = v128.load32_splat(EXPC);
  const hi = v128.load32_splat(EXPC, 4);
  const magic = v128.load32_splat(EXPC, 12);
  const xc = f32x4.pmin(f32x4.pmax(x, lo), hi);
  const t = vfma(xc, v128.load32_splat(EXPC, 8), magic);
  const n = f32x4.sub(t, magic);
  let r = vfma(n, f32x4.neg(v128.load32_splat(EXPC, 16)), xc);
  r = vfma(n, f32x4.neg(v128.load32_splat(EXPC, 20)), r);
  let p = v128.load32_splat(EXPC, 100);
  p = vfma(p, r, v128.load32_splat(EXPC, 96));
  p = vfma(p, r, v128.load32_splat(EXPC, 92));
  p = vfma(p, r, v128.load32_splat(EXPC, 88));
  const r2 = f32x4.mul(r, r);
  let y = f32x4.add(vfma(p, r2, r), v128.load32_splat(EXPC, 48));
  const ni = i32x4.sub(t, magic); // n as int32 (the magic add left it in the low mantissa bits)
  const half = i32x4.shr_s(ni, 1);
  const bias = i32x4.splat(127);
  y = f32x4.mul(y, i32x4.shl(i32x4.add(half, bias), 23)); // * 2^(n >> 1)
  y = f32x4.mul(y, i32x4.shl(i32x4.add(i32x4.sub(ni, half), bias), 23)); // * 2^(n - (n >> 1))
  y = v128.andnot(y, f32x4.lt(x, lo));
  return v128.bitselect(v128.load32_splat(EXPC, 52), y, f32x4.gt(x, hi));
}


/** exp for x <= 0 inputs (softmax after max subtraction): no overflow handling */
@inline export function vexpNeg(x: v128, lo: v128, log2e: v128, magic: v128, nc1: v128, nc2: v128,
  c2: v128, c3: v128, c4: v128, c5: v128, one: v128): v128 {
  const xc = f32x4.pmax(x, lo);
  const t = vfma(xc, log2e, magic);
  const n = f32x4.sub(t, magic);
  let r = vfma(n, nc1, xc);
  r = vfma(n, nc2, r);
  let p = vfma(c5, r, c4);
  p = vfma(p, r, c3);
  p = vfma(p, r, c2);
  const r2 = f32x4.mul(r, r);
  let y = f32x4.add(vfma(p, r2, r), one);
  y = i32x4.add(y, i32x4.shl(i32x4.sub(t, magic), 23));
  return v128.andnot(y, f32x4.lt(x, lo));
}

/** scalar exp with the same behaviour (for tails) */
@inline export function sexp(x: f32): f32 {
  return f32x4.extract_lane(vexp(f32x4.splat(x)), 0);
}

/** horizontal sum / max */
@inline export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}
@inline export function hmax(v: v128): f32 {
  const s = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return Mathf.max(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

/** start of the region the host allocator may use */
export function heapBase(): usize {
  return __heap_base;
}

/** splits [0, n) into nth contiguous parts; returns the start of part `i` */
@inline export function part(n: i32, nth: i32, i: i32): i32 {
  return <i32>((<i64>n * <i64>i) / <i64>nth);
}
