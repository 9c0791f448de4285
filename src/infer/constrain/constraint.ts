// Constrained decoding: a JSON Schema, "any JSON object" or a regular expression becomes a per-step mask
// over the model's vocabulary, so that sampling can only pick tokens that keep the output on a path to
// a complete, valid value.
//
// Interface (what an engine calls per sequence):
//
//   const c = createConstraint({ kind: 'json-schema', schema }, tokenizer);   // or compileConstraint(...).start()
//   for (;;) {
//     if (c.isFinished()) break;                       // complete and nothing may follow: stop here
//     c.maskLogits(logits, remaining);                 // disallowed ids -> -Infinity (or c.mask() / c.allowedIds())
//     const id = sample(logits);
//     c.advance(id);                                   // throws if id was not allowed
//   }
//   c.isComplete()                                     // the text so far is a whole valid value
//
//   - mask(remaining?) -> Uint8Array(vocabSize), 1 = allowed; allowedIds(remaining?) -> Int32Array (do not
//     mutate either: both are cached per automaton state). EOS ids are allowed only when complete.
//   - `remaining` (optional) = tokens left in the budget (max_tokens - generated). When given, tokens after
//     which the value could no longer be closed within the budget are removed, so a sequence that honours
//     the mask always ends complete by max_tokens (needs remaining >= c.tokensToComplete() at the start).
//   - clone() copies the per-sequence state (an integer and two flags): for n > 1, beam search and
//     speculative rollback (keep a clone before the draft tokens; restore by using it).
//   - A compiled constraint (automaton, vocabulary trie, mask cache) is shared by all its sequences;
//     compileConstraint caches the last compiled specs per tokenizer, so a server reusing a schema pays once.
//
// How the mask is computed: the constraint compiles to a byte-level NFA with procedures (nfa.ts), which
// a lazy DFA (dfa.ts) determinises on demand. A mask for DFA state s walks the vocabulary's byte trie
// (vocab.ts) depth-first, stepping s by each trie edge's byte and pruning at dead states; tokens ending at
// a live trie node are allowed. Masks are cached per DFA state (LRU, bounded in bytes).
//
// Why not a library: the npm registry has no well-kept JavaScript package for token-level
// JSON-Schema-constrained decoding. @mlc-ai/web-xgrammar (xgrammar compiled to WebAssembly) had two
// releases with no documentation when checked (Dec 2026), needs an asynchronous WebAssembly start-up
// and reports an unproducible schema as an empty mask mid-generation; here the "this vocabulary cannot
// produce this schema" error comes at compile time (the automaton is built over the characters the
// vocabulary can spell) and a token budget can be honoured.
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { sample as sampleSet } from './charset.js';
import { DEAD, LazyDfa } from './dfa.js';
import { JsonSchemaCompiler, type Whitespace } from './json-schema.js';
import { ByteNfa, INF } from './nfa.js';
import { parseRegex } from './regex.js';
import { tokenVocab, type TokenVocab } from './vocab.js';

/** JSON specs may be wrapped in fixed text (e.g. a chat template's `<tool_call>` ... `</tool_call>`). */
interface Wrapped {
  prefix?: string;
  suffix?: string;
}
export type ConstraintSpec =
  | ({ kind: 'json-schema'; schema: unknown } & Wrapped)
  | ({ kind: 'json-object' } & Wrapped)
  | { kind: 'regex'; pattern: string };

export interface ConstraintOptions {
  /** ids that end generation (default: the tokenizer's eos token, if any); allowed only when complete */
  eosIds?: readonly number[];
  /** whitespace between JSON tokens: 'flexible' (default: ' ' or newline + up to 20 indents) or 'compact' (none) */
  whitespace?: Whitespace;
  /** bytes of cached masks per compiled constraint (default 64 MiB) */
  maskCacheBytes?: number;
  /** NFA node budget (default MAX_NODES): compiling a bigger automaton fails with an error naming the limit.
   * Compile time and memory grow linearly with it (about 3 µs and 400 bytes a node), so a server that
   * compiles client schemas on its decode thread gives a much smaller budget */
  maxStates?: number;
}

/** heap bytes a compiled constraint keeps per NFA node (measured: ~400 B/node after GC, JS arrays per node) */
const NFA_BYTES_PER_NODE = 400;

interface MaskEntry {
  ids: Int32Array;
  /** DFA state after each allowed id */
  next: Int32Array;
  /** largest tokensToComplete over the next states: the budget matters only below it */
  maxNext: number;
  mask: Uint8Array | null;
  bytes: number;
}

export class CompiledConstraint {
  readonly dfa: LazyDfa;
  readonly eosIds: readonly number[];
  private masks = new Map<number, MaskEntry>();
  private cachedBytes = 0;
  private cacheLimit: number;

  constructor(
    readonly vocab: TokenVocab,
    nfa: ByteNfa,
    opts: ConstraintOptions,
    eos: readonly number[],
    where: string,
  ) {
    this.dfa = new LazyDfa(nfa, where);
    this.eosIds = eos;
    this.cacheLimit = opts.maskCacheBytes ?? 64 * 1024 * 1024;
  }

  get vocabSize(): number {
    return this.vocab.size;
  }

  /** estimated heap bytes held: the automaton, the DFA states built so far and the cached masks */
  get approxBytes(): number {
    return this.dfa.nfa.size * NFA_BYTES_PER_NODE + this.dfa.approxBytes + this.cachedBytes;
  }

  /** A fresh per-sequence state at the start of the output. */
  start(): Constraint {
    return new Constraint(this, this.dfa.start, false);
  }

  /** Allowed ids (EOS included when s accepts) and the DFA state after each (s itself for EOS). */
  entry(s: number): MaskEntry {
    const hit = this.masks.get(s);
    if (hit) {
      this.masks.delete(s);
      this.masks.set(s, hit);
      return hit;
    } // LRU order
    const e = this.walk(s);
    this.masks.set(s, e);
    this.cachedBytes += e.bytes;
    for (const [k, v] of this.masks) {
      if (this.cachedBytes <= this.cacheLimit || this.masks.size <= 1) break;
      this.masks.delete(k);
      this.cachedBytes -= v.bytes;
    }
    return e;
  }

  /** Depth-first walk of the token trie from DFA state s. */
  private walk(s: number): MaskEntry {
    const { childStart, childByte, childNode, tokStart, tokIds } = this.vocab.trie;
    const dfa = this.dfa;
    const ids: number[] = [],
      next: number[] = [];
    const nodes = [0],
      states = [s];
    while (nodes.length) {
      const n = nodes.pop()!,
        st = states.pop()!;
      for (let c = childStart[n]; c < childStart[n + 1]; c++) {
        const ns = dfa.step(st, childByte[c]);
        if (ns === DEAD) continue;
        const child = childNode[c];
        for (let k = tokStart[child]; k < tokStart[child + 1]; k++) {
          ids.push(tokIds[k]);
          next.push(ns);
        }
        if (childStart[child + 1] > childStart[child]) {
          nodes.push(child);
          states.push(ns);
        }
      }
    }
    let maxNext = 0;
    for (const ns of next) maxNext = Math.max(maxNext, dfa.distance(ns));
    if (dfa.isAccepting(s))
      for (const e of this.eosIds) {
        ids.push(e);
        next.push(s);
      }
    return { ids: Int32Array.from(ids), next: Int32Array.from(next), maxNext, mask: null, bytes: ids.length * 8 + 64 };
  }

  maskOf(e: MaskEntry): Uint8Array {
    if (!e.mask) {
      e.mask = new Uint8Array(this.vocab.size);
      for (let i = 0; i < e.ids.length; i++) e.mask[e.ids[i]] = 1;
      e.bytes += this.vocab.size;
      this.cachedBytes += this.vocab.size;
    }
    return e.mask;
  }

  /** Steps state s through a token's bytes (DEAD if it does not fit). */
  stepToken(s: number, id: number): number {
    const b = this.vocab.bytes[id];
    if (!b) return DEAD;
    for (let i = 0; i < b.length && s !== DEAD; i++) s = this.dfa.step(s, b[i]);
    return s;
  }
}

/** The per-sequence state: one DFA state id plus whether EOS was taken. Cheap to clone. */
export class Constraint {
  constructor(
    readonly compiled: CompiledConstraint,
    private state: number,
    private ended: boolean,
  ) {}

  get vocabSize(): number {
    return this.compiled.vocabSize;
  }

  /** The output so far is a complete value (EOS would be allowed). */
  isComplete(): boolean {
    return this.compiled.dfa.isAccepting(this.state);
  }

  /** Generation must stop: EOS was taken, or the value is complete and no token may follow it. */
  isFinished(): boolean {
    if (this.ended) return true;
    if (!this.isComplete()) return false;
    const e = this.compiled.entry(this.state);
    return e.ids.length === this.compiled.eosIds.length;
  }

  /** Upper bound on the tokens still needed to complete the value (0 when complete). */
  tokensToComplete(): number {
    return this.ended ? 0 : this.compiled.dfa.distance(this.state);
  }

  allowedIds(remaining?: number): Int32Array {
    if (this.ended) return new Int32Array(0);
    const e = this.compiled.entry(this.state);
    if (remaining === undefined || remaining > e.maxNext) return e.ids;
    return this.budgeted(e, remaining);
  }

  mask(remaining?: number): Uint8Array {
    if (this.ended) return new Uint8Array(this.vocabSize);
    const e = this.compiled.entry(this.state);
    if (remaining === undefined || remaining > e.maxNext) return this.compiled.maskOf(e);
    const m = new Uint8Array(this.vocabSize);
    for (const id of this.budgeted(e, remaining)) m[id] = 1;
    return m;
  }

  /** Sets disallowed entries of a logits row (length >= vocabSize) to -Infinity. */
  maskLogits(logits: Float32Array, remaining?: number): void {
    const m = this.mask(remaining);
    for (let i = 0; i < logits.length; i++) if (i >= m.length || !m[i]) logits[i] = -Infinity;
  }

  private budgeted(e: MaskEntry, remaining: number): Int32Array {
    const dfa = this.compiled.dfa;
    const eos = new Set(this.compiled.eosIds);
    const out: number[] = [];
    for (let i = 0; i < e.ids.length; i++) {
      if (eos.has(e.ids[i]) || dfa.distance(e.next[i]) <= remaining - 1) out.push(e.ids[i]);
    }
    return Int32Array.from(out);
  }

  /** Consumes one generated token. */
  advance(id: number): void {
    if (this.ended) throw new Error(`constrain: token ${id} after the end of the constrained output`);
    if (this.compiled.eosIds.includes(id)) {
      if (!this.isComplete()) throw new Error(`constrain: end-of-sequence token ${id} before the value is complete`);
      this.ended = true;
      return;
    }
    const next = this.compiled.stepToken(this.state, id);
    if (next === DEAD) {
      const b = this.compiled.vocab.bytes[id];
      const text = b ? JSON.stringify(new TextDecoder().decode(b)) : '(no text)';
      throw new Error(`constrain: token ${id} ${text} is not allowed here`);
    }
    this.state = next;
  }

  clone(): Constraint {
    return new Constraint(this.compiled, this.state, this.ended);
  }
}

function describe(spec: ConstraintSpec): string {
  if (spec.kind === 'regex') return `regex /${spec.pattern}/`;
  return spec.kind === 'json-object' ? 'JSON object' : 'JSON schema';
}

function buildNfa(spec: ConstraintSpec, vocab: TokenVocab, opts: ConstraintOptions): ByteNfa {
  const nfa = new ByteNfa(vocab.alphabet, `constrain (${describe(spec)})`, opts.maxStates);
  if (spec.kind === 'regex') {
    if (typeof spec.pattern !== 'string') throw new Error('constrain: regex pattern must be a string');
    const p = nfa.proc();
    nfa.epsilon(nfa.regex(nfa.procStart[p], parseRegex(spec.pattern, 'full')), nfa.procEnd[p]);
  } else {
    const schema = spec.kind === 'json-schema' ? spec.schema : true;
    const okType = schema !== null && (typeof schema === 'object' || typeof schema === 'boolean');
    if (spec.kind === 'json-schema' && !okType) {
      throw new Error('constrain: the JSON schema must be an object or a boolean');
    }
    for (const k of ['prefix', 'suffix'] as const) {
      if (spec[k] !== undefined && typeof spec[k] !== 'string') throw new Error(`constrain: ${k} must be a string`);
    }
    new JsonSchemaCompiler(nfa, schema as boolean | Record<string, unknown>, opts.whitespace ?? 'flexible').compileRoot(
      spec.kind === 'json-object',
      spec.prefix ?? '',
      spec.suffix ?? '',
    );
  }
  nfa.analyze();
  return nfa;
}

/** Throws when nothing can be produced: names the characters the vocabulary lacks when that is why. */
function checkProducible(nfa: ByteNfa, spec: ConstraintSpec, vocab: TokenVocab): void {
  if (nfa.dist[nfa.procStart[0]] < INF) return;
  const what = describe(spec);
  if (nfa.missing.size) {
    const chars = [...nfa.missing]
      .slice(0, 12)
      .map((c) => JSON.stringify(String.fromCodePoint(c)))
      .join(', ');
    const has = sampleSet(vocab.alphabet, 100)
      .map((c) => String.fromCodePoint(c))
      .join('');
    throw new Error(
      `constrain: this ${vocab.kind} vocabulary cannot produce any output matching the ${what}: ` +
        `it has no token for ${chars}${vocab.alphabet.length ? ` (it spells only ${JSON.stringify(has)})` : ''}`,
    );
  }
  throw new Error(`constrain: the ${what} matches no finite output (e.g. a required property that recurses forever)`);
}

const compiledCache = new WeakMap<Tokenizer, Map<string, CompiledConstraint>>();
const CACHE_SPECS = 16;
/**
 * Bytes the cached compiled constraints of one tokenizer may hold (estimated by approxBytes). The count
 * alone let 16 big schemas keep GBs: a server compiling clients' schemas must stay proportionate.
 */
export const CACHE_BYTES = 256 * 1024 * 1024;

/** Compiles a spec for a tokenizer (cached: the same spec and options reuse the automaton and masks). */
export function compileConstraint(
  spec: ConstraintSpec,
  tokenizer: Tokenizer,
  opts: ConstraintOptions = {},
): CompiledConstraint {
  const eos = opts.eosIds ?? (tokenizer.specialTokens.eos ? [tokenizer.specialTokens.eos.id] : []);
  const key = JSON.stringify([spec, eos, opts.whitespace ?? 'flexible', opts.maskCacheBytes ?? 0, opts.maxStates]);
  let perTok = compiledCache.get(tokenizer);
  if (!perTok) compiledCache.set(tokenizer, (perTok = new Map()));
  const hit = perTok.get(key);
  if (hit) {
    perTok.delete(key);
    perTok.set(key, hit); // LRU order
    return hit;
  }
  const vocab = tokenVocab(tokenizer);
  for (const e of eos) {
    if (!Number.isInteger(e) || e < 0 || e >= vocab.size) {
      throw new Error(`constrain: eos id ${e} is outside the vocabulary (size ${vocab.size})`);
    }
  }
  const nfa = buildNfa(spec, vocab, opts);
  checkProducible(nfa, spec, vocab);
  const compiled = new CompiledConstraint(vocab, nfa, opts, eos, `constrain (${describe(spec)})`);
  perTok.set(key, compiled);
  evict(perTok);
  return compiled;
}

/** drops the least recently used specs beyond CACHE_SPECS or CACHE_BYTES (the newest always stays) */
function evict(perTok: Map<string, CompiledConstraint>): void {
  let bytes = 0;
  for (const c of perTok.values()) bytes += c.approxBytes;
  for (const [k, c] of perTok) {
    if (perTok.size <= 1 || (perTok.size <= CACHE_SPECS && bytes <= CACHE_BYTES)) break;
    perTok.delete(k);
    bytes -= c.approxBytes;
  }
}

/** estimated bytes the compiled-constraint cache holds for a tokenizer (tests, metrics) */
export function cachedConstraintBytes(tokenizer: Tokenizer): number {
  let bytes = 0;
  for (const c of compiledCache.get(tokenizer)?.values() ?? []) bytes += c.approxBytes;
  return bytes;
}

/** A fresh per-sequence constraint (see the interface at the top of this file). */
export function createConstraint(spec: ConstraintSpec, tokenizer: Tokenizer, opts: ConstraintOptions = {}): Constraint {
  return compileConstraint(spec, tokenizer, opts).start();
}
