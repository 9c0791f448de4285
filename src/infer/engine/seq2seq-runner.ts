// Encoder-decoder families (T5, BART, Marian) in the engine. A request's prompt is the ENCODER input; the
// decoder starts from the config's decoderStart token. The engine keeps one token stream per sequence,
// prompt then output (x_0 .. x_{P-1}, y_0, y_1, ...), and this runner maps it onto the two stacks:
//   positions p < P           -> the encoder source (gathered over prefill chunks, encoded once complete)
//   position  p = P-1 + d     -> decoder step d, fed decoderStart (d = 0) or x_p (d > 0)
// so the logits the engine asks for at position p are the decoder's at step p - (P-1), exactly what
// single-sequence generate() computes.
//
// Storage: one slot per sequence (the block manager hands out the slots — each sequence holds exactly one
// "block" as long as any sequence, as for the recurrent families), holding the model's Seq2SeqCache:
// the encoder output, the cross-attention K/V of every decoder layer (projected once on the first decoder
// step, never grown) and the decoder self-attention K/V. Admission, preemption by recompute (the slot is
// rebuilt from position 0), abort and finishing free the slot through the block manager. n > 1 and beam
// search fork a sequence by sharing its slot; the block manager's copy-on-write then calls `copyBlock`,
// which gives the fork its own cache holding the same tensors (storage ref counts, no copy).
//
// Each scheduled item runs as a batch of one through the model's own cached forward (T5's relative
// position bias and the cross-attention are not in the paged kernel): ragged requests share a step, not
// a forward pass. Prefix caching and speculative decoding do not apply.
import { noGrad, tidy } from '../../tensor/engine.js';
import { indexTensor, slice } from '../../ops/index.js';
import type { LanguageModel } from '../../models/model.js';
import type { Seq2SeqCache } from '../../models/bart.js';
import type { RunItem } from './runner.js';

interface Slot {
  /** encoder input gathered so far (complete once it holds the prompt) */
  src: number[];
  /** created on the first decoder step */
  cache: Seq2SeqCache | null;
}

export class Seq2SeqRunner {
  private readonly slots = new Map<number, Slot>();
  /** no sliding-window layers */
  readonly layers: { window: number | null }[] = [];
  readonly decoderStart: number;

  constructor(
    readonly model: LanguageModel,
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    if (model.config.arch !== 'encoder-decoder')
      throw new Error(`engine: ${model.config.family} is not encoder-decoder`);
    if (!model.newCache) throw new Error(`engine: ${model.config.family} has no inference cache`);
    const t = model.config.tokens;
    this.decoderStart = t.decoderStart ?? t.pad ?? 0; // as generate() does
  }

  /** copy-on-write of a shared slot (a fork of n > 1 or a beam) before its first own step */
  copyBlock(from: number, to: number): void {
    this.drop(to);
    const s = this.slots.get(from);
    if (!s) return; // nothing cached yet: the fork starts from position 0 anyway
    this.slots.set(to, {
      src: [...s.src],
      cache: s.cache ? noGrad(() => tidy(() => this.cloneCache(s.cache!))) : null,
    });
  }

  /**
   * A fork's cache sharing every tensor of `c` by reference (storage ref counts): the encoder output, the
   * cross K/V and the self K/V so far. Nothing is copied: the cached forward never writes a stored tensor
   * in place (the self K/V grow by concatenation into new tensors, the engine's caches have no
   * preallocated buffer), so the fork and its parent diverge safely from their next step.
   */
  private cloneCache(c: Seq2SeqCache): Seq2SeqCache {
    const out = this.model.newCache!(1) as Seq2SeqCache;
    if (c.encoderHiddenStates) out.setEncoder(c.encoderHiddenStates, c.encoderMask);
    c.cross.layers.forEach((l, i) => {
      for (const n of ['k', 'v']) {
        const t = l.get(n);
        if (t) out.cross.layer(i).setStatic(n, t);
      }
    });
    c.self.layers.forEach((l, i) => {
      const [k, v] = [l.get('k'), l.get('v')];
      if (k && v) out.self.layer(i).extend({ k, v });
    });
    out.self.advance(c.length);
    return out;
  }

  private drop(slot: number): void {
    this.slots.get(slot)?.cache?.dispose();
    this.slots.delete(slot);
  }

  /** slots holding tensors */
  get liveSlots(): number {
    return this.slots.size;
  }

  /** frees the tensors of slots the block manager has taken back (finished, aborted, preempted) */
  dropFree(refCount: (slot: number) => number): void {
    for (const k of [...this.slots.keys()]) if (refCount(k) === 0) this.drop(k);
  }

  /** frees every slot's tensors (the engine is done with the model) */
  dispose(): void {
    for (const k of [...this.slots.keys()]) this.drop(k);
  }

  /** runs each item on its slot; returns the wanted logits rows in item order, [R * V] */
  run(items: readonly RunItem[]): Float32Array {
    const rows: Float32Array[] = [];
    for (const it of items) {
      const out = this.runItem(it);
      if (out) rows.push(out);
    }
    const all = new Float32Array(rows.reduce((s, r) => s + r.length, 0));
    let o = 0;
    for (const r of rows) [all.set(r, o), (o += r.length)];
    return all;
  }

  private runItem(it: RunItem): Float32Array | null {
    const P = it.promptLength;
    if (P === undefined || P < 1) throw new Error('engine: an encoder-decoder step needs the prompt length');
    const key = it.blocks[0]!;
    if (it.start === 0 || !this.slots.has(key)) {
      if (it.start !== 0) throw new Error(`engine: slot ${key} is empty, the step starts at ${it.start}`);
      this.drop(key);
      this.slots.set(key, { src: [], cache: null });
    }
    const slot = this.slots.get(key)!;
    const dec: number[] = [];
    it.ids.forEach((id, j) => {
      const p = it.start + j;
      if (p < P) {
        if (slot.src.length !== p)
          throw new Error(`engine: slot ${key} holds ${slot.src.length} source tokens, got position ${p}`);
        slot.src.push(id);
      }
      if (p >= P - 1) dec.push(p === P - 1 ? this.decoderStart : id);
    });
    if (it.logits > dec.length)
      throw new Error(`engine: ${it.logits} logits rows asked of an item with ${dec.length} decoder tokens`);
    if (dec.length === 0) return null;
    return this.decode(slot, it.start + it.ids.length - dec.length - (P - 1), dec, it.logits);
  }

  /** decoder steps d0 .. d0 + dec.length - 1 of a slot whose source is complete */
  private decode(slot: Slot, d0: number, dec: number[], logitRows: number): Float32Array | null {
    const V = this.model.config.vocabSize;
    slot.cache ??= this.model.newCache!(1) as Seq2SeqCache;
    const cache = slot.cache;
    if (cache.length !== d0)
      throw new Error(`engine: the decoder cache holds ${cache.length} steps, the step starts at ${d0}`);
    const T = dec.length;
    return noGrad(() =>
      tidy(() => {
        const { logits } = this.model.forward({
          // the encoder runs on the first decoder step only (its output and the cross K/V are cached)
          inputIds: indexTensor(slot.src, V, { shape: [1, slot.src.length], what: 'engine: source ids' }),
          decoderInputIds: indexTensor(dec, V, { shape: [1, T], what: 'engine: decoder ids' }),
          cache,
        });
        return logitRows > 0 ? (slice(logits, 1, T - logitRows, T).data() as Float32Array) : null;
      }),
    );
  }
}
