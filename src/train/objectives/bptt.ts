// Truncated backpropagation through time for RNN/LSTM/GRU language models (PyTorch word_language_model
// style): the stream is cut into B contiguous rows, and consecutive chunks of each row continue where
// the previous chunk stopped, so the trainer can carry (detached) hidden state across chunks.
import { readTokens, type TokenSource } from '../data/token-file.js';

export interface BpttChunk {
  /** (B, T) inputs; T may be shorter for the last chunk of a pass. */
  x: Int32Array;
  /** (B, T) next tokens. */
  y: Int32Array;
  batchSize: number;
  seqLen: number;
  /** Row b starts a new stream: the trainer must zero that row's hidden state (true on every row at a pass start). */
  reset: boolean[];
  /** Pass over the data (increments after the last chunk). */
  epoch: number;
  /** Offset of this chunk inside each row. */
  offset: number;
}

/**
 * Row b covers tokens [b·R, (b+1)·R) with R = floor((len-1)/B) (one extra token for the last target).
 * Chunks advance by bptt tokens; after the last one, all rows reset and a new epoch starts.
 */
export class BpttBatcher {
  readonly src: TokenSource;
  readonly batchSize: number;
  readonly bptt: number;
  readonly rowLength: number;
  epoch = 0;
  offset = 0;

  constructor(src: TokenSource, batchSize: number, bptt: number) {
    this.src = src;
    this.batchSize = batchSize;
    this.bptt = bptt;
    this.rowLength = Math.floor((src.length - 1) / batchSize);
    if (this.rowLength < 1) throw new Error(`BpttBatcher: ${src.length} tokens is too few for batchSize ${batchSize}`);
  }

  /** Chunks per epoch. */
  get chunksPerEpoch(): number {
    return Math.ceil(this.rowLength / this.bptt);
  }

  next(): BpttChunk {
    if (this.offset >= this.rowLength) {
      this.offset = 0;
      this.epoch++;
    }
    const T = Math.min(this.bptt, this.rowLength - this.offset);
    const B = this.batchSize;
    const x = new Int32Array(B * T);
    const y = new Int32Array(B * T);
    const w = new Int32Array(T + 1);
    for (let b = 0; b < B; b++) {
      // Row b's targets may read one token into row b+1's range: the stream is continuous there.
      readTokens(this.src, b * this.rowLength + this.offset, T + 1, w);
      x.set(w.subarray(0, T), b * T);
      y.set(w.subarray(1), b * T);
    }
    const chunk: BpttChunk = {
      x,
      y,
      batchSize: B,
      seqLen: T,
      reset: new Array(B).fill(this.offset === 0),
      epoch: this.epoch,
      offset: this.offset,
    };
    this.offset += T;
    return chunk;
  }
}
