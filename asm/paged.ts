// Paged attention for the inference engine: queries of a flattened ragged batch attend to their own
// sequence's keys, read in place from a block pool through per-sequence block tables, with an online
// softmax over one KV block at a time (scores of a block, its max, one rescale of the accumulator).
// Causal, with an optional sliding window. Single-threaded; one call per layer.
//
// Layouts: q f32 [nh, T, dk], out f32 [nh, T, dv], K pool [slots, nkv, dk], V pool [slots, nkv, dv] with
// slot = block * bs + offset, tables i32 [S, maxBlocks], seq / pos i32 [T].
// The pools hold elements of one dtype (src/infer/engine/kv-dtype.ts), dequantized on the fly, 4 lanes at a
// time, inside the dot products and the weighted value sums (no float32 copy of the cache):
//   0 float32 | 1 float16 (binary16 bits) | 2 bfloat16 (top half of an f32) | 3 int8 with f32 scales
//   ks / vs f32 [slots, nkv] (int8 only: a row's value is q * scale)
import { vfma } from './common';

/** bytes per element of dtype code dt */
@inline function esize(dt: i32): i32 {
  return dt == 0 ? 4 : dt == 3 ? 1 : 2;
}

/** binary16 bits in the low 16 bits of each i32 lane -> f32 lanes (subnormals, Inf and NaN exact) */
@inline function halfToF32x4(x: v128): v128 {
  const sign = i32x4.shl(v128.and(x, i32x4.splat(0x8000)), 16);
  const em = v128.and(x, i32x4.splat(0x7fff));
  const shifted = i32x4.shl(em, 13);
  // as an f32 this is the half's value times 2^-112 (also for subnormals): rescale
  const finite = f32x4.mul(shifted, f32x4.splat(5.192296858534828e33)); // 2^112
  const special = v128.or(shifted, i32x4.splat(0x7f800000)); // exponent 31: Inf / NaN
  const isSpecial = i32x4.ge_s(em, i32x4.splat(0x7c00));
  return v128.or(v128.bitselect(special, finite, isSpecial), sign);
}

@inline function halfToF32(h: u32): f32 {
  return f32x4.extract_lane(halfToF32x4(i32x4.splat(<i32>h)), 0);
}

/** 4 elements at p (dtype dt) -> f32x4 (int8: unscaled) */
@inline function load4(p: usize, dt: i32): v128 {
  if (dt == 0) return v128.load(p);
  if (dt == 3) return f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(i16x8.extend_low_i8x16_s(v128.load32_zero(p))));
  const x = i32x4.extend_low_i16x8_u(v128.load64_zero(p));
  return dt == 2 ? i32x4.shl(x, 16) : halfToF32x4(x);
}

@inline function load1(p: usize, dt: i32): f32 {
  if (dt == 0) return load<f32>(p);
  if (dt == 3) return <f32>load<i8>(p);
  const h = <u32>load<u16>(p);
  return dt == 2 ? reinterpret<f32>(h << 16) : halfToF32(h);
}

/** sum_d a[d] * b[d]: a f32, b elements of dtype dt (int8 unscaled) */
@inline function dotD(a: usize, b: usize, n: i32, dt: i32): f32 {
  const es = esize(dt);
  let acc = f32x4.splat(0);
  let d = 0;
  for (; d + 4 <= n; d += 4) acc = vfma(v128.load(a + (<usize>d << 2)), load4(b + <usize>(d * es), dt), acc);
  let s = f32x4.extract_lane(acc, 0) + f32x4.extract_lane(acc, 1) + f32x4.extract_lane(acc, 2) + f32x4.extract_lane(acc, 3);
  for (; d < n; d++) s += load<f32>(a + (<usize>d << 2)) * load1(b + <usize>(d * es), dt);
  return s;
}

/** y = y * c + w * x over n elements: y f32, x of dtype dt (int8 unscaled) */
@inline function scaleAddD(y: usize, c: f32, w: f32, x: usize, n: i32, dt: i32): void {
  const es = esize(dt);
  const cv = f32x4.splat(c);
  const wv = f32x4.splat(w);
  let d = 0;
  for (; d + 4 <= n; d += 4) {
    const o = <usize>d << 2;
    v128.store(y + o, vfma(wv, load4(x + <usize>(d * es), dt), f32x4.mul(cv, v128.load(y + o))));
  }
  for (; d < n; d++) {
    const o = <usize>d << 2;
    store<f32>(y + o, load<f32>(y + o) * c + w * load1(x + <usize>(d * es), dt));
  }
}

// one specialised copy per dtype (dt is a constant after inlining), chosen once per row
function dot(a: usize, b: usize, n: i32, dt: i32): f32 {
  if (dt == 0) return dotD(a, b, n, 0);
  if (dt == 1) return dotD(a, b, n, 1);
  if (dt == 2) return dotD(a, b, n, 2);
  return dotD(a, b, n, 3);
}

function scaleAdd(y: usize, c: f32, w: f32, x: usize, n: i32, dt: i32): void {
  if (dt == 0) scaleAddD(y, c, w, x, n, 0);
  else if (dt == 1) scaleAddD(y, c, w, x, n, 1);
  else if (dt == 2) scaleAddD(y, c, w, x, n, 2);
  else scaleAddD(y, c, w, x, n, 3);
}

export function pagedAttention(
  q: usize, out: usize, kp: usize, vp: usize, tables: usize, maxBlocks: i32, seq: usize, pos: usize,
  T: i32, nh: i32, nkv: i32, dk: i32, dv: i32, bs: i32, window: i32, scale: f32, scores: usize,
  dt: i32, ks: usize, vs: usize,
): void {
  const group = nh / nkv;
  const es = esize(dt);
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
          const row = (base + i) * nkv + g;
          let s = dot(qh, kp + <usize>(row * dk * es), dk, dt) * scale;
          if (dt == 3) s *= load<f32>(ks + (<usize>row << 2));
          store<f32>(scores + (<usize>(i - j) << 2), s);
          if (s > bm) bm = s;
        }
        const nm = max(m, bm);
        const corr = Mathf.exp(m - nm);
        l *= corr;
        for (let i = j; i < end; i++) {
          const row = (base + i) * nkv + g;
          let w = Mathf.exp(load<f32>(scores + (<usize>(i - j) << 2)) - nm);
          l += w;
          if (dt == 3) w *= load<f32>(vs + (<usize>row << 2));
          scaleAdd(oh, i == j ? corr : 1, w, vp + <usize>(row * dv * es), dv, dt);
        }
        m = nm;
        j = end;
      }
      scaleAdd(oh, 1 / l, 0, oh, dv, 0);
    }
  }
}
