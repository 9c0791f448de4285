// Batched GEMM: out[b] = op(A[b]) @ op(B[b]), GotoBLAS-style blocking over packed panels.
import { gemmBlock, imin, packA, packB, part, vfma } from './common';

// Blocking: a KC x 8 B micro-panel (8 KiB) stays in L1, the MC x KC A block (128 KiB) in L2,
// the KC x NC B block (2 MiB) in L3.
const MC: i32 = 128;
const KC: i32 = 256;
const NC: i32 = 2048;

/** scratch bytes one thread needs for gemm */
export function gemmScratchBytes(): i32 {
  return (MC * KC + KC * NC) * 4 + 128;
}

function gemmRange(
  a: usize, b: usize, c: usize, N: i32, K: i32,
  si: i32, ska: i32, skb: i32, sjb: i32, m0: i32, m1: i32, n0: i32, n1: i32, ws: usize,
): void {
  const Ap = ws;
  const Bp = Ap + <usize>(MC * KC * 4);
  const tmp = Bp + <usize>(KC * NC * 4);
  for (let jc = n0; jc < n1; jc += NC) {
    const nc = imin(NC, n1 - jc);
    for (let pc = 0; pc < K; pc += KC) {
      const kc = imin(KC, K - pc);
      packB(Bp, b + ((<usize>pc * <usize>skb + <usize>jc * <usize>sjb) << 2), skb, sjb, kc, nc, kc);
      for (let ic = m0; ic < m1; ic += MC) {
        const mc = imin(MC, m1 - ic);
        packA(Ap, a + ((<usize>ic * <usize>si + <usize>pc * <usize>ska) << 2), si, ska, mc, kc);
        gemmBlock(Ap, <usize>kc << 4, Bp, <usize>kc << 5, mc, nc, kc, c + ((<usize>ic * <usize>N + <usize>jc) << 2), <usize>N << 2, pc > 0, tmp);
      }
    }
  }
}

/**
 * Thread `tid` of `nth` computes its share. Work items are (batch, chunk) pairs; each matrix is cut
 * along its longer output side (N in multiples of 8, else M in multiples of 4) into about 2 chunks per
 * thread, claimed one at a time from the shared `counter` (zeroed by the host): a thread that gets
 * less CPU (a shared machine) simply takes fewer chunks. K >= 1 (the host handles K = 0).
 */
export function gemm(
  tid: i32, nth: i32, a: usize, b: usize, c: usize, batch: i32, M: i32, N: i32, K: i32,
  transA: i32, transB: i32, strideA: i32, strideB: i32, counter: usize, scratch: usize, scratchPer: usize,
): void {
  const ws = scratch + <usize>tid * scratchPer;
  const si = transA ? 1 : K;
  const ska = transA ? M : 1;
  const skb = transB ? 1 : N;
  const sjb = transB ? K : 1;
  const splitN = N >= M;
  const dim = splitN ? N : M;
  const gran = splitN ? 8 : 4;
  const units = (dim + gran - 1) / gran;
  const chunks = imin(nth == 1 ? 1 : (2 * nth + batch - 1) / batch, units);
  const items = batch * chunks;
  let it = nth == 1 ? 0 : atomic.add<i32>(counter, 1);
  while (it < items) {
    const bi = it / chunks;
    const ch = it % chunks;
    const u0 = imin(dim, part(units, chunks, ch) * gran);
    const u1 = imin(dim, part(units, chunks, ch + 1) * gran);
    const pa = a + ((<usize>bi * <usize>strideA) << 2);
    const pb = b + ((<usize>bi * <usize>strideB) << 2);
    const pcm = c + ((<usize>bi * <usize>M * <usize>N) << 2);
    if (splitN) gemmRange(pa, pb, pcm, N, K, si, ska, skb, sjb, 0, M, u0, u1, ws);
    else gemmRange(pa, pb, pcm, N, K, si, ska, skb, sjb, u0, u1, 0, N, ws);
    it = nth == 1 ? it + 1 : atomic.add<i32>(counter, 1);
  }
}

/**
 * Matrix-vector products (M = 1: decoding one token): out[b, j] = sum_k a[b, k] * op(B[b])[k, j].
 * Memory-bound, so no packing: B is streamed once. Split over N (and batch) across threads.
 */
export function gemv(
  tid: i32, nth: i32, a: usize, b: usize, c: usize, batch: i32, N: i32, K: i32, transB: i32, strideA: i32, strideB: i32,
): void {
  // work units: (batch, 32-column chunk)
  const chunks = (N + 31) >> 5;
  const items = batch * chunks;
  const lo = part(items, nth, tid);
  const hi = part(items, nth, tid + 1);
  for (let it = lo; it < hi;) {
    const bi = it / chunks;
    const c0 = it % chunks;
    const c1 = imin(chunks, c0 + (hi - it));
    const j0 = c0 << 5;
    const j1 = imin(N, c1 << 5);
    const pa = a + ((<usize>bi * <usize>strideA) << 2);
    const pb = b + ((<usize>bi * <usize>strideB) << 2);
    const pc = c + ((<usize>bi * <usize>N) << 2);
    if (transB) gemvT(pa, pb, pc, K, j0, j1);
    else gemvN(pa, pb, pc, N, K, j0, j1);
    it += c1 - c0;
  }
}

/** B stored [N, K]: out[j] = dot(a, B[j, :]), four rows at a time */
function gemvT(a: usize, b: usize, c: usize, K: i32, j0: i32, j1: i32): void {
  const rb = <usize>K << 2;
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    const b0 = b + <usize>j * rb;
    const b1 = b0 + rb;
    const b2 = b1 + rb;
    const b3 = b2 + rb;
    let s0 = f32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
    let k = 0;
    for (; k + 4 <= K; k += 4) {
      const o = <usize>k << 2;
      const av = v128.load(a + o);
      s0 = vfma(av, v128.load(b0 + o), s0);
      s1 = vfma(av, v128.load(b1 + o), s1);
      s2 = vfma(av, v128.load(b2 + o), s2);
      s3 = vfma(av, v128.load(b3 + o), s3);
    }
    // lanes: horizontal sums of the four rows at once
    const t0 = f32x4.add(v128.shuffle<f32>(s0, s1, 0, 4, 1, 5), v128.shuffle<f32>(s0, s1, 2, 6, 3, 7));
    const t1 = f32x4.add(v128.shuffle<f32>(s2, s3, 0, 4, 1, 5), v128.shuffle<f32>(s2, s3, 2, 6, 3, 7));
    let r = f32x4.add(v128.shuffle<f32>(t0, t1, 0, 1, 4, 5), v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
    for (; k < K; k++) {
      const o = <usize>k << 2;
      const x = load<f32>(a + o);
      r = f32x4.add(r, f32x4.mul(f32x4.splat(x), f32x4(load<f32>(b0 + o), load<f32>(b1 + o), load<f32>(b2 + o), load<f32>(b3 + o))));
    }
    v128.store(c + (<usize>j << 2), r);
  }
  for (; j < j1; j++) {
    const bj = b + <usize>j * rb;
    let s = f32x4.splat(0);
    let k = 0;
    for (; k + 4 <= K; k += 4) s = vfma(v128.load(a + (<usize>k << 2)), v128.load(bj + (<usize>k << 2)), s);
    let x = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
    for (; k < K; k++) x += load<f32>(a + (<usize>k << 2)) * load<f32>(bj + (<usize>k << 2));
    store<f32>(c + (<usize>j << 2), x);
  }
}

/** B stored [K, N]: out[j0:j1] = sum_k a[k] * B[k, j0:j1], 32 columns (8 accumulators) at a time */
function gemvN(a: usize, b: usize, c: usize, N: i32, K: i32, j0: i32, j1: i32): void {
  const rb = <usize>N << 2;
  let j = j0;
  for (; j + 32 <= j1; j += 32) {
    let p = b + (<usize>j << 2);
    let c0 = f32x4.splat(0), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    for (let k = 0; k < K; k++) {
      const x = v128.load32_splat(a + (<usize>k << 2));
      c0 = vfma(x, v128.load(p), c0);
      c1 = vfma(x, v128.load(p, 16), c1);
      c2 = vfma(x, v128.load(p, 32), c2);
      c3 = vfma(x, v128.load(p, 48), c3);
      c4 = vfma(x, v128.load(p, 64), c4);
      c5 = vfma(x, v128.load(p, 80), c5);
      c6 = vfma(x, v128.load(p, 96), c6);
      c7 = vfma(x, v128.load(p, 112), c7);
      p += rb;
    }
    const d = c + (<usize>j << 2);
    v128.store(d, c0); v128.store(d, c1, 16); v128.store(d, c2, 32); v128.store(d, c3, 48);
    v128.store(d, c4, 64); v128.store(d, c5, 80); v128.store(d, c6, 96); v128.store(d, c7, 112);
  }
  for (; j < j1; j++) {
    let x: f32 = 0;
    let p = b + (<usize>j << 2);
    for (let k = 0; k < K; k++) {
      x += load<f32>(a + (<usize>k << 2)) * load<f32>(p);
      p += rb;
    }
    store<f32>(c + (<usize>j << 2), x);
  }
}

/**
 * Small-M products (2..SMALL_M rows of A, not transposed: speculative verification of 1 + k tokens, a
 * few decoding sequences): out[b] = A[b] [M, K] @ op(B[b]). The packed gemm repacks all of B on every
 * call, which for a handful of rows costs more than the product; here each group of four weight rows
 * (transB: B [N, K], as Linear stores it) or 32-column strip (B [K, N]) is read from memory once and
 * reused from L1/L2 by every row of A, so the product costs about one matrix-vector pass over the
 * weight. Each row is summed in exactly gemv's order (same accumulators, same horizontal sums, same k
 * tail), so every row equals its M = 1 product bit for bit: verifying drafted tokens gives the very
 * logits that decoding them one at a time gives. Split over (batch, 32-column chunk) like gemv.
 */
export function gemmSmallM(
  tid: i32, nth: i32, a: usize, b: usize, c: usize, batch: i32, M: i32, N: i32, K: i32, transB: i32, strideA: i32, strideB: i32,
): void {
  const chunks = (N + 31) >> 5;
  const items = batch * chunks;
  const lo = part(items, nth, tid);
  const hi = part(items, nth, tid + 1);
  for (let it = lo; it < hi;) {
    const bi = it / chunks;
    const c0 = it % chunks;
    const c1 = imin(chunks, c0 + (hi - it));
    const j0 = c0 << 5;
    const j1 = imin(N, c1 << 5);
    const pa = a + ((<usize>bi * <usize>strideA) << 2);
    const pb = b + ((<usize>bi * <usize>strideB) << 2);
    const pc = c + ((<usize>bi * <usize>M * <usize>N) << 2);
    if (transB) smallT(pa, pb, pc, M, N, K, j0, j1);
    else smallN(pa, pb, pc, M, N, K, j0, j1);
    it += c1 - c0;
  }
}

/** B [N, K]: columns [j0, j1) of all M rows, four weight rows at a time (two rows of A per pass) */
function smallT(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, j0: i32, j1: i32): void {
  const rb = <usize>K << 2;
  const rc = <usize>N << 2;
  let j = j0;
  for (; j + 4 <= j1; j += 4) {
    const bj = b + <usize>j * rb;
    const cj = c + (<usize>j << 2);
    let i = 0;
    for (; i + 2 <= M; i += 2) smallT4x2(a + <usize>i * rb, bj, cj + <usize>i * rc, K, rc);
    if (i < M) smallT4x1(a + <usize>i * rb, bj, cj + <usize>i * rc, K);
  }
  // leftover weight rows: one dot product each, as gemvT's tail
  for (; j < j1; j++) {
    const bj = b + <usize>j * rb;
    for (let i = 0; i < M; i++) {
      const ai = a + <usize>i * rb;
      let s = f32x4.splat(0);
      let k = 0;
      for (; k + 4 <= K; k += 4) s = vfma(v128.load(ai + (<usize>k << 2)), v128.load(bj + (<usize>k << 2)), s);
      let x = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
      for (; k < K; k++) x += load<f32>(ai + (<usize>k << 2)) * load<f32>(bj + (<usize>k << 2));
      store<f32>(c + <usize>i * rc + (<usize>j << 2), x);
    }
  }
}

/** the four dot products' lanes summed as gemvT does: r[t] = sum of s_t's lanes */
@inline function hsum4(s0: v128, s1: v128, s2: v128, s3: v128): v128 {
  const t0 = f32x4.add(v128.shuffle<f32>(s0, s1, 0, 4, 1, 5), v128.shuffle<f32>(s0, s1, 2, 6, 3, 7));
  const t1 = f32x4.add(v128.shuffle<f32>(s2, s3, 0, 4, 1, 5), v128.shuffle<f32>(s2, s3, 2, 6, 3, 7));
  return f32x4.add(v128.shuffle<f32>(t0, t1, 0, 1, 4, 5), v128.shuffle<f32>(t0, t1, 2, 3, 6, 7));
}

/** the k tail of four dot products, as gemvT adds it */
@inline function tail4(r: v128, a: usize, b0: usize, rb: usize, k0: i32, K: i32): v128 {
  for (let k = k0; k < K; k++) {
    const o = <usize>k << 2;
    const x = load<f32>(a + o);
    r = f32x4.add(r, f32x4.mul(f32x4.splat(x), f32x4(load<f32>(b0 + o), load<f32>(b0 + rb + o), load<f32>(b0 + 2 * rb + o), load<f32>(b0 + 3 * rb + o))));
  }
  return r;
}

/** rows a, a + K of A times weight rows b .. b + 3: 8 accumulators, each weight vector loaded once */
function smallT4x2(a: usize, b: usize, c: usize, K: i32, rc: usize): void {
  const rb = <usize>K << 2;
  const a1 = a + rb;
  const b1 = b + rb;
  const b2 = b1 + rb;
  const b3 = b2 + rb;
  let s0 = f32x4.splat(0), s1 = s0, s2 = s0, s3 = s0, u0 = s0, u1 = s0, u2 = s0, u3 = s0;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    const w0 = v128.load(b + o);
    const w1 = v128.load(b1 + o);
    const w2 = v128.load(b2 + o);
    const w3 = v128.load(b3 + o);
    const x = v128.load(a + o);
    s0 = vfma(x, w0, s0);
    s1 = vfma(x, w1, s1);
    s2 = vfma(x, w2, s2);
    s3 = vfma(x, w3, s3);
    const y = v128.load(a1 + o);
    u0 = vfma(y, w0, u0);
    u1 = vfma(y, w1, u1);
    u2 = vfma(y, w2, u2);
    u3 = vfma(y, w3, u3);
  }
  v128.store(c, tail4(hsum4(s0, s1, s2, s3), a, b, rb, k, K));
  v128.store(c + rc, tail4(hsum4(u0, u1, u2, u3), a1, b, rb, k, K));
}

/** one row of A times weight rows b .. b + 3 (gemvT's block) */
function smallT4x1(a: usize, b: usize, c: usize, K: i32): void {
  const rb = <usize>K << 2;
  const b1 = b + rb;
  const b2 = b1 + rb;
  const b3 = b2 + rb;
  let s0 = f32x4.splat(0), s1 = s0, s2 = s0, s3 = s0;
  let k = 0;
  for (; k + 4 <= K; k += 4) {
    const o = <usize>k << 2;
    const x = v128.load(a + o);
    s0 = vfma(x, v128.load(b + o), s0);
    s1 = vfma(x, v128.load(b1 + o), s1);
    s2 = vfma(x, v128.load(b2 + o), s2);
    s3 = vfma(x, v128.load(b3 + o), s3);
  }
  v128.store(c, tail4(hsum4(s0, s1, s2, s3), a, b, rb, k, K));
}

/** B [K, N]: columns [j0, j1) of all M rows; each 32-column strip (K x 128 bytes) stays in L2 across the rows */
function smallN(a: usize, b: usize, c: usize, M: i32, N: i32, K: i32, j0: i32, j1: i32): void {
  const ra = <usize>K << 2;
  const rc = <usize>N << 2;
  for (let j = j0; j < j1; j += 32) {
    const je = imin(j1, j + 32);
    for (let i = 0; i < M; i++) gemvN(a + <usize>i * ra, b, c + <usize>i * rc, N, K, j, je);
  }
}
