// Attention of a flattened ragged batch over the paged KV cache, on the host (the reference kernel).
// Each token t belongs to sequence seq[t] at absolute position pos[t]; it attends to its own sequence's
// keys at positions max(0, pos - window + 1) .. pos (causal; earlier tokens of the same step included,
// since the step's keys are written before any query reads), read in place through the block table.
//
// K/V are stored in the pool's dtype (kv-dtype.ts): writes convert/quantize each (token, head) row, reads
// dequantize element by element through a RowReader, so no float32 copy of the cache is ever made.
//
// Notation: T tokens, nh query heads, nkv key/value heads, dk/dv key/value dims, bs block size.
import type { LayerStore } from './kv-pool.js';
import { encodeRow, rowReader } from './kv-dtype.js';

/** where every token of a flattened batch lives */
export interface BatchLayout {
  blockSize: number;
  /** per token: index into `tables` */
  seq: Int32Array;
  /** per token: absolute position in its sequence */
  pos: Int32Array;
  /** per sequence: block ids in token order (-1 = freed, out of every window) */
  tables: Int32Array[];
}

/** physical slot of token t */
export function slotOf(layout: BatchLayout, t: number): number {
  const p = layout.pos[t]!;
  const bs = layout.blockSize;
  const b = layout.tables[layout.seq[t]!]![Math.floor(p / bs)];
  if (b === undefined || b < 0) throw new Error(`pagedAttention: token ${t} (position ${p}) has no block in its table`);
  return b * bs + (p % bs);
}

/** k [nkv, T, dk], v [nkv, T, dv] (host arrays of the new tokens) -> the store's slots, in its dtype */
export function writeKv(store: LayerStore, layout: BatchLayout, k: Float32Array, v: Float32Array): void {
  const T = layout.pos.length;
  const { kvHeads: H, kDim, vDim, dtype } = store;
  for (let t = 0; t < T; t++) {
    const slot = slotOf(layout, t);
    for (let h = 0; h < H; h++) {
      encodeRow(dtype, store.k, store.kScale, slot * H + h, k, (h * T + t) * kDim, kDim);
      encodeRow(dtype, store.v, store.vScale, slot * H + h, v, (h * T + t) * vDim, vDim);
    }
  }
}

/**
 * q [nh, T, dk] -> out [nh, T, dv]. Per (token, head): scores of the visible keys (soft-capped as
 * softcap * tanh(s / softcap) when softcap > 0), then a max-subtracted softmax and the weighted sum of
 * values (two passes over a scratch row).
 */
export function pagedAttention(
  store: LayerStore,
  layout: BatchLayout,
  q: Float32Array,
  nh: number,
  scale: number,
  softcap = 0,
): Float32Array {
  const T = layout.pos.length;
  const { kvHeads: H, kDim, vDim } = store;
  const k = rowReader(store.dtype, store.k, store.kScale); // rows [slots * H] of kDim
  const v = rowReader(store.dtype, store.v, store.vScale); // rows [slots * H] of vDim
  const group = nh / H;
  const bs = layout.blockSize;
  const out = new Float32Array(nh * T * vDim);
  let scores = new Float32Array(256);
  for (let t = 0; t < T; t++) {
    const p = layout.pos[t]!;
    const table = layout.tables[layout.seq[t]!]!;
    const lo = store.window === null ? 0 : Math.max(0, p - store.window + 1);
    if (scores.length < p - lo + 1) scores = new Float32Array(2 * (p - lo + 1));
    for (let h = 0; h < nh; h++) {
      const g = Math.floor(h / group);
      const qo = (h * T + t) * kDim;
      let max = -Infinity;
      for (let j = lo; j <= p; j++) {
        let s = k.dot(q, qo, (table[Math.floor(j / bs)]! * bs + (j % bs)) * H + g, kDim) * scale;
        if (softcap > 0) s = softcap * Math.tanh(s / softcap); // Gemma 2's attention logit soft-cap
        scores[j - lo] = s;
        if (s > max) max = s;
      }
      const oo = (h * T + t) * vDim;
      let sum = 0;
      for (let j = lo; j <= p; j++) {
        const w = Math.exp(scores[j - lo]! - max);
        sum += w;
        v.axpy(out, oo, w, (table[Math.floor(j / bs)]! * bs + (j % bs)) * H + g, vDim);
      }
      const inv = 1 / sum;
      for (let d = 0; d < vDim; d++) out[oo + d]! *= inv;
    }
  }
  return out;
}
