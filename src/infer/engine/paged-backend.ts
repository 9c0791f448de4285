// Paged attention through the current backend's kernel contract (`pagedAttention` in
// src/backend/backend.ts): the native backend's multi-threaded C++ kernel under Node. The KV pool is
// allocated as backend buffers and handed to the engine as zero-copy typed-array views (writes of new
// keys/values land in place); per call only the queries, block tables and positions are copied in and
// the output copied out. create(dtype) returns null where the backend has no fast kernel for a pool of that
// dtype (the engine then uses the wasm kernel or the host one): the native kernel reads float32, float16,
// bfloat16 and int8 pools (int8 with a float32 buffer of per-row scales beside each pool, allocated here
// too). The pool's dtype travels on its buffers.
import type { Backend, Buf, DType, PagedScales, View } from '../../backend/backend.js';
import { kernelFor } from '../../backend/dispatch.js';
import { referenceKernels } from '../../backend/reference/kernels.js';
import { getBackend } from '../../tensor/engine.js';
import type { LayerStore } from './kv-pool.js';
import { pagedAttention as hostPaged, slotOf, writeKv, type BatchLayout } from './paged-attention.js';
import { KV_DTYPE_INFO, type KvArray, type KvDtype, type KvDtypeInfo } from './kv-dtype.js';

/** what the KV pool needs of a paged-attention kernel that owns the pool's memory */
export interface PagedKernel {
  /** a zeroed array of n elements of a KV dtype that lives as long as the kernel (pool storage) */
  alloc(n: number, info: KvDtypeInfo): KvArray;
  /** q [nh, T, dk] -> out [nh, T, dv], K/V read in place from `store` */
  run(store: LayerStore, layout: BatchLayout, q: Float32Array, nh: number, scale: number): Float32Array;
  /**
   * writes k [nkv, T, dk], v [nkv, T, dv] into the store's slots in its dtype, as `writeKv` does; false where
   * this kernel does not hold the store (the caller then writes on the host)
   */
  write?(store: LayerStore, layout: BatchLayout, k: Float32Array, v: Float32Array): boolean;
  /** returns a pool array made by alloc() (kernels whose memory the garbage collector does not reclaim) */
  free?(arr: KvArray): void;
  /** frees per-call scratch */
  releaseScratch?(): void;
}

/** a step's new keys / values into the store: by the kernel that holds it where it can, else on the host */
export function writeStep(
  kernel: PagedKernel | null,
  store: LayerStore,
  layout: BatchLayout,
  k: Float32Array,
  v: Float32Array,
): void {
  if (!kernel?.write?.(store, layout, k, v)) writeKv(store, layout, k, v);
}

/** the backend buffer dtype of each KV dtype (int8 pools also hold float32 scales) */
const POOL_DTYPE: { readonly [D in KvDtype]: DType } = {
  float32: 'float32',
  float16: 'float16',
  bfloat16: 'bfloat16',
  int8: 'int8',
};
/** pagedAttention's operand dtypes (q, k, v, tables, seq, pos, out) over a pool of dtype d */
const operands = (d: DType): DType[] => ['float32', d, d, 'int32', 'int32', 'int32', 'float32'];

const view = (buf: Buf, shape: number[]): View => ({
  buf,
  shape,
  strides: shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1)),
  offset: 0,
});

export class BackendPagedKernel implements PagedKernel {
  /** the pool's buffers by the typed array handed out for them */
  private readonly owned = new WeakMap<KvArray, Buf>();
  /** per-call inputs and output (queries, tables, positions), kept and grown between calls */
  private readonly scratch = new Map<string, Buf>();

  /**
   * a kernel on `backend` (default: the current one) for pools of `dtype` (default float32), or null where
   * the backend has no fast paged kernel that reads them
   */
  static create(backend: Backend = getBackend(), dtype: KvDtype = 'float32'): BackendPagedKernel | null {
    const fast = backend.kernels.pagedAttention;
    const pool = POOL_DTYPE[dtype];
    if (!fast || fast === referenceKernels.pagedAttention) return null;
    if (backend.supports && !backend.supports('pagedAttention', operands(pool))) return null;
    return new BackendPagedKernel(backend, dtype);
  }

  private constructor(
    private readonly backend: Backend,
    /** the KV dtype of the pools it holds */
    private readonly kv: KvDtype,
  ) {}

  /** n elements of the pool's KV dtype (or, for an int8 pool, of float32: its scales) as a backend buffer's host view */
  alloc(n: number, info: KvDtypeInfo): KvArray {
    const scales = this.kv === 'int8' && info === KV_DTYPE_INFO.float32;
    const dtype = scales ? 'float32' : info === KV_DTYPE_INFO[this.kv] ? POOL_DTYPE[this.kv] : null;
    if (dtype === null) throw new Error(`engine: this backend paged kernel holds ${this.kv} pools only`);
    const buf = this.backend.allocate(dtype, n);
    const arr = this.backend.view(buf) as KvArray | null;
    if (!arr) {
      this.backend.free(buf);
      throw new Error(`engine: backend ${this.backend.name} has no host-visible view for the KV pool`);
    }
    this.owned.set(arr, buf);
    return arr;
  }

  /** returns a pool array made by alloc() to the backend (a no-op for arrays it did not make) */
  free(arr: KvArray): void {
    const buf = this.owned.get(arr);
    if (!buf) return;
    this.owned.delete(arr);
    this.backend.free(buf);
  }

  /** frees the per-call scratch buffers (the pool arrays are freed one by one with free()) */
  releaseScratch(): void {
    for (const b of this.scratch.values()) this.backend.free(b);
    this.scratch.clear();
  }

  write(store: LayerStore, layout: BatchLayout, k: Float32Array, v: Float32Array): boolean {
    const [kb, vb] = [this.owned.get(store.k), this.owned.get(store.v)];
    const sc = this.scalesOf(store);
    if (!kb || !vb || sc === false) return false;
    const T = layout.pos.length;
    if (T === 0) return true;
    const { kvHeads: Hkv, kDim: Dk, vDim: Dv } = store;
    const sb = this.scratchOf('slots', 'int32', T);
    const slots = this.hostOf(sb, T) as Int32Array;
    for (let t = 0; t < T; t++) slots[t] = slotOf(layout, t);
    const put = kernelFor(this.backend, 'pagedWrite');
    const slotView = view(sb, [T]);
    const kSrc = view(this.scratchOf('k', 'float32', k.length, k), [Hkv, T, Dk]);
    put(kSrc, slotView, view(kb, [kb.length]), { T, Hkv, D: Dk }, sc?.k);
    const vSrc = view(this.scratchOf('v', 'float32', v.length, v), [Hkv, T, Dv]);
    put(vSrc, slotView, view(vb, [vb.length]), { T, Hkv, D: Dv }, sc?.v);
    return true;
  }

  run(store: LayerStore, layout: BatchLayout, q: Float32Array, nh: number, scale: number): Float32Array {
    const [kb, vb] = [this.owned.get(store.k), this.owned.get(store.v)];
    const sc = this.scalesOf(store);
    if (!kb || !vb || sc === false) return hostPaged(store, layout, q, nh, scale); // a pool this kernel did not allocate
    const T = layout.pos.length;
    const S = layout.tables.length;
    const maxBlocks = layout.tables.reduce((m, t) => Math.max(m, t.length), 1);
    const { kvHeads: Hkv, kDim: Dk, vDim: Dv, window } = store;
    const be = this.backend;
    // per-call inputs go into buffers kept between calls (written through their host views: no
    // allocation, upload or free per layer of every step)
    const qb = this.scratchOf('q', 'float32', q.length, q);
    const tb = this.scratchOf('tables', 'int32', S * maxBlocks);
    const tab = this.hostOf(tb, S * maxBlocks) as Int32Array;
    tab.fill(-1);
    layout.tables.forEach((t, i) => tab.set(t, i * maxBlocks));
    const sb = this.scratchOf('seq', 'int32', T, layout.seq);
    const pb = this.scratchOf('pos', 'int32', T, layout.pos);
    const ob = this.scratchOf('out', 'float32', nh * T * Dv);
    kernelFor(be, 'pagedAttention')(
      view(qb, [nh, T, Dk]),
      view(kb, [kb.length / (Hkv * Dk), Hkv, Dk]),
      view(vb, [vb.length / (Hkv * Dv), Hkv, Dv]),
      view(tb, [S, maxBlocks]),
      view(sb, [T]),
      view(pb, [T]),
      view(ob, [nh, T, Dv]),
      { T, H: nh, Hkv, Dk, Dv, blockSize: layout.blockSize, S, maxBlocks, window: window ?? 0, scale },
      sc,
    );
    return (this.hostOf(ob, nh * T * Dv) as Float32Array).slice();
  }

  /** an int8 store's scale buffers as views (undefined for float pools; false where this kernel did not allocate them) */
  private scalesOf(store: LayerStore): PagedScales | undefined | false {
    if (!store.kScale || !store.vScale) return store.dtype === 'int8' ? false : undefined;
    const [k, v] = [this.owned.get(store.kScale), this.owned.get(store.vScale)];
    return k && v ? { k: view(k, [k.length]), v: view(v, [v.length]) } : false;
  }

  /** scratch buffer `name` of at least n elements (grown by doubling), holding `data` when given */
  private scratchOf(name: string, dtype: 'float32' | 'int32', n: number, data?: Float32Array | Int32Array): Buf {
    let buf = this.scratch.get(name);
    if (!buf || buf.length < n) {
      if (buf) this.backend.free(buf);
      buf = this.backend.allocate(dtype, Math.max(1, n, 2 * (buf?.length ?? 0)), false);
      this.scratch.set(name, buf);
    }
    if (data) this.hostOf(buf, data.length).set(data);
    return buf;
  }

  /** the first n elements of a scratch buffer's host view */
  private hostOf(buf: Buf, n: number): Float32Array | Int32Array {
    const arr = this.backend.view(buf) as Float32Array | Int32Array | null;
    if (!arr)
      throw new Error(`engine: backend ${this.backend.name} has no host-visible view for paged-attention scratch`);
    return arr.subarray(0, n);
  }
}
