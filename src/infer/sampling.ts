// Choosing the next token from a row of logits: greedy (temperature 0), temperature, top-k and top-p
// (nucleus) sampling. Runs on the host over one Float32Array row: V is small next to the forward pass.
import type { Rng } from '../tensor/random.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax); default 1 */
  temperature?: number;
  /** keep the k most likely tokens (0 = off) */
  topK?: number;
  /** keep the smallest set of most likely tokens whose probability reaches p (1 = off) */
  topP?: number;
}

export function checkSampling(o: SamplingOptions): void {
  const { temperature = 1, topK = 0, topP = 1 } = o;
  const show = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  if (!(typeof temperature === 'number' && temperature >= 0 && Number.isFinite(temperature)))
    throw new Error(`sampling: temperature must be >= 0 (a finite number), got ${show(temperature)}`);
  if (!Number.isInteger(topK) || topK < 0)
    throw new Error(`sampling: topK must be a non-negative integer, got ${show(topK)}`);
  if (!(typeof topP === 'number' && topP > 0 && topP <= 1))
    throw new Error(`sampling: topP must be in (0, 1], got ${show(topP)}`);
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** softmax(row / temperature) restricted by top-k / top-p; returns [token ids, probabilities] (sum 1) */
export function candidates(row: ArrayLike<number>, o: SamplingOptions): { ids: number[]; probs: number[] } {
  const t = o.temperature ?? 1;
  let ids = Array.from({ length: row.length }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
  if (o.topK && o.topK < ids.length) ids = ids.slice(0, o.topK);
  const top = row[ids[0]!]!;
  let w = ids.map((i) => Math.exp((row[i]! - top) / t));
  let total = w.reduce((s, x) => s + x, 0);
  const topP = o.topP ?? 1;
  if (topP < 1) {
    let cum = 0;
    let n = 0;
    while (n < ids.length && cum < topP * total) cum += w[n++]!;
    ids = ids.slice(0, Math.max(1, n));
    w = w.slice(0, ids.length);
    total = w.reduce((s, x) => s + x, 0);
  }
  return { ids, probs: w.map((x) => x / total) };
}

/** the next token id: argmax at temperature 0, else a draw from the filtered distribution */
export function sampleToken(row: ArrayLike<number>, o: SamplingOptions, rng: Rng): number {
  if ((o.temperature ?? 1) === 0) return argmax(row);
  const { ids, probs } = candidates(row, o);
  const u = rng.uniform();
  let cum = 0;
  for (let i = 0; i < ids.length; i++) {
    cum += probs[i]!;
    if (u < cum) return ids[i]!;
  }
  return ids[ids.length - 1]!;
}
