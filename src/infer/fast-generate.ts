// The KV cache of ONE sequence for `generate()`'s fast path (src/infer/fast-decoder.ts): the paged
// engine's per-layer stores (K/V [slots, nkv, hs], float32) with a block table that simply counts up, so
// attention runs through the same paged kernel as the engine (the native one under Node, reading the
// keys in place: no per-step copy of the cache, unlike a strided view of a [B, nkv, T, hs] buffer).
import type { LanguageModel } from '../models/model.js';
import type { DecoderConfig } from '../models/config.js';
import { FastDecoder } from './fast-decoder.js';
import { layerSpecs, type LayerStore } from './engine/kv-pool.js';
import { BackendPagedKernel, writeStep } from './engine/paged-backend.js';
import { pagedAttention, type BatchLayout } from './engine/paged-attention.js';
import { KV_DTYPE_INFO } from './engine/kv-dtype.js';

const BLOCK = 16;

export class FastSequence {
  private readonly stores: LayerStore[];
  private readonly table: Int32Array;
  private length = 0;

  private constructor(
    private readonly decoder: FastDecoder,
    private readonly kernel: BackendPagedKernel | null,
    cfg: DecoderConfig,
    readonly capacity: number,
  ) {
    const blocks = Math.ceil(capacity / BLOCK);
    this.table = Int32Array.from({ length: blocks }, (_, i) => i);
    const f32 = KV_DTYPE_INFO.float32;
    const alloc = (n: number) => (kernel ? kernel.alloc(n, f32) : f32.make(n));
    this.stores = layerSpecs(cfg).map((s) => ({
      ...s,
      dtype: 'float32' as const,
      k: alloc(blocks * BLOCK * s.kvHeads * s.kDim),
      v: alloc(blocks * BLOCK * s.kvHeads * s.vDim),
      kScale: null,
      vScale: null,
    }));
  }

  /** a sequence of up to `capacity` tokens on the fast path, or null where the fast path does not apply */
  static create(model: LanguageModel, capacity: number): FastSequence | null {
    const decoder = FastDecoder.create(model);
    if (!decoder) return null;
    try {
      return new FastSequence(decoder, BackendPagedKernel.create(), decoder.config, capacity);
    } catch (e) {
      decoder.dispose();
      throw e;
    }
  }

  /** tokens already in the cache */
  get size(): number {
    return this.length;
  }

  /** feeds `ids` at positions size.. and returns the logits of the last one [V] */
  step(ids: readonly number[]): Float32Array {
    const T = ids.length;
    const start = this.length;
    if (start + T > this.capacity)
      throw new Error(`FastSequence: ${start + T} tokens exceed the capacity ${this.capacity}`);
    const pos = Int32Array.from({ length: T }, (_, i) => start + i);
    const layout: BatchLayout = { blockSize: BLOCK, seq: new Int32Array(T), pos, tables: [this.table] };
    const logits = this.decoder.forward(
      { ids: Int32Array.from(ids), positions: pos, seqLen: () => start + T, rows: Int32Array.of(T - 1) },
      (i, q, k, v, scale) => {
        const store = this.stores[i]!;
        writeStep(this.kernel, store, layout, k, v);
        const nh = q.length / (T * store.kDim);
        return this.kernel ? this.kernel.run(store, layout, q, nh, scale) : pagedAttention(store, layout, q, nh, scale);
      },
    );
    this.length += T;
    return logits;
  }

  dispose(): void {
    for (const s of this.stores) {
      this.kernel?.free(s.k);
      this.kernel?.free(s.v);
    }
    this.kernel?.releaseScratch();
    this.decoder.dispose();
  }
}
