// T5 span corruption (Raffel et al. 2020; t5.data.preprocessors.random_spans_noise_mask /
// noise_span_to_unique_sentinel). Noise spans in the input are replaced by one sentinel each; the target
// lists each sentinel followed by the tokens it replaced, then EOS.
import { Rng } from '../rng.js';

/** Python's round(): ties go to the even neighbour (T5 uses int(round(...)) / np.round). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Splits numItems into numSegments non-empty segments, all partitions equally likely. */
function randomSegmentation(numItems: number, numSegments: number, rng: Rng): number[] {
  // Choose numSegments-1 of the numItems-1 gaps as segment starts.
  const starts = new Uint8Array(numItems - 1);
  starts.fill(1, 0, numSegments - 1);
  rng.shuffle(starts);
  const lengths = new Array<number>(numSegments).fill(0);
  let seg = 0;
  lengths[0] = 1;
  for (let i = 0; i < numItems - 1; i++) {
    if (starts[i]) seg++;
    lengths[seg]++;
  }
  return lengths;
}

export interface NoiseCounts {
  noiseTokens: number;
  noiseSpans: number;
}

/** The deterministic counts T5 uses for a sequence of `length` tokens. */
export function noiseCounts(length: number, noiseDensity: number, meanSpanLength: number): NoiseCounts {
  const L = Math.max(length, 2);
  const noiseTokens = Math.min(Math.max(roundHalfEven(L * noiseDensity), 1), L - 1);
  const noiseSpans = Math.max(roundHalfEven(noiseTokens / meanSpanLength), 1);
  return { noiseTokens, noiseSpans };
}

/**
 * T5's random_spans_noise_mask: exactly round(length·density) noise tokens in round(noise/mean) spans,
 * alternating non-noise/noise starting with non-noise (so the sequence always ends in noise unless
 * randomRoll rotates the mask, as T5's random_roll option does). true = noise.
 */
export function randomSpansNoiseMask(
  length: number,
  rng: Rng,
  noiseDensity = 0.15,
  meanSpanLength = 3,
  randomRoll = false,
): Uint8Array {
  const L = Math.max(length, 2);
  const { noiseTokens, noiseSpans } = noiseCounts(length, noiseDensity, meanSpanLength);
  const noiseLens = randomSegmentation(noiseTokens, noiseSpans, rng);
  const keepLens = randomSegmentation(L - noiseTokens, noiseSpans, rng);
  const mask = new Uint8Array(L);
  let pos = 0;
  for (let s = 0; s < noiseSpans; s++) {
    pos += keepLens[s];
    mask.fill(1, pos, pos + noiseLens[s]);
    pos += noiseLens[s];
  }
  const out = randomRoll ? roll(mask, rng.int(L)) : mask;
  return out.subarray(0, length);
}

function roll(a: Uint8Array, shift: number): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[(i + shift) % a.length] = a[i];
  return out;
}

/** <extra_id_k> = vocabSize - 1 - k, as in T5's vocabularies. */
export function sentinelId(vocabSize: number, k: number): number {
  return vocabSize - 1 - k;
}

/**
 * T5's noise_span_to_unique_sentinel: the first token of each masked span becomes the next sentinel
 * (counting down from vocabSize-1), the rest of the span is dropped.
 */
export function spansToSentinels(tokens: ArrayLike<number>, mask: ArrayLike<number>, vocabSize: number): number[] {
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (!mask[i]) out.push(tokens[i]);
    else if (i === 0 || !mask[i - 1]) out.push(sentinelId(vocabSize, k++));
  }
  return out;
}

export interface SpanCorruptionOptions {
  /**
   * Size of the tokenizer vocabulary whose top ids are the sentinels (<extra_id_0> = vocabSize-1): for
   * T5 that is 32100, not the embedding table's padded 32128.
   */
  vocabSize: number;
  eosId: number;
  noiseDensity?: number;
  meanSpanLength?: number;
  randomRoll?: boolean;
}

export interface SpanCorruptionExample {
  /** Tokens with each noise span replaced by a sentinel, then EOS. */
  inputs: Int32Array;
  /** For each span: sentinel, the span's tokens; then EOS. */
  targets: Int32Array;
  /** The noise mask that was applied (1 = noise). */
  mask: Uint8Array;
}

/** Span-corrupts one token sequence (without a trailing EOS; it is appended to both sides). */
export function spanCorruption(
  tokens: ArrayLike<number>,
  rng: Rng,
  opts: SpanCorruptionOptions,
): SpanCorruptionExample {
  if (tokens.length < 2) throw new Error(`spanCorruption: need at least 2 tokens, got ${tokens.length}`);
  const mask = randomSpansNoiseMask(
    tokens.length,
    rng,
    opts.noiseDensity ?? 0.15,
    opts.meanSpanLength ?? 3,
    opts.randomRoll ?? false,
  );
  const inverse = mask.map((m) => 1 - m);
  const inputs = spansToSentinels(tokens, mask, opts.vocabSize);
  // Targets: the non-noise spans become sentinels. Because input sentinels are numbered by noise span
  // and each noise span is preceded by a non-noise one, sentinel k prefixes noise span k's tokens.
  // With randomRoll the mask may start with noise, so the first target sentinel would be off by one:
  // number the target sentinels from the noise spans instead.
  const targets = targetsFor(tokens, mask, inverse, opts.vocabSize);
  inputs.push(opts.eosId);
  targets.push(opts.eosId);
  return { inputs: Int32Array.from(inputs), targets: Int32Array.from(targets), mask };
}

/** sentinel_k followed by noise span k, for every k; a trailing sentinel marks a final kept span. */
function targetsFor(tokens: ArrayLike<number>, mask: Uint8Array, inverse: Uint8Array, vocabSize: number): number[] {
  if (!mask[0]) return spansToSentinels(tokens, inverse, vocabSize);
  // Mask starts with noise (randomRoll): emit sentinel k before each noise span explicitly.
  const out: number[] = [];
  let k = 0;
  for (let i = 0; i < tokens.length; i++) {
    if (!mask[i]) continue;
    if (i === 0 || !mask[i - 1]) out.push(sentinelId(vocabSize, k++));
    out.push(tokens[i]);
  }
  return out;
}

/**
 * Raw token count to feed so that inputs come out at most `inputsLength` long (HF run_t5_mlm_flax
 * compute_input_and_target_lengths): returns the raw length and the resulting targets length.
 */
export function spanCorruptionLengths(
  inputsLength: number,
  noiseDensity = 0.15,
  meanSpanLength = 3,
): { tokensLength: number; targetsLength: number } {
  const lengths = (n: number) => {
    const noise = roundHalfEven(n * noiseDensity);
    const spans = roundHalfEven(noise / meanSpanLength);
    return { inputs: n - noise + spans + 1, targets: noise + spans + 1 };
  };
  let n = inputsLength;
  while (lengths(n + 1).inputs <= inputsLength) n++;
  let targetsLength = lengths(n).targets;
  // At density 0.5 the targets can come out longer than the inputs; T5 trims one token to avoid it.
  if (noiseDensity === 0.5 && targetsLength > inputsLength) {
    n--;
    targetsLength--;
  }
  return { tokensLength: n, targetsLength };
}

/**
 * Inverse of span corruption: substitutes each input sentinel with its span from the targets. Ids in
 * the top `numSentinels` of the vocabulary (T5 reserves 100) count as sentinels.
 */
export function reconstructFromSpans(
  inputs: ArrayLike<number>,
  targets: ArrayLike<number>,
  vocabSize: number,
  eosId: number,
  numSentinels = 100,
): number[] {
  const isSentinel = (t: number) => t >= vocabSize - numSentinels && t < vocabSize;
  const spans = new Map<number, number[]>();
  let cur: number[] | undefined;
  for (let i = 0; i < targets.length && targets[i] !== eosId; i++) {
    if (isSentinel(targets[i])) spans.set(targets[i], (cur = []));
    else cur?.push(targets[i]);
  }
  const out: number[] = [];
  for (let i = 0; i < inputs.length && inputs[i] !== eosId; i++) {
    if (isSentinel(inputs[i])) out.push(...(spans.get(inputs[i]) ?? []));
    else out.push(inputs[i]);
  }
  return out;
}
