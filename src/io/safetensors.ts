// safetensors reading and writing, pure TypeScript over Uint8Array (runs in browsers).
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   { "<name>": { "dtype": "F32", "shape": [..], "data_offsets": [begin, end] }, ..., "__metadata__": {..} }
// then the data area; offsets are relative to its start. Files come from strangers, so every number in
// the header is checked before it is used: the header length against the file and a sane maximum, each
// tensor's offsets against the data area, the byte count against shape x dtype size, and the tensors must
// tile the data area exactly (no overlaps, no gaps), as the reference implementation demands.
//
// Tensors come back as `RawTensor`s: a typed array in one of the tensor layer's dtypes. I64, U8 and I8
// are widened/narrowed to int32 (I64 with a range check), F64 is narrowed to float32.

import type { DType } from '../backend/backend.js';

export type RawArray = Float32Array | Uint16Array | Int32Array | Uint8Array | Int8Array;

/** A tensor as it travels between files and the tensor layer. float16/bfloat16 are raw 16-bit patterns. */
export interface RawTensor {
  name: string;
  dtype: DType;
  shape: number[];
  data: RawArray;
}

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype this reader accepts (the table doubles as the list of known dtypes). */
export const SAFETENSORS_DTYPE_BYTES: { [D in SafetensorsDType]: number } = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** What each stored dtype becomes in memory. */
const TARGET: { [D in SafetensorsDType]: DType } = {
  F64: 'float32',
  F32: 'float32',
  F16: 'float16',
  BF16: 'bfloat16',
  I64: 'int32',
  I32: 'int32',
  I8: 'int32',
  U8: 'int32',
  BOOL: 'bool',
};

/** What each in-memory dtype is stored as. */
export const SAFETENSORS_DTYPE_OF: { [D in DType]: SafetensorsDType } = {
  float32: 'F32',
  float16: 'F16',
  bfloat16: 'BF16',
  int32: 'I32',
  bool: 'BOOL',
  int8: 'I8',
};

/** Headers larger than this are refused (the reference implementation's limit). */
export const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's header entry; `begin`/`end` are byte offsets into the data area. */
export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** entries sorted by `begin` */
  entries: SafetensorsEntry[];
  metadata: Record<string, string> | null;
  /** absolute byte offset of the data area (8 + header length) */
  dataStart: number;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function fail(file: string, what: string): never {
  throw new Error(`safetensors ${file}: ${what}`);
}

// ----------------------------------------------------------------------------------------------------
// Reading

/** Reads the 8-byte header length and checks it against the file size and MAX_HEADER_BYTES. */
export function readHeaderLength(first8: Uint8Array, fileSize: number, file = '<buffer>'): number {
  if (fileSize < 8 || first8.length < 8)
    fail(file, `file is ${fileSize} bytes, too short for the 8-byte header length`);
  const view = new DataView(first8.buffer, first8.byteOffset, 8);
  const lo = view.getUint32(0, true);
  const hi = view.getUint32(4, true);
  const n = hi * 2 ** 32 + lo;
  if (hi !== 0 || n > MAX_HEADER_BYTES) fail(file, `header length ${n} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  if (n < 2) fail(file, `header length ${n} is too small for a JSON object`);
  if (8 + n > fileSize) fail(file, `header length ${n} runs past the end of the ${fileSize}-byte file (truncated?)`);
  return n;
}

/** Parses and validates the JSON header. `dataLength` is the size of the data area in bytes. */
export function parseSafetensorsHeader(
  headerBytes: Uint8Array,
  dataLength: number,
  file = '<buffer>',
): SafetensorsHeader {
  const json = parseHeaderJson(headerBytes, file);
  let metadata: Record<string, string> | null = null;
  const entries: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(json)) {
    if (name === '__metadata__') metadata = parseMetadata(raw, file);
    else entries.push(parseEntry(name, raw, dataLength, file));
  }
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  checkTiling(entries, dataLength, file);
  return { entries, metadata, dataStart: 8 + headerBytes.length };
}

function parseHeaderJson(bytes: Uint8Array, file: string): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    fail(file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail(file, 'header must be a JSON object');
  return json as Record<string, unknown>;
}

function parseMetadata(raw: unknown, file: string): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    fail(file, '__metadata__ must be an object of strings');
  for (const [k, v] of Object.entries(raw)) {
    if (typeof v !== 'string') fail(file, `__metadata__.${k} must be a string, got ${JSON.stringify(v)}`);
  }
  return { ...(raw as Record<string, string>) };
}

function parseEntry(name: string, raw: unknown, dataLength: number, file: string): SafetensorsEntry {
  const where = `tensor "${name}"`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(file, `${where}: entry must be an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !(dtype in SAFETENSORS_DTYPE_BYTES)) {
    fail(
      file,
      `${where}: field "dtype" = ${JSON.stringify(dtype)} is not supported (known: ${Object.keys(SAFETENSORS_DTYPE_BYTES).join(', ')})`,
    );
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(file, `${where}: field "shape" must be a list of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    fail(
      file,
      `${where}: field "data_offsets" must be [begin, end] non-negative integers, got ${JSON.stringify(offsets)}`,
    );
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataLength) {
    fail(file, `${where}: field "data_offsets" [${begin}, ${end}] lies outside the ${dataLength}-byte data area`);
  }
  const elements = (shape as number[]).reduce((a, b) => a * b, 1);
  const bytes = elements * SAFETENSORS_DTYPE_BYTES[dtype as SafetensorsDType];
  if (bytes !== end - begin) {
    fail(
      file,
      `${where}: field "shape" [${shape.join(', ')}] of ${dtype} needs ${bytes} bytes but data_offsets span ${end - begin}`,
    );
  }
  return { name, dtype: dtype as SafetensorsDType, shape: [...(shape as number[])], begin, end };
}

/** Tensors must cover the data area exactly once, in order. */
function checkTiling(sorted: SafetensorsEntry[], dataLength: number, file: string): void {
  let pos = 0;
  let prev = '(start of data)';
  for (const e of sorted) {
    if (e.begin < pos) fail(file, `tensor "${e.name}" [${e.begin}, ${e.end}] overlaps ${prev}`);
    if (e.begin > pos) fail(file, `${e.begin - pos} bytes at data offset ${pos} (after ${prev}) belong to no tensor`);
    pos = e.end;
    prev = `tensor "${e.name}" [${e.begin}, ${e.end}]`;
  }
  if (pos !== dataLength)
    fail(file, `data area has ${dataLength - pos} trailing bytes after ${prev} that belong to no tensor`);
}

/** Turns one tensor's bytes (exactly end - begin of them) into a RawTensor. With `copy: false` the result
 * may be a view into `bytes` when alignment allows. */
export function decodeTensor(entry: SafetensorsEntry, bytes: Uint8Array, file = '<buffer>', copy = false): RawTensor {
  if (bytes.length !== entry.end - entry.begin)
    fail(file, `tensor "${entry.name}": got ${bytes.length} bytes, expected ${entry.end - entry.begin}`);
  const n = bytes.length / SAFETENSORS_DTYPE_BYTES[entry.dtype];
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const base = { name: entry.name, dtype: TARGET[entry.dtype], shape: [...entry.shape] };
  switch (entry.dtype) {
    case 'F32':
      return { ...base, data: typed(bytes, n, 4, copy, Float32Array, (i) => dv.getFloat32(4 * i, true)) };
    case 'F16':
    case 'BF16':
      return { ...base, data: typed(bytes, n, 2, copy, Uint16Array, (i) => dv.getUint16(2 * i, true)) };
    case 'I32':
      return { ...base, data: typed(bytes, n, 4, copy, Int32Array, (i) => dv.getInt32(4 * i, true)) };
    case 'BOOL':
      return { ...base, data: Uint8Array.from(bytes, (b) => (b ? 1 : 0)) };
    case 'U8':
      return { ...base, data: Int32Array.from(bytes) };
    case 'I8':
      return { ...base, data: Int32Array.from(new Int8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength)) };
    case 'F64':
      return { ...base, data: Float32Array.from({ length: n }, (_, i) => dv.getFloat64(8 * i, true)) };
    case 'I64':
      return { ...base, data: int64ToInt32(dv, n, entry.name, file) };
    default:
      return entry.dtype satisfies never;
  }
}

type TypedCtor<T> = { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; new (length: number): T };

/** Zero-copy view when aligned on a little-endian host, else an element-by-element decode. */
function typed<T extends Float32Array | Uint16Array | Int32Array>(
  bytes: Uint8Array,
  n: number,
  size: number,
  copy: boolean,
  Ctor: TypedCtor<T>,
  get: (i: number) => number,
): T {
  if (LITTLE_ENDIAN && bytes.byteOffset % size === 0) {
    const view = new Ctor(bytes.buffer, bytes.byteOffset, n);
    return copy ? (view.slice() as T) : view;
  }
  // unaligned: one copy realigns it (`new Uint8Array(bytes)`, not `bytes.slice()`: a Node Buffer's slice is a view)
  if (LITTLE_ENDIAN) return new Ctor(new Uint8Array(bytes).buffer, 0, n);
  const out = new Ctor(n);
  for (let i = 0; i < n; i++) out[i] = get(i);
  return out;
}

function int64ToInt32(dv: DataView, n: number, name: string, file: string): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const v = dv.getBigInt64(8 * i, true);
    if (v > 2147483647n || v < -2147483648n)
      fail(file, `tensor "${name}": I64 element ${i} = ${v} does not fit in int32`);
    out[i] = Number(v);
  }
  return out;
}

export interface ParsedSafetensors {
  tensors: RawTensor[];
  metadata: Record<string, string> | null;
}

/** Parses a whole safetensors file held in memory. With `copy: false` (default) tensors may alias `buf`. */
export function parseSafetensors(
  buf: Uint8Array | ArrayBuffer,
  opts: { file?: string; copy?: boolean } = {},
): ParsedSafetensors {
  const bytes = buf instanceof Uint8Array ? buf : new Uint8Array(buf);
  const file = opts.file ?? '<buffer>';
  const n = readHeaderLength(bytes.subarray(0, 8), bytes.length, file);
  const header = parseSafetensorsHeader(bytes.subarray(8, 8 + n), bytes.length - 8 - n, file);
  const tensors = header.entries.map((e) =>
    decodeTensor(e, bytes.subarray(header.dataStart + e.begin, header.dataStart + e.end), file, opts.copy ?? false),
  );
  return { tensors, metadata: header.metadata };
}

// ----------------------------------------------------------------------------------------------------
// Writing

const ARRAY_OF: { [D in DType]: new (n: number) => RawArray } = {
  float32: Float32Array,
  float16: Uint16Array,
  bfloat16: Uint16Array,
  int32: Int32Array,
  bool: Uint8Array,
  int8: Int8Array,
};

function checkTensor(t: RawTensor, seen: Set<string>): void {
  const where = `serializeSafetensors: tensor "${t.name}"`;
  if (typeof t.name !== 'string' || t.name === '' || t.name === '__metadata__')
    throw new Error(`${where}: invalid name`);
  if (seen.has(t.name)) throw new Error(`${where}: duplicate name`);
  seen.add(t.name);
  if (!(t.dtype in ARRAY_OF))
    throw new Error(`${where}: unknown dtype ${JSON.stringify(t.dtype)} (known: ${Object.keys(ARRAY_OF).join(', ')})`);
  if (!(t.data instanceof ARRAY_OF[t.dtype])) {
    throw new Error(`${where}: dtype ${t.dtype} needs a ${ARRAY_OF[t.dtype].name}, got ${t.data?.constructor?.name}`);
  }
  if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new Error(`${where}: bad shape [${t.shape.join(', ')}]`);
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (n !== t.data.length)
    throw new Error(`${where}: shape [${t.shape.join(', ')}] has ${n} elements but data has ${t.data.length}`);
}

/** Little-endian bytes of a tensor (a view on little-endian hosts). */
export function tensorBytes(t: RawTensor): Uint8Array {
  const raw = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  if (LITTLE_ENDIAN || t.data.BYTES_PER_ELEMENT === 1) return raw;
  const out = new Uint8Array(raw.length);
  const size = t.data.BYTES_PER_ELEMENT;
  for (let i = 0; i < raw.length; i += size) for (let j = 0; j < size; j++) out[i + j] = raw[i + size - 1 - j];
  return out;
}

export interface SafetensorsLayout {
  /** 8-byte length + padded JSON header */
  header: Uint8Array;
  /** tensors in data order (widest element first, so every tensor stays aligned) */
  order: RawTensor[];
  /** total file size */
  size: number;
}

/** Plans a file: header bytes and tensor order. Lets callers stream the data without one big buffer. */
export function safetensorsLayout(
  tensors: readonly RawTensor[],
  metadata: Record<string, string> | null = null,
): SafetensorsLayout {
  const seen = new Set<string>();
  for (const t of tensors) checkTensor(t, seen);
  const order = [...tensors].sort((a, b) => b.data.BYTES_PER_ELEMENT - a.data.BYTES_PER_ELEMENT);
  const json: Record<string, unknown> = Object.create(null); // a tensor named "__proto__" stays a key
  if (metadata) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new Error(`serializeSafetensors: metadata "${k}" must be a string`);
    json.__metadata__ = metadata;
  }
  let pos = 0;
  for (const t of order) {
    json[t.name] = {
      dtype: SAFETENSORS_DTYPE_OF[t.dtype],
      shape: t.shape,
      data_offsets: [pos, pos + t.data.byteLength],
    };
    pos += t.data.byteLength;
  }
  let text = JSON.stringify(json);
  const encoded = new TextEncoder().encode(text);
  text += ' '.repeat((8 - (encoded.length % 8)) % 8); // pad so the data area starts 8-byte aligned
  const body = new TextEncoder().encode(text);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setUint32(0, body.length, true);
  header.set(body, 8);
  return { header, order, size: header.length + pos };
}

/** Serializes tensors (and string metadata) into one safetensors file. */
export function serializeSafetensors(
  tensors: readonly RawTensor[],
  metadata: Record<string, string> | null = null,
): Uint8Array {
  const layout = safetensorsLayout(tensors, metadata);
  const out = new Uint8Array(layout.size);
  out.set(layout.header, 0);
  let pos = layout.header.length;
  for (const t of layout.order) {
    out.set(tensorBytes(t), pos);
    pos += t.data.byteLength;
  }
  return out;
}
