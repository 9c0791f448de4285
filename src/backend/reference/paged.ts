// Reference paged attention (the kernel contract's pagedAttention): per (token, head) the scores of the
// visible keys read through the block table, a max-subtracted softmax and the weighted sum of values,
// the same two-pass algorithm as the engine's host kernel (src/infer/engine/paged-attention.ts), over
// backend views. K/V may be float32, float16 or bfloat16 (read through readAs).
import type { PagedAttentionParams, View } from '../backend.js';
import { readAs } from '../dtype.js';

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
