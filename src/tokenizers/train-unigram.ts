// Unigram language-model training, following sentencepiece's trainer (and HF's port): seed pieces from
// frequent substrings, EM with the Bayesian (digamma) M-step, loss-based pruning by shrinking factor,
// then finalization to the requested size keeping every character.
import { AddedToken } from './added-tokens.js';
import { PieceTrie, Unigram } from './models.js';
import { Metaspace } from './pre-tokenizers.js';
import { decoderFromJSON } from './processors.js';
import { Tokenizer } from './tokenizer.js';
import { countWords, TrainOptionsBase } from './train-bpe.js';
import { byteToken } from './unicode.js';

export interface TrainUnigramOptions extends TrainOptionsBase {
  /** Default ["<unk>", "<s>", "</s>"] (LLaMA's ids 0, 1, 2). */
  specialTokens?: string[];
  /** Must be one of specialTokens; default the first containing "unk". */
  unkToken?: string;
  /** Add the 256 <0xNN> pieces so no character is ever unknown (LLaMA style). Default true. */
  byteFallback?: boolean;
  maxPieceLength?: number;
  shrinkingFactor?: number;
  numSubIterations?: number;
  seedSize?: number;
  /** Metaspace replacement character (default "▁"). */
  replacement?: string;
}

/** sentencepiece's Digamma (asymptotic series after shifting x above 7). */
export function digamma(x: number): number {
  let r = 0;
  for (; x < 7; ++x) r -= 1 / x;
  x -= 0.5;
  const xx = 1 / x,
    xx2 = xx * xx,
    xx4 = xx2 * xx2;
  return r + Math.log(x) + (1 / 24) * xx2 - (7 / 960) * xx4 + (31 / 8064) * xx4 * xx2 - (127 / 30720) * xx4 * xx4;
}

function logAddExp(a: number, b: number): number {
  if (a === -Infinity) return b;
  if (b === -Infinity) return a;
  return a > b ? a + Math.log1p(Math.exp(b - a)) : b + Math.log1p(Math.exp(a - b));
}

interface Piece {
  s: string;
  cps: number[];
  score: number;
  isChar: boolean;
}

function buildTrie(pieces: Piece[]): PieceTrie {
  const t = new PieceTrie();
  pieces.forEach((p, i) => t.insert(p.s, i));
  return t;
}

/** Viterbi ids over the current pieces, optionally forbidding one piece; null if no full path. */
function viterbi(cps: number[], trie: PieceTrie, pieces: Piece[], exclude = -1): number[] | null {
  const n = cps.length;
  const best = new Float64Array(n + 1).fill(-Infinity);
  const from = new Int32Array(n + 1),
    tok = new Int32Array(n + 1);
  best[0] = 0;
  for (let i = 0; i < n; i++) {
    if (best[i] === -Infinity) continue;
    const base = best[i];
    trie.prefixes(cps, i, (id, end) => {
      if (id === exclude) return;
      const s = base + pieces[id].score;
      if (s > best[end]) {
        best[end] = s;
        from[end] = i;
        tok[end] = id;
      }
    });
  }
  if (best[n] === -Infinity) return null;
  const out: number[] = [];
  for (let e = n; e > 0; e = from[e]) out.push(tok[e]);
  return out.reverse();
}

export function trainUnigram(text: string | string[], opts: TrainUnigramOptions): Tokenizer {
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize <= 0)
    throw new Error(`trainUnigram: vocabSize must be a positive integer, got ${opts.vocabSize}`);
  const specials = opts.specialTokens ?? ['<unk>', '<s>', '</s>'];
  const unk = opts.unkToken ?? specials.find((s) => /unk/i.test(s));
  if (unk === undefined || !specials.includes(unk))
    throw new Error('trainUnigram: specialTokens must include the unknown token (e.g. "<unk>")');
  const byteFallback = opts.byteFallback ?? true;
  const maxLen = opts.maxPieceLength ?? 16;
  const shrink = opts.shrinkingFactor ?? 0.75;
  const subIters = opts.numSubIterations ?? 2;
  const onProgress = opts.onProgress;
  const pre = new Metaspace(opts.replacement ?? '\u2581', 'always', true);
  const budget = opts.vocabSize - specials.length - (byteFallback ? 256 : 0);
  if (budget <= 0)
    throw new Error(
      `trainUnigram: vocabSize ${opts.vocabSize} leaves no room for pieces after ${specials.length} special tokens${byteFallback ? ' and 256 byte-fallback pieces' : ''}`,
    );

  // 1. words and their counts
  const counts = countWords(text, (s) => pre.preTokenize([s], true), onProgress);
  const words: number[][] = [],
    wc: number[] = [];
  for (const [w, n] of counts) {
    words.push(Array.from(w, (c) => c.codePointAt(0)!));
    wc.push(n);
  }

  // 2. seeds: every character, plus substrings seen at least twice, scored freq * length
  const charFreq = new Map<number, number>();
  const sub = new Map<string, number>();
  for (let w = 0; w < words.length; w++) {
    if (onProgress && (w & 1023) === 0) onProgress(w, words.length, 'seed');
    const cps = words[w],
      n = wc[w];
    for (const c of cps) charFreq.set(c, (charFreq.get(c) ?? 0) + n);
    const str = String.fromCodePoint(...cps);
    // code-unit offsets of each code point, to slice substrings of the string directly
    const off: number[] = [0];
    for (const c of cps) off.push(off[off.length - 1] + (c > 0xffff ? 2 : 1));
    for (let i = 0; i < cps.length; i++) {
      for (let j = i + 2; j <= Math.min(cps.length, i + maxLen); j++) {
        const s = str.slice(off[i], off[j]);
        sub.set(s, (sub.get(s) ?? 0) + n);
      }
    }
  }
  onProgress?.(words.length, words.length, 'seed');
  if (charFreq.size > budget)
    throw new Error(
      `trainUnigram: vocabSize ${opts.vocabSize} leaves ${budget} pieces, fewer than the ${charFreq.size} distinct characters of the corpus`,
    );
  const seeds = [...sub].filter(([, f]) => f >= 2).map(([s, f]) => [s, f * Array.from(s).length] as [string, number]);
  sub.clear();
  seeds.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  seeds.length = Math.min(seeds.length, opts.seedSize ?? 1_000_000);
  let pieces: Piece[] = [];
  for (const [c, f] of charFreq) pieces.push({ s: String.fromCodePoint(c), cps: [c], score: f, isChar: true });
  for (const [s, f] of seeds) pieces.push({ s, cps: Array.from(s, (c) => c.codePointAt(0)!), score: f, isChar: false });
  const logTotal = Math.log(pieces.reduce((a, p) => a + p.score, 0));
  for (const p of pieces) p.score = Math.log(p.score) - logTotal;

  const desired = Math.max(charFreq.size, Math.floor(budget * 1.1));
  // rounds still needed if each prune shrinks by `shrink` (the M-step often drops more: re-estimated each round)
  const roundsLeft = (size: number) =>
    Math.max(0, Math.ceil(Math.log(Math.max(1, size / desired)) / Math.log(1 / shrink))) + 1;
  let round = 0;
  onProgress?.(0, roundsLeft(pieces.length), 'em');
  for (;;) {
    for (let it = 0; it < subIters; it++) pieces = emStep(pieces, words, wc);
    round++;
    if (pieces.length <= desired) break;
    pieces = prune(pieces, words, wc, Math.max(desired, Math.floor(shrink * pieces.length)));
    onProgress?.(round, round + roundsLeft(pieces.length), 'em');
  }
  onProgress?.(round, round, 'em');

  // 3. finalize: every character, then the best-scoring pieces
  const chars = pieces.filter((p) => p.isChar);
  const rest = pieces.filter((p) => !p.isChar).sort((a, b) => b.score - a.score || (a.s < b.s ? -1 : 1));
  const final = [...chars, ...rest.slice(0, Math.max(0, budget - chars.length))].sort(
    (a, b) => b.score - a.score || (a.s < b.s ? -1 : 1),
  );
  const minScore = final.reduce((m, p) => Math.min(m, p.score), 0);
  const vocab: [string, number][] = specials.map((s) => [s, 0]);
  // byte pieces only serve the fallback: score them below everything so literal "<0x41>" text never wins
  if (byteFallback) for (let b = 0; b < 256; b++) vocab.push([byteToken(b), minScore - 10]);
  for (const p of final) vocab.push([p.s, p.score]);
  const added: AddedToken[] = specials.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
  const dec = byteFallback ? { type: 'Sequence', decoders: [{ type: 'ByteFallback' }, pre.toJSON()] } : pre.toJSON();
  return new Tokenizer({
    model: new Unigram(vocab, specials.indexOf(unk), byteFallback),
    preTokenizer: pre,
    decoder: decoderFromJSON(dec),
    addedTokens: added,
  });
}

/** One EM iteration: expected piece counts by forward-backward, then the digamma M-step. */
function emStep(pieces: Piece[], words: number[][], wc: number[]): Piece[] {
  const trie = buildTrie(pieces);
  const expected = new Float64Array(pieces.length);
  let es = new Int32Array(3 * 256);
  for (let w = 0; w < words.length; w++) {
    const cps = words[w],
      n = cps.length;
    let ne = 0;
    for (let i = 0; i < n; i++) {
      trie.prefixes(cps, i, (id, end) => {
        if (ne * 3 + 3 > es.length) {
          const g = new Int32Array(es.length * 2);
          g.set(es);
          es = g;
        }
        es[ne * 3] = i;
        es[ne * 3 + 1] = end;
        es[ne * 3 + 2] = id;
        ne++;
      });
    }
    const alpha = new Float64Array(n + 1).fill(-Infinity),
      beta = new Float64Array(n + 1).fill(-Infinity);
    alpha[0] = 0;
    beta[n] = 0;
    for (let e = 0; e < ne; e++) {
      const i = es[3 * e],
        j = es[3 * e + 1];
      alpha[j] = logAddExp(alpha[j], alpha[i] + pieces[es[3 * e + 2]].score);
    }
    for (let e = ne - 1; e >= 0; e--) {
      const i = es[3 * e],
        j = es[3 * e + 1];
      beta[i] = logAddExp(beta[i], beta[j] + pieces[es[3 * e + 2]].score);
    }
    const z = alpha[n];
    if (z === -Infinity) continue;
    for (let e = 0; e < ne; e++) {
      const i = es[3 * e],
        j = es[3 * e + 1],
        id = es[3 * e + 2];
      expected[id] += wc[w] * Math.exp(alpha[i] + pieces[id].score + beta[j] - z);
    }
  }
  const kept: Piece[] = [];
  let sum = 0;
  pieces.forEach((p, i) => {
    // sentencepiece drops pieces expected less than half a time; characters always stay
    const f = p.isChar ? Math.max(expected[i], 0.5) : expected[i];
    if (f < 0.5) return;
    kept.push({ ...p, score: f });
    sum += f;
  });
  const logsum = digamma(sum);
  for (const p of kept) p.score = digamma(p.score) - logsum;
  return kept;
}

/** sentencepiece's PruneSentencePieces: drop the pieces whose removal costs the least likelihood. */
function prune(pieces: Piece[], words: number[][], wc: number[], target: number): Piece[] {
  const trie = buildTrie(pieces);
  const alwaysKeep = new Uint8Array(pieces.length);
  const alternatives: (number[] | null)[] = new Array(pieces.length).fill(null);
  for (let i = 0; i < pieces.length; i++) {
    const p = pieces[i];
    if (p.isChar) {
      alwaysKeep[i] = 1;
      continue;
    }
    const best = viterbi(p.cps, trie, pieces);
    if (!best || best.length >= 2) continue; // its own best path splits it: safe to remove
    alwaysKeep[i] = 1;
    alternatives[i] = viterbi(p.cps, trie, pieces, i);
  }
  const freq = new Float64Array(pieces.length);
  const inverted: number[][] = pieces.map(() => []);
  let vsum = 0;
  for (let w = 0; w < words.length; w++) {
    vsum += wc[w];
    const ids = viterbi(words[w], trie, pieces);
    if (!ids) continue;
    for (const id of ids) {
      freq[id] += wc[w];
      inverted[id].push(w);
    }
  }
  let sum = 0;
  for (const f of freq) sum += f;
  const logsum = Math.log(sum);
  const kept: Piece[] = [];
  const candidates: [number, number][] = [];
  for (let i = 0; i < pieces.length; i++) {
    if (pieces[i].isChar) {
      kept.push(pieces[i]);
      continue;
    }
    if (freq[i] === 0 || !alwaysKeep[i]) continue;
    const alt = alternatives[i];
    if (!alt || alt.length === 0) {
      kept.push(pieces[i]);
      continue;
    }
    let F = 0;
    for (const w of inverted[i]) F += wc[w];
    F /= vsum;
    const logprobSp = Math.log(freq[i]) - logsum;
    const logsumAlt = Math.log(sum + freq[i] * (alt.length - 1));
    let logprobAlt = 0;
    for (const n of alt) logprobAlt += Math.log(freq[n] + freq[i]) - logsumAlt;
    candidates.push([i, F * (logprobSp - logprobAlt)]);
  }
  candidates.sort((a, b) => b[1] - a[1] || a[0] - b[0]);
  for (const [i] of candidates) {
    if (kept.length >= target) break;
    kept.push(pieces[i]);
  }
  return kept;
}
