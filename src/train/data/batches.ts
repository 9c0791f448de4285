// Batches of (x, y) windows over a token source. Everything is flat row-major Int32Array (B*T) so it
// can become a (B, T) tensor without copying.
import { Rng } from '../rng.js';
import { readTokens, type TokenSource } from './token-file.js';

export interface Batch {
  /** Rows actually filled (the last sequential batch may be short). */
  rows: number;
  blockSize: number;
  /** (rows, T) inputs. */
  x: Int32Array;
  /** (rows, T) next-token targets: y[r, t] = data[start_r + t + 1]. */
  y: Int32Array;
  /** Start offset of each row in the source. */
  starts: number[];
}

/** Reads rows of T+1 tokens at `starts` and splits each into x = w[:-1], y = w[1:]. */
export function windowsAt(src: TokenSource, starts: ArrayLike<number>, blockSize: number): Batch {
  const T = blockSize;
  const B = starts.length;
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T);
  const w = new Int32Array(T + 1);
  for (let r = 0; r < B; r++) {
    readTokens(src, starts[r], T + 1, w); // fills w whether read() fills `out` or returns a fresh array
    x.set(w.subarray(0, T), r * T);
    y.set(w.subarray(1, T + 1), r * T);
  }
  return { rows: B, blockSize: T, x, y, starts: Array.from(starts) };
}

/**
 * nanoGPT's get_batch: B windows at i ~ uniform{0, ..., len-T-1} (torch.randint(len(data) - block_size)),
 * x = data[i:i+T], y = data[i+1:i+T+1]. Deterministic for a seed; each call advances the stream.
 */
export class RandomBatcher {
  readonly src: TokenSource;
  readonly batchSize: number;
  readonly blockSize: number;
  readonly rng: Rng;

  constructor(src: TokenSource, batchSize: number, blockSize: number, seed: number) {
    if (src.length < blockSize + 1) {
      throw new Error(`RandomBatcher: source has ${src.length} tokens, needs at least blockSize+1 = ${blockSize + 1}`);
    }
    this.src = src;
    this.batchSize = batchSize;
    this.blockSize = blockSize;
    this.rng = new Rng(seed);
  }

  next(): Batch {
    const hi = this.src.length - this.blockSize; // exclusive bound, as in torch.randint(len - T)
    const starts = new Array<number>(this.batchSize);
    for (let b = 0; b < this.batchSize; b++) starts[b] = this.rng.int(hi);
    return windowsAt(this.src, starts, this.blockSize);
  }
}

/** Number of non-overlapping evaluation windows: each needs T+1 tokens, windows start every T tokens. */
export function sequentialWindowCount(length: number, blockSize: number): number {
  return length < blockSize + 1 ? 0 : Math.floor((length - 1) / blockSize);
}

/**
 * Non-overlapping windows for evaluation, in order: starts 0, T, 2T, ... so every token (except the
 * first) is predicted exactly once. The last batch may have fewer rows; `maxBatches` caps the pass.
 */
export function* sequentialBatches(src: TokenSource, batchSize: number, blockSize: number, maxBatches = Infinity): Generator<Batch> {
  const n = sequentialWindowCount(src.length, blockSize);
  let made = 0;
  for (let w = 0; w < n && made < maxBatches; w += batchSize, made++) {
    const starts: number[] = [];
    for (let r = w; r < Math.min(n, w + batchSize); r++) starts.push(r * blockSize);
    yield windowsAt(src, starts, blockSize);
  }
}

/**
 * Seeded epoch shuffling over n items: epoch e uses its own permutation derived from (seed, e), so any
 * position can be resumed without replaying earlier epochs.
 */
export class EpochSampler {
  readonly n: number;
  readonly seed: number;
  private epoch = -1;
  private perm: Int32Array = new Int32Array(0);

  constructor(n: number, seed: number) {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`EpochSampler: n must be a positive integer, got ${n}`);
    this.n = n;
    this.seed = seed;
  }

  /** The permutation used in `epoch`. */
  order(epoch: number): Int32Array {
    if (epoch !== this.epoch) {
      this.perm = Rng.derive(this.seed, epoch).permutation(this.n);
      this.epoch = epoch;
    }
    return this.perm;
  }

  /** Item at global position `step` (epoch = floor(step / n)). */
  at(step: number): { epoch: number; index: number } {
    const epoch = Math.floor(step / this.n);
    return { epoch, index: this.order(epoch)[step - epoch * this.n] };
  }

  /** Items for global positions [step, step+count): a batch that may straddle an epoch boundary. */
  take(step: number, count: number): number[] {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(this.at(step + i).index);
    return out;
  }
}

/**
 * Epoch-based training over non-overlapping windows: the windows of a source are shuffled per epoch
 * (seeded) and served in batches — every token is seen once per epoch, unlike RandomBatcher.
 */
export class ShuffledWindowBatcher {
  readonly src: TokenSource;
  readonly batchSize: number;
  readonly blockSize: number;
  readonly sampler: EpochSampler;
  /** Global window position; save it in checkpoints to resume exactly. */
  position = 0;

  constructor(src: TokenSource, batchSize: number, blockSize: number, seed: number) {
    const n = sequentialWindowCount(src.length, blockSize);
    if (n === 0) throw new Error(`ShuffledWindowBatcher: source has ${src.length} tokens, needs at least ${blockSize + 1}`);
    this.src = src;
    this.batchSize = batchSize;
    this.blockSize = blockSize;
    this.sampler = new EpochSampler(n, seed);
  }

  get epoch(): number {
    return Math.floor(this.position / this.sampler.n);
  }

  next(): Batch {
    const idx = this.sampler.take(this.position, this.batchSize);
    this.position += this.batchSize;
    return windowsAt(this.src, idx.map((i) => i * this.blockSize), this.blockSize);
  }
}
