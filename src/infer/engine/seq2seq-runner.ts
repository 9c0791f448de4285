// Encoder-decoder families (T5, BART, Marian) in the engine: every step is ONE flattened ragged decoder
// forward over all running sequences, with the encoder K/V and the decoder K/V in the paged pool.
//
// A request's prompt is the ENCODER input; the decoder starts from the config's decoderStart token. The
// engine keeps one token stream per sequence, prompt then output (x_0 .. x_{P-1}, y_0, y_1, ...), and one
// block table over it; this runner maps the stream onto the two stacks:
//   positions p < P           -> the encoder source; its token is kept in the slot of p (prefill chunks
//                                gather it), and once the chunk holding p = P-1 runs, the encoder runs once
//                                (one padded batch of every source completed in the step) and each decoder
//                                layer's cross-attention K/V of source token j go to the slot of p = j
//   position  p = P-1 + d     -> decoder step d, fed decoderStart (d = 0) or x_p (d > 0); its self-attention
//                                K/V go to the slot of p, and it attends to its sequence's keys P-1 .. p
// so the logits the engine asks for at position p are the decoder's at step p - (P-1), exactly what
// single-sequence generate() computes. The pool has 2L layers: the decoder's self-attention (0 .. L-1) and
// its cross-attention (L .. 2L-1), the same block ids addressing both. Writes land only at positions the
// step computes (p >= computed), so the block manager's copy-on-write of a shared partial block, forks (n > 1,
// beams), preemption by recompute and abort all work as for decoders; a copied block carries its source
// tokens too. Each layer type uses half of a block's slots (self K/V from P-1 on, cross K/V before P).
//
// Attention: the cross-attention reads each sequence's P encoder keys in place with the pool's paged kernel
// (native / WebAssembly; a query at "position" P-1 sees keys 0..P-1, causal masking then masks nothing);
// the decoder self-attention starts at P-1 and T5 adds its relative position bias per (token, key), which
// the fast kernels do not do, so it runs the host span kernel (paged-span.ts). Prefix caching does not
// apply (a source token's encoder K/V depend on the whole source), nor does speculative decoding.
//
// Notation: L decoder layers, P prompt (source) length, S longest source of an encoder batch, T decoder
// tokens of the step, nh heads, nkv key/value heads, hs head size.
import { noGrad, tidy } from '../../tensor/engine.js';
import { indexTensor, tensor } from '../../ops/index.js';
import type { LanguageModel } from '../../models/model.js';
import type { EncoderDecoderConfig, StandardAttention } from '../../models/config.js';
import type { PagedLayer } from '../../nn/attention.js';
import { isPagedEncoderDecoder, type PagedEncoderDecoder, type Seq2SeqPagedBatch } from '../../models/seq2seq-paged.js';
import { KvPool, type LayerSpec } from './kv-pool.js';
import { encodeRow, type KvDtype } from './kv-dtype.js';
import { pagedAttention, writeKv, type BatchLayout } from './paged-attention.js';
import { pagedAttentionSpan } from './paged-span.js';
import type { RunItem } from './runner.js';

export interface Seq2SeqRunnerOptions {
  blockSize?: number;
  kvMemoryBytes?: number;
  kvDtype?: KvDtype;
  /** the cross-attention kernel (see KvPool; default 'auto') */
  kernel?: 'auto' | 'backend' | 'wasm' | 'host';
}

/** one step's decoder row: per token its sequence, stream position and first self-attention key */
interface DecoderRow {
  ids: Int32Array;
  /** decoder step of each token (BART's positions, T5's bias distances) */
  steps: Int32Array;
  /** self-attention: stream positions, keys lo[t] .. pos[t] */
  self: BatchLayout;
  lo: Int32Array;
  /** cross-attention: "position" P-1 of the token's sequence, so keys 0 .. P-1 */
  cross: BatchLayout;
  rows: Int32Array;
}

export class Seq2SeqRunner {
  readonly pool: KvPool;
  readonly decoderStart: number;
  /** frees the paged pool (self and cross K/V) */
  dispose(): void {
    this.pool.dispose();
  }
  /** the source token held by every slot (gathered over prefill chunks; read when the source is complete) */
  private readonly src: Int32Array;
  private readonly L: number;
  private readonly model: LanguageModel & PagedEncoderDecoder;

  constructor(model: LanguageModel, opts: Seq2SeqRunnerOptions = {}) {
    const cfg = model.config as EncoderDecoderConfig;
    if (cfg.arch !== 'encoder-decoder') throw new Error(`engine: ${cfg.family} is not encoder-decoder`);
    if (!isPagedEncoderDecoder(model))
      throw new Error(`engine: ${cfg.family} has no paged forward (pagedEncode / pagedDecode)`);
    this.model = model;
    const a = cfg.decoder.block.attention as StandardAttention;
    this.L = cfg.decoder.layers;
    const spec: LayerSpec = { kvHeads: a.kvHeads, kDim: a.headDim, vDim: a.headDim, window: null };
    this.pool = new KvPool(
      Array.from({ length: 2 * this.L }, () => spec), // self-attention layers, then cross-attention layers
      opts.blockSize ?? 16,
      opts.kvMemoryBytes ?? 64 * 1024 * 1024,
      opts.kernel ?? 'auto',
      opts.kvDtype ?? 'float32',
    );
    this.src = new Int32Array(this.pool.numBlocks * this.pool.blockSize);
    const t = cfg.tokens;
    this.decoderStart = t.decoderStart ?? t.pad ?? 0; // as generate() does
  }

  get numBlocks(): number {
    return this.pool.numBlocks;
  }

  get blockSize(): number {
    return this.pool.blockSize;
  }

  /** no sliding-window layers */
  get layers(): readonly { window: number | null }[] {
    return this.pool.layers;
  }

  /** copy-on-write of a shared block: its K/V in every layer and its source tokens */
  copyBlock(from: number, to: number): void {
    this.pool.copyBlock(from, to);
    const bs = this.blockSize;
    this.src.copyWithin(to * bs, from * bs, (from + 1) * bs);
  }

  /** runs the step as one decoder forward (after the encoder of the sources completed in it); returns the
   * wanted logits rows in item order, [R * V] */
  run(items: readonly RunItem[]): Float32Array {
    const complete = this.gatherSources(items);
    const row = this.decoderRow(items);
    const T = row.ids.length;
    return noGrad(() =>
      tidy(() => {
        if (complete.length > 0) this.encode(items, complete);
        if (T === 0) return new Float32Array(0);
        const rows = row.rows.length > 0 ? row.rows : Int32Array.of(T - 1); // the head still needs a row
        const batch: Seq2SeqPagedBatch = {
          positions: row.steps,
          logitRows: rows,
          self: (l, bias) => this.selfLayer(l, row, bias),
          cross: (l) => this.crossLayer(l, row),
        };
        const V = this.model.config.vocabSize;
        const ids = indexTensor(row.ids, V, { shape: [1, T], what: 'engine: decoder ids' });
        const logits = this.model.pagedDecode(ids, batch).data() as Float32Array; // (1, R, V)
        return row.rows.length > 0 ? logits : new Float32Array(0);
      }),
    );
  }

  private promptLength(it: RunItem): number {
    const P = it.promptLength;
    if (P === undefined || !Number.isInteger(P) || P < 1)
      throw new Error('engine: an encoder-decoder step needs the prompt length');
    return P;
  }

  /** slot of stream position p of an item's table */
  private slot(it: RunItem, p: number): number {
    const bs = this.blockSize;
    const b = it.blocks[Math.floor(p / bs)];
    if (b === undefined || b < 0) throw new Error(`engine: position ${p} has no block in its table`);
    return b * bs + (p % bs);
  }

  /** keeps the source tokens of the step; returns the items whose source is complete with it (hold P-1) */
  private gatherSources(items: readonly RunItem[]): number[] {
    const complete: number[] = [];
    items.forEach((it, i) => {
      const P = this.promptLength(it);
      for (let j = 0; j < it.ids.length && it.start + j < P; j++) this.src[this.slot(it, it.start + j)] = it.ids[j]!;
      if (it.start <= P - 1 && P - 1 < it.start + it.ids.length) complete.push(i);
    });
    return complete;
  }

  /** the decoder tokens of every item, flattened: positions p >= P-1 of each */
  private decoderRow(items: readonly RunItem[]): DecoderRow {
    const per = items.map((it) =>
      Math.max(0, it.start + it.ids.length - Math.max(it.start, this.promptLength(it) - 1)),
    );
    const T = per.reduce((s, n) => s + n, 0);
    const [ids, steps, seq, pos, lo] = Array.from({ length: 5 }, () => new Int32Array(T));
    const rows: number[] = [];
    let t = 0;
    items.forEach((it, i) => {
      const P = this.promptLength(it);
      if (it.logits > per[i]!)
        throw new Error(`engine: ${it.logits} logits rows asked of an item with ${per[i]} decoder tokens`);
      for (let j = 0; j < it.ids.length; j++) {
        const p = it.start + j;
        if (p < P - 1) continue;
        [ids[t], steps[t], seq[t], pos[t], lo[t]] = [
          p === P - 1 ? this.decoderStart : it.ids[j]!,
          p - (P - 1),
          i,
          p,
          P - 1,
        ];
        t++;
      }
      for (let j = it.logits; j > 0; j--) rows.push(t - j);
    });
    const tables = items.map((it) => Int32Array.from(it.blocks));
    const bs = this.blockSize;
    return {
      ids,
      steps,
      self: { blockSize: bs, seq, pos, tables },
      lo,
      cross: { blockSize: bs, seq, pos: lo, tables }, // the last source position P-1: keys 0 .. P-1
      rows: Int32Array.from(rows),
    };
  }

  /** the encoder over the completed sources (one padded batch); their cross K/V go into the pool */
  private encode(items: readonly RunItem[], which: number[]): void {
    const srcs = which.map((i) => {
      const it = items[i]!;
      return Array.from({ length: this.promptLength(it) }, (_, p) => this.src[this.slot(it, p)]!);
    });
    const B = srcs.length;
    const S = Math.max(...srcs.map((s) => s.length));
    const ids = new Int32Array(B * S);
    const mask = new Int32Array(B * S);
    srcs.forEach((s, b) => [ids.set(s, b * S), mask.fill(1, b * S, b * S + s.length)]);
    const V = this.model.config.vocabSize;
    const ragged = srcs.some((s) => s.length !== S);
    const kv = this.model.pagedEncode(
      indexTensor(ids, V, { shape: [B, S], what: 'engine: source ids' }),
      ragged ? tensor(mask, { shape: [B, S] }) : null,
    );
    kv.forEach(({ k, v }, l) => {
      const store = this.pool.layers[this.L + l]!;
      const [kd, vd] = [k.data() as Float32Array, v.data() as Float32Array]; // (B, nkv, S, hs)
      const { kvHeads: H, kDim, vDim, dtype } = store;
      srcs.forEach((s, b) => {
        const it = items[which[b]!]!;
        for (let j = 0; j < s.length; j++) {
          const slot = this.slot(it, j);
          for (let h = 0; h < H; h++) {
            encodeRow(dtype, store.k, store.kScale, slot * H + h, kd, ((b * H + h) * S + j) * kDim, kDim);
            encodeRow(dtype, store.v, store.vScale, slot * H + h, vd, ((b * H + h) * S + j) * vDim, vDim);
          }
        }
      });
    });
  }

  /** layer l's self-attention: the new K/V into the pool, then each token over its decoder keys */
  private selfLayer(l: number, row: DecoderRow, bias: Float32Array | null): PagedLayer {
    const store = this.pool.layers[l]!;
    const T = row.ids.length;
    return {
      attend: (q, k, v, scale, softcap = 0) => {
        if (softcap > 0) throw new Error('engine: encoder-decoder attention has no soft-cap');
        writeKv(store, row.self, k.data() as Float32Array, v.data() as Float32Array); // (nkv, T, hs)
        const qd = q.data() as Float32Array; // (nh, T, hs)
        const nh = qd.length / (T * store.kDim);
        const o = pagedAttentionSpan(store, row.self, row.lo, qd, nh, scale, bias);
        return tensor(o, { shape: [1, nh, T, store.vDim] });
      },
    };
  }

  /** layer l's cross-attention over the sequence's encoder K/V, read in place */
  private crossLayer(l: number, row: DecoderRow): PagedLayer {
    const store = this.pool.layers[this.L + l]!;
    const T = row.ids.length;
    return {
      attend: () => {
        throw new Error('engine: a cross-attention layer takes its keys from the pool (attendCross)');
      },
      attendCross: (q, scale) => {
        const qd = q.data() as Float32Array; // (nh, T, hs)
        const nh = qd.length / (T * store.kDim);
        const fast = this.pool.kernel;
        const o = fast ? fast.run(store, row.cross, qd, nh, scale) : pagedAttention(store, row.cross, qd, nh, scale);
        return tensor(o, { shape: [1, nh, T, store.vDim] });
      },
    };
  }
}
