// The model runner: runs ONE flattened ragged batch (chunks of prefill and single decode tokens of many
// sequences in one row) through a decoder over the paged KV cache, and returns the logits rows asked for.
// It knows nothing of requests or scheduling (vLLM's GPUModelRunner role).
import { noGrad, tidy } from '../../tensor/engine.js';
import { indexTensor, tensor } from '../../ops/index.js';
import type { LanguageModel, PagedBatch } from '../../models/model.js';
import type { PagedLayer } from '../../nn/attention.js';
import type { KvPool } from './kv-pool.js';
import { FastDecoder } from '../fast-decoder.js';
import { pagedAttention, type BatchLayout } from './paged-attention.js';
import { writeStep } from './paged-backend.js';

/** one sequence's part of a step */
export interface RunItem {
  /** the tokens to feed (a prefill chunk, a decode token, or draft tokens to verify) */
  ids: readonly number[];
  /** absolute position of ids[0] */
  start: number;
  /** block table covering start + ids.length tokens */
  blocks: readonly number[];
  /** logits wanted for the last `logits` positions of this item (0 = none, e.g. a mid-prompt chunk) */
  logits: number;
  /** the sequence's prompt length (encoder-decoder models: where the source ends and the decoder starts) */
  promptLength?: number;
}

export class ModelRunner {
  /** keep the final hidden states of every fed position of each run in `lastHidden` (the MTP drafter's input) */
  captureHidden = false;
  /** [T * D] final (normed) hidden states of the last run's rows, in item order (when captureHidden) */
  lastHidden: Float32Array | null = null;
  /** frees the KV pool and the fast path's step buffers (the model's weights stay) */
  dispose(): void {
    this.fastPath?.dispose();
    this.fastPath = null;
    this.pool.dispose();
  }

  /** the tensor-free decode path, made on the first step in eval mode (null: it does not apply, or is off) */
  private fastPath: FastDecoder | null | undefined;

  constructor(
    readonly model: LanguageModel,
    readonly pool: KvPool,
    opts: { fast?: boolean } = {},
  ) {
    if (model.config.arch !== 'decoder')
      throw new Error(`engine: ${model.config.family} is not a decoder-only model (the paged engine runs decoders)`);
    this.fastPath = (opts.fast ?? true) ? undefined : null;
  }

  /** layout of the flattened batch: per token its sequence and position */
  private layout(items: readonly RunItem[]): {
    layout: BatchLayout;
    ids: Int32Array;
    seqLens: Int32Array;
    rows: Int32Array;
  } {
    const T = items.reduce((s, it) => s + it.ids.length, 0);
    const [ids, seq, pos, seqLens] = [new Int32Array(T), new Int32Array(T), new Int32Array(T), new Int32Array(T)];
    const rows: number[] = [];
    let t = 0;
    items.forEach((it, i) => {
      const end = it.start + it.ids.length;
      for (let j = 0; j < it.ids.length; j++, t++)
        [ids[t], seq[t], pos[t], seqLens[t]] = [it.ids[j]!, i, it.start + j, end];
      for (let j = it.logits; j > 0; j--) rows.push(t - j);
    });
    const tables = items.map((it) => Int32Array.from(it.blocks));
    return { layout: { blockSize: this.pool.blockSize, seq, pos, tables }, ids, seqLens, rows: Int32Array.from(rows) };
  }

  /** runs the batch; returns the wanted logits rows in item order, [R * V] */
  run(items: readonly RunItem[]): Float32Array {
    const { layout, ids, seqLens, rows } = this.layout(items);
    const T = ids.length;
    const fast = this.captureHidden ? null : this.fast; // the fast path hands back logits only
    if (fast) {
      const step = { ids, positions: layout.pos, seqLen: (t: number) => seqLens[t]!, rows };
      return fast.forward(step, (i, q, k, v, scale) => this.attendHost(i, layout, q, k, v, scale, 0));
    }
    const paged: PagedBatch = {
      positions: layout.pos,
      seqLens,
      logitRows: rows,
      layer: (i) => this.pagedLayer(i, layout),
    };
    if (rows.length === 0) paged.logitRows = Int32Array.of(T - 1); // the head still needs a row
    if (this.captureHidden) paged.allHidden = true;
    const out = noGrad(() =>
      tidy(() => {
        const o = this.model.forward({ inputIds: this.idsTensor(ids), paged });
        if (this.captureHidden) this.lastHidden = o.lastHiddenState!.data() as Float32Array; // (1, T, D)
        return o.logits.data();
      }),
    );
    return rows.length === 0 ? new Float32Array(0) : (out as Float32Array);
  }

  /** the fast path when it applies to the model (in eval mode: dropout would need the reference path) */
  get fast(): FastDecoder | null {
    if (this.fastPath === null || this.model.training) return null;
    if (this.fastPath?.stale) {
      // weights replaced since it was made (loadStateDict): rebuild it over the new ones
      this.fastPath.dispose();
      this.fastPath = undefined;
    }
    return (this.fastPath ??= FastDecoder.create(this.model));
  }

  /** the step's token ids, checked here on the host (the embedding then skips reading them back) */
  private idsTensor(ids: Int32Array) {
    return indexTensor(ids, this.model.config.vocabSize, { shape: [1, ids.length], what: 'engine: token ids' });
  }

  private pagedLayer(i: number, layout: BatchLayout): PagedLayer {
    const store = this.pool.layers[i]!;
    return {
      attend: (q, k, v, scale, softcap = 0) => {
        const qd = q.data() as Float32Array;
        const o = this.attendHost(i, layout, qd, k.data() as Float32Array, v.data() as Float32Array, scale, softcap);
        return tensor(o, { shape: [1, q.shape[1]!, layout.pos.length, store.vDim] });
      },
    };
  }

  /** writes layer i's new keys / values into the pool and attends: q [nh, T, dk] -> [nh, T, dv] */
  private attendHost(
    i: number,
    layout: BatchLayout,
    q: Float32Array,
    k: Float32Array,
    v: Float32Array,
    scale: number,
    softcap: number,
  ): Float32Array {
    const store = this.pool.layers[i]!;
    writeStep(this.pool.kernel, store, layout, k, v);
    const nh = q.length / (layout.pos.length * store.kDim);
    // the wasm paged kernel has no soft-cap: soft-capped layers (Gemma 2) run the host kernel
    const fast = softcap > 0 ? null : this.pool.kernel;
    return fast ? fast.run(store, layout, q, nh, scale) : pagedAttention(store, layout, q, nh, scale, softcap);
  }
}
