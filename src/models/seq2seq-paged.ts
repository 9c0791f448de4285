// The paged (inference engine) entry points of the encoder-decoder families (T5, BART, Marian), beside
// their ordinary `forward`: the engine runs each request's encoder ONCE (a padded batch of the sources
// that completed in the same step) and keeps the cross-attention keys/values of every decoder layer in its
// paged KV pool; each step then runs ONE flattened ragged decoder row (the decoder tokens of every running
// sequence, each at its own decoder position) through the decoder, attending through the pool.
//
// Notation: B sources, S longest source, T flattened decoder tokens, R logits rows, D width, V vocabulary.
import type { Tensor } from '../tensor/tensor.js';
import { indexSelect, indexTensor } from '../ops/index.js';
import type { PagedLayer } from '../nn/attention.js';
import type { MaskSpec } from '../nn/masks.js';

/** the masks of a paged decoder step: the pool's block tables bound what each token sees, so no padding */
export const PAGED_SELF_MASK: MaskSpec = { causal: true, window: { kind: 'full' }, padding: null };
export const PAGED_CROSS_MASK: MaskSpec = { causal: false, window: { kind: 'full' }, padding: null };

/** what the engine hands the decoder for one flattened ragged step */
export interface Seq2SeqPagedBatch {
  /** decoder position (step) of every token of the row, [T] (BART's learned / Marian's sinusoidal rows) */
  positions: Int32Array;
  /**
   * decoder layer l's self-attention over the pool: writes the new keys/values and attends each token to
   * its own sequence's decoder keys up to its position. `bias` (T5's relative position bias) is
   * [nh, maxPosition + 1]: the additive logit of a key r decoder steps before its query is bias[h, r]
   */
  self(l: number, bias: Float32Array | null): PagedLayer;
  /** decoder layer l's cross-attention over its sequence's encoder keys/values in the pool (`attendCross`) */
  cross(l: number): PagedLayer;
  /** rows of the row whose logits are wanted; logits become [1, R, V] */
  logitRows: Int32Array;
}

/** implemented by T5 and Bart (Marian) */
export interface PagedEncoderDecoder {
  /** ids [B, S] with a [B, S] padding mask (null: no padding) -> per decoder layer the cross-attention keys
   * and values of the encoder output, k / v [B, nkv, S, hs] */
  pagedEncode(ids: Tensor, mask: Tensor | null): { k: Tensor; v: Tensor }[];
  /** ids [1, T] decoder tokens of the ragged batch -> logits [1, R, V] of `batch.logitRows` */
  pagedDecode(ids: Tensor, batch: Seq2SeqPagedBatch): Tensor;
}

export function isPagedEncoderDecoder(m: object): m is PagedEncoderDecoder {
  const p = m as Partial<PagedEncoderDecoder>;
  return typeof p.pagedEncode === 'function' && typeof p.pagedDecode === 'function';
}

/** checks the flattened row against its positions */
export function checkPagedRow(family: string, ids: Tensor, batch: Seq2SeqPagedBatch): number {
  const T = ids.shape[1]!;
  if (ids.ndim !== 2 || ids.shape[0] !== 1 || batch.positions.length !== T)
    throw new Error(
      `${family}.pagedDecode: needs decoder ids [1, T] and T positions, got [${ids.shape.join(', ')}] and ${batch.positions.length}`,
    );
  return T;
}

/** the wanted rows of the decoder's final states: y [1, T, D] -> [1, R, D] */
export function logitRowsOf(y: Tensor, batch: Seq2SeqPagedBatch): Tensor {
  return indexSelect(y, 1, indexTensor(batch.logitRows, y.shape[1]!, { what: 'paged.logitRows' })); // (1, R, D)
}

/** the largest decoder position of the row (sizes T5's bias table, Marian's sinusoid table) */
export function maxPosition(positions: Int32Array): number {
  let top = 0;
  for (const p of positions) top = Math.max(top, p);
  return top;
}
