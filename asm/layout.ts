// Layout kernels: strided copy (any strides -> contiguous) for 4-byte dtypes, and reductions over the
// middle axis of a contiguous [outer, n, inner] array.
import { hmax, hsum, imin, part } from './common';

/**
 * out (contiguous) = x viewed with `rank` dims; shape and strides (elements) are int32 arrays at
 * `meta` ([shape..., strides...]). Parallel over rows of the last axis.
 */
export function copyStrided(tid: i32, nth: i32, x: usize, out: usize, rank: i32, meta: usize, n: i32): void {
  const last = load<i32>(meta + (<usize>(rank - 1) << 2));
  const ls = load<i32>(meta + (<usize>(2 * rank - 1) << 2));
  if (last == 0) return;
  const rows = n / last;
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  if (r0 >= r1) return;
  // source offset of row r0: decompose r0 over the leading dims
  let off: isize = 0;
  let rem = r0;
  for (let d = rank - 2; d >= 0; d--) {
    const sz = load<i32>(meta + (<usize>d << 2));
    const st = load<i32>(meta + (<usize>(rank + d) << 2));
    off += <isize>(rem % sz) * <isize>st;
    rem /= sz;
  }
  let dst = out + ((<usize>r0 * <usize>last) << 2);
  for (let r = r0; r < r1; r++) {
    const src = x + (<usize>off << 2);
    if (ls == 1) memory.copy(dst, src, <usize>last << 2);
    else {
      const bs = <usize>ls << 2;
      for (let i = 0; i < last; i++) store<u32>(dst + (<usize>i << 2), load<u32>(src + <usize>i * bs));
    }
    dst += <usize>last << 2;
    // advance the row index over the leading dims (odometer)
    let idx = r + 1;
    for (let d = rank - 2; d >= 0; d--) {
      const sz = load<i32>(meta + (<usize>d << 2));
      const st = load<i32>(meta + (<usize>(rank + d) << 2));
      if (idx % sz != 0) {
        off += <isize>st;
        break;
      }
      off -= <isize>(sz - 1) * <isize>st;
      idx /= sz;
    }
  }
}

const SUM = 0, MAX = 1, MIN = 2;

@inline function red(op: i32, a: v128, b: v128): v128 {
  if (op == SUM) return f32x4.add(a, b);
  if (op == MAX) return f32x4.max(a, b);
  return f32x4.min(a, b);
}
@inline function redS(op: i32, a: f32, b: f32): f32 {
  return f32x4.extract_lane(red(op, f32x4.splat(a), f32x4.splat(b)), 0);
}

/** out[o, i] = op_j x[o, j, i] for float32 (n >= 1). Parallel over outer x 64-wide inner chunks (or rows). */
export function reduce(tid: i32, nth: i32, op: i32, x: usize, out: usize, outer: i32, n: i32, inner: i32): void {
  if (inner == 1) {
    const r0 = part(outer, nth, tid);
    const r1 = part(outer, nth, tid + 1);
    for (let r = r0; r < r1; r++) {
      const row = x + ((<usize>r * <usize>n) << 2);
      let i = 0;
      let res: f32;
      if (n >= 4) {
        let acc = v128.load(row);
        for (i = 4; i + 4 <= n; i += 4) acc = red(op, acc, v128.load(row + (<usize>i << 2)));
        res = op == SUM ? hsum(acc) : op == MAX ? hmax(acc) : -hmax(f32x4.neg(acc));
      } else {
        res = load<f32>(row);
        i = 1;
      }
      for (; i < n; i++) res = redS(op, res, load<f32>(row + (<usize>i << 2)));
      store<f32>(out + (<usize>r << 2), res);
    }
    return;
  }
  const chunks = (inner + 63) >> 6;
  const items = outer * chunks;
  const lo = part(items, nth, tid);
  const hi = part(items, nth, tid + 1);
  const rowBytes = <usize>inner << 2;
  for (let it = lo; it < hi; it++) {
    const o = it / chunks;
    const c0 = (it % chunks) << 6;
    const w = imin(64, inner - c0);
    const dst = out + ((<usize>o * <usize>inner + <usize>c0) << 2);
    const src0 = x + ((<usize>o * <usize>n * <usize>inner + <usize>c0) << 2);
    memory.copy(dst, src0, <usize>w << 2);
    for (let j = 1; j < n; j++) {
      const src = src0 + <usize>j * rowBytes;
      let i = 0;
      for (; i + 4 <= w; i += 4) {
        const off = <usize>i << 2;
        v128.store(dst + off, red(op, v128.load(dst + off), v128.load(src + off)));
      }
      for (; i < w; i++) {
        const off = <usize>i << 2;
        store<f32>(dst + off, redS(op, load<f32>(dst + off), load<f32>(src + off)));
      }
    }
  }
}

/** out[o, i, :] = x[o, idx[i], :] for 4-byte elements; parallel over (o, i) */
export function gather(tid: i32, nth: i32, x: usize, idx: usize, out: usize, outer: i32, n: i32, inner: i32, m: i32): void {
  const items = outer * m;
  const lo = part(items, nth, tid);
  const hi = part(items, nth, tid + 1);
  const rb = <usize>inner << 2;
  for (let it = lo; it < hi; it++) {
    const o = it / m;
    const i = it % m;
    const j = load<i32>(idx + (<usize>i << 2));
    memory.copy(out + <usize>it * rb, x + (<usize>o * <usize>n + <usize>j) * rb, rb);
  }
}

/**
 * out[o, idx[i], :] += src[o, i, :] (float32). Rows may repeat in idx, so threads split the inner
 * axis (64-float chunks) rather than the rows: no two threads touch the same element.
 */
export function scatterAdd(tid: i32, nth: i32, src: usize, idx: usize, out: usize, outer: i32, n: i32, inner: i32, m: i32): void {
  const chunks = (inner + 63) >> 6;
  const items = outer * chunks;
  const lo = part(items, nth, tid);
  const hi = part(items, nth, tid + 1);
  for (let it = lo; it < hi; it++) {
    const o = it / chunks;
    const c0 = (it % chunks) << 6;
    const w = imin(64, inner - c0);
    for (let i = 0; i < m; i++) {
      const j = load<i32>(idx + (<usize>i << 2));
      const s = src + ((<usize>(o * m + i) * <usize>inner + <usize>c0) << 2);
      const d = out + ((<usize>(o * n + j) * <usize>inner + <usize>c0) << 2);
      let c = 0;
      for (; c + 4 <= w; c += 4) {
        const off = <usize>c << 2;
        v128.store(d + off, f32x4.add(v128.load(d + off), v128.load(s + off)));
      }
      for (; c < w; c++) {
        const off = <usize>c << 2;
        store<f32>(d + off, load<f32>(d + off) + load<f32>(s + off));
      }
    }
  }
}
