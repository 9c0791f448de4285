// Log-probabilities of completions given prompts, for any decoder family: each (prompt, completion) pair
// becomes one right-padded row; one forward pass scores every completion token at once.
//   ids     = prompt ‖ completion ‖ pad           (B, T)
//   inputs  = ids[:, :-1], targets = ids[:, 1:]    (B, T-1), targets of prompt and pad positions ignored
//   logp_t  = −crossEntropy(logits_t, target_t)   (B, T-1), 0 where ignored; mask marks completion tokens
// Right padding needs no attention mask in a causal model (pads come after every real token they could see).
// Rows longer than the model's context keep the end of the prompt and cut the completion.
import type { Tensor } from '../tensor/tensor.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { crossEntropy, mul, neg, tensor } from '../ops/index.js';
import type { LanguageModel } from '../models/model.js';

export interface Sequence {
  prompt: readonly number[];
  completion: readonly number[];
  /** 1 for completion tokens that count (a conversation's assistant turns); all count when absent */
  mask?: readonly number[];
}

export interface PackedBatch {
  /** int32 (B, T-1) model inputs */
  inputIds: Tensor;
  /** int32 (B, T-1) next tokens, −100 outside completions */
  targets: Tensor;
  /** float32 (B, T-1) 1 on completion tokens */
  mask: Tensor;
  /** per row: index into the T-1 axis of the last real input position (reward models score there) */
  lastIndex: number[];
  B: number;
  T: number;
}

/** fits prompt + completion into `limit` tokens: drop the prompt's start first, then the completion's end */
export function fitRow(s: Sequence, limit: number): Sequence {
  if (s.prompt.length + s.completion.length <= limit) return s;
  const keepPrompt = Math.max(1, Math.min(s.prompt.length, limit - s.completion.length));
  const prompt = s.prompt.slice(s.prompt.length - keepPrompt);
  const n = limit - prompt.length;
  return { prompt, completion: s.completion.slice(0, n), ...(s.mask ? { mask: s.mask.slice(0, n) } : {}) };
}

/** right-padded batch of (prompt, completion) rows; `limit` is the model's context */
export function packBatch(rows: readonly Sequence[], limit = Infinity, pad = 0): PackedBatch {
  const fitted = rows.map((r) => fitRow(r, limit));
  for (const [i, r] of fitted.entries())
    if (r.prompt.length === 0)
      throw new Error(`packBatch: row ${i} has an empty prompt (at least one token is needed to predict from)`);
  const T = Math.max(...fitted.map((r) => r.prompt.length + r.completion.length));
  const B = rows.length;
  const ids = new Int32Array(B * (T - 1)).fill(pad);
  const tg = new Int32Array(B * (T - 1)).fill(-100);
  const mask = new Float32Array(B * (T - 1));
  const lastIndex: number[] = [];
  fitted.forEach((r, b) => {
    const seq = [...r.prompt, ...r.completion];
    for (let t = 0; t < seq.length - 1; t++) ids[b * (T - 1) + t] = seq[t]!;
    for (let t = r.prompt.length - 1; t < seq.length - 1; t++) {
      if (r.mask && !r.mask[t + 1 - r.prompt.length]) continue;
      tg[b * (T - 1) + t] = seq[t + 1]!;
      mask[b * (T - 1) + t] = 1;
    }
    lastIndex.push(Math.max(0, seq.length - 2));
  });
  const shape = [B, T - 1];
  return {
    inputIds: tensor(ids, { shape, dtype: 'int32' }),
    targets: tensor(tg, { shape, dtype: 'int32' }),
    mask: tensor(mask, { shape }),
    lastIndex,
    B,
    T,
  };
}

/** (B, T-1) per-token log-probs of the targets (0 where ignored) and the forward's outputs */
export function tokenLogps(
  model: LanguageModel,
  b: PackedBatch,
): { logps: Tensor; hidden: Tensor | undefined; aux: Tensor | undefined } {
  const out = model.forward({ inputIds: b.inputIds });
  return { logps: logpsFromLogits(out.logits, b), hidden: out.lastHiddenState, aux: out.auxLoss };
}

/** logits (B, T-1, V) → (B, T-1) log-probs of the batch's targets (0 where ignored) */
export function logpsFromLogits(logits: Tensor, b: PackedBatch): Tensor {
  const l32 = logits.dtype === 'float32' ? logits : logits.to('float32');
  return neg(crossEntropy(l32, b.targets, { reduction: 'none' }));
}

/**
 * Per-sequence log-probs (summed, or averaged over the completion's tokens) under a frozen model,
 * computed once in chunks without autograd: the reference model of DPO / KTO / PPO / GRPO.
 */
export function referenceLogps(
  model: LanguageModel,
  rows: readonly Sequence[],
  limit: number,
  chunk = 16,
): { sum: Float32Array; avg: Float32Array } {
  const sum = new Float32Array(rows.length);
  const avg = new Float32Array(rows.length);
  const was = model.training;
  model.eval();
  try {
    for (let i = 0; i < rows.length; i += chunk) {
      noGrad(() =>
        tidy(() => {
          const b = packBatch(rows.slice(i, i + chunk), limit);
          const lp = mul(tokenLogps(model, b).logps, b.mask).data();
          const m = b.mask.data();
          for (let r = 0; r < b.B; r++) {
            let s = 0,
              n = 0;
            for (let t = 0; t < b.T - 1; t++) ((s += lp[r * (b.T - 1) + t]!), (n += m[r * (b.T - 1) + t]!));
            sum[i + r] = s;
            avg[i + r] = n > 0 ? s / n : 0;
          }
        }),
      );
    }
  } finally {
    model.train(was);
  }
  return { sum, avg };
}

/** right-padded full sequences (no shift), for scoring at each row's last token: ids (B, T), last index per row */
export function packFull(
  rows: readonly Sequence[],
  limit = Infinity,
  pad = 0,
): { inputIds: Tensor; lastIndex: number[]; B: number; T: number } {
  const seqs = rows.map((r) => fitRow(r, limit)).map((r) => [...r.prompt, ...r.completion]);
  const T = Math.max(...seqs.map((s) => s.length));
  const ids = new Int32Array(rows.length * T).fill(pad);
  seqs.forEach((s, b) => ids.set(s, b * T));
  return {
    inputIds: tensor(ids, { shape: [rows.length, T], dtype: 'int32' }),
    lastIndex: seqs.map((s) => s.length - 1),
    B: rows.length,
    T,
  };
}
