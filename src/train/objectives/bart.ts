// BART denoising (Lewis et al. 2019; fairseq DenoisingDataset): text infilling replaces spans whose
// lengths are drawn from Poisson(λ=3) with a single mask token (length-0 spans insert a mask), and
// optional sentence permutation shuffles sentences. The decoder reconstructs the original sequence.
import { Rng } from '../rng.js';

export interface BartOptions {
  maskId: number;
  /** Fraction of (non-special) tokens to corrupt. BART-large uses 0.3. */
  maskRatio?: number;
  /** Mean span length. Default 3. */
  poissonLambda?: number;
  /** Never masked (e.g. BOS/EOS); spans stop at them. */
  specialIds?: Iterable<number>;
  /** Token ids that end a sentence (e.g. '.' or a full-stop id); enables sentence permutation when set. */
  sentenceEndIds?: Iterable<number>;
  /** Permute sentences before infilling. Default false. */
  permuteSentences?: boolean;
  /** Fraction of spans replaced by a random token instead of the mask (fairseq mask_random; BART uses 0.1). Default 0. */
  randomRatio?: number;
  /** Needed when randomRatio > 0: random tokens are drawn from [0, vocabSize) minus specialIds and maskId. */
  vocabSize?: number;
}

export interface BartExample {
  /** Corrupted sequence fed to the encoder. */
  inputs: Int32Array;
  /** Original sequence the decoder must reproduce. */
  targets: Int32Array;
}

/**
 * Splits at sentence-end tokens (kept with their sentence) and shuffles the sentences. Leading and
 * trailing `fixedIds` (e.g. BOS/EOS) stay in place, as in fairseq's permute_sentences.
 */
export function permuteSentences(
  tokens: ArrayLike<number>,
  sentenceEndIds: Iterable<number>,
  rng: Rng,
  fixedIds: Iterable<number> = [],
): number[] {
  const ends = new Set(sentenceEndIds);
  const fixed = new Set(fixedIds);
  let lo = 0;
  let hi = tokens.length;
  while (lo < hi && fixed.has(tokens[lo])) lo++;
  while (hi > lo && fixed.has(tokens[hi - 1])) hi--;
  const sentences: number[][] = [[]];
  for (let i = lo; i < hi; i++) {
    sentences[sentences.length - 1].push(tokens[i]);
    if (ends.has(tokens[i]) && i + 1 < hi) sentences.push([]);
  }
  const head = Array.from({ length: lo }, (_, i) => tokens[i]);
  const tail = Array.from({ length: tokens.length - hi }, (_, i) => tokens[hi + i]);
  return [...head, ...rng.shuffle(sentences).flat(), ...tail];
}

/**
 * Text infilling: repeatedly picks a start among uncorrupted positions and a Poisson span length, until
 * about maskRatio of the tokens are covered; each span collapses into one mask token.
 */
export function textInfilling(tokens: ArrayLike<number>, rng: Rng, opts: BartOptions): number[] {
  const special = new Set(opts.specialIds ?? []);
  const lambda = opts.poissonLambda ?? 3;
  const n = tokens.length;
  const eligible = Array.from({ length: n }, (_, i) => i).filter((i) => !special.has(tokens[i]));
  const budget = Math.round(eligible.length * (opts.maskRatio ?? 0.3));
  const masked = new Uint8Array(n); // 1 = dropped, replaced by the span's single mask
  const spanStart = new Uint8Array(n + 1); // 1 = a mask token is emitted before position i
  let covered = 0;
  for (let guard = 0; covered < budget && guard < 10 * n + 10; guard++) {
    const start = eligible[rng.int(eligible.length)];
    if (masked[start]) continue;
    const len = Math.min(rng.poisson(lambda), budget - covered);
    spanStart[start] = 1;
    for (let i = start; i < n && i < start + len && !special.has(tokens[i]) && !masked[i]; i++) {
      masked[i] = 1;
      covered++;
    }
  }
  return collapse(tokens, masked, spanStart, spanFiller(rng, opts, special));
}

/** What replaces each span: the mask token, or with probability randomRatio a random ordinary token. */
function spanFiller(rng: Rng, opts: BartOptions, special: Set<number>): () => number {
  const ratio = opts.randomRatio ?? 0;
  if (ratio === 0) return () => opts.maskId;
  const V = opts.vocabSize;
  if (V === undefined) throw new Error('textInfilling: randomRatio > 0 needs vocabSize');
  return () => {
    if (!rng.bernoulli(ratio)) return opts.maskId;
    for (;;) {
      const t = rng.int(V);
      if (t !== opts.maskId && !special.has(t)) return t;
    }
  };
}

/**
 * Emits kept tokens and one mask per span start; a span starting right after a dropped token continues
 * the mask already emitted, so adjacent spans merge into one mask (as in fairseq).
 */
function collapse(
  tokens: ArrayLike<number>,
  masked: Uint8Array,
  spanStart: Uint8Array,
  filler: () => number,
): number[] {
  const out: number[] = [];
  for (let i = 0; i <= tokens.length; i++) {
    if (spanStart[i] && !(i > 0 && masked[i - 1])) out.push(filler());
    if (i < tokens.length && !masked[i]) out.push(tokens[i]);
  }
  return out;
}

/** Sentence permutation (optional) then text infilling; targets are the original tokens. */
export function bartDenoising(tokens: ArrayLike<number>, rng: Rng, opts: BartOptions): BartExample {
  let src: ArrayLike<number> = tokens;
  if (opts.permuteSentences) {
    if (opts.sentenceEndIds === undefined) throw new Error('bartDenoising: permuteSentences needs sentenceEndIds');
    src = permuteSentences(tokens, opts.sentenceEndIds, rng, opts.specialIds);
  }
  return { inputs: Int32Array.from(textInfilling(src, rng, opts)), targets: Int32Array.from(tokens) };
}
