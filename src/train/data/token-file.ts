// Token files: a flat little-endian array of token ids, uint16 when the vocabulary fits (nanoGPT's
// train.bin/val.bin format, readable with np.memmap(path, dtype=np.uint16)) else uint32. Metadata lives
// in a JSON sidecar next to the data (`train.bin.json`) so the .bin itself stays raw nanoGPT-compatible.

export type TokenDType = 'uint16' | 'uint32';

/** Contents of the `NAME.bin.json` sidecar. */
export interface TokenFileMeta {
  format: 'lineage-tokens';
  version: 1;
  dtype: TokenDType;
  vocabSize: number;
  count: number;
  tokenizer?: string;
}

/**
 * Random-access token storage: disk-backed in Node (NodeTokenFile), in-memory in browsers and tests
 * (MemoryTokenFile). Implement it to feed `createTask` from anywhere else.
 */
export interface TokenSource {
  /** Number of tokens. */
  readonly length: number;
  /**
   * Tokens [start, start+count) as int32: either `out` filled (when given and large enough) or a fresh
   * array of exactly `count` tokens. Callers use the returned array.
   */
  read(start: number, count: number, out?: Int32Array): Int32Array;
}

function sourceName(src: TokenSource): string {
  const name = (src as { constructor?: { name?: unknown } }).constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? `token source ${name}` : 'token source';
}

/**
 * `src.read(start, count, out)` with its result checked: a source may fill `out` or return a fresh array
 * (the interface allows both), and a result of another length is an error naming the source and range.
 * With `out`, the tokens end up in out[0, count) and `out` is returned; without, the source's array.
 */
export function readTokens(src: TokenSource, start: number, count: number, out?: Int32Array): Int32Array {
  const got: unknown = src.read(start, count, out);
  if (out !== undefined && got === out) return out;
  const where = `${sourceName(src)}: read(${start}, ${count}) (tokens [${start}, ${start + count}) of ${src.length})`;
  if (got === null || typeof got !== 'object' || typeof (got as ArrayLike<number>).length !== 'number') {
    throw new Error(`${where} returned ${got === null ? 'null' : typeof got}, expected an Int32Array of ${count} tokens`);
  }
  const arr = got as ArrayLike<number>;
  if (arr.length !== count) throw new Error(`${where} returned ${arr.length} tokens, expected ${count}`);
  if (out !== undefined) {
    out.set(arr);
    return out;
  }
  return arr instanceof Int32Array ? arr : Int32Array.from(arr);
}

export const SIDECAR_SUFFIX = '.json';

/** Smallest dtype that holds every id below vocabSize. */
export function dtypeForVocab(vocabSize: number): TokenDType {
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) {
    throw new Error(`dtypeForVocab: vocabSize must be a positive integer, got ${vocabSize}`);
  }
  return vocabSize <= 65536 ? 'uint16' : 'uint32'; // ids 0..65535 fit in uint16
}

export function bytesPerToken(dtype: TokenDType): 2 | 4 {
  return dtype === 'uint16' ? 2 : 4;
}

/** Builds the sidecar record for a finished file. */
export function makeMeta(dtype: TokenDType, vocabSize: number, count: number, tokenizer?: string): TokenFileMeta {
  const m: TokenFileMeta = { format: 'lineage-tokens', version: 1, dtype, vocabSize, count };
  if (tokenizer !== undefined) m.tokenizer = tokenizer;
  return m;
}

/** Parses and validates a sidecar; `where` names the file in errors. */
export function parseMeta(text: string, where: string): TokenFileMeta {
  let m: any;
  try {
    m = JSON.parse(text);
  } catch (e) {
    throw new Error(`token file ${where}: sidecar is not valid JSON (${(e as Error).message})`);
  }
  if (m?.format !== 'lineage-tokens') throw new Error(`token file ${where}: field 'format' must be 'lineage-tokens'`);
  if (m.dtype !== 'uint16' && m.dtype !== 'uint32') {
    throw new Error(`token file ${where}: field 'dtype' must be 'uint16' or 'uint32', got ${JSON.stringify(m.dtype)}`);
  }
  for (const f of ['vocabSize', 'count'] as const) {
    if (!Number.isInteger(m[f]) || m[f] < 0) throw new Error(`token file ${where}: field '${f}' must be an integer >= 0`);
  }
  return m as TokenFileMeta;
}

/** Checks ids against the vocabulary and packs them into the file's little-endian byte layout. */
export function encodeTokens(ids: ArrayLike<number>, dtype: TokenDType, vocabSize: number): Uint8Array {
  const bpt = bytesPerToken(dtype);
  const bytes = new Uint8Array(ids.length * bpt);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
      throw new Error(`encodeTokens: token ${i} = ${id} is outside the vocabulary [0, ${vocabSize})`);
    }
    if (bpt === 2) view.setUint16(i * 2, id, true);
    else view.setUint32(i * 4, id, true);
  }
  return bytes;
}

/** Decodes `count` little-endian ids from bytes into out[0..count). */
export function decodeTokens(bytes: Uint8Array, dtype: TokenDType, count: number, out: Int32Array): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'uint16') for (let i = 0; i < count; i++) out[i] = view.getUint16(i * 2, true);
  else for (let i = 0; i < count; i++) out[i] = view.getUint32(i * 4, true);
}

export function checkRange(name: string, length: number, start: number, count: number): void {
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > length) {
    throw new Error(`${name}.read: range [${start}, ${start + count}) is outside [0, ${length})`);
  }
}

export function outBuffer(count: number, out?: Int32Array): Int32Array {
  return out !== undefined && out.length >= count ? out : new Int32Array(count);
}

/** In-memory token source with the same interface as the disk-backed one. */
export class MemoryTokenFile implements TokenSource {
  readonly data: Int32Array | Uint16Array | Uint32Array;
  constructor(data: ArrayLike<number> | Int32Array | Uint16Array | Uint32Array) {
    this.data = ArrayBuffer.isView(data) ? (data as Int32Array) : Int32Array.from(data as ArrayLike<number>);
  }
  get length(): number {
    return this.data.length;
  }
  read(start: number, count: number, out?: Int32Array): Int32Array {
    checkRange('MemoryTokenFile', this.length, start, count);
    const dst = outBuffer(count, out);
    for (let i = 0; i < count; i++) dst[i] = this.data[start + i];
    return dst;
  }
  /** Parses a raw .bin image (e.g. a fetched nanoGPT train.bin) in the given dtype. */
  static fromBytes(bytes: Uint8Array, dtype: TokenDType = 'uint16'): MemoryTokenFile {
    const bpt = bytesPerToken(dtype);
    if (bytes.byteLength % bpt !== 0) {
      throw new Error(`MemoryTokenFile.fromBytes: ${bytes.byteLength} bytes is not a multiple of ${bpt} (${dtype})`);
    }
    const n = bytes.byteLength / bpt;
    const out = new Int32Array(n);
    decodeTokens(bytes, dtype, n, out);
    return new MemoryTokenFile(out);
  }
}

/** Reads a source front to back in chunks of at most chunkTokens (bounded memory for any file size). */
export function* iterateChunks(src: TokenSource, chunkTokens = 1 << 20): Generator<Int32Array> {
  if (!(chunkTokens > 0)) throw new Error(`iterateChunks: chunkTokens must be > 0, got ${chunkTokens}`);
  for (let start = 0; start < src.length; start += chunkTokens) {
    yield readTokens(src, start, Math.min(chunkTokens, src.length - start));
  }
}

/**
 * Streams the documents of an EOS-separated token source (EOS kept at the end of each document), with
 * documents that straddle chunk boundaries reassembled. Feeds packDocuments without loading the file.
 */
export function* streamDocuments(src: TokenSource, eosId: number, chunkTokens = 1 << 20): Generator<Int32Array> {
  let carry: number[] = [];
  for (const chunk of iterateChunks(src, chunkTokens)) {
    let from = 0;
    for (let i = 0; i < chunk.length; i++) {
      if (chunk[i] !== eosId) continue;
      const piece = chunk.subarray(from, i + 1);
      yield carry.length > 0 ? Int32Array.from([...carry, ...piece]) : piece.slice();
      carry = [];
      from = i + 1;
    }
    for (let i = from; i < chunk.length; i++) carry.push(chunk[i]);
  }
  if (carry.length > 0) yield Int32Array.from(carry);
}
