// Encoder-decoder training with teacher forcing: the decoder sees the gold prefix.
import { IGNORE_INDEX, lengthMask, padRows } from './common.js';

export interface TeacherForcingOptions {
  /** Decoder start token (BOS / decoder_start_token_id; T5 uses the pad id). */
  bosId: number;
  /** Appended to the target when it does not already end with it. */
  eosId?: number;
}

/** decoderInputs = [BOS] + target[:-1], labels = target (target gets EOS appended when eosId is set). */
export function teacherForcing(
  target: ArrayLike<number>,
  opts: TeacherForcingOptions,
): { decoderInputs: Int32Array; labels: Int32Array } {
  const t = Array.from(target);
  if (opts.eosId !== undefined && t[t.length - 1] !== opts.eosId) t.push(opts.eosId);
  const decoderInputs = Int32Array.from([opts.bosId, ...t.slice(0, -1)]);
  return { decoderInputs, labels: Int32Array.from(t) };
}

export interface Seq2SeqBatchOptions extends TeacherForcingOptions {
  padId: number;
  /** Label smoothing ε for the cross-entropy loss (0.1 in the 2017 Transformer); carried, not applied. */
  labelSmoothing?: number;
}

export interface Seq2SeqBatch {
  rows: number;
  srcLength: number;
  tgtLength: number;
  /** (B, S) encoder ids, right-padded. */
  inputIds: Int32Array;
  /** (B, S) 1 for real source tokens. */
  attentionMask: Uint8Array;
  /** (B, U) decoder inputs, right-padded with padId. */
  decoderInputIds: Int32Array;
  /** (B, U) 1 for real decoder positions. */
  decoderAttentionMask: Uint8Array;
  /** (B, U) labels, IGNORE_INDEX in the padding. */
  labels: Int32Array;
  labelSmoothing: number;
}

/** Pads a list of (source, target) pairs into a teacher-forced batch. */
export function seq2seqBatch(
  pairs: { source: ArrayLike<number>; target: ArrayLike<number> }[],
  opts: Seq2SeqBatchOptions,
): Seq2SeqBatch {
  if (pairs.length === 0) throw new Error('seq2seqBatch: no pairs');
  const tf = pairs.map((p) => teacherForcing(p.target, opts));
  const src = padRows(
    pairs.map((p) => p.source),
    opts.padId,
  );
  const dec = padRows(
    tf.map((e) => e.decoderInputs),
    opts.padId,
  );
  const labels = padRows(
    tf.map((e) => e.labels),
    IGNORE_INDEX,
    dec.length,
  );
  return {
    rows: pairs.length,
    srcLength: src.length,
    tgtLength: dec.length,
    inputIds: src.data,
    attentionMask: lengthMask(
      pairs.map((p) => p.source.length),
      src.length,
    ),
    decoderInputIds: dec.data,
    decoderAttentionMask: lengthMask(
      tf.map((e) => e.labels.length),
      dec.length,
    ),
    labels: labels.data,
    labelSmoothing: opts.labelSmoothing ?? 0,
  };
}
