// Batched GEMM: out[b] = op(A[b]) @ op(B[b]), GotoBLAS-style blocking over packed panels.
import { gemmBlock, imin, packA, packB, part } from './common';

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
 * into enough chunks along its longer output side (N in multiples of 8, else M in multiples of 4)
 * that every thread gets work. K >= 1 (the host handles K = 0).
 */
export function gemm(
  tid: i32, nth: i32, a: usize, b: usize, c: usize, batch: i32, M: i32, N: i32, K: i32,
  transA: i32, transB: i32, strideA: i32, strideB: i32, scratch: usize, scratchPer: usize,
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
  const chunks = imin((nth + batch - 1) / batch, units);
  const items = batch * chunks;
  const lo = part(items, nth, tid);
  const hi = part(items, nth, tid + 1);
  for (let it = lo; it < hi; it++) {
    const bi = it / chunks;
    const ch = it % chunks;
    const u0 = imin(dim, part(units, chunks, ch) * gran);
    const u1 = imin(dim, part(units, chunks, ch + 1) * gran);
    const pa = a + ((<usize>bi * <usize>strideA) << 2);
    const pb = b + ((<usize>bi * <usize>strideB) << 2);
    const pcm = c + ((<usize>bi * <usize>M * <usize>N) << 2);
    if (splitN) gemmRange(pa, pb, pcm, N, K, si, ska, skb, sjb, 0, M, u0, u1, ws);
    else gemmRange(pa, pb, pcm, N, K, si, ska, skb, sjb, u0, u1, 0, N, ws);
  }
}
