// Block bookkeeping of the paged KV cache (vLLM's block pool + KV cache manager, in one small class):
// a free list kept in LRU order, a reference count per block, and automatic prefix caching — a full
// block is registered under the hash of (previous block's hash, its tokens), so a later request whose
// prompt starts with the same tokens reuses it. A freed block keeps its hash and contents until it is
// handed out again (evicting the least recently freed first), so the cache costs no memory of its own.
//
// Sequences own block tables (block ids in token order). Shared blocks (prefix hits, n > 1 forks) are
// only ever appended to after a copy (copy-on-write of the last, partial block).

/** a sequence's view of the cache */
export interface BlockTable {
  /** block ids in token order; -1 = freed because it fell out of every layer's sliding window */
  blocks: number[];
  /** hashes of the leading full blocks whose tokens are known to be in the cache */
  hashes: string[];
}

export class BlockManager {
  private readonly refs: Int32Array;
  private readonly hashOf: (string | null)[];
  private readonly cached = new Map<string, number>();
  /** free blocks, least recently freed first (Map keeps insertion order; delete + set moves to the end) */
  private readonly free = new Map<number, true>();
  /** prompt blocks served from the cache to admitted sequences (counted by the scheduler) */
  prefixHits = 0;

  constructor(
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly prefixCaching = true,
  ) {
    this.refs = new Int32Array(numBlocks);
    this.hashOf = new Array<string | null>(numBlocks).fill(null);
    for (let b = 0; b < numBlocks; b++) this.free.set(b, true);
  }

  get numFree(): number {
    return this.free.size;
  }

  get numUsed(): number {
    return this.numBlocks - this.free.size;
  }

  refCount(b: number): number {
    return this.refs[b]!;
  }

  /** takes the least recently freed block (evicting its prefix-cache entry) */
  private take(): number {
    const b = this.free.keys().next().value as number | undefined;
    if (b === undefined) throw new Error('BlockManager: out of blocks (callers check numFree first)');
    this.free.delete(b);
    const h = this.hashOf[b];
    if (h !== null && h !== undefined) {
      if (this.cached.get(h) === b) this.cached.delete(h);
      this.hashOf[b] = null;
    }
    this.refs[b] = 1;
    return b;
  }

  private acquire(b: number): void {
    if (this.refs[b] === 0) this.free.delete(b);
    this.refs[b]!++;
  }

  private release(b: number): void {
    if (b < 0) return;
    if (this.refs[b]! <= 0) throw new Error(`BlockManager: block ${b} released more often than taken`);
    if (--this.refs[b]! === 0) this.free.set(b, true);
  }

  /** chained hash of a full block: two 32-bit FNV-1a variants over (parent, tokens), 64 bits in all */
  static hash(parent: string, tokens: ArrayLike<number>, from: number, to: number): string {
    let h1 = 0x811c9dc5;
    let h2 = 0x01000193 ^ parent.length;
    const mix = (x: number) => {
      h1 = Math.imul(h1 ^ x, 0x01000193) >>> 0;
      h2 = Math.imul(h2 ^ (x + 0x9e3779b9), 0x85ebca6b) >>> 0;
      h2 ^= h2 >>> 13;
    };
    for (let i = 0; i < parent.length; i++) mix(parent.charCodeAt(i));
    for (let i = from; i < to; i++) mix(tokens[i]! | 0);
    return `${h1.toString(36)}.${h2.toString(36)}`;
  }

  /**
   * Reuses cached blocks for the longest run of full blocks of `tokens`, leaving at least one token to
   * compute (its logits are needed). Returns the table and how many tokens it covers.
   */
  matchPrefix(tokens: readonly number[]): { table: BlockTable; tokens: number } {
    const table: BlockTable = { blocks: [], hashes: [] };
    if (!this.prefixCaching) return { table, tokens: 0 };
    const bs = this.blockSize;
    const full = Math.floor((tokens.length - 1) / bs);
    let parent = '';
    for (let i = 0; i < full; i++) {
      const h = BlockManager.hash(parent, tokens, i * bs, (i + 1) * bs);
      const b = this.cached.get(h);
      if (b === undefined) break;
      this.acquire(b);
      table.blocks.push(b);
      table.hashes.push(h);
      parent = h;
    }
    return { table, tokens: table.blocks.length * bs };
  }

  /** blocks `ensure` would need to take to cover `numTokens` starting after `computed` tokens */
  blocksNeeded(table: BlockTable, computed: number, numTokens: number): number {
    const need = Math.ceil(numTokens / this.blockSize) - table.blocks.length;
    const last = Math.floor(computed / this.blockSize);
    const cow =
      computed % this.blockSize !== 0 && last < table.blocks.length && this.refs[table.blocks[last]!]! > 1 ? 1 : 0;
    return Math.max(0, need) + cow;
  }

  /**
   * Grows `table` to cover `numTokens` tokens, `computed` of which are already written; copies a shared
   * partial block before it is written (returns the copies to make). False when there are not enough
   * free blocks (nothing is taken then).
   */
  ensure(table: BlockTable, computed: number, numTokens: number, copy: (from: number, to: number) => void): boolean {
    if (this.blocksNeeded(table, computed, numTokens) > this.free.size) return false;
    const last = Math.floor(computed / this.blockSize);
    if (computed % this.blockSize !== 0 && last < table.blocks.length && this.refs[table.blocks[last]!]! > 1) {
      const old = table.blocks[last]!;
      const fresh = this.take();
      copy(old, fresh);
      this.release(old);
      table.blocks[last] = fresh;
    }
    while (table.blocks.length * this.blockSize < numTokens) table.blocks.push(this.take());
    return true;
  }

  /** registers the blocks that became full once `computed` tokens of `tokens` are in the cache */
  commit(table: BlockTable, tokens: readonly number[], computed: number): void {
    if (!this.prefixCaching) return;
    const bs = this.blockSize;
    const full = Math.floor(computed / bs);
    for (let i = table.hashes.length; i < full; i++) {
      const h = BlockManager.hash(table.hashes[i - 1] ?? '', tokens, i * bs, (i + 1) * bs);
      table.hashes.push(h);
      const b = table.blocks[i]!;
      if (b >= 0 && !this.cached.has(h) && this.hashOf[b] === null) {
        this.cached.set(h, b);
        this.hashOf[b] = h;
      }
    }
  }

  /** a table sharing every block of `table` (n > 1 samples, beams) */
  fork(table: BlockTable): BlockTable {
    for (const b of table.blocks) if (b >= 0) this.acquire(b);
    return { blocks: [...table.blocks], hashes: [...table.hashes] };
  }

  /** drops blocks past `numTokens` tokens (speculative decoding's rollback) */
  truncate(table: BlockTable, numTokens: number): void {
    const keep = Math.ceil(numTokens / this.blockSize);
    while (table.blocks.length > keep) this.release(table.blocks.pop()!);
    table.hashes.length = Math.min(table.hashes.length, Math.floor(numTokens / this.blockSize));
  }

  /** frees the blocks wholly before position `firstVisible` (sliding windows) */
  dropBefore(table: BlockTable, firstVisible: number): void {
    const n = Math.floor(firstVisible / this.blockSize);
    for (let i = 0; i < Math.min(n, table.blocks.length); i++) {
      this.release(table.blocks[i]!);
      table.blocks[i] = -1;
    }
  }

  /** releases every block of a table, last first (so a prompt's leading blocks stay cached longest) */
  freeTable(table: BlockTable): void {
    for (let i = table.blocks.length - 1; i >= 0; i--) this.release(table.blocks[i]!);
    table.blocks.length = 0;
    table.hashes.length = 0;
  }
}
