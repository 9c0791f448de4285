// BERT-style masked language modeling (dynamic masking as in HF DataCollatorForLanguageModeling) and
// next-sentence-prediction pairs (as in BERT's create_pretraining_data).
import { Rng } from '../rng.js';
import { IGNORE_INDEX } from './common.js';

export interface MlmOptions {
  vocabSize: number;
  maskId: number;
  /** Ids never selected for prediction nor drawn as random replacements ([CLS], [SEP], [PAD], ...). */
  specialIds: Iterable<number>;
  /** Selection probability per token. Default 0.15. */
  mlmProbability?: number;
  /** Of the selected tokens: fraction replaced by [MASK] (default 0.8) ... */
  maskFraction?: number;
  /** ... and fraction replaced by a random token (default 0.1); the rest stay unchanged. */
  randomFraction?: number;
}

export interface MlmExample {
  /** Corrupted ids fed to the encoder. */
  inputIds: Int32Array;
  /** Original id at selected positions, IGNORE_INDEX elsewhere. */
  labels: Int32Array;
}

/** Uniform non-special token id (rejection sampling keeps the distribution uniform over the rest). */
function randomToken(rng: Rng, vocabSize: number, special: Set<number>): number {
  if (special.size >= vocabSize) throw new Error(`maskTokens: every id in [0, ${vocabSize}) is special`);
  for (;;) {
    const t = rng.int(vocabSize);
    if (!special.has(t)) return t;
  }
}

/**
 * Selects each non-special token with probability p; selected tokens become [MASK] (80%), a random
 * token (10%) or stay unchanged (10%), and only they carry labels. Differs from HF only in that random
 * replacements are never special tokens.
 */
export function maskTokens(ids: ArrayLike<number>, rng: Rng, opts: MlmOptions): MlmExample {
  const p = opts.mlmProbability ?? 0.15;
  const pMask = opts.maskFraction ?? 0.8;
  const pRandom = opts.randomFraction ?? 0.1;
  if (pMask + pRandom > 1) throw new Error(`maskTokens: maskFraction + randomFraction = ${pMask + pRandom} > 1`);
  const special = new Set(opts.specialIds);
  const inputIds = Int32Array.from(ids);
  const labels = new Int32Array(ids.length).fill(IGNORE_INDEX);
  for (let i = 0; i < ids.length; i++) {
    if (special.has(ids[i]) || !rng.bernoulli(p)) continue;
    labels[i] = ids[i];
    const u = rng.random();
    if (u < pMask) inputIds[i] = opts.maskId;
    else if (u < pMask + pRandom) inputIds[i] = randomToken(rng, opts.vocabSize, special);
  }
  return { inputIds, labels };
}

export interface NspOptions {
  clsId: number;
  sepId: number;
  /** Total length budget including [CLS] and two [SEP]. */
  maxLength: number;
  /** Probability that B is a random segment from another document. Default 0.5. */
  randomNextProbability?: number;
}

export interface NspExample {
  /** [CLS] A [SEP] B [SEP] */
  inputIds: Int32Array;
  /** 0 for [CLS] A [SEP], 1 for B [SEP]. */
  tokenTypeIds: Int32Array;
  /** 0 = B follows A in the document, 1 = B is random (HF next_sentence_label convention). */
  nextSentenceLabel: 0 | 1;
}

/** Shortens the longer of the two segments (alternately from the front or back, as BERT does) to fit. */
function truncatePair(a: number[], b: number[], budget: number, rng: Rng): void {
  while (a.length + b.length > budget) {
    const longer = a.length > b.length ? a : b;
    if (rng.bernoulli(0.5)) longer.shift();
    else longer.pop();
  }
}

/** Random segment from a document other than `exclude` (falls back to the same one if it is alone). */
function randomSegment(docs: ArrayLike<number>[][], exclude: number, rng: Rng): ArrayLike<number> {
  let d = rng.int(docs.length);
  for (let tries = 0; d === exclude && docs.length > 1 && tries < 10; tries++) d = rng.int(docs.length);
  if (d === exclude && docs.length > 1) d = (exclude + 1) % docs.length;
  return docs[d][rng.int(docs[d].length)];
}

/** One NSP pair for segment i of document d: B is segment i+1 (label 0) or a random one (label 1). */
export function nspPair(docs: ArrayLike<number>[][], d: number, i: number, rng: Rng, opts: NspOptions): NspExample {
  const doc = docs[d];
  const isRandom = i + 1 >= doc.length || rng.bernoulli(opts.randomNextProbability ?? 0.5);
  const a = Array.from(doc[i]);
  const b = Array.from(isRandom ? randomSegment(docs, d, rng) : doc[i + 1]);
  if (opts.maxLength < 5) throw new Error(`nspPair: maxLength ${opts.maxLength} leaves no room for A and B`);
  truncatePair(a, b, opts.maxLength - 3, rng);
  const inputIds = Int32Array.from([opts.clsId, ...a, opts.sepId, ...b, opts.sepId]);
  const tokenTypeIds = new Int32Array(inputIds.length);
  tokenTypeIds.fill(1, a.length + 2);
  return { inputIds, tokenTypeIds, nextSentenceLabel: isRandom ? 1 : 0 };
}

/**
 * NSP pairs for every segment that has a successor (documents = lists of segments, e.g. sentences).
 * Segments with no successor are only used as random B partners.
 */
export function nspPairs(docs: ArrayLike<number>[][], rng: Rng, opts: NspOptions): NspExample[] {
  const out: NspExample[] = [];
  docs.forEach((doc, d) => {
    for (let i = 0; i + 1 < doc.length; i++) out.push(nspPair(docs, d, i, rng, opts));
  });
  return out;
}
