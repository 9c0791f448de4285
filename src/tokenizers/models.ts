// Tokenization models (word -> ids): BPE, WordPiece, Unigram, WordLevel, as in HF tokenizer.json.
import { byteToken, utf8Encode } from './unicode.js';

type Json = Record<string, any>;

export interface Model {
  readonly type: 'BPE' | 'WordPiece' | 'Unigram' | 'WordLevel';
  /** Ids of one pre-tokenized word. */
  tokenize(word: string): number[];
  tokenToId(token: string): number | undefined;
  idToToken(id: number): string | undefined;
  /** Number of ids the model uses (max id + 1). */
  readonly size: number;
  /** The unknown token, when the model has one. */
  readonly unkToken: string | null;
  toJSON(): Record<string, unknown>;
}

/** Bounded per-word cache: pre-tokens repeat heavily in natural text (Zipf), so most lookups hit. */
class WordCache {
  private m = new Map<string, number[]>();
  constructor(
    private limit = 100_000,
    private maxLen = 256,
  ) {}
  get(w: string) {
    return this.m.get(w);
  }
  set(w: string, ids: number[]) {
    if (w.length > this.maxLen) return;
    if (this.m.size >= this.limit) this.m.clear();
    this.m.set(w, ids);
  }
  clear() {
    this.m.clear();
  }
}

function vocabFromJSON(v: unknown, where: string): Map<string, number> {
  if (v == null || typeof v !== 'object' || Array.isArray(v))
    throw new Error(`tokenizer.json: ${where}.vocab must be an object {token: id}`);
  const m = new Map<string, number>();
  for (const [k, id] of Object.entries(v as Record<string, unknown>)) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
      throw new Error(`tokenizer.json: ${where}.vocab[${JSON.stringify(k)}] must be a non-negative integer id`);
    m.set(k, id);
  }
  return m;
}
function invert(vocab: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [t, id] of vocab) out[id] = t;
  return out;
}
function vocabToJSON(vocab: Map<string, number>): Record<string, number> {
  const entries = [...vocab].sort((a, b) => a[1] - b[1]);
  const o: Record<string, number> = {};
  for (const [t, id] of entries) o[t] = id;
  return o;
}

// ---------------------------------------------------------------------------------------------------
// BPE

/** Min-heap of float keys (rank * 2^32 + position): merges apply lowest rank first, then leftmost. */
class KeyHeap {
  a = new Float64Array(64);
  n = 0;
  push(k: number) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.n * 2);
      b.set(this.a);
      this.a = b;
    }
    let i = this.n++;
    const a = this.a;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= k) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = k;
  }
  pop(): number {
    const a = this.a;
    const top = a[0];
    const last = a[--this.n];
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= this.n) break;
      const c = l + 1 < this.n && a[l + 1] < a[l] ? l + 1 : l;
      if (a[c] >= last) break;
      a[i] = a[c];
      i = c;
    }
    a[i] = last;
    return top;
  }
}
const POS = 4294967296;

export interface BPEOptions {
  unkToken?: string | null;
  continuingSubwordPrefix?: string | null;
  endOfWordSuffix?: string | null;
  fuseUnk?: boolean;
  byteFallback?: boolean;
  ignoreMerges?: boolean;
  dropout?: number | null;
}

export class BPE implements Model {
  readonly type = 'BPE' as const;
  readonly vocab: Map<string, number>;
  readonly merges: [string, string][];
  private itos: string[];
  // pair (a, b) -> rank; the merged id is the token a + b (minus the continuation prefix of b)
  private pairRank = new Map<number, number>();
  private rankNew: Int32Array;
  private stride: number;
  private cache = new WordCache();
  readonly unkToken: string | null;
  readonly opts: Required<BPEOptions>;

  constructor(vocab: Map<string, number>, merges: [string, string][], opts: BPEOptions = {}) {
    this.vocab = vocab;
    this.merges = merges;
    this.itos = invert(vocab);
    this.opts = {
      unkToken: opts.unkToken ?? null,
      continuingSubwordPrefix: opts.continuingSubwordPrefix ?? null,
      endOfWordSuffix: opts.endOfWordSuffix ?? null,
      fuseUnk: opts.fuseUnk ?? false,
      byteFallback: opts.byteFallback ?? false,
      ignoreMerges: opts.ignoreMerges ?? false,
      dropout: opts.dropout ?? null,
    };
    this.unkToken = this.opts.unkToken;
    this.stride = this.itos.length + 1;
    this.rankNew = new Int32Array(merges.length);
    const pre = this.opts.continuingSubwordPrefix ?? '';
    merges.forEach(([a, b], rank) => {
      const ia = vocab.get(a),
        ib = vocab.get(b);
      const merged = a + (pre && b.startsWith(pre) ? b.slice(pre.length) : b);
      const im = vocab.get(merged);
      if (ia === undefined || ib === undefined)
        throw new Error(
          `tokenizer.json: model.merges[${rank}] ${JSON.stringify(a + ' ' + b)} uses a token missing from model.vocab`,
        );
      if (im === undefined)
        throw new Error(
          `tokenizer.json: model.merges[${rank}] produces ${JSON.stringify(merged)}, which is missing from model.vocab`,
        );
      const key = ia * this.stride + ib;
      if (!this.pairRank.has(key)) this.pairRank.set(key, rank);
      this.rankNew[rank] = im;
    });
  }

  get size() {
    return this.itos.length;
  }
  tokenToId(t: string) {
    return this.vocab.get(t);
  }
  idToToken(i: number) {
    return this.itos[i];
  }

  tokenize(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const ids =
      this.opts.ignoreMerges && this.vocab.has(word) ? [this.vocab.get(word)!] : this.merge(this.initialSymbols(word));
    this.cache.set(word, ids);
    return ids;
  }

  /** One symbol per character (with prefix/suffix conventions); unknown chars -> bytes or unk. */
  private initialSymbols(word: string): number[] {
    const { continuingSubwordPrefix: pre, endOfWordSuffix: suf, unkToken, fuseUnk, byteFallback } = this.opts;
    const chars = Array.from(word);
    const syms: number[] = [];
    const unkId = unkToken != null ? this.vocab.get(unkToken) : undefined;
    let lastWasUnk = false;
    for (let i = 0; i < chars.length; i++) {
      let s = chars[i];
      if (pre && i > 0) s = pre + s;
      if (suf && i === chars.length - 1) s = s + suf;
      const id = this.vocab.get(s);
      if (id !== undefined) {
        syms.push(id);
        lastWasUnk = false;
        continue;
      }
      if (byteFallback) {
        const bytes = Array.from(utf8Encode(chars[i]), (b) => this.vocab.get(byteToken(b)));
        if (bytes.every((b) => b !== undefined)) {
          syms.push(...(bytes as number[]));
          lastWasUnk = false;
          continue;
        }
      }
      if (unkId !== undefined) {
        if (!(fuseUnk && lastWasUnk)) syms.push(unkId);
        lastWasUnk = true;
      }
      // no unk token: HF drops the character silently
    }
    return syms;
  }

  /** HF's merge loop: lowest-rank pair first (leftmost on ties), with lazily invalidated heap entries. */
  private merge(syms: number[]): number[] {
    const n = syms.length;
    if (n < 2) return syms;
    const sym = Int32Array.from(syms);
    const next = new Int32Array(n),
      prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new KeyHeap();
    const stride = this.stride,
      pairRank = this.pairRank;
    for (let i = 0; i + 1 < n; i++) {
      const r = pairRank.get(sym[i] * stride + sym[i + 1]);
      if (r !== undefined) heap.push(r * POS + i);
    }
    const dropout = this.opts.dropout;
    while (heap.n > 0) {
      const key = heap.pop();
      const rank = Math.floor(key / POS),
        pos = key - rank * POS;
      if (sym[pos] < 0) continue; // symbol was merged into its left neighbour
      const nx = next[pos];
      if (nx < 0) continue;
      if (pairRank.get(sym[pos] * stride + sym[nx]) !== rank) continue; // stale entry
      if (dropout && Math.random() < dropout) continue;
      sym[pos] = this.rankNew[rank];
      sym[nx] = -1;
      const nn = next[nx];
      next[pos] = nn;
      if (nn >= 0) prev[nn] = pos;
      const pv = prev[pos];
      if (pv >= 0) {
        const r = pairRank.get(sym[pv] * stride + sym[pos]);
        if (r !== undefined) heap.push(r * POS + pv);
      }
      if (nn >= 0) {
        const r = pairRank.get(sym[pos] * stride + sym[nn]);
        if (r !== undefined) heap.push(r * POS + pos);
      }
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(sym[i]);
    return out;
  }

  toJSON() {
    const spaced = this.merges.some(([a, b]) => a.includes(' ') || b.includes(' '));
    return {
      type: 'BPE',
      dropout: this.opts.dropout,
      unk_token: this.opts.unkToken,
      continuing_subword_prefix: this.opts.continuingSubwordPrefix,
      end_of_word_suffix: this.opts.endOfWordSuffix,
      fuse_unk: this.opts.fuseUnk,
      byte_fallback: this.opts.byteFallback,
      ignore_merges: this.opts.ignoreMerges,
      vocab: vocabToJSON(this.vocab),
      // "a b" strings load in every tokenizers version; pairs are needed only when a token has a space
      merges: spaced ? this.merges.map(([a, b]) => [a, b]) : this.merges.map(([a, b]) => `${a} ${b}`),
    };
  }

  static fromJSON(j: Json): BPE {
    const vocab = vocabFromJSON(j.vocab, 'model(BPE)');
    if (!Array.isArray(j.merges)) throw new Error('tokenizer.json: model(BPE).merges must be an array');
    const merges = j.merges.map((m: unknown, i: number): [string, string] => {
      if (Array.isArray(m) && m.length === 2) return [String(m[0]), String(m[1])];
      if (typeof m === 'string') {
        const k = m.indexOf(' ', 1);
        if (k > 0) return [m.slice(0, k), m.slice(k + 1)];
      }
      throw new Error(`tokenizer.json: model(BPE).merges[${i}] must be "a b" or ["a", "b"], got ${JSON.stringify(m)}`);
    });
    return new BPE(vocab, merges, {
      unkToken: j.unk_token ?? null,
      continuingSubwordPrefix: j.continuing_subword_prefix ?? null,
      endOfWordSuffix: j.end_of_word_suffix ?? null,
      fuseUnk: j.fuse_unk ?? false,
      byteFallback: j.byte_fallback ?? false,
      ignoreMerges: j.ignore_merges ?? false,
      dropout: j.dropout ?? null,
    });
  }
}

// ---------------------------------------------------------------------------------------------------
// WordPiece

export class WordPiece implements Model {
  readonly type = 'WordPiece' as const;
  private itos: string[];
  private cache = new WordCache();
  constructor(
    readonly vocab: Map<string, number>,
    readonly unkToken: string = '[UNK]',
    readonly prefix: string = '##',
    readonly maxInputCharsPerWord = 100,
  ) {
    this.itos = invert(vocab);
    if (!vocab.has(unkToken))
      throw new Error(`WordPiece: unk_token ${JSON.stringify(unkToken)} is not in the vocabulary`);
  }
  get size() {
    return this.itos.length;
  }
  tokenToId(t: string) {
    return this.vocab.get(t);
  }
  idToToken(i: number) {
    return this.itos[i];
  }

  /** Greedy longest-match-first; any unmatchable remainder makes the whole word [UNK]. */
  tokenize(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const chars = Array.from(word);
    const unk = [this.vocab.get(this.unkToken)!];
    if (chars.length > this.maxInputCharsPerWord) return unk;
    const out: number[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: number | undefined;
      while (start < end) {
        let sub = chars.slice(start, end).join('');
        if (start > 0) sub = this.prefix + sub;
        found = this.vocab.get(sub);
        if (found !== undefined) break;
        end--;
      }
      if (found === undefined) {
        this.cache.set(word, unk);
        return unk;
      }
      out.push(found);
      start = end;
    }
    this.cache.set(word, out);
    return out;
  }
  toJSON() {
    return {
      type: 'WordPiece',
      unk_token: this.unkToken,
      continuing_subword_prefix: this.prefix,
      max_input_chars_per_word: this.maxInputCharsPerWord,
      vocab: vocabToJSON(this.vocab),
    };
  }
  static fromJSON(j: Json): WordPiece {
    return new WordPiece(
      vocabFromJSON(j.vocab, 'model(WordPiece)'),
      j.unk_token ?? '[UNK]',
      j.continuing_subword_prefix ?? '##',
      j.max_input_chars_per_word ?? 100,
    );
  }
}

// ---------------------------------------------------------------------------------------------------
// WordLevel

export class WordLevel implements Model {
  readonly type = 'WordLevel' as const;
  private itos: string[];
  /**
   * The Rust crate types unk_token as a (non-optional) string, default "<unk>"; a tokenizer without an
   * unknown token simply names one that is not in the vocabulary, and unknown words are then an error.
   */
  constructor(
    readonly vocab: Map<string, number>,
    readonly unkName: string = '<unk>',
  ) {
    this.itos = invert(vocab);
  }
  get unkToken(): string | null {
    return this.vocab.has(this.unkName) ? this.unkName : null;
  }
  get size() {
    return this.itos.length;
  }
  tokenToId(t: string) {
    return this.vocab.get(t);
  }
  idToToken(i: number) {
    return this.itos[i];
  }
  tokenize(word: string): number[] {
    const id = this.vocab.get(word) ?? this.vocab.get(this.unkName);
    if (id !== undefined) return [id];
    throw new Error(
      `WordLevel: ${JSON.stringify(word)} is not in the vocabulary and neither is the unk_token ${JSON.stringify(this.unkName)}`,
    );
  }
  toJSON() {
    return { type: 'WordLevel', vocab: vocabToJSON(this.vocab), unk_token: this.unkName };
  }
  static fromJSON(j: Json): WordLevel {
    return new WordLevel(vocabFromJSON(j.vocab, 'model(WordLevel)'), j.unk_token ?? '<unk>');
  }
}

// ---------------------------------------------------------------------------------------------------
// Unigram

interface TrieNode {
  next: Map<number, TrieNode>;
  id: number;
}

/** Trie over code points, used by Viterbi to enumerate the pieces starting at a position. */
export class PieceTrie {
  root: TrieNode = { next: new Map(), id: -1 };
  insert(piece: string, id: number) {
    let n = this.root;
    for (const c of piece) {
      const cp = c.codePointAt(0)!;
      let m = n.next.get(cp);
      if (!m) {
        m = { next: new Map(), id: -1 };
        n.next.set(cp, m);
      }
      n = m;
    }
    n.id = id;
  }
  /** Calls f(id, endExclusive) for every piece that starts at cps[start]. */
  prefixes(cps: number[], start: number, f: (id: number, end: number) => void) {
    let n: TrieNode | undefined = this.root;
    for (let i = start; i < cps.length; i++) {
      n = n.next.get(cps[i]);
      if (!n) return;
      if (n.id >= 0) f(n.id, i + 1);
    }
  }
}

export const UNK_PENALTY = 10;

export class Unigram implements Model {
  readonly type = 'Unigram' as const;
  private stoi = new Map<string, number>();
  private trie = new PieceTrie();
  private minScore = Infinity;
  private cache = new WordCache();
  readonly unkToken: string | null;
  constructor(
    readonly pieces: [string, number][],
    readonly unkId: number | null = null,
    readonly byteFallback = false,
  ) {
    pieces.forEach(([p, s], id) => {
      if (!this.stoi.has(p)) this.stoi.set(p, id);
      if (p.length) this.trie.insert(p, id);
      if (s < this.minScore) this.minScore = s;
    });
    if (unkId != null && (unkId < 0 || unkId >= pieces.length))
      throw new Error(`Unigram: unk_id ${unkId} is outside the vocabulary (size ${pieces.length})`);
    this.unkToken = unkId != null ? pieces[unkId][0] : null;
  }
  get size() {
    return this.pieces.length;
  }
  tokenToId(t: string) {
    return this.stoi.get(t);
  }
  idToToken(i: number) {
    return this.pieces[i]?.[0];
  }

  /** Best segmentation as [start, end, id] triples (id -1 = unknown char run); exported for the trainer. */
  viterbi(cps: number[]): [number, number, number][] {
    const n = cps.length;
    const best = new Float64Array(n + 1).fill(-Infinity);
    const from = new Int32Array(n + 1),
      tok = new Int32Array(n + 1);
    best[0] = 0;
    const unkScore = this.minScore - UNK_PENALTY;
    for (let i = 0; i < n; i++) {
      if (best[i] === -Infinity) continue;
      const base = best[i];
      let single = false;
      this.trie.prefixes(cps, i, (id, end) => {
        const s = base + this.pieces[id][1];
        if (end === i + 1) single = true;
        if (s > best[end]) {
          best[end] = s;
          from[end] = i;
          tok[end] = id;
        }
      });
      if (!single && base + unkScore > best[i + 1]) {
        best[i + 1] = base + unkScore;
        from[i + 1] = i;
        tok[i + 1] = -1;
      }
    }
    const out: [number, number, number][] = [];
    for (let e = n; e > 0; e = from[e]) out.push([from[e], e, tok[e]]);
    return out.reverse();
  }

  tokenize(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const cps = Array.from(word, (c) => c.codePointAt(0)!);
    const segs = this.viterbi(cps);
    const ids: number[] = [];
    for (let k = 0; k < segs.length; k++) {
      let [s, e, id] = segs[k];
      if (id >= 0) {
        ids.push(id);
        continue;
      }
      while (k + 1 < segs.length && segs[k + 1][2] < 0) e = segs[++k][1]; // fuse unknown runs
      const text = String.fromCodePoint(...cps.slice(s, e));
      if (this.byteFallback) {
        const bytes = Array.from(utf8Encode(text), (b) => this.stoi.get(byteToken(b)));
        if (bytes.every((b) => b !== undefined)) {
          ids.push(...(bytes as number[]));
          continue;
        }
      }
      if (this.unkId == null)
        throw new Error(`Unigram: cannot encode ${JSON.stringify(text)}: no piece matches and the model has no unk_id`);
      ids.push(this.unkId);
    }
    this.cache.set(word, ids);
    return ids;
  }
  toJSON() {
    return {
      type: 'Unigram',
      unk_id: this.unkId,
      vocab: this.pieces.map(([p, s]) => [p, s]),
      byte_fallback: this.byteFallback,
    };
  }
  static fromJSON(j: Json): Unigram {
    if (!Array.isArray(j.vocab))
      throw new Error('tokenizer.json: model(Unigram).vocab must be an array of [piece, score]');
    const pieces = j.vocab.map((e: unknown, i: number): [string, number] => {
      if (!Array.isArray(e) || typeof e[0] !== 'string' || typeof e[1] !== 'number')
        throw new Error(`tokenizer.json: model(Unigram).vocab[${i}] must be [piece, score]`);
      return [e[0], e[1]];
    });
    return new Unigram(pieces, j.unk_id ?? null, j.byte_fallback ?? false);
  }
}

export function modelFromJSON(j: Json | null | undefined): Model {
  if (j == null || typeof j !== 'object') throw new Error('tokenizer.json: "model" is missing');
  // Files written by old versions omit model.type; infer it from the fields.
  const type =
    j.type ??
    (Array.isArray(j.merges)
      ? 'BPE'
      : Array.isArray(j.vocab)
        ? 'Unigram'
        : 'continuing_subword_prefix' in j
          ? 'WordPiece'
          : 'WordLevel');
  switch (type) {
    case 'BPE':
      return BPE.fromJSON(j);
    case 'WordPiece':
      return WordPiece.fromJSON(j);
    case 'WordLevel':
      return WordLevel.fromJSON(j);
    case 'Unigram':
      return Unigram.fromJSON(j);
    default:
      throw new Error(`tokenizer.json: unsupported model type ${JSON.stringify(type)}`);
  }
}
