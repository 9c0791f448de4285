// Paged attention where each token has its own first key and an optional relative position bias (host
// kernel): the decoder self-attention of encoder-decoder families in the engine. Their decoder keys sit
// in the sequence's block table at stream positions promptLength - 1 .. (the source owns the positions
// before them in the cross-attention layers), so token t attends to its own sequence's keys at positions
// lo[t] .. pos[t] — causal, starting where its decoder starts — and T5 adds bias[h, pos[t] - j] to the
// logit of key j (its relative position bias, looked up per key distance).
//
// Notation: T tokens, nh query heads, nkv key/value heads, dk/dv key/value dims, bs block size, R + 1 the
// bias table's distances.
import type { LayerStore } from './kv-pool.js';
import { rowReader } from './kv-dtype.js';
import type { BatchLayout } from './paged-attention.js';

/**
 * q [nh, T, dk] -> out [nh, T, dv]: per (token, head) the scores of keys lo[t] .. pos[t] (plus bias[h, pos - j]
 * when `bias` [nh, R + 1] is given), a max-subtracted softmax and the weighted sum of values.
 */
export function pagedAttentionSpan(
  store: LayerStore,
  layout: BatchLayout,
  lo: Int32Array,
  q: Float32Array,
  nh: number,
  scale: number,
  bias: Float32Array | null = null,
): Float32Array {
  const T = layout.pos.length;
  const { kvHeads: H, kDim, vDim } = store;
  if (q.length !== nh * T * kDim || lo.length !== T)
    throw new Error(`pagedAttentionSpan: q has ${q.length} values, lo ${lo.length}; want ${nh}x${T}x${kDim} and ${T}`);
  const k = rowReader(store.dtype, store.k, store.kScale); // rows [slots * H] of kDim
  const v = rowReader(store.dtype, store.v, store.vScale); // rows [slots * H] of vDim
  const group = nh / H;
  const bs = layout.blockSize;
  const span = bias ? bias.length / nh : 0; // R + 1
  const out = new Float32Array(nh * T * vDim);
  let scores = new Float32Array(256);
  let slots = new Int32Array(256);
  for (let t = 0; t < T; t++) {
    const [first, p] = [lo[t]!, layout.pos[t]!];
    const n = p - first + 1;
    if (n < 1 || first < 0) throw new Error(`pagedAttentionSpan: token ${t} has keys ${first}..${p}`);
    if (bias && p - first >= span)
      throw new Error(`pagedAttentionSpan: token ${t} reaches distance ${p - first}, the bias table holds ${span}`);
    if (scores.length < n) [scores, slots] = [new Float32Array(2 * n), new Int32Array(2 * n)];
    const table = layout.tables[layout.seq[t]!]!;
    for (let j = first; j <= p; j++) {
      const b = table[Math.floor(j / bs)];
      if (b === undefined || b < 0) throw new Error(`pagedAttentionSpan: token ${t} has no block for key ${j}`);
      slots[j - first] = b * bs + (j % bs);
    }
    for (let h = 0; h < nh; h++) {
      const g = Math.floor(h / group);
      const qo = (h * T + t) * kDim;
      let max = -Infinity;
      for (let i = 0; i < n; i++) {
        let s = k.dot(q, qo, slots[i]! * H + g, kDim) * scale;
        if (bias) s += bias[h * span + (p - first - i)]!; // key first + i is p - first - i steps back
        scores[i] = s;
        if (s > max) max = s;
      }
      const oo = (h * T + t) * vDim;
      let sum = 0;
      for (let i = 0; i < n; i++) {
        const w = Math.exp(scores[i]! - max);
        sum += w;
        v.axpy(out, oo, w, slots[i]! * H + g, vDim);
      }
      const inv = 1 / sum;
      for (let d = 0; d < vDim; d++) out[oo + d]! *= inv;
    }
  }
  return out;
}
