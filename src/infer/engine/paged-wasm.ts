// The WebAssembly SIMD paged-attention kernel (asm/paged.ts) on its own instance of the kernel module:
// the engine's KV pool is allocated inside that instance's memory, so the kernel reads K/V in place; per
// call only the queries, block tables and positions are copied in and the output copied out.
// Falls back (create() returns null) where the module cannot be compiled synchronously or lacks SIMD;
// the host kernel in paged-attention.ts is the reference it is tested against.
import { relaxedSimdSupported, wasmBytes } from '../../backend/wasm/module.js';
import type { LayerStore } from './kv-pool.js';
import { KV_DTYPE_INFO, type KvArray } from './kv-dtype.js';
import type { BatchLayout } from './paged-attention.js';

type PagedFn = (...args: number[]) => void;

const PAGE = 65536;
const MAX_PAGES = 65536;
const align = (x: number) => Math.ceil(x / 64) * 64;

export class WasmPagedKernel {
  /** end of the long-lived allocations (the pool); per-call scratch starts here */
  private top: number;

  private constructor(
    private readonly memory: WebAssembly.Memory,
    private readonly fn: PagedFn,
    heapBase: number,
  ) {
    this.top = align(Math.max(heapBase, 1024));
  }

  /** a kernel instance with room for `bytes` of pool, or null where WebAssembly SIMD is unavailable */
  static create(bytes: number): WasmPagedKernel | null {
    try {
      const variant = relaxedSimdSupported() ? 'relaxed' : 'simd';
      const module = new WebAssembly.Module(wasmBytes(variant));
      const pages = Math.min(MAX_PAGES, Math.ceil((bytes + (4 << 20)) / PAGE));
      const memory = new WebAssembly.Memory({ initial: pages, maximum: MAX_PAGES, shared: true });
      const ex = new WebAssembly.Instance(module, { env: { memory } }).exports as {
        pagedAttention: PagedFn;
        heapBase: () => number;
      };
      return new WasmPagedKernel(memory, ex.pagedAttention, ex.heapBase());
    } catch {
      return null;
    }
  }

  private ensure(end: number): void {
    const have = this.memory.buffer.byteLength;
    if (end > have) this.memory.grow(Math.ceil((end - have) / PAGE));
  }

  /** a zeroed array of n elements of a KV dtype that lives as long as the kernel (pool storage) */
  alloc(n: number, info: (typeof KV_DTYPE_INFO)[keyof typeof KV_DTYPE_INFO]): KvArray {
    const at = this.top;
    this.top = align(at + n * info.bytes);
    this.ensure(this.top);
    return info.make(n, this.memory.buffer, at);
  }

  /** q [nh, T, dk] -> out [nh, T, dv], K/V read in place from `store` (allocated by this kernel) */
  run(store: LayerStore, layout: BatchLayout, q: Float32Array, nh: number, scale: number): Float32Array {
    const T = layout.pos.length;
    const maxBlocks = layout.tables.reduce((m, t) => Math.max(m, t.length), 1);
    const S = layout.tables.length;
    const sizes = [q.length * 4, nh * T * store.vDim * 4, S * maxBlocks * 4, T * 4, T * 4, layout.blockSize * 4];
    const at: number[] = [];
    let p = this.top;
    for (const s of sizes) [at[at.length], p] = [p, align(p + s)];
    this.ensure(p);
    const buf = this.memory.buffer;
    new Float32Array(buf, at[0]!, q.length).set(q);
    const tables = new Int32Array(buf, at[2]!, S * maxBlocks);
    layout.tables.forEach((t, i) => tables.set(t, i * maxBlocks));
    new Int32Array(buf, at[3]!, T).set(layout.seq);
    new Int32Array(buf, at[4]!, T).set(layout.pos);
    const { kvHeads, kDim, vDim, window, dtype } = store;
    this.fn(
      at[0]!,
      at[1]!,
      store.k.byteOffset,
      store.v.byteOffset,
      at[2]!,
      maxBlocks,
      at[3]!,
      at[4]!,
      T,
      nh,
      kvHeads,
      kDim,
      vDim,
      layout.blockSize,
      window ?? 0,
      scale,
      at[5]!,
      KV_DTYPE_INFO[dtype].code,
      store.kScale?.byteOffset ?? 0,
      store.vScale?.byteOffset ?? 0,
    );
    return new Float32Array(buf, at[1]!, nh * T * vDim).slice();
  }
}
