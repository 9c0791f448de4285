// Paged attention for the inference engine: queries of a flattened ragged batch attend to their own
// sequence's keys, read in place from a block pool through per-sequence block tables, with an online
// softmax over one KV block at a time (scores of a block, its max, one rescale of the accumulator).
// Causal, with an optional sliding window. Single-threaded; one call per layer.
//
// Layouts (f32 unless noted): q [nh, T, dk], out [nh, T, dv], K pool [slots, nkv, dk], V pool
// [slots, nkv, dv] with slot = block * bs + offset, tables i32 [S, maxBlocks], seq / pos i32 [T].
import { vfma } from './common';

@inline function dot(a: usize, b: usize, n: i32): f32 {
  let acc = f32x4.splat(0);
  let d = 0;
  for (; d + 4 <= n; d += 4) acc = vfma(v128.load(a + (<usize>d << 2)), v128.load(b + (<usize>d << 2)), acc);
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; d < n; d++) s += load<f32>(a + (<usize>d << 2)) * load<f32>(b + (<usize>d << 2));
  return s;
}

/** y = y * c + w * x over n floats */
@inline function scaleAdd(y: usize, c: f32, w: f32, x: usize, n: i32): void {
  const cv = f32x4.splat(c);
  const wv = f32x4.splat(w);
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const o = <usize>d << 2;
    v128.store(y + o, vfma(wv, v128.load(x + o), f32x4.mul(cv, v128.load(y + o))));
  }
  for (; d < n; d++) {
    const o = <usize>d << 2;
    store<f32>(y + o, load<f32>(y + o) * c + w * load<f32>(x + o));
  }
}

export function pagedAttention(
  q: usize, out: usize, kp: usize, vp: usize, tables: usize, maxBlocks: i32, seq: usize, pos: usize,
  T: i32, nh: i32, nkv: i32, dk: i32, dv: i32, bs: i32, window: i32, scale: f32, scores: usize,
): void {
  const group = nh / nkv;
  for (let t = 0; t < T; t++) {
    const p = load<i32>(pos + (<usize>t << 2));
    const tab = tables + (<usize>(load<i32>(seq + (<usize>t << 2)) * maxBlocks) << 2);
    const lo = window > 0 ? max(0, p - window + 1) : 0;
    for (let h = 0; h < nh; h++) {
      const g = h / group;
      const qh = q + (<usize>((h * T + t) * dk) << 2);
      const oh = out + (<usize>((h * T + t) * dv) << 2);
      memory.fill(oh, 0, <usize>dv << 2);
      let m: f32 = -Infinity;
      let l: f32 = 0;
      let j = lo;
      while (j <= p) {
        const blk = j / bs;
        const end = min(p + 1, (blk + 1) * bs);
        const base = load<i32>(tab + (<usize>blk << 2)) * bs - blk * bs; // slot of position i = base + i
        let bm: f32 = -Infinity;
        for (let i = j; i < end; i++) {
          const s = dot(qh, kp + (<usize>(((base + i) * nkv + g) * dk) << 2), dk) * scale;
          store<f32>(scores + (<usize>(i - j) << 2), s);
          if (s > bm) bm = s;
        }
        const nm = max(m, bm);
        const corr = Mathf.exp(m - nm);
        l *= corr;
        for (let i = j; i < end; i++) {
          const w = Mathf.exp(load<f32>(scores + (<usize>(i - j) << 2)) - nm);
          l += w;
          scaleAdd(oh, i == j ? corr : 1, w, vp + (<usize>(((base + i) * nkv + g) * dv) << 2), dv);
        }
        m = nm;
        j = end;
      }
      scaleAdd(oh, 1 / l, 0, oh, dv);
    }
  }
}
