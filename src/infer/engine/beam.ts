// Beam search scoring, as Hugging Face's `generate(num_beams=B)` does it (BeamSearchScorer +
// BeamHypotheses): per step every live beam's log-softmax row is added to its running score, the best
// (1 + |eos|) * B (at least 2B) candidates over all beams are walked in order; an end token among the first
// B ranks closes a hypothesis scored sum_logprobs / generated_len^lengthPenalty (the end token counted in
// the length, not kept in its tokens), any other candidate continues as a beam until B are chosen.
// earlyStopping: true stops once B hypotheses are closed; false also when no live beam can beat the
// worst of them (best score / current length^penalty); 'never' bounds that by the maximum length when the
// penalty is positive. At the length limit the live beams join the hypotheses.
//
// Pure bookkeeping on host arrays: the engine feeds it rows and moves KV blocks (copy-on-write forks).

export type EarlyStopping = boolean | 'never';

export interface BeamParams {
  width: number;
  lengthPenalty: number;
  earlyStopping: EarlyStopping;
  /** new tokens at most */
  maxTokens: number;
  /** new tokens before an end token may close a hypothesis */
  minTokens: number;
  eos: ReadonlySet<number>;
}

export interface Beam {
  /** generated tokens so far */
  out: readonly number[];
  /** sum of their log-probabilities */
  score: number;
}

export interface Hypothesis {
  /** generated tokens (without the end token) */
  tokens: number[];
  /** the end token that closed it, or null (closed at the length limit) */
  eos: number | null;
  score: number;
}

/** the continuation picked for one new beam */
export interface BeamChoice {
  parent: number;
  token: number;
  score: number;
}

/** log-softmax of a logits row, in float64 sums */
export function logSoftmax(row: Float32Array): Float32Array {
  let max = -Infinity;
  for (const x of row) if (x > max) max = x;
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return row.map((x) => x - lse);
}

/** the k best (score, beam, token) candidates over all beams, best first */
function topCandidates(beams: readonly Beam[], rows: readonly Float32Array[], k: number, banned: ReadonlySet<number>) {
  const best: { score: number; parent: number; token: number }[] = [];
  rows.forEach((row, b) => {
    const base = beams[b]!.score;
    for (let v = 0; v < row.length; v++) {
      const s = banned.has(v) ? -Infinity : base + row[v]!;
      if (best.length === k && !(s > best[k - 1]!.score)) continue;
      let i = Math.min(best.length, k - 1);
      while (i > 0 && best[i - 1]!.score < s) i--; // insertion into a short sorted list (k is 2B or so)
      best.splice(i, 0, { score: s, parent: b, token: v });
      if (best.length > k) best.pop();
    }
  });
  return best;
}

export class BeamSearch {
  readonly hyps: Hypothesis[] = [];
  private worst = 1e9;
  /** no further step can change the result */
  done = false;

  constructor(readonly p: BeamParams) {}

  private add(tokens: number[], eos: number | null, sumLogprobs: number, generatedLen: number): void {
    const score = sumLogprobs / generatedLen ** this.p.lengthPenalty;
    if (this.hyps.length < this.p.width || score > this.worst) {
      this.hyps.push({ tokens, eos, score });
      if (this.hyps.length > this.p.width) {
        const order = this.hyps.map((h, i) => [h.score, i] as const).sort((a, b) => a[0] - b[0]);
        this.hyps.splice(order[0]![1], 1);
        this.worst = order[1]![0];
      } else this.worst = Math.min(score, this.worst);
    }
  }

  private isDone(bestSumLogprobs: number, curLen: number): boolean {
    const { width, earlyStopping, lengthPenalty, maxTokens } = this.p;
    if (this.hyps.length < width) return false;
    if (earlyStopping === true) return true;
    const len = earlyStopping === 'never' && lengthPenalty > 0 ? maxTokens : curLen;
    return this.worst >= bestSumLogprobs / len ** lengthPenalty;
  }

  /**
   * one step over the live beams (all of the same length) and their log-softmax rows: the next beams,
   * or [] when the search is over (then `result` gives the hypotheses)
   */
  step(beams: readonly Beam[], logprobs: readonly Float32Array[]): BeamChoice[] {
    const { width, eos, minTokens, maxTokens } = this.p;
    const genLen = beams[0]!.out.length;
    const banned = genLen < minTokens ? eos : new Set<number>();
    const cands = topCandidates(beams, logprobs, Math.max(2, 1 + eos.size) * width, banned);
    const next: BeamChoice[] = [];
    for (let rank = 0; rank < cands.length && next.length < width; rank++) {
      const c = cands[rank]!;
      if (c.score === -Infinity) break;
      if (!eos.has(c.token)) next.push(c);
      else if (rank < width) this.add([...beams[c.parent]!.out], c.token, c.score, genLen + 1);
    }
    this.done ||= this.isDone(cands[0]?.score ?? -Infinity, genLen + 1);
    if (this.done) return [];
    if (genLen + 1 >= maxTokens || next.length === 0) {
      for (const c of next) this.add([...beams[c.parent]!.out, c.token], null, c.score, genLen + 1);
      this.done = true;
      return [];
    }
    return next;
  }

  /** the best `n` hypotheses, best first */
  result(n: number): Hypothesis[] {
    return [...this.hyps].sort((a, b) => b.score - a.score).slice(0, n);
  }
}
