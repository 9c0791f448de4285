// Fused scaled-dot-product attention, blockwise over keys with an online softmax (FlashAttention-2
// on a CPU): extra memory is O(Tk*(Dk+Dv)) per thread for the packed K/V of one head plus
// constant-size blocks, never O(Tq*Tk). Forward saves lse; backward recomputes P from it.
//
// Every product runs on the 4x8 GEMM micro-kernel: Q K^T uses Q packed in 4-row panels and K
// packed in 8-key panels (k = head dim); P V uses P packed in 4-row panels over the key block.
import { EXPC, gemmBlock, hmax, imax, imin, packA, packB, part, roundUp, vexp2, vfma } from './common';

const BQ: i32 = 64;
const BK: i32 = 64;

@inline function al(x: i32): i32 {
  return (x + 63) & ~63;
}

/** scratch bytes per thread for the forward (bwd = 0) or backward (bwd = 1) kernel */
export function attentionScratchBytes(Tk: i32, Dk: i32, Dv: i32, bwd: i32): i32 {
  const Tkp = roundUp(Tk, 8);
  const Dkp = roundUp(Dk, 8);
  const Dvp = roundUp(Dv, 8);
  if (!bwd) {
    return al(Tkp * Dk * 4) + al(Dvp * Tkp * 4) + al(BQ * Dk * 4) + 2 * al(BQ * BK * 4) + al(BQ * Dvp * 4) + 2 * al(BQ * 4) + 128 + 128;
  }
  return al(Tkp * Dk * 4) + al(Tkp * Dv * 4) + al(Dkp * Tkp * 4) + al(BQ * Dk * 4) + al(BQ * Dv * 4) + al(Dkp * BQ * 4) +
    al(Dvp * BQ * 4) + 5 * al(BQ * BK * 4) + 2 * al(BQ * 4) + 128;
}

/** visible keys of the query at absolute position pos are [visLo, visHi) */
@inline function visLo(pos: i32, window: i32): i32 {
  return window > 0 ? imax(0, pos - window + 1) : 0;
}
@inline function visHi(pos: i32, Tk: i32, kvl: i32, causal: i32): i32 {
  let hi = imin(Tk, kvl);
  if (causal) hi = imin(hi, pos + 1);
  return hi;
}

const LOG2E: f32 = 1.4426950408889634;
const LN2: f32 = 0.6931471805599453;

/**
 * Row r of the score block (already scaled, log2 domain): adds bias * log2(e), sets invisible keys
 * to -inf. Returns the row max over the visible keys (-inf when none).
 */
@inline function prepRow(srow: usize, nk: i32, jlo: i32, jhi: i32, bias: usize, bRow: usize, bsK: i32, kb0: i32): f32 {
  if (jlo <= 0 && jhi >= nk && bias == 0) {
    let mx = v128.load(srow);
    for (let j = 4; j < nk; j += 4) mx = f32x4.max(mx, v128.load(srow + (<usize>j << 2)));
    return hmax(mx);
  }
  if (bias == 0) {
    // masks are a key range: -inf outside [jlo, jhi), vector max inside
    const a = imax(jlo, 0);
    const e = imin(jhi, nk);
    for (let j = 0; j < a; j++) store<f32>(srow + (<usize>j << 2), -Infinity);
    for (let j = e; j < nk; j++) store<f32>(srow + (<usize>j << 2), -Infinity);
    let m: f32 = -Infinity;
    let j = a;
    for (; j < e && (j & 3) != 0; j++) m = Mathf.max(m, load<f32>(srow + (<usize>j << 2)));
    if (j + 4 <= e) {
      let mv = v128.load(srow + (<usize>j << 2));
      for (j += 4; j + 4 <= e; j += 4) mv = f32x4.max(mv, v128.load(srow + (<usize>j << 2)));
      m = Mathf.max(m, hmax(mv));
    }
    for (; j < e; j++) m = Mathf.max(m, load<f32>(srow + (<usize>j << 2)));
    return m;
  }
  let m: f32 = -Infinity;
  for (let j = 0; j < nk; j++) {
    const o = <usize>j << 2;
    let s: f32 = -Infinity;
    if (j >= jlo && j < jhi) {
      s = load<f32>(srow + o);
      if (bias != 0) s += LOG2E * load<f32>(bRow + ((<usize>(kb0 + j) * <usize>bsK) << 2));
      m = Mathf.max(m, s);
    }
    store<f32>(srow + o, s);
  }
  return m;
}

@inline function fillRow(srow: usize, nk: i32, x: f32): void {
  const v = f32x4.splat(x);
  for (let j = 0; j < nk; j += 4) v128.store(srow + (<usize>j << 2), v);
}

/** multiplies n floats (n multiple of 4) at p by s */
@inline function scaleBlock(p: usize, n: i32, s: f32): void {
  const sv = f32x4.splat(s);
  for (let i = 0; i < n; i += 4) {
    const o = <usize>i << 2;
    v128.store(p + o, f32x4.mul(v128.load(p + o), sv));
  }
}

/**
 * Online-softmax step for 4 query rows against one key block (log2 domain): masks, running max
 * (lazily: it moves only when a block's max exceeds it by > 8), P = exp2(S - m) written transposed
 * into the packed 4-row panel, running sums l, output rows rescaled when their max moved.
 * nr = valid rows (1..4); pos0 = absolute position of the first row.
 */
function softmaxRows4(
  S: usize, P: usize, Mx: usize, L: usize, O: usize, Dvp: i32, nr: i32, nk: i32, pos0: i32, kb0: i32,
  window: i32, Tk: i32, kvl: i32, causal: i32, bias: usize, bRow0: usize, bsQ: i32, bsK: i32, Alpha: usize,
): void {
  const lo2 = v128.load32_splat(EXPC, 64);
  const magic = v128.load32_splat(EXPC, 12);
  const e1 = v128.load32_splat(EXPC, 68);
  const e2 = v128.load32_splat(EXPC, 72);
  const e3 = v128.load32_splat(EXPC, 76);
  const e4 = v128.load32_splat(EXPC, 80);
  const e5 = v128.load32_splat(EXPC, 84);
  const one = v128.load32_splat(EXPC, 48);
  const rb: usize = BK * 4;
  const s0 = S;
  const s1 = s0 + rb;
  const s2 = s1 + rb;
  const s3 = s2 + rb;
  let mx4: v128;
  // rows see keys [lo, hi) with lo, hi non-decreasing in the row: all 4 rows see the whole block when
  // the first row's hi and the last row's lo allow it
  const full = nr == 4 && bias == 0 && visHi(pos0, Tk, kvl, causal) - kb0 >= nk && visLo(pos0 + 3, window) - kb0 <= 0;
  if (full) {
    let v0 = v128.load(s0), v1 = v128.load(s1), v2 = v128.load(s2), v3 = v128.load(s3);
    for (let j = 4; j < nk; j += 4) {
      const o = <usize>j << 2;
      v0 = f32x4.max(v0, v128.load(s0 + o));
      v1 = f32x4.max(v1, v128.load(s1 + o));
      v2 = f32x4.max(v2, v128.load(s2 + o));
      v3 = f32x4.max(v3, v128.load(s3 + o));
    }
    const t0 = v128.shuffle<f32>(v0, v1, 0, 4, 1, 5);
    const t1 = v128.shuffle<f32>(v0, v1, 2, 6, 3, 7);
    const t2 = v128.shuffle<f32>(v2, v3, 0, 4, 1, 5);
    const t3 = v128.shuffle<f32>(v2, v3, 2, 6, 3, 7);
    mx4 = f32x4.max(
      f32x4.max(v128.shuffle<f32>(t0, t2, 0, 1, 4, 5), v128.shuffle<f32>(t0, t2, 2, 3, 6, 7)),
      f32x4.max(v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), v128.shuffle<f32>(t1, t3, 2, 3, 6, 7)),
    );
  } else {
    for (let r = 0; r < 4; r++) {
      const srow = S + <usize>r * rb;
      let mx: f32 = -Infinity;
      if (r < nr) {
        const jlo = visLo(pos0 + r, window) - kb0;
        const jhi = visHi(pos0 + r, Tk, kvl, causal) - kb0;
        if (jlo < nk && jhi > 0 && jlo < jhi) mx = prepRow(srow, nk, jlo, jhi, bias, bRow0 + ((<usize>r * <usize>bsQ) << 2), bsK, kb0);
        else fillRow(srow, nk, -Infinity);
      } else {
        fillRow(srow, nk, -Infinity);
      }
      store<f32>(Alpha + (<usize>r << 2), mx);
    }
    mx4 = v128.load(Alpha);
  }
  const mOld = v128.load(Mx);
  // lazy rescaling: the running max moves only when the block max exceeds it by more than 8
  const mNew = v128.bitselect(mx4, mOld, f32x4.gt(mx4, f32x4.add(mOld, f32x4.splat(8))));
  v128.store(Mx, mNew);
  // rows with nothing visible yet keep m = -inf: subtract 0 instead (their P is 0 anyway)
  const sub = v128.andnot(mNew, f32x4.eq(mNew, f32x4.splat(-Infinity)));
  // alpha = exp2(mOld - mNew): 0 when mOld = -inf, 1 when unchanged (NaN when both -inf: select 1)
  let alpha = vexp2(f32x4.sub(mOld, mNew), lo2, magic, e1, e2, e3, e4, e5, one);
  alpha = v128.bitselect(one, alpha, f32x4.eq(mOld, mNew));
  let acc = f32x4.splat(0);
  let dst = P;
  for (let j = 0; j < nk; j += 4) {
    // transpose the 4x4 block first: each vector is then one key for the 4 rows = one packed P entry
    const o = <usize>j << 2;
    const r0 = v128.load(s0 + o);
    const r1 = v128.load(s1 + o);
    const r2 = v128.load(s2 + o);
    const r3 = v128.load(s3 + o);
    const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
    const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
    const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
    const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
    const p0 = vexp2(f32x4.sub(v128.shuffle<f32>(t0, t2, 0, 1, 4, 5), sub), lo2, magic, e1, e2, e3, e4, e5, one);
    v128.store(dst, p0);
    const p1 = vexp2(f32x4.sub(v128.shuffle<f32>(t0, t2, 2, 3, 6, 7), sub), lo2, magic, e1, e2, e3, e4, e5, one);
    v128.store(dst, p1, 16);
    const p2 = vexp2(f32x4.sub(v128.shuffle<f32>(t1, t3, 0, 1, 4, 5), sub), lo2, magic, e1, e2, e3, e4, e5, one);
    v128.store(dst, p2, 32);
    const p3 = vexp2(f32x4.sub(v128.shuffle<f32>(t1, t3, 2, 3, 6, 7), sub), lo2, magic, e1, e2, e3, e4, e5, one);
    v128.store(dst, p3, 48);
    acc = f32x4.add(acc, f32x4.add(f32x4.add(p0, p1), f32x4.add(p2, p3)));
    dst += 64;
  }
  // running sums: l = l * alpha + sum(p)
  v128.store(L, vfma(v128.load(L), alpha, acc));
  if (!v128.all_true<i32>(f32x4.eq(alpha, one))) {
    v128.store(Alpha, alpha);
    for (let r = 0; r < nr; r++) {
      const a = load<f32>(Alpha + (<usize>r << 2));
      if (a != 1) scaleBlock(O + <usize>(r * Dvp * 4), Dvp, a);
    }
  }
}

export function attention(
  tid: i32, nth: i32, q: usize, k: usize, v: usize, out: usize, lse: usize,
  B: i32, H: i32, Hkv: i32, Tq: i32, Tk: i32, Dk: i32, Dv: i32, scale: f32, causal: i32, window: i32,
  kvLen: usize, bias: usize, bsB: i32, bsH: i32, bsQ: i32, bsK: i32, counter: usize, scratch: usize, scratchPer: usize,
): void {
  const Tkp = roundUp(Tk, 8);
  const Dvp = roundUp(Dv, 8);
  let w = scratch + <usize>tid * scratchPer;
  const Kp = w; w += <usize>al(Tkp * Dk * 4);
  const Vp = w; w += <usize>al(Dvp * Tkp * 4);
  const Qp = w; w += <usize>al(BQ * Dk * 4);
  const S = w; w += <usize>al(BQ * BK * 4);
  const Pp = w; w += <usize>al(BQ * BK * 4);
  const O = w; w += <usize>al(BQ * Dvp * 4);
  const Mx = w; w += <usize>al(BQ * 4);
  const L = w; w += <usize>al(BQ * 4);
  const Alpha = w; w += 64;
  const tmp = w;
  const G = H / Hkv;
  const nqb = (Tq + BQ - 1) / BQ;
  const items = B * H * nqb;
  // items are claimed from the shared counter, a whole head (nqb items, one K/V packing) at a time
  // when there are enough heads to keep every thread busy
  const chunk = B * H >= 4 * nth ? nqb : 1;
  const nchunks = (items + chunk - 1) / chunk;
  let packed = -1;
  const offs = Tk - Tq;
  let ci = nth == 1 ? 0 : atomic.add<i32>(counter, 1);
  while (ci < nchunks) {
   const hiIt = imin(items, (ci + 1) * chunk);
   for (let it = ci * chunk; it < hiIt; it++) {
    const bh = it / nqb;
    const qb = it % nqb;
    const b = bh / H;
    const h = bh % H;
    const kvh = b * Hkv + h / G;
    if (kvh != packed) {
      // K as 8-key panels over Dk; V as 8-column panels over keys (zero rows up to Tkp)
      packB(Kp, k + ((<usize>kvh * <usize>Tk * <usize>Dk) << 2), 1, Dk, Dk, Tk, Dk);
      packB(Vp, v + ((<usize>kvh * <usize>Tk * <usize>Dv) << 2), Dv, 1, Tk, Dv, Tkp);
      packed = kvh;
    }
    const kvl = kvLen != 0 ? load<i32>(kvLen + (<usize>b << 2)) : Tk;
    const q0 = qb * BQ;
    const bq = imin(BQ, Tq - q0);
    const bqp = roundUp(bq, 4);
    const qrow0 = <usize>bh * <usize>Tq + <usize>q0;
    packA(Qp, q + ((qrow0 * <usize>Dk) << 2), Dk, 1, bq, Dk);
    scaleBlock(Qp, bqp * Dk, scale * LOG2E); // scores come out scaled and in the log2 domain
    memory.fill(O, 0, <usize>(bqp * Dvp * 4));
    for (let r = 0; r < bqp; r++) {
      store<f32>(Mx + (<usize>r << 2), -Infinity);
      store<f32>(L + (<usize>r << 2), 0);
    }
    const posFirst = q0 + offs;
    const posLast = q0 + bq - 1 + offs;
    const kLo = visLo(posFirst, window);
    const kHi = visHi(posLast, Tk, kvl, causal);
    const biasBH = bias + ((<usize>b * <usize>bsB + <usize>h * <usize>bsH) << 2);
    for (let kb0 = (kLo / BK) * BK; kb0 < kHi; kb0 += BK) {
      const nk = imin(BK, Tkp - kb0);
      gemmBlock(Qp, <usize>Dk << 4, Kp + ((<usize>kb0 * <usize>Dk) << 2), <usize>Dk << 5, bqp, nk, Dk, S, BK * 4, false, tmp);
      for (let r4 = 0; r4 < bqp; r4 += 4) {
        softmaxRows4(S + <usize>(r4 * BK * 4), Pp + <usize>((r4 >> 2) * BK * 16), Mx + (<usize>r4 << 2), L + (<usize>r4 << 2),
          O + <usize>(r4 * Dvp * 4), Dvp, imin(4, bq - r4), nk, q0 + r4 + offs, kb0, window, Tk, kvl, causal,
          bias, biasBH + ((<usize>(q0 + r4) * <usize>bsQ) << 2), bsQ, bsK, Alpha);
      }
      gemmBlock(Pp, BK * 16, Vp + (<usize>kb0 << 5), <usize>Tkp << 5, bqp, Dvp, nk, O, <usize>Dvp << 2, true, tmp);
    }
    for (let r = 0; r < bq; r++) {
      const l = load<f32>(L + (<usize>r << 2));
      const inv: f32 = l > 0 ? 1 / l : 0;
      const orow = O + <usize>(r * Dvp * 4);
      const dst = out + (((qrow0 + <usize>r) * <usize>Dv) << 2);
      for (let c = 0; c < Dv; c++) store<f32>(dst + (<usize>c << 2), load<f32>(orow + (<usize>c << 2)) * inv);
      store<f32>(lse + ((qrow0 + <usize>r) << 2), l > 0 ? (load<f32>(Mx + (<usize>r << 2)) + Mathf.log2(l)) * LN2 : -Infinity);
    }
   }
   ci = nth == 1 ? ci + 1 : atomic.add<i32>(counter, 1);
  }
}

/**
 * Backward. Parallel over (b, kv-head): the thread owning a kv head accumulates its dK/dV over
 * all query heads of its group, so no two threads write the same output.
 */
export function attentionBackward(
  tid: i32, nth: i32, q: usize, k: usize, v: usize, out: usize, lse: usize, dout: usize, dq: usize, dk: usize, dv: usize,
  B: i32, H: i32, Hkv: i32, Tq: i32, Tk: i32, Dk: i32, Dv: i32, scale: f32, causal: i32, window: i32,
  kvLen: usize, bias: usize, bsB: i32, bsH: i32, bsQ: i32, bsK: i32, counter: usize, scratch: usize, scratchPer: usize,
): void {
  const Tkp = roundUp(Tk, 8);
  const Dkp = roundUp(Dk, 8);
  const Dvp = roundUp(Dv, 8);
  let w = scratch + <usize>tid * scratchPer;
  const Kp = w; w += <usize>al(Tkp * Dk * 4); // K: 8-key panels over Dk (S = Q K^T)
  const VpT = w; w += <usize>al(Tkp * Dv * 4); // V: 8-key panels over Dv (dP = dO V^T)
  const Kn = w; w += <usize>al(Dkp * Tkp * 4); // K: 8-column panels over keys (dQ = dS K)
  const Qp = w; w += <usize>al(BQ * Dk * 4); // Q block, 4-row panels over Dk
  const dOp = w; w += <usize>al(BQ * Dv * 4); // dO block, 4-row panels over Dv
  const Qb = w; w += <usize>al(Dkp * BQ * 4); // Q block, 8-column panels over queries (dK = dS^T Q)
  const dOb = w; w += <usize>al(Dvp * BQ * 4); // dO block, 8-column panels over queries (dV = P^T dO)
  const S = w; w += <usize>al(BQ * BK * 4);
  const dP = w; w += <usize>al(BQ * BK * 4);
  const Pt = w; w += <usize>al(BQ * BK * 4); // P^T: 4-key panels over queries
  const dSt = w; w += <usize>al(BQ * BK * 4); // dS^T: 4-key panels over queries
  const dSp = w; w += <usize>al(BQ * BK * 4); // dS: 4-query panels over keys
  const Dr = w; w += <usize>al(BQ * 4);
  const Lr = w; w += <usize>al(BQ * 4);
  const tmp = w;
  const G = H / Hkv;
  const units = B * Hkv;
  const offs = Tk - Tq;
  const sc4 = f32x4.splat(scale);
  const lo2 = v128.load32_splat(EXPC, 64);
  const magic = v128.load32_splat(EXPC, 12);
  const e1 = v128.load32_splat(EXPC, 68);
  const e2 = v128.load32_splat(EXPC, 72);
  const e3 = v128.load32_splat(EXPC, 76);
  const e4 = v128.load32_splat(EXPC, 80);
  const e5 = v128.load32_splat(EXPC, 84);
  const one = v128.load32_splat(EXPC, 48);
  // (batch, kv head) units claimed from the shared counter
  for (let u = nth == 1 ? 0 : atomic.add<i32>(counter, 1); u < units; u = nth == 1 ? u + 1 : atomic.add<i32>(counter, 1)) {
    const b = u / Hkv;
    const kvBase = <usize>u * <usize>Tk;
    const kb = k + ((kvBase * <usize>Dk) << 2);
    const vb = v + ((kvBase * <usize>Dv) << 2);
    packB(Kp, kb, 1, Dk, Dk, Tk, Dk);
    packB(VpT, vb, 1, Dv, Dv, Tk, Dv);
    packB(Kn, kb, Dk, 1, Tk, Dk, Tkp);
    const dkb = dk + ((kvBase * <usize>Dk) << 2);
    const dvb = dv + ((kvBase * <usize>Dv) << 2);
    memory.fill(dkb, 0, (<usize>Tk * <usize>Dk) << 2);
    memory.fill(dvb, 0, (<usize>Tk * <usize>Dv) << 2);
    const kvl = kvLen != 0 ? load<i32>(kvLen + (<usize>b << 2)) : Tk;
    for (let g = 0; g < G; g++) {
      const h = (u % Hkv) * G + g;
      const bh = b * H + h;
      const biasBH = bias + ((<usize>b * <usize>bsB + <usize>h * <usize>bsH) << 2);
      for (let q0 = 0; q0 < Tq; q0 += BQ) {
        const bq = imin(BQ, Tq - q0);
        const bqp = roundUp(bq, 4);
        const row0 = <usize>bh * <usize>Tq + <usize>q0;
        const qp = q + ((row0 * <usize>Dk) << 2);
        const dop = dout + ((row0 * <usize>Dv) << 2);
        const op = out + ((row0 * <usize>Dv) << 2);
        const dqp = dq + ((row0 * <usize>Dk) << 2);
        memory.fill(dqp, 0, (<usize>bq * <usize>Dk) << 2);
        const posFirst = q0 + offs;
        const posLast = q0 + bq - 1 + offs;
        const kLo = visLo(posFirst, window);
        const kHi = visHi(posLast, Tk, kvl, causal);
        if (kLo >= kHi) continue;
        packA(Qp, qp, Dk, 1, bq, Dk);
        scaleBlock(Qp, bqp * Dk, scale * LOG2E); // scores in the log2 domain
        packA(dOp, dop, Dv, 1, bq, Dv);
        packB(Qb, qp, Dk, 1, bq, Dk, bq);
        packB(dOb, dop, Dv, 1, bq, Dv, bq);
        memory.fill(dSp, 0, <usize>(BQ * BK * 4));
        for (let r = 0; r < bq; r++) {
          // D_r = dO_r . O_r ; the softmax backward term
          let s: f32 = 0;
          const a1 = dop + <usize>(r * Dv * 4);
          const a2 = op + <usize>(r * Dv * 4);
          for (let c = 0; c < Dv; c++) s += load<f32>(a1 + (<usize>c << 2)) * load<f32>(a2 + (<usize>c << 2));
          store<f32>(Dr + (<usize>r << 2), s);
          store<f32>(Lr + (<usize>r << 2), load<f32>(lse + ((row0 + <usize>r) << 2)) * LOG2E);
        }
        for (let kb0 = (kLo / BK) * BK; kb0 < kHi; kb0 += BK) {
          const nk = imin(BK, Tkp - kb0);
          const nkv = imin(nk, Tk - kb0);
          gemmBlock(Qp, <usize>Dk << 4, Kp + ((<usize>kb0 * <usize>Dk) << 2), <usize>Dk << 5, bqp, nk, Dk, S, BK * 4, false, tmp);
          gemmBlock(dOp, <usize>Dv << 4, VpT + ((<usize>kb0 * <usize>Dv) << 2), <usize>Dv << 5, bqp, nk, Dv, dP, BK * 4, false, tmp);
          for (let r = 0; r < bq; r++) {
            const pos = q0 + r + offs;
            const jlo = visLo(pos, window) - kb0;
            const jhi = visHi(pos, Tk, kvl, causal) - kb0;
            const srow = S + <usize>(r * BK * 4);
            const dprow = dP + <usize>(r * BK * 4);
            const l = load<f32>(Lr + (<usize>r << 2));
            const vis = jlo < nk && jhi > 0 && jlo < jhi && l != -Infinity;
            if (vis) prepRow(srow, nk, jlo, jhi, bias, biasBH + ((<usize>(q0 + r) * <usize>bsQ) << 2), bsK, kb0);
            const lv = f32x4.splat(l);
            const dv4 = v128.load32_splat(Dr + (<usize>r << 2));
            const ptr = Pt + (<usize>r << 4);
            const dstr = dSt + (<usize>r << 4);
            const dsp = dSp + <usize>((r >> 2) * BK * 16 + (r & 3) * 4);
            for (let j = 0; j < nk; j += 4) {
              const o = <usize>j << 2;
              let p = f32x4.splat(0);
              if (vis) p = vexp2(f32x4.sub(v128.load(srow + o), lv), lo2, magic, e1, e2, e3, e4, e5, one);
              const ds = f32x4.mul(f32x4.mul(p, f32x4.sub(v128.load(dprow + o), dv4)), sc4);
              const pan = <usize>(j >> 2) * <usize>(BQ * 16);
              v128.store(ptr + pan, p);
              v128.store(dstr + pan, ds);
              const d = dsp + (<usize>j << 4);
              v128.store32_lane(d, ds, 0);
              v128.store32_lane(d, ds, 1, 16);
              v128.store32_lane(d, ds, 2, 32);
              v128.store32_lane(d, ds, 3, 48);
            }
          }
          gemmBlock(Pt, BQ * 16, dOb, <usize>bq << 5, nkv, Dv, bq, dvb + ((<usize>kb0 * <usize>Dv) << 2), <usize>Dv << 2, true, tmp);
          gemmBlock(dSt, BQ * 16, Qb, <usize>bq << 5, nkv, Dk, bq, dkb + ((<usize>kb0 * <usize>Dk) << 2), <usize>Dk << 2, true, tmp);
          gemmBlock(dSp, BK * 16, Kn + (<usize>kb0 << 5), <usize>Tkp << 5, bq, Dk, nk, dqp, <usize>Dk << 2, true, tmp);
        }
      }
    }
  }
}
