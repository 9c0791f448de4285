// A reference beam search for the engine's tests: Hugging Face's generate(num_beams=B, length_penalty,
// early_stopping, max_new_tokens, min_new_tokens, eos_token_id), transcribed, over any source of next-token
// log-probabilities (full forward passes, one beam at a time: no cache, no paging).

export interface RefHyp {
  tokens: number[];
  score: number;
}

export interface RefBeamOptions {
  B: number;
  lp: number;
  early: boolean | 'never';
  maxNew: number;
  eos: number[];
  minNew?: number;
}

/** the B best hypotheses, best first; `logprobs(out)` gives the next-token log-probabilities after `out` */
export function referenceBeams(logprobs: (out: number[]) => number[], o: RefBeamOptions): RefHyp[] {
  const hyps: RefHyp[] = [];
  let worst = 1e9;
  let done = false;
  const add = (tokens: number[], sum: number, len: number) => {
    const score = sum / len ** o.lp;
    if (hyps.length < o.B || score > worst) {
      hyps.push({ tokens, score });
      if (hyps.length > o.B) {
        const sorted = hyps.map((h, i) => [h.score, i] as const).sort((a, b) => a[0] - b[0]);
        hyps.splice(sorted[0]![1], 1);
        worst = sorted[1]![0];
      } else worst = Math.min(score, worst);
    }
  };
  // B copies of the prompt; all but the first start at -1e9 so the first step expands one beam
  let beams = Array.from({ length: o.B }, (_, i) => ({ out: [] as number[], score: i === 0 ? 0 : -1e9 }));
  for (let len = 1; len <= o.maxNew; len++) {
    const cands = beams.flatMap((b, bi) =>
      logprobs(b.out).map((lp, t) => ({
        // min_new_tokens: end tokens at -inf (after the log-softmax) until minNew tokens exist
        s: b.score + (len - 1 < (o.minNew ?? 0) && o.eos.includes(t) ? -Infinity : lp),
        bi,
        t,
      })),
    );
    cands.sort((a, b) => b.s - a.s);
    const top = cands.slice(0, Math.max(2, 1 + o.eos.length) * o.B);
    const next: typeof beams = [];
    for (let rank = 0; rank < top.length && next.length < o.B; rank++) {
      const c = top[rank]!;
      if (o.eos.includes(c.t)) {
        if (rank < o.B) add([...beams[c.bi]!.out], c.s, len);
      } else next.push({ out: [...beams[c.bi]!.out, c.t], score: c.s });
    }
    if (hyps.length >= o.B) {
      const denom = o.early === 'never' && o.lp > 0 ? o.maxNew : len;
      done = o.early === true || worst >= top[0]!.s / denom ** o.lp;
    }
    beams = next;
    if (done) break;
  }
  if (!done) for (const b of beams) add(b.out, b.score, b.out.length);
  return hyps.sort((a, b) => b.score - a.score);
}
