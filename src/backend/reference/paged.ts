// Reference paged attention (the kernel contract's pagedAttention): per (token, head) the scores of the
// visible keys read through the block table, a max-subtracted softmax and the weighted sum of values,
// the same two-pass algorithm as the engine's host kernel (src/infer/engine/paged-attention.ts), over
// backend views. K/V may be float32, float16 or bfloat16 (read through readAs).
import type { PagedAttentionParams, PagedWriteParams, View } from '../backend.js';
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
): void {
  const { T, H, Hkv, Dk, Dv, blockSize: bs, maxBlocks, window, scale } = p;
  const [qa, ka, va] = [host(q) as Float32Array, host(k), host(v)];
  const [tab, sa, pa] = [host(tables) as Int32Array, host(seq) as Int32Array, host(pos) as Int32Array];
  const [kd, vd] = [k.buf.dtype, v.buf.dtype];
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
        const ko = k.offset + (slot(j) * Hkv + g) * Dk;
        let s = 0;
        for (let d = 0; d < Dk; d++) s += qa[qo + d]! * readAs(kd, ka, ko + d);
        scores[j - lo] = s * scale;
        max = Math.max(max, s * scale);
      }
      const oo = (h * T + t) * Dv;
      let sum = 0;
      for (let j = lo; j <= P; j++) {
        const w = Math.exp(scores[j - lo]! - max);
        sum += w;
        const vo = v.offset + (slot(j) * Hkv + g) * Dv;
        for (let d = 0; d < Dv; d++) res[oo + d]! += w * readAs(vd, va, vo + d);
      }
      for (let d = 0; d < Dv; d++) res[oo + d]! /= sum;
    }
  }
  out.buf.backend.write(out.buf, res, out.offset);
}

/** float16 bits of the cache: IEEE round to nearest even, with finite overflow (and infinities) saturated */
const SAT = 65504;
function cacheEncode(dtype: View['buf']['dtype'], x: number): number {
  return encodeAs(dtype, dtype === 'float16' && !Number.isNaN(x) ? Math.min(SAT, Math.max(-SAT, x)) : x);
}

/** src [Hkv, T, D] float32 -> pool rows slots[t] * Hkv + h (the kernel contract's pagedWrite) */
export function pagedWrite(src: View, slots: View, pool: View, p: PagedWriteParams): void {
  const { T, Hkv, D } = p;
  const [sa, sl] = [host(src) as Float32Array, host(slots) as Int32Array];
  const dtype = pool.buf.dtype;
  const out = pool.buf.backend.view(pool.buf);
  const rows = out ?? pool.buf.backend.read(pool.buf);
  for (let t = 0; t < T; t++)
    for (let h = 0; h < Hkv; h++) {
      const so = src.offset + (h * T + t) * D;
      const po = pool.offset + (sl[slots.offset + t]! * Hkv + h) * D;
      for (let d = 0; d < D; d++) rows[po + d] = cacheEncode(dtype, sa[so + d]!);
    }
  if (!out) pool.buf.backend.write(pool.buf, rows);
}
