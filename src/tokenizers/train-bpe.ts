// Vocabulary training by merges: byte-level BPE (GPT-2 style) and WordPiece (HF trains WordPiece with the
// same merge loop, writing "##" on continuation symbols, then keeps only the vocabulary).
import { AddedToken } from './added-tokens.js';
import { BPE, WordPiece } from './models.js';
import { BertNormalizer } from './normalizers.js';
import { BertPre, ByteLevelPre, GPT2_PATTERN } from './pre-tokenizers.js';
import { TemplateProcessing, decoderFromJSON, postProcessorFromJSON } from './processors.js';
import { Tokenizer } from './tokenizer.js';
import { byteToChar, toByteLevel } from './unicode.js';

export type ProgressFn = (done: number, total: number, phase?: string) => void;

export interface TrainOptionsBase {
  /** Final vocabulary size, special tokens and alphabet included. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (default 2). */
  minFrequency?: number;
  specialTokens?: string[];
  onProgress?: ProgressFn;
}

/** Counts words produced by `split` over the corpus; reports progress by characters. */
export function countWords(
  text: string | string[],
  split: (s: string) => Iterable<string>,
  onProgress?: ProgressFn,
): Map<string, number> {
  const docs = typeof text === 'string' ? [text] : text;
  const total = docs.reduce((n, d) => n + d.length, 0);
  const counts = new Map<string, number>();
  let done = 0;
  const CHUNK = 1 << 16;
  for (const doc of docs) {
    // Cut chunks (so progress moves) just before a single space between two non-spaces: every supported
    // pre-tokenizer (GPT-2 regex, BERT, Metaspace) starts a new word there, so counts stay exact.
    for (let start = 0; start < doc.length;) {
      let end = Math.min(doc.length, start + CHUNK);
      for (let sp = doc.indexOf(' ', end); ; sp = doc.indexOf(' ', sp + 1)) {
        if (sp < 0) {
          end = doc.length;
          break;
        }
        if (sp > 0 && sp + 1 < doc.length && /\S/.test(doc[sp - 1]) && /\S/.test(doc[sp + 1])) {
          end = sp;
          break;
        }
      }
      for (const w of split(doc.slice(start, end))) counts.set(w, (counts.get(w) ?? 0) + 1);
      done += end - start;
      start = end;
      onProgress?.(done, total, 'count');
    }
  }
  return counts;
}

type Entry = [count: number, a: number, b: number];
/** Max-heap on count; ties go to the smaller (a, b), as HF's trainer orders merges. */
class PairHeap {
  private h: Entry[] = [];
  get size() {
    return this.h.length;
  }
  private before(x: Entry, y: Entry) {
    return x[0] !== y[0] ? x[0] > y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
  }
  push(e: Entry) {
    const h = this.h;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Entry | undefined {
    const h = this.h;
    if (!h.length) return undefined;
    const top = h[0];
    const last = h.pop()!;
    if (h.length) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1;
        let m = i;
        if (l < h.length && this.before(h[l], h[m])) m = l;
        if (r < h.length && this.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

export interface MergeLoopInput {
  words: number[][];
  counts: number[];
  /** Symbol strings; the initial ones are indexed by the ids used in `words`. Grows with merges. */
  symbols: string[];
  target: number;
  minFrequency: number;
  mergeName: (a: string, b: string) => string;
  onProgress?: ProgressFn;
}

const KEY = 1 << 22;

/** The BPE training loop: repeatedly merge the most frequent adjacent pair, updating counts incrementally. */
export function mergeLoop(inp: MergeLoopInput): [string, string][] {
  const { words, counts, symbols } = inp;
  const index = new Map<string, number>(symbols.map((s, i) => [s, i]));
  const pairCount = new Map<number, number>();
  const where = new Map<number, Set<number>>();
  for (let w = 0; w < words.length; w++) {
    const word = words[w];
    for (let i = 0; i + 1 < word.length; i++) {
      const k = word[i] * KEY + word[i + 1];
      pairCount.set(k, (pairCount.get(k) ?? 0) + counts[w]);
      let s = where.get(k);
      if (!s) where.set(k, (s = new Set()));
      s.add(w);
    }
  }
  const heap = new PairHeap();
  for (const [k, c] of pairCount) heap.push([c, Math.floor(k / KEY), k % KEY]);
  const merges: [string, string][] = [];
  const start = symbols.length,
    total = Math.max(1, inp.target - start);
  let lastReport = 0;
  while (symbols.length < inp.target) {
    const top = heap.pop();
    if (!top) break;
    const [c, a, b] = top;
    const key = a * KEY + b;
    const cur = pairCount.get(key) ?? 0;
    if (cur !== c) {
      if (cur > 0) heap.push([cur, a, b]);
      continue;
    }
    if (cur < inp.minFrequency) break;
    const name = inp.mergeName(symbols[a], symbols[b]);
    let id = index.get(name);
    if (id === undefined) {
      id = symbols.length;
      symbols.push(name);
      index.set(name, id);
    }
    merges.push([symbols[a], symbols[b]]);
    const delta = new Map<number, number>();
    for (const w of where.get(key) ?? []) {
      const word = words[w];
      const merged: number[] = [];
      let changed = false;
      for (let i = 0; i < word.length; i++) {
        if (i + 1 < word.length && word[i] === a && word[i + 1] === b) {
          merged.push(id);
          i++;
          changed = true;
        } else merged.push(word[i]);
      }
      if (!changed) continue;
      const n = counts[w];
      for (let i = 0; i + 1 < word.length; i++) {
        const k = word[i] * KEY + word[i + 1];
        delta.set(k, (delta.get(k) ?? 0) - n);
      }
      for (let i = 0; i + 1 < merged.length; i++) {
        const k = merged[i] * KEY + merged[i + 1];
        delta.set(k, (delta.get(k) ?? 0) + n);
        let s = where.get(k);
        if (!s) where.set(k, (s = new Set()));
        s.add(w);
      }
      words[w] = merged;
    }
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const v = (pairCount.get(k) ?? 0) + d;
      if (v > 0) {
        pairCount.set(k, v);
        if (d > 0) heap.push([v, Math.floor(k / KEY), k % KEY]);
      } else {
        pairCount.delete(k);
        where.delete(k);
      }
    }
    pairCount.delete(key);
    where.delete(key);
    const done = symbols.length - start;
    if (inp.onProgress && (done - lastReport >= 16 || symbols.length >= inp.target)) {
      lastReport = done;
      inp.onProgress(done, total, 'merges');
    }
  }
  if (symbols.length > KEY) throw new Error(`mergeLoop: vocabulary over ${KEY} symbols is not supported`);
  return merges;
}

function checkOpts(where: string, o: TrainOptionsBase) {
  if (!Number.isInteger(o.vocabSize) || o.vocabSize <= 0)
    throw new Error(`${where}: vocabSize must be a positive integer, got ${o.vocabSize}`);
}
function specialAdded(tokens: string[]): AddedToken[] {
  return tokens.map((content, id) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  }));
}

export interface TrainBPEOptions extends TrainOptionsBase {
  /** Prefix a space to the input (GPT-2: false). */
  addPrefixSpace?: boolean;
}

/**
 * Byte-level BPE as GPT-2: GPT-2 regex pre-tokenization, the 256-byte alphabet (ids specials.length +
 * byte), then merges until vocabSize. Defaults: specialTokens ["<|endoftext|>"], minFrequency 2.
 */
export function trainBPE(text: string | string[], opts: TrainBPEOptions): Tokenizer {
  checkOpts('trainBPE', opts);
  const specials = opts.specialTokens ?? ['<|endoftext|>'];
  const alphabet = byteToChar();
  if (opts.vocabSize < specials.length + 256)
    throw new Error(`trainBPE: vocabSize ${opts.vocabSize} is below ${specials.length} special tokens + 256 bytes`);
  const pre = new ByteLevelPre(opts.addPrefixSpace ?? false, true, true);
  const counts = countWords(
    text,
    (s) => {
      if (pre.addPrefixSpace && !s.startsWith(' ')) s = ' ' + s;
      return s.match(GPT2_PATTERN) ?? [];
    },
    opts.onProgress,
  );
  const symbols = [...specials, ...alphabet];
  const charId = new Map(alphabet.map((c, b) => [c, specials.length + b]));
  const words: number[][] = [],
    wc: number[] = [];
  for (const [w, n] of counts) {
    const bl = toByteLevel(w);
    const ids = new Array<number>(bl.length);
    for (let i = 0; i < bl.length; i++) ids[i] = charId.get(bl[i])!;
    words.push(ids);
    wc.push(n);
  }
  const merges = mergeLoop({
    words,
    counts: wc,
    symbols,
    target: opts.vocabSize,
    minFrequency: opts.minFrequency ?? 2,
    mergeName: (a, b) => a + b,
    onProgress: opts.onProgress,
  });
  const vocab = new Map(symbols.map((s, i) => [s, i]));
  return new Tokenizer({
    model: new BPE(vocab, merges),
    preTokenizer: pre,
    postProcessor: postProcessorFromJSON({
      type: 'ByteLevel',
      add_prefix_space: pre.addPrefixSpace,
      trim_offsets: true,
      use_regex: true,
    }),
    decoder: decoderFromJSON({ type: 'ByteLevel' }),
    addedTokens: specialAdded(specials),
  });
}

export interface TrainWordPieceOptions extends TrainOptionsBase {
  lowercase?: boolean;
  stripAccents?: boolean | null;
  /** Keep only the N most frequent characters in the alphabet (others become [UNK]). */
  limitAlphabet?: number;
  continuingSubwordPrefix?: string;
}

/**
 * WordPiece as BERT: BertNormalizer + BertPreTokenizer, merge training with "##" continuations, the
 * "[CLS] $A [SEP]" template. Defaults: specialTokens [PAD] [UNK] [CLS] [SEP] [MASK], lowercase true.
 */
export function trainWordPiece(text: string | string[], opts: TrainWordPieceOptions): Tokenizer {
  checkOpts('trainWordPiece', opts);
  const specials = opts.specialTokens ?? ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];
  const prefix = opts.continuingSubwordPrefix ?? '##';
  const unk = specials.includes('[UNK]') ? '[UNK]' : specials.find((s) => /unk/i.test(s));
  if (!unk) throw new Error('trainWordPiece: specialTokens must include an unknown token such as "[UNK]"');
  const norm = new BertNormalizer(true, true, opts.stripAccents ?? null, opts.lowercase ?? true);
  const pre = new BertPre();
  const counts = countWords(text, (s) => pre.preTokenize([norm.normalize(s)]), opts.onProgress);
  // alphabet: characters by frequency, optionally limited
  const charFreq = new Map<string, number>();
  for (const [w, n] of counts) for (const c of w) charFreq.set(c, (charFreq.get(c) ?? 0) + n);
  let chars = [...charFreq.keys()];
  if (opts.limitAlphabet !== undefined && chars.length > opts.limitAlphabet) {
    chars = chars.sort((x, y) => charFreq.get(y)! - charFreq.get(x)! || (x < y ? -1 : 1)).slice(0, opts.limitAlphabet);
  }
  const keep = new Set(chars);
  const initial = new Set<string>();
  const split = new Map<string, string[]>();
  for (const w of counts.keys()) {
    const cs = Array.from(w);
    if (!cs.every((c) => keep.has(c))) continue; // such words encode to [UNK]
    const syms = cs.map((c, i) => (i > 0 ? prefix + c : c));
    syms.forEach((s) => initial.add(s));
    split.set(w, syms);
  }
  const symbols = [...specials, ...[...initial].sort()];
  if (opts.vocabSize < symbols.length)
    throw new Error(
      `trainWordPiece: vocabSize ${opts.vocabSize} is below ${specials.length} special tokens + ${initial.size} alphabet symbols; raise it or set limitAlphabet`,
    );
  const sid = new Map(symbols.map((s, i) => [s, i]));
  const words: number[][] = [],
    wc: number[] = [];
  for (const [w, syms] of split) {
    words.push(syms.map((s) => sid.get(s)!));
    wc.push(counts.get(w)!);
  }
  mergeLoop({
    words,
    counts: wc,
    symbols,
    target: opts.vocabSize,
    minFrequency: opts.minFrequency ?? 2,
    mergeName: (a, b) => a + (b.startsWith(prefix) ? b.slice(prefix.length) : b),
    onProgress: opts.onProgress,
  });
  const vocab = new Map(symbols.map((s, i) => [s, i]));
  const hasClsSep = vocab.has('[CLS]') && vocab.has('[SEP]');
  return new Tokenizer({
    model: new WordPiece(vocab, unk, prefix, 100),
    normalizer: norm,
    preTokenizer: pre,
    postProcessor: hasClsSep
      ? TemplateProcessing.fromStrings('[CLS] $A:0 [SEP]:0', '[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1', {
          '[CLS]': vocab.get('[CLS]')!,
          '[SEP]': vocab.get('[SEP]')!,
        })
      : null,
    decoder: decoderFromJSON({ type: 'WordPiece', prefix, cleanup: true }),
    addedTokens: specialAdded(specials),
  });
}
