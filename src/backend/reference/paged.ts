// Reference paged attention (the kernel contract's pagedAttention): per (token, head) the scores of the
// visible keys read through the block table, a max-subtracted softmax and the weighted sum of values,
// the same two-pass algorithm as the engine's host kernel (src/infer/engine/paged-attention.ts), over
// backend views. K/V may be float32, float16 or bfloat16 (read through readAs), or int8 with a float32
// scale per row (quantizeKvRow's encoding: the engine's host encoder uses the same function).
import type { PagedAttentionParams, PagedScales, PagedWriteParams, View } from '../backend.js';
import { encodeAs, readAs } from '../dtype.js';

const host = (v: View) => v.buf.backend.view(v.buf) ?? v.buf.backend.read(v.buf);

export function pagedAttention(
  q: View,
  k: View,
  v: View,
  tables: View,
  seq: View,
  pos: View,
  out: View,
  p: PagedAttentionParams,
  scales?: PagedScales,
): void {
  const { T, H, Hkv, Dk, Dv, blockSize: bs, maxBlocks, window, scale } = p;
  const [qa, ka, va] = [host(q) as Float32Array, host(k), host(v)];
  const [tab, sa, pa] = [host(tables) as Int32Array, host(seq) as Int32Array, host(pos) as Int32Array];
  const [kd, vd] = [k.buf.dtype, v.buf.dtype];
  const rowScale = scaleReader(kd, vd, scales);
  const res = new Float32Array(H * T * Dv);
  const group = H / Hkv;
  let scores = new Float32Array(256);
  for (let t = 0; t < T; t++) {
    const P = pa[pos.offset + t]!;
    const row = tables.offset + sa[seq.offset + t]! * maxBlocks;
    const lo = window > 0 ? Math.max(0, P - window + 1) : 0;
    if (scores.length < P - lo + 1) scores = new Float32Array(2 * (P - lo + 1));
    const slot = (j: number) => tab[row + Math.floor(j / bs)]! * bs + (j % bs);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      const qo = q.offset + (h * T + t) * Dk;
      let max = -Infinity;
      for (let j = lo; j <= P; j++) {
        const row = slot(j) * Hkv + g;
        const ko = k.offset + row * Dk;
        const ks = rowScale.k(row);
        let s = 0;
        for (let d = 0; d < Dk; d++)
          s += qa[qo + d]! * (kd === 'int8' ? Math.fround(ka[ko + d]! * ks) : readAs(kd, ka, ko + d));
        scores[j - lo] = s * scale;
        max = Math.max(max, s * scale);
      }
      const oo = (h * T + t) * Dv;
      let sum = 0;
      for (let j = lo; j <= P; j++) {
        const w = Math.exp(scores[j - lo]! - max);
        sum += w;
        const row = slot(j) * Hkv + g;
        const vo = v.offset + row * Dv;
        const vs = rowScale.v(row);
        for (let d = 0; d < Dv; d++)
          res[oo + d]! += w * (vd === 'int8' ? Math.fround(va[vo + d]! * vs) : readAs(vd, va, vo + d));
      }
      for (let d = 0; d < Dv; d++) res[oo + d]! /= sum;
    }
  }
  out.buf.backend.write(out.buf, res, out.offset);
}

/** the scale of each K / V row: an int8 pool's from its scales (required), 1 for float pools */
function scaleReader(kd: View['buf']['dtype'], vd: View['buf']['dtype'], scales?: PagedScales) {
  const one = () => 1;
  if ((kd === 'int8' || vd === 'int8') && !scales) throw new Error('pagedAttention: an int8 KV pool needs its scales');
  if (!scales) return { k: one, v: one };
  if (kd !== 'int8' || vd !== 'int8') throw new Error('pagedAttention: scales come with int8 K and V pools only');
  const [ks, vs] = [host(scales.k) as Float32Array, host(scales.v) as Float32Array];
  return { k: (row: number) => ks[scales.k.offset + row]!, v: (row: number) => vs[scales.v.offset + row]! };
}

/**
 * src[so .. so + n) -> int8 dst[o .. o + n), returning the row's scale (to be stored as float32): s = max|x| / 127,
 * q = round(x * (1 / s)) with ties up (Math.round), all in float64 (a row of zeros: s = 0, q = 0; NaN or an
 * infinity in the row: s is that, q = 0). The encoding of every int8 KV pool, host and kernels.
 */
export function quantizeKvRow(src: ArrayLike<number>, so: number, n: number, dst: Int8Array, o: number): number {
  let amax = 0;
  for (let i = 0; i < n; i++) amax = Math.max(amax, Math.abs(src[so + i]!));
  const s = amax / 127;
  const inv = s > 0 ? 1 / s : 0;
  for (let i = 0; i < n; i++) dst[o + i] = Math.round(src[so + i]! * inv);
  return s;
}

/** float16 bits of the cache: IEEE round to nearest even, with finite overflow (and infinities) saturated */
const SAT = 65504;
function cacheEncode(dtype: View['buf']['dtype'], x: number): number {
  return encodeAs(dtype, dtype === 'float16' && !Number.isNaN(x) ? Math.min(SAT, Math.max(-SAT, x)) : x);
}

/** src [Hkv, T, D] float32 -> pool rows slots[t] * Hkv + h (the kernel contract's pagedWrite) */
export function pagedWrite(src: View, slots: View, pool: View, p: PagedWriteParams, scale?: View): void {
  const { T, Hkv, D } = p;
  const [sa, sl] = [host(src) as Float32Array, host(slots) as Int32Array];
  const dtype = pool.buf.dtype;
  if ((dtype === 'int8') !== (scale !== undefined))
    throw new Error(
      `pagedWrite: ${dtype === 'int8' ? 'an int8 pool needs its scales' : `a ${dtype} pool has no scales`}`,
    );
  const out = pool.buf.backend.view(pool.buf);
  const rows = out ?? pool.buf.backend.read(pool.buf);
  const sc = scale && (host(scale) as Float32Array);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < Hkv; h++) {
      const so = src.offset + (h * T + t) * D;
      const row = sl[slots.offset + t]! * Hkv + h;
      const po = pool.offset + row * D;
      if (sc) sc[scale!.offset + row] = quantizeKvRow(sa, so, D, rows as Int8Array, po);
      else for (let d = 0; d < D; d++) rows[po + d] = cacheEncode(dtype, sa[so + d]!);
    }
  if (!out) pool.buf.backend.write(pool.buf, rows);
  if (sc && !scale!.buf.backend.view(scale!.buf)) scale!.buf.backend.write(scale!.buf, sc);
}
