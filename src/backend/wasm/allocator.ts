// Allocator for the shared wasm memory, in TypeScript (the kernels never allocate).
//
// Segregated fit with coalescing. Blocks are 64-byte aligned and a multiple of 64 bytes. Free blocks
// are kept by start and by end address (so a freed block merges with both free neighbours at once) and
// in size bins (four per power of two); an allocation takes the first fitting block of the smallest bin
// that can hold it and splits off the rest. A free block that reaches the bump pointer is absorbed into
// it. Coalescing matters for the inference engine: its batches change shape every step, so exact-size
// free lists (the previous design) kept a free block for every size ever seen — 290 MiB of free lists
// for 18 MiB live in a 12-round serving soak — while merged blocks are reused by whatever comes next.
// Memory only grows (wasm memories cannot shrink), up to the wasm32 limit of 65536 pages = 4 GiB.

const PAGE = 65536;
export const ALIGN = 64;

/** bytes rounded up to the allocation granule */
export function sizeClass(bytes: number): number {
  return Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
}

/** size bin: four per power of two (the two bits after the leading one) */
function binOf(size: number): number {
  const e = Math.floor(Math.log2(size));
  const sub = Math.floor((size / 2 ** e - 1) * 4); // 0..3
  return e * 4 + sub;
}

export class WasmAllocator {
  /** the bump pointer: everything at or above it is unallocated */
  private top: number;
  /** the highest the bump pointer has been: memory above it was never handed out, so it is still zero */
  private dirtyTop: number;
  private readonly freeStart = new Map<number, number>(); // ptr -> size
  private readonly freeEnd = new Map<number, number>(); // end -> ptr
  private readonly bins: Set<number>[] = [];
  /** ptr -> size of every live block */
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
    this.dirtyTop = this.top;
  }

  /** Returns the byte offset of a block of at least `bytes` bytes; zeroed when `zero`. */
  alloc(bytes: number, zero: boolean, what: string): number {
    if (!Number.isFinite(bytes) || bytes < 0) throw new Error(`wasm backend: ${what}: invalid size ${bytes} bytes`);
    const size = sizeClass(bytes);
    let ptr = this.takeFree(size);
    if (ptr === undefined) {
      if (this.top + size > this.limit) {
        throw new Error(
          `wasm backend: out of memory: ${what} needs ${fmt(bytes)} but the wasm memory's ${fmt(this.limit)} address space ` +
            `(4 GiB = the wasm32 limit) is exhausted ` +
            `(${fmt(this.inUse)} in use, ${fmt(this.top)} reserved)`,
        );
      }
      ptr = this.top;
      this.ensure(ptr + size, what, bytes);
      this.top += size;
    }
    if (zero && bytes > 0 && ptr < this.dirtyTop) new Uint8Array(this.memory.buffer, ptr, bytes).fill(0);
    if (this.top > this.dirtyTop) this.dirtyTop = this.top;
    this.live.set(ptr, size);
    this.inUse += size;
    if (this.inUse > this.peak) this.peak = this.inUse;
    return ptr;
  }

  release(ptr: number, what: string): void {
    const size = this.live.get(ptr);
    if (size === undefined) throw new Error(`wasm backend: ${what}: block at ${ptr} is not allocated (double free?)`);
    this.live.delete(ptr);
    this.inUse -= size;
    let start = ptr;
    let end = ptr + size;
    const left = this.freeEnd.get(start);
    if (left !== undefined) {
      this.removeFree(left);
      start = left;
    }
    const right = this.freeStart.get(end);
    if (right !== undefined) {
      this.removeFree(end);
      end += right;
    }
    if (end === this.top) this.top = start;
    else this.addFree(start, end - start);
  }

  /** bytes held in free blocks below the bump pointer (fragmentation; tests and diagnostics) */
  freeBytes(): number {
    let n = 0;
    for (const s of this.freeStart.values()) n += s;
    return n;
  }
  /** the bump pointer: the extent of the memory in use or in free blocks now */
  reservedBytes(): number {
    return this.top;
  }
  /** the highest the bump pointer has been: the memory ever handed out (what stays resident) */
  touchedBytes(): number {
    return this.dirtyTop;
  }

  private takeFree(size: number): number | undefined {
    for (let b = binOf(size); b < this.bins.length; b++) {
      const bin = this.bins[b];
      if (!bin || bin.size === 0) continue;
      for (const ptr of bin) {
        const have = this.freeStart.get(ptr)!;
        if (have < size) continue; // only the first bin holds blocks smaller than the request
        this.removeFree(ptr);
        if (have > size) this.addFree(ptr + size, have - size);
        return ptr;
      }
    }
    return undefined;
  }

  private addFree(ptr: number, size: number): void {
    this.freeStart.set(ptr, size);
    this.freeEnd.set(ptr + size, ptr);
    const b = binOf(size);
    (this.bins[b] ??= new Set()).add(ptr);
  }

  private removeFree(ptr: number): void {
    const size = this.freeStart.get(ptr)!;
    this.freeStart.delete(ptr);
    this.freeEnd.delete(ptr + size);
    this.bins[binOf(size)]!.delete(ptr);
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
