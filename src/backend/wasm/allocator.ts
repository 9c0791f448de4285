// Allocator for the shared wasm memory, in TypeScript (the kernels never allocate).
//
// Blocks are 64-byte aligned and rounded to size classes: multiples of 64 up to 1 KiB, then four
// classes per power of two (at most 25% waste). Freed blocks go to a per-class free list and are
// reused by the next request of the same class; fresh blocks come from a bump pointer that grows
// the memory (up to the wasm32 limit of 65536 pages = 4 GiB). No coalescing: tensor workloads
// repeat the same sizes, which is what free lists serve best.

const PAGE = 65536;
export const ALIGN = 64;

export function sizeClass(bytes: number): number {
  if (bytes <= 1024) return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
  const e = Math.floor(Math.log2(bytes - 1)); // 2^e < bytes <= 2^(e+1)
  const step = 2 ** (e - 2); // four classes per doubling
  return Math.ceil(bytes / step) * step;
}

export class WasmAllocator {
  private top: number;
  private readonly free = new Map<number, number[]>();
  /** ptr -> class size of every live block */
  private readonly live = new Map<number, number>();
  private inUse = 0;
  private peak = 0;

  private readonly limit: number;

  constructor(
    private readonly memory: WebAssembly.Memory,
    base: number,
    /** the memory's maximum size in 64 KiB pages (65536 = 4 GiB, the wasm32 limit) */
    private readonly maxPages = 65536,
  ) {
    this.limit = maxPages * PAGE;
    this.top = Math.ceil(base / ALIGN) * ALIGN;
  }

  /** Returns the byte offset of a block of at least `bytes` bytes; zeroed when `zero`. */
  alloc(bytes: number, zero: boolean, what: string): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new Error(`wasm backend: ${what}: invalid size ${bytes} bytes`);
    const size = sizeClass(bytes);
    let ptr = this.free.get(size)?.pop();
    let blockSize = size;
    if (ptr === undefined) {
      if (this.top + size <= this.limit) {
        ptr = this.top;
        this.ensure(ptr + size, what, bytes);
        this.top += size;
        zero = false; // fresh memory is zero
      } else {
        // out of address space: take any larger free block rather than fail
        for (const [cls, list] of [...this.free.entries()].sort((a, b) => a[0] - b[0])) {
          if (cls >= size && list.length > 0) {
            ptr = list.pop()!;
            blockSize = cls;
            break;
          }
        }
        if (ptr === undefined) {
          throw new Error(
            `wasm backend: out of memory: ${what} needs ${fmt(bytes)} but the wasm memory's ${fmt(this.limit)} address space ` +
              `(4 GiB = the wasm32 limit) is exhausted ` +
              `(${fmt(this.inUse)} in use, ${fmt(this.top)} reserved)`,
          );
        }
      }
    }
    this.live.set(ptr, blockSize);
    this.inUse += blockSize;
    if (this.inUse > this.peak) this.peak = this.inUse;
    if (zero && bytes > 0) new Uint8Array(this.memory.buffer, ptr, bytes).fill(0);
    return ptr;
  }

  release(ptr: number, what: string): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`wasm backend: ${what}: block at ${ptr} is not allocated (double free?)`);
    this.live.delete(ptr);
    this.inUse -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(ptr);
  }

  isLive(ptr: number): boolean {
    return this.live.has(ptr);
  }

  bytesInUse(): number {
    return this.inUse;
  }
  /** high-water mark of bytesInUse since the last resetPeak() */
  peakBytes(): number {
    return this.peak;
  }
  resetPeak(): void {
    this.peak = this.inUse;
  }

  private ensure(end: number, what: string, bytes: number): void {
    const have = this.memory.buffer.byteLength;
    if (end <= have) return;
    const pages = Math.ceil((end - have) / PAGE);
    // grow a bit ahead (1/8 of current size) to avoid growing on every allocation
    const ahead = Math.min(this.maxPages - have / PAGE, Math.max(pages, Math.ceil(have / PAGE / 8)));
    try {
      this.memory.grow(ahead);
    } catch {
      try {
        this.memory.grow(pages);
      } catch (e) {
        throw new Error(
          `wasm backend: out of memory: ${what} needs ${fmt(bytes)}; growing the wasm memory to ${fmt(end)} failed ` +
            `(${e instanceof Error ? e.message : String(e)})`,
        );
      }
    }
  }
}

function fmt(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return `${bytes} bytes`;
}
