import { test } from 'node:test';
import assert from 'node:assert/strict';

import { MAX_HEADER_BYTES, type RawTensor, parseSafetensors, serializeSafetensors } from '../../src/io/safetensors.js';

function sample(): RawTensor[] {
  return [
    { name: 'emb.weight', dtype: 'float32', shape: [3, 2], data: Float32Array.from([1, -2, 3.5, 0, 1e-8, -7]) },
    { name: 'h.bf16', dtype: 'bfloat16', shape: [3], data: Uint16Array.from([0x3f80, 0xbf80, 0x7f80]) },
    { name: 'h.f16', dtype: 'float16', shape: [1, 1], data: Uint16Array.from([0x3c00]) },
    { name: 'ids', dtype: 'int32', shape: [2], data: Int32Array.from([-5, 2147483647]) },
    { name: 'mask', dtype: 'bool', shape: [2, 2], data: Uint8Array.from([1, 0, 0, 1]) },
    { name: 'scalar', dtype: 'float32', shape: [], data: Float32Array.from([42]) },
    { name: 'empty', dtype: 'float32', shape: [0, 4], data: new Float32Array(0) },
  ];
}

const byName = (ts: RawTensor[]) => Object.fromEntries(ts.map((t) => [t.name, t]));

/** Builds a file from a raw header object and data bytes (for hostile-file tests). */
function rawFile(header: unknown, data: Uint8Array, headerLen?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, headerLen ?? json.length, true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('round trip of every dtype, with metadata', () => {
  const file = serializeSafetensors(sample(), { format: 'pt', note: 'hi' });
  const { tensors, metadata } = parseSafetensors(file);
  assert.deepEqual(metadata, { format: 'pt', note: 'hi' });
  const got = byName(tensors);
  for (const t of sample()) {
    assert.equal(got[t.name].dtype, t.dtype, t.name);
    assert.deepEqual(got[t.name].shape, t.shape, t.name);
    assert.deepEqual([...got[t.name].data], [...t.data], t.name);
    assert.equal(got[t.name].data.constructor, t.data.constructor, t.name);
  }
});

test('layout: 8-byte aligned data area, LE header length, names sorted widest dtype first', () => {
  const file = serializeSafetensors(sample());
  const n = new DataView(file.buffer).getUint32(0, true);
  assert.equal(n % 8, 0);
  const header = JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n)));
  assert.deepEqual(header['emb.weight'], { dtype: 'F32', shape: [3, 2], data_offsets: [0, 24] });
  for (const entry of Object.values(header) as { dtype: string; data_offsets: number[] }[]) {
    const size = { F32: 4, I32: 4, BF16: 2, F16: 2, BOOL: 1 }[entry.dtype]!;
    assert.equal(entry.data_offsets[0] % size, 0);
  }
});

test('copy: false returns views into the buffer; copy: true does not', () => {
  const file = serializeSafetensors(sample());
  const view = byName(parseSafetensors(file).tensors)['emb.weight'];
  assert.equal(view.data.buffer, file.buffer);
  const copied = byName(parseSafetensors(file, { copy: true }).tensors)['emb.weight'];
  assert.notEqual(copied.data.buffer, file.buffer);
});

test('unaligned buffers are realigned', () => {
  const file = serializeSafetensors(sample());
  const shifted = new Uint8Array(file.length + 1).subarray(1);
  shifted.set(file);
  assert.deepEqual([...byName(parseSafetensors(shifted).tensors)['emb.weight'].data], [...sample()[0].data]);
});

test('converted dtypes: I64 (range-checked), U8, I8, F64', () => {
  const data = new Uint8Array(8 * 2 + 2 + 2 + 8);
  const dv = new DataView(data.buffer);
  dv.setBigInt64(0, -3n, true);
  dv.setBigInt64(8, 2147483647n, true);
  data.set([200, 7], 16);
  new Int8Array(data.buffer, 18, 2).set([-100, 5]);
  dv.setFloat64(20, 0.25, true);
  const file = rawFile(
    {
      a: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
      b: { dtype: 'U8', shape: [2], data_offsets: [16, 18] },
      c: { dtype: 'I8', shape: [2], data_offsets: [18, 20] },
      d: { dtype: 'F64', shape: [1], data_offsets: [20, 28] },
    },
    data,
  );
  const t = byName(parseSafetensors(file).tensors);
  assert.deepEqual([t.a.dtype, ...t.a.data], ['int32', -3, 2147483647]);
  assert.deepEqual([t.b.dtype, ...t.b.data], ['int32', 200, 7]);
  assert.deepEqual([...t.c.data], [-100, 5]);
  assert.deepEqual([t.d.dtype, ...t.d.data], ['float32', 0.25]);

  dv.setBigInt64(8, 2147483648n, true);
  const big = rawFile(
    {
      a: { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
      pad: { dtype: 'U8', shape: [12], data_offsets: [16, 28] },
    },
    data,
  );
  assert.throws(
    () => parseSafetensors(big, { file: 'big.safetensors' }),
    /safetensors big\.safetensors: tensor "a": I64 element 1 = 2147483648 does not fit in int32/,
  );
});

// ----------------------------------------------------------------------------------------------------
// Hostile files: every one must fail with a clear message naming the file, tensor and field.

const DATA = new Uint8Array(16);
const ok = { w: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] } };

const CORRUPT: [string, () => Uint8Array, RegExp][] = [
  ['empty file', () => new Uint8Array(0), /bad\.st: file is 0 bytes, too short/],
  ['truncated length', () => new Uint8Array(5), /too short for the 8-byte header length/],
  [
    'truncated header',
    () => rawFile(ok, DATA).subarray(0, 20),
    /runs past the end of the 20-byte file \(truncated\?\)/,
  ],
  [
    'truncated data',
    () => rawFile(ok, DATA).subarray(0, rawFile(ok, DATA).length - 4),
    /"data_offsets" \[0, 16\] lies outside the 12-byte data area/,
  ],
  ['huge header length', () => rawFile(ok, DATA, 0xfffffff0), new RegExp(`exceeds the ${MAX_HEADER_BYTES}-byte limit`)],
  [
    '64-bit header length',
    () => {
      const f = rawFile(ok, DATA);
      f[7] = 1;
      return f;
    },
    /exceeds the .*-byte limit/,
  ],
  ['not JSON', () => rawFile('{"w": [', DATA), /header is not valid JSON/],
  ['not an object', () => rawFile('[1, 2]', DATA), /header must be a JSON object/],
  ['bad UTF-8', () => rawFile('{"\xff"}', DATA).map((b, i) => (i === 10 ? 0xff : b)), /not valid UTF-8|not valid JSON/],
  [
    'unknown dtype',
    () => rawFile({ w: { dtype: 'F8_E4M3', shape: [16], data_offsets: [0, 16] } }, DATA),
    /tensor "w": field "dtype" = "F8_E4M3" is not supported \(known: F64, F32/,
  ],
  [
    'missing dtype',
    () => rawFile({ w: { shape: [4], data_offsets: [0, 16] } }, DATA),
    /tensor "w": field "dtype" = undefined/,
  ],
  [
    'bad shape',
    () => rawFile({ w: { dtype: 'F32', shape: [2, -2], data_offsets: [0, 16] } }, DATA),
    /tensor "w": field "shape" must be a list of non-negative integers/,
  ],
  [
    'shape mismatch',
    () => rawFile({ w: { dtype: 'F32', shape: [3, 2], data_offsets: [0, 16] } }, DATA),
    /tensor "w": field "shape" \[3, 2\] of F32 needs 24 bytes but data_offsets span 16/,
  ],
  [
    'offsets out of range',
    () => rawFile({ w: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, DATA),
    /tensor "w": field "data_offsets" \[0, 32\] lies outside the 16-byte data area/,
  ],
  [
    'reversed offsets',
    () => rawFile({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, DATA),
    /field "data_offsets" \[8, 4\] lies outside/,
  ],
  [
    'bad offsets type',
    () => rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0] } }, DATA),
    /field "data_offsets" must be \[begin, end\]/,
  ],
  [
    'overlapping',
    () =>
      rawFile(
        {
          a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
          b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        },
        DATA,
      ),
    /tensor "b" \[8, 16\] overlaps tensor "a" \[0, 12\]/,
  ],
  [
    'gap',
    () =>
      rawFile(
        {
          a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
          b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] },
        },
        DATA,
      ),
    /4 bytes at data offset 4 \(after tensor "a" \[0, 4\]\) belong to no tensor/,
  ],
  [
    'trailing bytes',
    () => rawFile({ a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } }, DATA),
    /8 trailing bytes after tensor "a"/,
  ],
  ['entry not an object', () => rawFile({ w: 5 }, DATA), /tensor "w": entry must be an object/],
  ['metadata not strings', () => rawFile({ __metadata__: { n: 1 }, ...ok }, DATA), /__metadata__\.n must be a string/],
];

for (const [what, make, message] of CORRUPT) {
  test(`corrupt file: ${what}`, () => {
    assert.throws(
      () => parseSafetensors(make(), { file: 'bad.st' }),
      (e: unknown) => {
        assert.ok(e instanceof Error);
        assert.match(e.message, /^safetensors bad\.st: /);
        assert.match(e.message, message);
        return true;
      },
    );
  });
}

test('serialize refuses inconsistent tensors', () => {
  const t = (over: Partial<RawTensor>): RawTensor[] => [
    { name: 'x', dtype: 'float32', shape: [2], data: new Float32Array(2), ...over },
  ];
  assert.throws(() => serializeSafetensors(t({ shape: [3] })), /tensor "x": shape \[3\] has 3 elements but data has 2/);
  assert.throws(
    () => serializeSafetensors(t({ data: new Int32Array(2) })),
    /tensor "x": dtype float32 needs a Float32Array, got Int32Array/,
  );
  assert.throws(() => serializeSafetensors(t({ dtype: 'int16' as 'int32' })), /unknown dtype "int16"/);
  assert.throws(() => serializeSafetensors([...t({}), ...t({})]), /tensor "x": duplicate name/);
  assert.throws(() => serializeSafetensors(t({ name: '__metadata__' })), /invalid name/);
});

test('tensor names that are JavaScript object keys survive', () => {
  const ts: RawTensor[] = ['__proto__', 'constructor', 'toString'].map((name) => ({
    name,
    dtype: 'int32',
    shape: [1],
    data: Int32Array.from([7]),
  }));
  const back = parseSafetensors(serializeSafetensors(ts)).tensors;
  assert.deepEqual(back.map((t) => t.name).sort(), ['__proto__', 'constructor', 'toString']);
});

test('seeded fuzz: random byte flips and truncations fail only with safetensors errors', () => {
  const good = serializeSafetensors(sample(), { format: 'pt' });
  let seed = 12345;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
  for (let i = 0; i < 2000; i++) {
    let bytes = good.slice();
    for (let k = 0, flips = 1 + rand(4); k < flips; k++) bytes[rand(bytes.length)] = rand(256);
    if (i % 5 === 0) bytes = bytes.subarray(0, rand(bytes.length));
    try {
      const { tensors } = parseSafetensors(bytes);
      for (const t of tensors)
        assert.equal(
          t.data.length,
          t.shape.reduce((a, b) => a * b, 1),
        );
    } catch (e) {
      assert.ok(e instanceof Error && e.message.startsWith('safetensors <buffer>: '), String(e));
    }
  }
});
