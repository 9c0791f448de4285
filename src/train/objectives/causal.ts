// Causal language modeling: predict token t+1 from tokens <= t.
import { IGNORE_INDEX } from './common.js';

export interface CausalLMExample {
  /** (T) tokens fed to the model. */
  inputs: Int32Array;
  /** (T) next tokens; IGNORE_INDEX where no loss is taken. */
  targets: Int32Array;
  /** (T) 1 where the loss counts (targets != IGNORE_INDEX). */
  lossMask: Uint8Array;
}

export interface CausalLMOptions {
  /** Targets equal to padId are ignored (the model must not learn to predict padding). */
  padId?: number;
  /**
   * Per-token segment ids of the T+1 window (from packDocuments): when set, targets whose token belongs
   * to a different segment than the input token are ignored, so no loss crosses a document boundary.
   * Padding (segment 0) is always ignored.
   */
  segmentIds?: ArrayLike<number>;
}

/** From a window of T+1 tokens: inputs = w[:-1], targets = w[1:], masked per the options. */
export function causalLM(window: ArrayLike<number>, opts: CausalLMOptions = {}): CausalLMExample {
  const T = window.length - 1;
  if (T < 1) throw new Error(`causalLM: window needs at least 2 tokens, got ${window.length}`);
  const seg = opts.segmentIds;
  if (seg !== undefined && seg.length !== window.length) {
    throw new Error(`causalLM: segmentIds length ${seg.length} != window length ${window.length}`);
  }
  const inputs = new Int32Array(T);
  const targets = new Int32Array(T);
  const lossMask = new Uint8Array(T);
  for (let t = 0; t < T; t++) {
    inputs[t] = window[t];
    let keep = opts.padId === undefined || window[t + 1] !== opts.padId;
    if (seg !== undefined) keep &&= seg[t + 1] !== 0 && seg[t + 1] === seg[t];
    targets[t] = keep ? window[t + 1] : IGNORE_INDEX;
    lossMask[t] = keep ? 1 : 0;
  }
  return { inputs, targets, lossMask };
}

/**
 * Batched causalLM over flat (B, T+1) rows (e.g. PackedRows with rowLength T+1): returns (B, T) arrays.
 */
export function causalLMBatch(
  rows: Int32Array,
  rowLength: number,
  opts: { padId?: number; segmentIds?: Int32Array } = {},
): CausalLMExample {
  if (rows.length % rowLength !== 0)
    throw new Error(`causalLMBatch: ${rows.length} tokens is not a multiple of rowLength ${rowLength}`);
  const B = rows.length / rowLength;
  const T = rowLength - 1;
  const out: CausalLMExample = {
    inputs: new Int32Array(B * T),
    targets: new Int32Array(B * T),
    lossMask: new Uint8Array(B * T),
  };
  for (let b = 0; b < B; b++) {
    const slice = (a: Int32Array) => a.subarray(b * rowLength, (b + 1) * rowLength);
    const ex = causalLM(slice(rows), { padId: opts.padId, segmentIds: opts.segmentIds && slice(opts.segmentIds) });
    out.inputs.set(ex.inputs, b * T);
    out.targets.set(ex.targets, b * T);
    out.lossMask.set(ex.lossMask, b * T);
  }
  return out;
}
