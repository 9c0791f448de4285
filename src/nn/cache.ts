// KV cache for incremental decoding. One `LayerCache` per layer holds named tensors laid out
// [B, heads, T, dim] (time on axis 2): K and V for standard attention, the compressed latent and the
// shared rotary key for MLA, static encoder K/V for cross-attention.
//
// Growth: by concatenation (default), or into a preallocated buffer of `maxLength` steps (no copies of
// the past per step; inference only, since the buffer is written in place). A sliding-window layer keeps
// only the last `window` steps (rolling), which is all the next query can see, so logits are unchanged.
//
// Storage dtype: float32 by default; float16 / bfloat16 halve the cache (attention upcasts on use).
//
// Memory: stored tensors are `keep()`-ed and detached (a cache outlives the `tidy` scope of one step and
// never holds an autograd graph); replaced tensors are disposed at once. `dispose()` frees everything.
import type { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/engine.js';
import { cast, concat, slice, zeros } from '../ops/index.js';
import { kernel } from '../ops/core.js';

/** Inference state carried between forward calls (KV cache, MLA latents, SSM/RNN state, ...). */
export interface Cache {
  /** tokens already processed (the position of the next token) */
  readonly length: number;
  /** frees the cache's tensors; the cache must not be used afterwards */
  dispose(): void;
}

/** storage dtype of cached keys / values / latents */
export type CacheDType = 'float32' | 'float16' | 'bfloat16';

const TIME = 2;

export class LayerCache {
  private readonly entries = new Map<string, Tensor>();
  private readonly buffers = new Map<string, Tensor>();
  /** absolute position of the first stored step */
  start = 0;
  /** stored steps */
  size = 0;

  constructor(
    readonly window: number | null = null,
    readonly maxLength: number | null = null,
    readonly dtype: CacheDType = 'float32',
  ) {}

  get(name: string): Tensor | null {
    return this.entries.get(name) ?? null;
  }

  /** store a tensor that never grows (cross-attention K/V computed once from the encoder) */
  setStatic(name: string, t: Tensor): Tensor {
    this.entries.get(name)?.dispose();
    this.entries.set(name, keep(t.detach()));
    return t;
  }

  /**
   * Appends `parts` (each [B, h, Tnew, d]) and returns, per name, the stored + new steps to attend
   * over, with the absolute position of their first step. All parts must have the same Tnew.
   */
  extend(parts: Record<string, Tensor>): { all: Record<string, Tensor>; start: number } {
    const names = Object.keys(parts);
    const Tnew = parts[names[0]!]!.shape[TIME]!;
    const start = this.start;
    const all: Record<string, Tensor> = {};
    for (const n of names) {
      const t = parts[n]!.dtype === this.dtype ? parts[n]! : cast(parts[n]!, this.dtype);
      all[n] = this.maxLength !== null && this.window === null ? this.writeBuffer(n, t) : this.concatenate(n, t);
    }
    this.size += Tnew;
    if (this.window !== null && this.size > this.window) this.roll(all);
    return { all, start };
  }

  private concatenate(name: string, t: Tensor): Tensor {
    const old = this.entries.get(name);
    const full = old ? concat([old, t], TIME) : t;
    this.store(name, full);
    return full;
  }

  /** keep only the last `window` steps */
  private roll(all: Record<string, Tensor>): void {
    const drop = this.size - this.window!;
    for (const [n, t] of Object.entries(all)) this.store(n, slice(t, TIME, drop));
    this.start += drop;
    this.size = this.window!;
  }

  private writeBuffer(name: string, t: Tensor): Tensor {
    let buf = this.buffers.get(name);
    if (!buf) {
      buf = keep(zeros([t.shape[0]!, t.shape[1]!, this.maxLength!, t.shape[3]!], this.dtype));
      this.buffers.set(name, buf);
    }
    const T = t.shape[TIME]!;
    if (this.size + T > this.maxLength!)
      throw new Error(`KVCache: ${this.size + T} steps exceed the preallocated maxLength ${this.maxLength}`);
    const win = {
      buf: buf.storage.buf,
      shape: t.shape,
      strides: buf.strides,
      offset: buf.offset + this.size * buf.strides[TIME]!,
    };
    kernel(t, 'copy')(t.view(), win);
    const filled = slice(buf, TIME, 0, this.size + T);
    this.store(name, filled);
    return filled;
  }

  private store(name: string, t: Tensor): void {
    const old = this.entries.get(name);
    this.entries.set(name, keep(t.detach()));
    old?.dispose();
  }

  dispose(): void {
    for (const t of [...this.entries.values(), ...this.buffers.values()]) t.dispose();
    this.entries.clear();
    this.buffers.clear();
  }
}

/** The cache of a transformer stack: one LayerCache per layer plus the count of tokens processed. */
export class KVCache implements Cache {
  private seen = 0;
  readonly layers: LayerCache[];

  /** windows[i]: the rolling window of layer i (null = keep everything) */
  constructor(
    layers: number,
    opts: { windows?: readonly (number | null)[]; maxLength?: number; dtype?: CacheDType } = {},
  ) {
    this.layers = Array.from(
      { length: layers },
      (_, i) => new LayerCache(opts.windows?.[i] ?? null, opts.maxLength ?? null, opts.dtype),
    );
  }

  get length(): number {
    return this.seen;
  }

  /** called by the model once every layer has appended `n` new tokens */
  advance(n: number): void {
    this.seen += n;
  }

  layer(i: number): LayerCache {
    const l = this.layers[i];
    if (!l)
      throw new Error(
        `KVCache: no layer ${i} (the cache has ${this.layers.length} layers; was it made for another model?)`,
      );
    return l;
  }

  dispose(): void {
    for (const l of this.layers) l.dispose();
  }
}
