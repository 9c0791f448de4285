// Exact speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a cheap drafter proposes k tokens,
// the target scores all of them in one forward pass, and modified rejection sampling keeps the output
// distribution exactly the target's: draft token d is accepted with probability min(1, p(d) / q(d)); at
// the first rejection the token is drawn from norm(max(0, p − q)) and the rest is dropped; when all k are
// accepted, a bonus token is drawn from the target's next distribution. At temperature 0 this is
// "accept while the draft equals the target's argmax", so greedy output equals plain decoding.
//
// Drafters: a smaller model with the same vocabulary (its own paged cache), or prompt lookup (n-gram
// matches in the sequence so far; a deterministic proposal, q = one-hot).
import type { Rng } from '../../tensor/random.js';
import { argmax, topIndices, type SamplingParams } from './sampler.js';

/** the dense distribution drawToken samples from (temperature, top-k, top-p, min-p), [V] */
export function probsOf(row: Float32Array, p: SamplingParams): Float32Array {
  const V = row.length;
  const out = new Float32Array(V);
  const t = p.temperature ?? 1;
  if (t === 0) {
    out[argmax(row)] = 1;
    return out;
  }
  const m = row[argmax(row)]!;
  let z = 0;
  for (let i = 0; i < V; i++) z += out[i] = Math.exp((row[i]! - m) / t);
  for (let i = 0; i < V; i++) out[i]! /= z;
  const [topK, topP, minP] = [p.topK ?? 0, p.topP ?? 1, p.minP ?? 0];
  if (topK > 0 || topP < 1) {
    let head = topIndices(out, topK > 0 ? topK : V);
    if (topP < 1) {
      const mass = head.reduce((s, i) => s + out[i]!, 0);
      let [cum, n] = [0, 0];
      while (n < head.length && cum < topP * mass) cum += out[head[n++]!]!;
      head = head.slice(0, Math.max(1, n));
    }
    const keep = new Uint8Array(V);
    for (const i of head) keep[i] = 1;
    for (let i = 0; i < V; i++) if (!keep[i]) out[i] = 0;
  }
  if (minP > 0) {
    const floor = minP * out[argmax(out)]!;
    for (let i = 0; i < V; i++) if (out[i]! < floor) out[i] = 0;
  }
  let s = 0;
  for (let i = 0; i < V; i++) s += out[i]!;
  for (let i = 0; i < V; i++) out[i]! /= s;
  return out;
}

/** a draw from a dense distribution */
export function drawFrom(probs: Float32Array, rng: Rng): number {
  let total = 0;
  for (let i = 0; i < probs.length; i++) total += probs[i]!;
  const u = rng.uniform() * total;
  let [cum, last] = [0, 0];
  for (let i = 0; i < probs.length; i++) {
    if (probs[i]! <= 0) continue;
    last = i;
    if (u < (cum += probs[i]!)) return i;
  }
  return last;
}

/**
 * Modified rejection sampling over one sequence's draft. `p`: the target's distributions at the k + 1
 * positions (after each draft prefix); `q[i]`: the drafter's distribution for draft[i] (null = the draft
 * was deterministic). Returns the tokens to append (accepted drafts + one corrected or bonus token).
 */
export function verifyDraft(
  p: Float32Array[],
  draft: readonly number[],
  q: readonly (Float32Array | null)[],
  rng: Rng,
): { tokens: number[]; accepted: number } {
  const tokens: number[] = [];
  for (let i = 0; i < draft.length; i++) {
    const d = draft[i]!;
    const qd = q[i] ? q[i]![d]! : 1;
    if (qd > 0 && rng.uniform() < Math.min(1, p[i]![d]! / qd)) {
      tokens.push(d);
      continue;
    }
    const residual = new Float32Array(p[i]!.length);
    let mass = 0;
    for (let v = 0; v < residual.length; v++)
      mass += residual[v] = Math.max(0, p[i]![v]! - (q[i] ? q[i]![v]! : v === d ? 1 : 0));
    tokens.push(drawFrom(mass > 0 ? residual : p[i]!, rng));
    return { tokens, accepted: i };
  }
  tokens.push(drawFrom(p[draft.length]!, rng));
  return { tokens, accepted: draft.length };
}

/**
 * verifyDraft at temperature 0, without building distributions: every p is one-hot at its row's argmax
 * (sampler.ts `argmax`, the token plain greedy decoding picks), so a draft token is accepted exactly when
 * it equals that argmax, and the first mismatch (or the bonus row) yields the target's own argmax.
 * `rows`: the target's processed logits at the k + 1 positions.
 */
export function verifyGreedy(
  rows: readonly Float32Array[],
  draft: readonly number[],
): { tokens: number[]; accepted: number } {
  let i = 0;
  while (i < draft.length && argmax(rows[i]!) === draft[i]) i++;
  return { tokens: [...draft.slice(0, i), argmax(rows[i]!)], accepted: i };
}

/**
 * Prompt lookup: the k tokens that followed the latest earlier occurrence of the sequence's last n
 * tokens (n from maxNgram down to 1); [] when nothing matches.
 */
export function promptLookup(tokens: readonly number[], k: number, maxNgram = 3): number[] {
  const L = tokens.length;
  for (let n = Math.min(maxNgram, L - 1); n >= 1; n--) {
    for (let s = L - n - 1; s >= 0; s--) {
      let hit = true;
      for (let j = 0; j < n && hit; j++) hit = tokens[s + j] === tokens[L - n + j];
      if (hit) return tokens.slice(s + n, Math.min(s + n + k, L));
    }
  }
  return [];
}
