// The paged KV cache's storage: one preallocated pool of fixed-size blocks per model, sized by bytes.
// A block id addresses the same token slots in every layer (vLLM's layout): layer l keeps
// K [blocks, blockSize, kvHeads, kDim] and V [blocks, blockSize, kvHeads, vDim] in the pool's KV dtype
// (float32, float16, bfloat16 or int8 with a float32 scale per token per head: kv-dtype.ts), so one token's
// heads are contiguous (cheap writes) and attention walks a sequence through its block table. The pool is
// sized in bytes, so float16/bfloat16 hold 2x and int8 nearly 4x the tokens of float32 in the same memory.
//
// Shapes per attention kind: MHA/GQA/MQA store kvHeads heads of headDim; MLA stores ONE shared head
// K = [latent | k_pe] (r + dr) and V = latent (r) — the absorbed form attends over the latent directly.
import type { DecoderConfig } from '../../models/config.js';
import { layerWindow } from '../../models/config.js';
import { WasmPagedKernel } from './paged-wasm.js';
import { bytesPerTokenLayer, KV_DTYPE_INFO, type KvArray, type KvDtype } from './kv-dtype.js';
import { BackendPagedKernel, type PagedKernel } from './paged-backend.js';

/** storage of one layer */
export interface LayerSpec {
  kvHeads: number;
  kDim: number;
  vDim: number;
  /** sliding window in keys (null: every past key stays visible) */
  window: number | null;
}

export interface LayerStore extends LayerSpec {
  dtype: KvDtype;
  /** K [slots, kvHeads, kDim], V [slots, kvHeads, vDim] elements of `dtype` */
  k: KvArray;
  v: KvArray;
  /** int8 only: one scale per (slot, head) row of K and of V, [slots, kvHeads]; null otherwise */
  kScale: Float32Array | null;
  vScale: Float32Array | null;
}

/** per-layer storage specs of a decoder (the attention kinds the paged engine supports) */
export function layerSpecs(cfg: DecoderConfig): LayerSpec[] {
  const a = cfg.decoder.block.attention;
  return Array.from({ length: cfg.decoder.layers }, (_, i) => {
    const w = layerWindow(a.window, i);
    if (w.kind !== 'full' && w.kind !== 'sliding') {
      throw new Error(
        `engine: attention window "${w.kind}" is not supported by the paged KV cache (full and sliding are)`,
      );
    }
    const window = w.kind === 'sliding' ? w.size : null;
    if (a.kind === 'mla') return { kvHeads: 1, kDim: a.kvLoraRank + a.qkRopeHeadDim, vDim: a.kvLoraRank, window };
    return { kvHeads: a.kvHeads, kDim: a.headDim, vDim: a.headDim, window };
  });
}

/** bytes one block takes across all layers in a KV dtype (int8 includes its scales) */
export function bytesPerBlock(specs: readonly LayerSpec[], blockSize: number, dtype: KvDtype = 'float32'): number {
  return specs.reduce((s, l) => s + blockSize * bytesPerTokenLayer(dtype, l.kvHeads, l.kDim, l.vDim), 0);
}

export class KvPool {
  readonly layers: LayerStore[];
  readonly numBlocks: number;
  /** set by dispose(): the layers' arrays are gone */
  disposed = false;

  /**
   * the paged-attention kernel whose memory holds the pool (null: host arrays, host kernel). 'auto': the
   * current backend's fast kernel (native) when it has one, else the WebAssembly one, else the host kernel
   */
  readonly kernel: PagedKernel | null;

  constructor(
    specs: readonly LayerSpec[],
    readonly blockSize: number,
    kvMemoryBytes: number,
    kernel: 'auto' | 'backend' | 'wasm' | 'host' = 'auto',
    readonly dtype: KvDtype = 'float32',
    prefault = false,
  ) {
    if (!Number.isInteger(blockSize) || blockSize < 1)
      throw new Error(`engine: blockSize must be a positive integer, got ${blockSize}`);
    if (typeof kvMemoryBytes !== 'number' || !Number.isFinite(kvMemoryBytes))
      throw new Error(`engine: kvMemoryBytes must be a finite number of bytes, got ${String(kvMemoryBytes)}`);
    const per = bytesPerBlock(specs, blockSize, dtype);
    this.numBlocks = Math.floor(kvMemoryBytes / per);
    if (this.numBlocks < 1) {
      throw new Error(
        `engine: kvMemoryBytes ${kvMemoryBytes} holds no block (one block of ${blockSize} tokens takes ${per} bytes)`,
      );
    }
    const slots = this.numBlocks * blockSize;
    // the backend's kernel (native) and the WebAssembly one read every KV dtype
    const fromBackend = kernel === 'auto' || kernel === 'backend' ? BackendPagedKernel.create(undefined, dtype) : null;
    if (kernel === 'backend' && !fromBackend)
      throw new Error(
        `engine: the current backend has no fast paged-attention kernel for ${dtype} pools (kernel: "backend")`,
      );
    const wasm = () => WasmPagedKernel.create(this.numBlocks * per + 64 * 4 * specs.length);
    this.kernel = fromBackend ?? (kernel === 'auto' || kernel === 'wasm' ? wasm() : null);
    const info = KV_DTYPE_INFO[dtype];
    // prefault: every page written once now, so the pool is resident before the first request. Left to the
    // first writes, each first touch of a fresh (transparent huge) page faults inside a step: prefill KV
    // writes measured up to 13 ms at p99 in a speculative pass. Off by default (a library user's or a test's
    // short-lived engine would make its whole pool resident); servers and benchmarks turn it on.
    const touch = <A extends KvArray>(a: A): A => (prefault ? (a.fill(0) as A) : a);
    const alloc = (n: number): KvArray => touch(this.kernel ? this.kernel.alloc(n, info) : info.make(n));
    const scales = (n: number): Float32Array | null =>
      dtype !== 'int8'
        ? null
        : this.kernel
          ? touch(this.kernel.alloc(n, KV_DTYPE_INFO.float32) as Float32Array)
          : new Float32Array(n);
    this.layers = specs.map((s) => ({
      ...s,
      dtype,
      k: alloc(slots * s.kvHeads * s.kDim),
      v: alloc(slots * s.kvHeads * s.vDim),
      kScale: scales(slots * s.kvHeads),
      vScale: scales(slots * s.kvHeads),
    }));
  }

  /**
   * Returns the pool's memory now where the kernel owns it (native buffers are not reclaimed by the garbage
   * collector: an engine made and dropped per request would otherwise hold its whole pool until exit). The
   * layers' arrays are detached (zero length) afterwards; the engine refuses to step a disposed pool.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    const k = this.kernel;
    if (!k?.free) return;
    for (const l of this.layers) for (const a of [l.k, l.v, l.kScale, l.vScale]) if (a) k.free(a);
    k.releaseScratch?.();
  }

  /** copies every layer's slots of block `from` into block `to` (copy-on-write) */
  copyBlock(from: number, to: number): void {
    for (const l of this.layers) {
      const [kn, vn] = [this.blockSize * l.kvHeads * l.kDim, this.blockSize * l.kvHeads * l.vDim];
      l.k.copyWithin(to * kn, from * kn, (from + 1) * kn);
      l.v.copyWithin(to * vn, from * vn, (from + 1) * vn);
      const sn = this.blockSize * l.kvHeads;
      l.kScale?.copyWithin(to * sn, from * sn, (from + 1) * sn);
      l.vScale?.copyWithin(to * sn, from * sn, (from + 1) * sn);
    }
  }
}
