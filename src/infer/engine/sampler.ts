// Per-sequence sampling as a chain of small steps (llama.cpp's sampler chain, vLLM's order):
// logit bias → penalties → allowed-token mask → (min tokens: hide stops) → temperature → top-k → top-p →
// min-p → draw. Works on one host row per sequence. No full-vocabulary sort: top-k is a k-heap, top-p grows
// a sorted head of candidates until it holds the mass it needs, min-p is a threshold scan.
//
// Randomness: each sequence owns an Rng seeded from its request, so its draws never depend on which other
// requests share the batch.
import { Rng } from '../../tensor/random.js';

export interface SamplingParams {
  /** 0 = greedy; default 1 */
  temperature?: number;
  /** keep the k most likely tokens (0 = off) */
  topK?: number;
  /** nucleus: the smallest head whose probability reaches p, in (0, 1] (1 = off) */
  topP?: number;
  /** drop tokens less likely than minP × the top token's probability, in [0, 1] (0 = off) */
  minP?: number;
  /** CTRL-style penalty in [REPETITION_PENALTY_MIN, REPETITION_PENALTY_MAX] on every token seen (prompt and
   * output): logit / p if positive, × p if not */
  repetitionPenalty?: number;
  /** OpenAI-style: minus this once for every token that appeared in the output */
  presencePenalty?: number;
  /** OpenAI-style: minus this × the token's count in the output */
  frequencyPenalty?: number;
  /** added to the logits of these token ids, each in [-LOGIT_BIAS_MAX, LOGIT_BIAS_MAX] */
  logitBias?: Readonly<Record<number, number>>;
  /** seed of this request's draws, a safe integer (|seed| < 2^53; default: random) */
  seed?: number;
  /** return the log-probability of each chosen token and of this many top alternatives (0..20) */
  logprobs?: number;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface Sampled {
  id: number;
  /** log-probability of the chosen token under the model (after bias and penalties), and alternatives */
  logprob?: number;
  top?: TokenLogprob[];
}

/** history the penalties need: every token of the sequence, and the output's counts */
export interface PenaltyState {
  seen: Set<number>;
  counts: Map<number, number>;
}

/**
 * The accepted repetition penalty. vLLM and Hugging Face only require > 0, which lets 1e-308 or 1e308 turn
 * a logit into ±Infinity (and the row into NaN); llama.cpp's users stay in about [1, 1.5]. Two decades
 * either side of 1 cover every use seen in practice and keep |logit| x 100 far inside float32.
 */
export const REPETITION_PENALTY_MIN = 0.01;
export const REPETITION_PENALTY_MAX = 100;
/** OpenAI's logit_bias range */
export const LOGIT_BIAS_MAX = 100;
/** processed logits are kept inside +-this (float32's max is 3.4e38), so that differences of them stay finite */
const LOGIT_LIMIT = 1e30;

export function checkSamplingParams(p: SamplingParams, vocabSize: number, where = 'request'): void {
  const bad = (field: string, want: string, got: unknown) =>
    new Error(`${where}: ${field} must be ${want}, got ${JSON.stringify(got)}`);
  const {
    temperature = 1,
    topK = 0,
    topP = 1,
    minP = 0,
    repetitionPenalty = 1,
    presencePenalty = 0,
    frequencyPenalty = 0,
  } = p;
  if (!(temperature >= 0) || !Number.isFinite(temperature))
    throw bad('temperature', 'a finite number >= 0', temperature);
  if (!Number.isInteger(topK) || topK < 0) throw bad('topK', 'an integer >= 0', topK);
  if (!(topP > 0 && topP <= 1)) throw bad('topP', 'in (0, 1]', topP);
  if (!(minP >= 0 && minP <= 1)) throw bad('minP', 'in [0, 1]', minP);
  if (!(repetitionPenalty >= REPETITION_PENALTY_MIN && repetitionPenalty <= REPETITION_PENALTY_MAX))
    throw bad('repetitionPenalty', `in [${REPETITION_PENALTY_MIN}, ${REPETITION_PENALTY_MAX}]`, repetitionPenalty);
  if (!Number.isFinite(presencePenalty) || Math.abs(presencePenalty) > 2)
    throw bad('presencePenalty', 'in [-2, 2]', presencePenalty);
  if (!Number.isFinite(frequencyPenalty) || Math.abs(frequencyPenalty) > 2)
    throw bad('frequencyPenalty', 'in [-2, 2]', frequencyPenalty);
  if (p.seed !== undefined && !Number.isSafeInteger(p.seed))
    throw bad('seed', 'an integer with |seed| <= 2^53 - 1', p.seed);
  if (p.logprobs !== undefined && (!Number.isInteger(p.logprobs) || p.logprobs < 0 || p.logprobs > 20))
    throw bad('logprobs', 'an integer in [0, 20]', p.logprobs);
  for (const [k, v] of Object.entries(p.logitBias ?? {})) {
    const id = Number(k);
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize)
      throw bad(`logitBias key ${k}`, `a token id in [0, ${vocabSize})`, k);
    if (!(Math.abs(v) <= LOGIT_BIAS_MAX)) throw bad(`logitBias[${k}]`, `in [-${LOGIT_BIAS_MAX}, ${LOGIT_BIAS_MAX}]`, v);
  }
}

/** indices of the k largest values, largest first (ties: lower id first), via a size-k min-heap */
export function topIndices(row: ArrayLike<number>, k: number): number[] {
  const n = row.length;
  k = Math.min(k, n);
  const heap: number[] = [];
  const less = (a: number, b: number) => row[a]! < row[b]! || (row[a] === row[b] && a > b); // a ranks below b
  const down = (i: number) => {
    for (;;) {
      const [l, r] = [2 * i + 1, 2 * i + 2];
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) return;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  };
  for (let i = 0; i < n; i++) {
    if (heap.length < k) {
      heap.push(i);
      for (let j = heap.length - 1; j > 0;) {
        const p = (j - 1) >> 1;
        if (!less(heap[j]!, heap[p]!)) break;
        [heap[j], heap[p]] = [heap[p]!, heap[j]!];
        j = p;
      }
    } else if (k > 0 && less(heap[0]!, i)) {
      heap[0] = i;
      down(0);
    }
  }
  return heap.sort((a, b) => row[b]! - row[a]! || a - b);
}

/** temperature 0: the argmax, no distribution (sampling, drafting and verification agree on it) */
export function isGreedy(p: SamplingParams): boolean {
  return (p.temperature ?? 1) === 0;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/** bias and penalties, in place; finite logits stay finite whatever the parameters (no ±Infinity, no NaN) */
export function applyPenalties(row: Float32Array, p: SamplingParams, st: PenaltyState): void {
  for (const [k, v] of Object.entries(p.logitBias ?? {})) {
    const id = Number(k);
    row[id] = bounded(row[id]!, row[id]! + v);
  }
  const rep = p.repetitionPenalty ?? 1;
  if (rep !== 1) for (const id of st.seen) row[id] = bounded(row[id]!, row[id]! > 0 ? row[id]! / rep : row[id]! * rep);
  const [pres, freq] = [p.presencePenalty ?? 0, p.frequencyPenalty ?? 0];
  if (pres !== 0 || freq !== 0)
    for (const [id, c] of st.counts) row[id] = bounded(row[id]!, row[id]! - (pres + freq * c));
}

/** a penalised logit clamped into ±LOGIT_LIMIT when the logit it came from was finite (a mask's -Infinity stays) */
function bounded(before: number, after: number): number {
  if (!Number.isFinite(before)) return before;
  return after > LOGIT_LIMIT ? LOGIT_LIMIT : after < -LOGIT_LIMIT ? -LOGIT_LIMIT : after;
}

/** true when some token of the row can still be chosen (not every logit is -Infinity or NaN) */
export function anyAllowed(row: ArrayLike<number>): boolean {
  for (let i = 0; i < row.length; i++) if (row[i]! > -Infinity) return true;
  return false;
}

/** log-sum-exp of a row */
function logSumExp(row: ArrayLike<number>): number {
  let m = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > m) m = row[i]!;
  if (m === -Infinity) return m;
  let s = 0;
  for (let i = 0; i < row.length; i++) s += Math.exp(row[i]! - m);
  return m + Math.log(s);
}

/**
 * The next token from processed logits `row` (bias, penalties and masks applied). Greedy at
 * temperature 0; else a draw after temperature, top-k, top-p and min-p.
 */
export function drawToken(row: Float32Array, p: SamplingParams, rng: Rng): number {
  const t = p.temperature ?? 1;
  if (t === 0) return argmax(row);
  const [topK, topP, minP] = [p.topK ?? 0, p.topP ?? 1, p.minP ?? 0];
  const m = row[argmax(row)]!;
  if (m === -Infinity) throw new Error('sampling: every token is masked out');
  let z = 0;
  for (let i = 0; i < row.length; i++) z += Math.exp((row[i]! - m) / t);
  const prob = (i: number) => Math.exp((row[i]! - m) / t) / z;
  if (topK === 0 && topP >= 1) return drawScan(row, m, t, minP, rng);
  // a sorted head of candidates: the top k, or (top-p only) grown until it holds mass topP
  let k = topK > 0 ? topK : 32;
  let head = topIndices(row, k);
  if (topK === 0) {
    while (head.reduce((s, i) => s + prob(i), 0) < topP && head.length < row.length) head = topIndices(row, (k *= 4));
  }
  let probs = head.map(prob);
  // top-p over the top-k renormalised (vLLM's order), or over the whole distribution
  const mass = topK > 0 ? probs.reduce((s, x) => s + x, 0) : 1;
  if (topP < 1) {
    let cum = 0;
    let n = 0;
    while (n < head.length && cum < topP * mass) cum += probs[n++]!;
    [head, probs] = [head.slice(0, Math.max(1, n)), probs.slice(0, Math.max(1, n))];
  }
  if (minP > 0) {
    const keep = probs.filter((q) => q >= minP * probs[0]!).length;
    [head, probs] = [head.slice(0, keep), probs.slice(0, keep)];
  }
  const total = probs.reduce((s, x) => s + x, 0);
  const u = rng.uniform() * total;
  let cum = 0;
  for (let i = 0; i < head.length; i++) if (u < (cum += probs[i]!)) return head[i]!;
  return head[head.length - 1]!;
}

/** a draw over the whole vocabulary in one scan (no top-k / top-p), min-p as a threshold */
function drawScan(row: Float32Array, m: number, t: number, minP: number, rng: Rng): number {
  const floor = minP > 0 ? m + t * Math.log(minP) : -Infinity; // p_i >= minP * p_max  <=>  l_i >= m + t ln minP
  let z = 0;
  for (let i = 0; i < row.length; i++) if (row[i]! >= floor) z += Math.exp((row[i]! - m) / t);
  const u = rng.uniform() * z;
  let cum = 0;
  let last = 0;
  for (let i = 0; i < row.length; i++) {
    if (row[i]! < floor) continue;
    last = i;
    if (u < (cum += Math.exp((row[i]! - m) / t))) return i;
  }
  return last;
}

/** log-probability of `id` and the top alternatives under the (processed) row */
export function logprobsOf(row: Float32Array, id: number, top: number): Pick<Sampled, 'logprob' | 'top'> {
  const lse = logSumExp(row);
  const out: Pick<Sampled, 'logprob' | 'top'> = { logprob: row[id]! - lse };
  if (top > 0) out.top = topIndices(row, top).map((i) => ({ id: i, logprob: row[i]! - lse }));
  return out;
}

/**
 * A fresh per-sequence generator: the request's seed (index > 0 for the n > 1 siblings), else random.
 * (seed, index) fill the whole 128-bit xoshiro state through a bijection, so distinct seeds (all 53 bits and
 * the sign) and distinct siblings start from distinct states by construction: no two collide, and sibling
 * i of one seed is never sibling 0 of another.
 */
export function sequenceRng(seed: number | undefined, index: number): Rng {
  const s = seed ?? Math.floor((Math.random() * 2 - 1) * Number.MAX_SAFE_INTEGER);
  if (!Number.isSafeInteger(s)) throw new Error(`sampling: seed must be a safe integer, got ${s}`);
  const mag = Math.abs(s);
  const hi = Math.floor(mag / 2 ** 32) | (s < 0 ? 1 << 21 : 0); // 21 bits of magnitude, then the sign
  return Rng.fromKey([mag >>> 0, hi, index >>> 0, 0x9e3779b9]);
}
