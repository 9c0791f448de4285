// Node adapter for token files: positional reads with fs.readSync (nothing is loaded up front), a
// streaming writer, and a text-file preparer that tokenizes in chunks and writes train/val splits.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AtomicFileWriter, writeJSONAtomic } from '../atomic-node.js';
import {
  SIDECAR_SUFFIX, bytesPerToken, checkRange, decodeTokens, dtypeForVocab, encodeTokens, makeMeta, outBuffer,
  parseMeta, type TokenDType, type TokenFileMeta, type TokenSource,
} from './token-file.js';

export interface OpenTokenFileOptions {
  /** dtype of a raw .bin without sidecar (nanoGPT writes uint16). Ignored when a sidecar exists. */
  dtype?: TokenDType;
}

/** Disk-backed token file: `read` does one positional read, so files larger than memory work. */
export class NodeTokenFile implements TokenSource {
  readonly path: string;
  readonly dtype: TokenDType;
  readonly length: number;
  /** The sidecar, or undefined for a raw nanoGPT .bin. */
  readonly meta: TokenFileMeta | undefined;
  private fd: number | undefined;
  private scratch = new Uint8Array(0);

  constructor(file: string, opts: OpenTokenFileOptions = {}) {
    this.path = file;
    const sidecar = file + SIDECAR_SUFFIX;
    this.meta = fs.existsSync(sidecar) ? parseMeta(fs.readFileSync(sidecar, 'utf8'), sidecar) : undefined;
    this.dtype = this.meta?.dtype ?? opts.dtype ?? 'uint16';
    const bpt = bytesPerToken(this.dtype);
    const size = fs.statSync(file).size;
    if (size % bpt !== 0) throw new Error(`token file ${file}: size ${size} is not a multiple of ${bpt} (${this.dtype})`);
    this.length = size / bpt;
    if (this.meta !== undefined && this.meta.count !== this.length) {
      throw new Error(`token file ${file}: sidecar count ${this.meta.count} != ${this.length} tokens on disk`);
    }
    this.fd = fs.openSync(file, 'r');
  }

  read(start: number, count: number, out?: Int32Array): Int32Array {
    checkRange(`NodeTokenFile(${this.path})`, this.length, start, count);
    if (this.fd === undefined) throw new Error(`NodeTokenFile(${this.path}).read: file is closed`);
    const bpt = bytesPerToken(this.dtype);
    const nbytes = count * bpt;
    if (this.scratch.byteLength < nbytes) this.scratch = new Uint8Array(nbytes);
    let got = 0;
    while (got < nbytes) {
      const n = fs.readSync(this.fd, this.scratch, got, nbytes - got, start * bpt + got);
      if (n === 0) throw new Error(`NodeTokenFile(${this.path}).read: unexpected end of file at byte ${start * bpt + got}`);
      got += n;
    }
    const dst = outBuffer(count, out);
    decodeTokens(this.scratch, this.dtype, count, dst);
    return dst;
  }

  close(): void {
    if (this.fd !== undefined) fs.closeSync(this.fd);
    this.fd = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Streams token ids into `path` (atomically: a temp file until close) and writes the sidecar. */
export class TokenFileWriter {
  readonly path: string;
  readonly dtype: TokenDType;
  readonly vocabSize: number;
  readonly tokenizer: string | undefined;
  count = 0;
  private out: AtomicFileWriter;

  constructor(file: string, vocabSize: number, tokenizer?: string) {
    this.path = file;
    this.vocabSize = vocabSize;
    this.dtype = dtypeForVocab(vocabSize);
    this.tokenizer = tokenizer;
    this.out = new AtomicFileWriter(file);
  }

  append(ids: ArrayLike<number>): void {
    this.out.write(encodeTokens(ids, this.dtype, this.vocabSize));
    this.count += ids.length;
  }

  /** Finishes the file; returns its sidecar. */
  close(): TokenFileMeta {
    this.out.commit();
    const meta = makeMeta(this.dtype, this.vocabSize, this.count, this.tokenizer);
    writeJSONAtomic(this.path + SIDECAR_SUFFIX, meta);
    return meta;
  }

  abort(): void {
    this.out.abort();
  }
}

/** Writes a whole token array as a token file (+ sidecar). */
export function writeTokenFile(file: string, ids: ArrayLike<number>, vocabSize: number, tokenizer?: string): TokenFileMeta {
  const w = new TokenFileWriter(file, vocabSize, tokenizer);
  try {
    w.append(ids);
  } catch (e) {
    w.abort();
    throw e;
  }
  return w.close();
}

export interface PrepareOptions {
  /** UTF-8 text file to tokenize. */
  input: string;
  /** Output directory; gets train.bin, val.bin and their .json sidecars. */
  outDir: string;
  /** Tokenizer function (kept abstract so this module does not depend on src/tokenizers). */
  encode: (text: string) => ArrayLike<number>;
  vocabSize: number;
  /** Recorded in the sidecar, e.g. 'gpt2' or 'char'. */
  tokenizer?: string;
  /** Fraction of the text (by bytes, snapped to a line start) that goes to val.bin. Default 0.1. */
  valFraction?: number;
  /** Bytes read per chunk; chunks are cut at line starts. Default 1 MiB. */
  chunkBytes?: number;
}

export interface PrepareResult {
  train: { path: string; count: number };
  val: { path: string; count: number };
  dtype: TokenDType;
}

/** Byte offset of the first line start at or after `pos` (the file size if there is none). */
function lineStartAtOrAfter(fd: number, pos: number, size: number): number {
  if (pos <= 0) return 0;
  const buf = new Uint8Array(64 * 1024);
  for (let at = pos - 1; at < size; at += buf.byteLength) {
    const n = fs.readSync(fd, buf, 0, Math.min(buf.byteLength, size - at), at);
    const i = buf.subarray(0, n).indexOf(0x0a);
    if (i >= 0) return at + i + 1;
  }
  return size;
}

/**
 * Where to cut a chunk: just before a non-space byte that starts a line, so newline runs stay whole and
 * no UTF-8 sequence or word is split (chunked encoding then matches whole-text encoding for tokenizers
 * whose pre-tokenizer breaks at line starts). Returns 0 when the buffer has no such point.
 */
export function findChunkCut(bytes: Uint8Array): number {
  for (let i = bytes.length - 1; i > 0; i--) {
    const b = bytes[i];
    const isSpace = b === 0x0a || b === 0x0d || b === 0x20 || b === 0x09;
    if (bytes[i - 1] === 0x0a && !isSpace) return i;
  }
  return 0;
}

/** Tokenizes bytes [from, to) of fd into `w`, chunk by chunk. */
function encodeRange(fd: number, from: number, to: number, chunk: number, encode: PrepareOptions['encode'], w: TokenFileWriter): void {
  const decoder = new TextDecoder('utf-8');
  let pending = new Uint8Array(0);
  for (let pos = from; pos < to || pending.length > 0; ) {
    const n = Math.min(chunk, to - pos);
    const buf = new Uint8Array(pending.length + n);
    buf.set(pending);
    if (n > 0) fs.readSync(fd, buf, pending.length, n, pos);
    pos += n;
    const last = pos >= to;
    // Without a safe cut point the buffer grows until one appears (or the range ends).
    const cut = last ? buf.length : findChunkCut(buf);
    if (cut === 0) {
      pending = buf;
      continue;
    }
    const text = decoder.decode(buf.subarray(0, cut));
    if (text.length > 0) w.append(encode(text));
    pending = buf.slice(cut);
    if (last) break;
  }
}

/** Tokenizes a text file in chunks into OUT/train.bin and OUT/val.bin (nanoGPT layout + sidecars). */
export function prepareTokenFiles(opts: PrepareOptions): PrepareResult {
  const valFraction = opts.valFraction ?? 0.1;
  if (!(valFraction >= 0 && valFraction < 1)) throw new Error(`prepareTokenFiles: valFraction must be in [0, 1), got ${valFraction}`);
  const chunk = opts.chunkBytes ?? 1 << 20;
  fs.mkdirSync(opts.outDir, { recursive: true });
  const fd = fs.openSync(opts.input, 'r');
  try {
    const size = fs.fstatSync(fd).size;
    const split = valFraction === 0 ? size : lineStartAtOrAfter(fd, Math.floor(size * (1 - valFraction)), size);
    const out = (name: string, from: number, to: number) => {
      const p = path.join(opts.outDir, name);
      const w = new TokenFileWriter(p, opts.vocabSize, opts.tokenizer);
      try {
        encodeRange(fd, from, to, chunk, opts.encode, w);
      } catch (e) {
        w.abort();
        throw e;
      }
      return { path: p, count: w.close().count };
    };
    const train = out('train.bin', 0, split);
    const val = out('val.bin', split, size);
    return { train, val, dtype: dtypeForVocab(opts.vocabSize) };
  } finally {
    fs.closeSync(fd);
  }
}

/** Opens DIR/train.bin and DIR/val.bin (as written by prepareTokenFiles or nanoGPT's prepare.py). */
export function openTokenSplits(dir: string, opts: OpenTokenFileOptions = {}): { train: NodeTokenFile; val: NodeTokenFile } {
  const train = new NodeTokenFile(path.join(dir, 'train.bin'), opts);
  try {
    return { train, val: new NodeTokenFile(path.join(dir, 'val.bin'), opts) };
  } catch (e) {
    train.close();
    throw e;
  }
}
