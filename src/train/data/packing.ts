// Packing variable-length documents into fixed-length rows, with per-token segment ids so attention can
// be kept inside each document (block-diagonal mask) and positions can restart per document.

/** Splits a token stream at `eosId` into documents; the EOS stays at the end of its document. */
export function splitDocuments(tokens: ArrayLike<number>, eosId: number): number[][] {
  const docs: number[][] = [];
  let cur: number[] = [];
  for (let i = 0; i < tokens.length; i++) {
    cur.push(tokens[i]);
    if (tokens[i] === eosId) {
      docs.push(cur);
      cur = [];
    }
  }
  if (cur.length > 0) docs.push(cur);
  return docs;
}

export interface PackOptions {
  /** Row length (tokens per row). */
  rowLength: number;
  /** Fills the tail of the last/partial rows. */
  padId: number;
  /** Appended to each document that does not already end with it. */
  eosId?: number;
  /**
   * 'concat': concatenate all documents and cut every rowLength tokens (documents may straddle rows; HF
   * group_texts / nanoGPT style). 'greedy': never split a document that fits in a row; start a new row
   * when the next document does not fit (a document longer than a row continues across rows).
   */
  mode?: 'concat' | 'greedy';
  /** 'concat' only: drop the final partial row instead of padding it. Default false. */
  dropLast?: boolean;
}

export interface PackedRows {
  rows: number;
  rowLength: number;
  /** (rows, L) token ids. */
  inputIds: Int32Array;
  /** (rows, L) 1 for real tokens, 0 for padding. */
  attentionMask: Uint8Array;
  /** (rows, L) 1-based document index within the row, 0 for padding. */
  segmentIds: Int32Array;
  /** (rows, L) position within the document piece (restarts at 0 per segment), 0 for padding. */
  positionIds: Int32Array;
}

function withEos(doc: ArrayLike<number>, eosId: number | undefined): number[] {
  const d = Array.from(doc);
  if (eosId !== undefined && (d.length === 0 || d[d.length - 1] !== eosId)) d.push(eosId);
  return d;
}

/** Builder that appends pieces to rows and records segment/position ids. */
class RowBuilder {
  readonly L: number;
  readonly padId: number;
  private ids: number[] = [];
  private seg: number[] = [];
  private pos: number[] = [];
  private rowSeg = 0;
  constructor(L: number, padId: number) {
    this.L = L;
    this.padId = padId;
  }
  /** Appends a piece that fits in the current row as a new segment. */
  add(piece: ArrayLike<number>): void {
    if (this.ids.length % this.L === 0) this.rowSeg = 0;
    this.rowSeg++;
    for (let i = 0; i < piece.length; i++) {
      this.ids.push(piece[i]);
      this.seg.push(this.rowSeg);
      this.pos.push(i);
    }
  }
  /** Pads the current row to full length (no-op when it is already complete). */
  pad(): void {
    while (this.ids.length % this.L !== 0) {
      this.ids.push(this.padId);
      this.seg.push(0);
      this.pos.push(0);
    }
    this.rowSeg = 0;
  }
  used(): number {
    return this.ids.length % this.L;
  }
  finish(dropPartial: boolean): PackedRows {
    if (dropPartial) {
      const n = this.ids.length - this.used();
      this.ids.length = this.seg.length = this.pos.length = n;
    } else this.pad();
    const rows = this.ids.length / this.L;
    const mask = new Uint8Array(this.ids.length);
    for (let i = 0; i < mask.length; i++) mask[i] = this.seg[i] > 0 ? 1 : 0;
    return {
      rows, rowLength: this.L, inputIds: Int32Array.from(this.ids), attentionMask: mask,
      segmentIds: Int32Array.from(this.seg), positionIds: Int32Array.from(this.pos),
    };
  }
}

/** Packs documents into fixed-length rows (see PackOptions for the two modes). */
export function packDocuments(docs: Iterable<ArrayLike<number>>, opts: PackOptions): PackedRows {
  const L = opts.rowLength;
  if (!Number.isInteger(L) || L <= 0) throw new Error(`packDocuments: rowLength must be a positive integer, got ${L}`);
  const b = new RowBuilder(L, opts.padId);
  const greedy = (opts.mode ?? 'concat') === 'greedy';
  for (const raw of docs) {
    const doc = withEos(raw, opts.eosId);
    if (greedy && b.used() > 0 && doc.length <= L && doc.length > L - b.used()) b.pad();
    let off = 0;
    while (off < doc.length) {
      const room = L - b.used();
      const piece = doc.slice(off, off + room);
      b.add(piece);
      off += piece.length;
    }
  }
  return b.finish(!greedy && (opts.dropLast ?? false));
}

/** Boolean (L, L) attention mask for one packed row: causal and within the same segment. */
export function blockCausalMask(segmentIds: ArrayLike<number>): Uint8Array {
  const L = segmentIds.length;
  const m = new Uint8Array(L * L);
  for (let q = 0; q < L; q++) {
    if (segmentIds[q] === 0) continue;
    for (let k = 0; k <= q; k++) if (segmentIds[k] === segmentIds[q]) m[q * L + k] = 1;
  }
  return m;
}
