// GGUF (version 3), the single-file model format of ggml / llama.cpp: a writer and a reader.
// Spec: github.com/ggerganov/ggml docs/gguf.md. Little-endian throughout:
//   magic "GGUF" | version u32 | tensor count u64 | metadata count u64
//   metadata: key (string) | value type u32 | value       (string = u64 byte length + UTF-8 bytes;
//             array = item type u32 | u64 count | items)
//   tensor infos: name (string) | n_dims u32 | ne[n_dims] u64 | ggml type u32 | offset u64
//   padding to `general.alignment` (default 32) | tensor data, each tensor at an aligned offset
// ne[0] is the innermost (contiguous) axis: a row-major PyTorch weight [out, in] is ne = [in, out].
// Browser-safe (DataView / TextEncoder only). Tensor types written here: F32, F16, BF16.

/** metadata value types, with their GGUF codes */
export const GGUF_VALUE_TYPES = {
  uint8: 0,
  int8: 1,
  uint16: 2,
  int16: 3,
  uint32: 4,
  int32: 5,
  float32: 6,
  bool: 7,
  string: 8,
  array: 9,
  uint64: 10,
  int64: 11,
  float64: 12,
} as const;

export type GgufScalarType = Exclude<keyof typeof GGUF_VALUE_TYPES, 'array'>;
type Scalar = number | bigint | boolean | string;

export type GgufValue =
  { type: GgufScalarType; value: Scalar } | { type: 'array'; itemType: GgufScalarType; values: readonly Scalar[] };

/** ggml tensor types this module reads and writes (code, bytes per element) */
export const GGML_TYPES = { F32: { code: 0, bytes: 4 }, F16: { code: 1, bytes: 2 }, BF16: { code: 30, bytes: 2 } };
export type GgmlType = keyof typeof GGML_TYPES;

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the innermost axis */
  dims: readonly number[];
  type: GgmlType;
  /** F32: Float32Array; F16 / BF16: the raw 16-bit patterns */
  data: Float32Array | Uint16Array;
}

export interface GgufModel {
  /** in file order */
  metadata: ReadonlyMap<string, GgufValue>;
  tensors: readonly GgufTensor[];
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const VERSION = 3;

// shorthands for building metadata
export const gguf = {
  u32: (v: number): GgufValue => ({ type: 'uint32', value: v }),
  i32: (v: number): GgufValue => ({ type: 'int32', value: v }),
  f32: (v: number): GgufValue => ({ type: 'float32', value: v }),
  bool: (v: boolean): GgufValue => ({ type: 'bool', value: v }),
  str: (v: string): GgufValue => ({ type: 'string', value: v }),
  array: (itemType: GgufScalarType, values: readonly Scalar[]): GgufValue => ({ type: 'array', itemType, values }),
};

// ---- writing ----

const SCALAR_BYTES: Record<Exclude<GgufScalarType, 'string' | 'bool'>, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
  uint64: 8,
  int64: 8,
};

/** a growing little-endian byte buffer */
class Out {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  length = 0;
  private static readonly enc = new TextEncoder();

  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const next = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      next.set(this.buf.subarray(0, this.length));
      [this.buf, this.dv] = [next, new DataView(next.buffer)];
    }
    const at = this.length;
    this.length += n;
    return at;
  }

  // the position is taken before `this.dv` is read: room() may replace the buffer
  u8(v: number): void {
    const at = this.room(1);
    this.dv.setUint8(at, v);
  }
  u32(v: number): void {
    const at = this.room(4);
    this.dv.setUint32(at, v, true);
  }
  u64(v: number | bigint): void {
    const at = this.room(8);
    this.dv.setBigUint64(at, BigInt(v), true);
  }
  scalar(t: GgufScalarType, v: Scalar, key: string): void {
    if (t === 'string') return this.str(String(v));
    if (t === 'bool') return this.u8(v ? 1 : 0);
    if (typeof v !== 'number' && typeof v !== 'bigint')
      throw new Error(`gguf: metadata "${key}" (${t}) needs a number, got ${typeof v}`);
    const at = this.room(SCALAR_BYTES[t]);
    const dv = this.dv;
    const n = Number(v);
    switch (t) {
      case 'uint8':
        return dv.setUint8(at, n);
      case 'int8':
        return dv.setInt8(at, n);
      case 'uint16':
        return dv.setUint16(at, n, true);
      case 'int16':
        return dv.setInt16(at, n, true);
      case 'uint32':
        return dv.setUint32(at, n, true);
      case 'int32':
        return dv.setInt32(at, n, true);
      case 'float32':
        return dv.setFloat32(at, n, true);
      case 'float64':
        return dv.setFloat64(at, n, true);
      case 'uint64':
        return dv.setBigUint64(at, BigInt(v), true);
      case 'int64':
        return dv.setBigInt64(at, BigInt(v), true);
      default:
        return t satisfies never;
    }
  }
  str(s: string): void {
    const b = Out.enc.encode(s);
    this.u64(b.length);
    this.bytes(b);
  }
  bytes(b: Uint8Array): void {
    const at = this.room(b.length);
    this.buf.set(b, at);
  }
  pad(align: number): void {
    this.room((align - (this.length % align)) % align);
  }
  result(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function checkTensor(t: GgufTensor): void {
  const spec = GGML_TYPES[t.type];
  if (!spec)
    throw new Error(
      `gguf: tensor "${t.name}" has type ${t.type}; written types are ${Object.keys(GGML_TYPES).join(', ')}`,
    );
  const n = t.dims.reduce((a, b) => a * b, 1);
  if (t.dims.length < 1 || t.dims.length > 4 || t.dims.some((d) => !Number.isInteger(d) || d < 1))
    throw new Error(`gguf: tensor "${t.name}" dims [${t.dims.join(', ')}] must be 1 to 4 positive integers`);
  const want = t.type === 'F32' ? Float32Array : Uint16Array;
  if (!(t.data instanceof want) || t.data.length !== n)
    throw new Error(
      `gguf: tensor "${t.name}" (${t.type}, dims [${t.dims.join(', ')}]) needs a ${want.name} of ${n} elements`,
    );
}

/** the whole file as bytes; `general.alignment` (uint32) in the metadata sets the alignment (default 32) */
export function writeGguf(model: GgufModel): Uint8Array {
  const a = model.metadata.get('general.alignment');
  const alignment = a === undefined ? 32 : a.type === 'uint32' ? Number(a.value) : NaN;
  if (!Number.isInteger(alignment) || alignment < 1 || alignment % 8 !== 0)
    throw new Error(`gguf: general.alignment must be a positive multiple of 8, got ${alignment}`);
  const names = new Set<string>();
  for (const t of model.tensors) {
    checkTensor(t);
    if (names.has(t.name)) throw new Error(`gguf: tensor name "${t.name}" appears twice`);
    names.add(t.name);
  }
  const o = new Out();
  o.u32(MAGIC);
  o.u32(VERSION);
  o.u64(model.tensors.length);
  o.u64(model.metadata.size);
  for (const [key, v] of model.metadata) writeValue(o, key, v);
  let offset = 0;
  const offsets: number[] = [];
  for (const t of model.tensors) {
    o.str(t.name);
    o.u32(t.dims.length);
    for (const d of t.dims) o.u64(d);
    o.u32(GGML_TYPES[t.type].code);
    o.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  o.pad(alignment);
  model.tensors.forEach((t) => {
    o.bytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    o.pad(alignment);
  });
  return o.result();
}

function writeValue(o: Out, key: string, v: GgufValue): void {
  o.str(key);
  o.u32(GGUF_VALUE_TYPES[v.type]);
  if (v.type !== 'array') return o.scalar(v.type, v.value, key);
  o.u32(GGUF_VALUE_TYPES[v.itemType]);
  o.u64(v.values.length);
  for (const x of v.values) o.scalar(v.itemType, x, key);
}

// ---- reading ----

const TYPE_NAMES = Object.fromEntries(Object.entries(GGUF_VALUE_TYPES).map(([k, c]) => [c, k])) as Record<
  number,
  keyof typeof GGUF_VALUE_TYPES
>;
const GGML_NAMES = Object.fromEntries(Object.entries(GGML_TYPES).map(([k, s]) => [s.code, k])) as Record<
  number,
  GgmlType
>;

class In {
  private readonly dv: DataView;
  at = 0;
  private static readonly dec = new TextDecoder('utf-8', { fatal: true });

  constructor(private readonly bytes: Uint8Array) {
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private take(n: number, what: string): number {
    if (this.at + n > this.bytes.length)
      throw new Error(`gguf: file ends at byte ${this.bytes.length} while reading ${what} at byte ${this.at}`);
    const at = this.at;
    this.at += n;
    return at;
  }
  u32(what: string): number {
    return this.dv.getUint32(this.take(4, what), true);
  }
  u64(what: string): number {
    const v = this.dv.getBigUint64(this.take(8, what), true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`gguf: ${what} is ${v}, too large`);
    return Number(v);
  }
  str(what: string): string {
    const n = this.u64(`${what} length`);
    const at = this.take(n, what);
    return In.dec.decode(this.bytes.subarray(at, at + n));
  }
  scalar(t: GgufScalarType, what: string): Scalar {
    switch (t) {
      case 'uint8':
        return this.dv.getUint8(this.take(1, what));
      case 'int8':
        return this.dv.getInt8(this.take(1, what));
      case 'uint16':
        return this.dv.getUint16(this.take(2, what), true);
      case 'int16':
        return this.dv.getInt16(this.take(2, what), true);
      case 'uint32':
        return this.dv.getUint32(this.take(4, what), true);
      case 'int32':
        return this.dv.getInt32(this.take(4, what), true);
      case 'float32':
        return this.dv.getFloat32(this.take(4, what), true);
      case 'float64':
        return this.dv.getFloat64(this.take(8, what), true);
      case 'uint64':
        return this.dv.getBigUint64(this.take(8, what), true);
      case 'int64':
        return this.dv.getBigInt64(this.take(8, what), true);
      case 'bool':
        return this.dv.getUint8(this.take(1, what)) !== 0;
      case 'string':
        return this.str(what);
      default:
        return t satisfies never;
    }
  }
}

function valueType(code: number, key: string): keyof typeof GGUF_VALUE_TYPES {
  const t = TYPE_NAMES[code];
  if (t === undefined) throw new Error(`gguf: metadata "${key}" has unknown value type ${code}`);
  return t;
}

function readValue(r: In, key: string): GgufValue {
  const type = valueType(r.u32(`type of "${key}"`), key);
  if (type !== 'array') return { type, value: r.scalar(type, `"${key}"`) };
  const itemType = valueType(r.u32(`item type of "${key}"`), key);
  if (itemType === 'array') throw new Error(`gguf: metadata "${key}" is an array of arrays (not supported)`);
  const n = r.u64(`length of "${key}"`);
  const values: Scalar[] = [];
  for (let i = 0; i < n; i++) values.push(r.scalar(itemType, `"${key}"[${i}]`));
  return { type, itemType, values };
}

/** parses a GGUF file (F32 / F16 / BF16 tensors); tensor data are copies, so `bytes` may be reused */
export function readGguf(bytes: Uint8Array): GgufModel & { version: number; alignment: number } {
  const r = new In(bytes);
  if (r.u32('magic') !== MAGIC) throw new Error('gguf: not a GGUF file (the magic bytes are not "GGUF")');
  const version = r.u32('version');
  if (version !== 2 && version !== 3) throw new Error(`gguf: version ${version} is not supported (2 and 3 are)`);
  const [nt, nkv] = [r.u64('tensor count'), r.u64('metadata count')];
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < nkv; i++) {
    const key = r.str(`metadata key ${i}`);
    metadata.set(key, readValue(r, key));
  }
  const a = metadata.get('general.alignment');
  const alignment = a && a.type !== 'array' ? Number(a.value) : 32;
  const infos = Array.from({ length: nt }, (_, i) => {
    const name = r.str(`tensor ${i} name`);
    const nd = r.u32(`tensor "${name}" n_dims`);
    if (nd < 1 || nd > 4) throw new Error(`gguf: tensor "${name}" has ${nd} dims (1 to 4 allowed)`);
    const dims = Array.from({ length: nd }, () => r.u64(`tensor "${name}" dim`));
    const code = r.u32(`tensor "${name}" type`);
    const type = GGML_NAMES[code];
    if (type === undefined) throw new Error(`gguf: tensor "${name}" has ggml type ${code} (readable: F32, F16, BF16)`);
    return { name, dims, type, offset: r.u64(`tensor "${name}" offset`) };
  });
  const start = Math.ceil(r.at / alignment) * alignment;
  const tensors = infos.map(({ name, dims, type, offset }): GgufTensor => {
    const n = dims.reduce((x, y) => x * y, 1);
    const at = start + offset;
    const len = n * GGML_TYPES[type].bytes;
    if (offset % alignment !== 0)
      throw new Error(`gguf: tensor "${name}" offset ${offset} is not a multiple of ${alignment}`);
    if (at + len > bytes.length)
      throw new Error(`gguf: tensor "${name}" data [${at}, ${at + len}) runs past the file end ${bytes.length}`);
    const copy = bytes.slice(at, at + len);
    const data = type === 'F32' ? new Float32Array(copy.buffer, 0, n) : new Uint16Array(copy.buffer, 0, n);
    return { name, dims, type, data };
  });
  return { version, alignment, metadata, tensors };
}
