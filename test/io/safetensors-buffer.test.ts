// Unaligned tensors in a Node Buffer: the realigning copy must copy (Buffer#slice is a view of the whole pool).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSafetensors } from '../../src/io/safetensors.js';

/** header {u8: U8[3], f: F32[2], h: F16[1]}: f starts at data offset 3 and h at 11, both unaligned */
function unalignedFile(): Uint8Array {
  const header = {
    __metadata__: { format: 'pt' },
    u8: { dtype: 'U8', shape: [3], data_offsets: [0, 3] },
    f: { dtype: 'F32', shape: [2], data_offsets: [3, 11] },
    h: { dtype: 'F16', shape: [1], data_offsets: [11, 13] },
  };
  let text = JSON.stringify(header);
  text += ' '.repeat((8 - (text.length % 8)) % 8);
  const data = new Uint8Array(13);
  const dv = new DataView(data.buffer);
  data.set([7, 8, 255], 0);
  dv.setFloat32(3, 1.5, true);
  dv.setFloat32(7, -2.25, true);
  dv.setUint16(11, 0x3800, true); // 0.5 in float16
  const out = new Uint8Array(8 + text.length + data.length);
  new DataView(out.buffer).setUint32(0, text.length, true);
  out.set(new TextEncoder().encode(text), 8);
  out.set(data, 8 + text.length);
  return out;
}

test('unaligned tensors decode correctly from a Node Buffer (as readFileSync returns), copy or not', () => {
  const file = unalignedFile();
  // a Buffer inside a larger pool, as small readFileSync results are
  const pool = Buffer.alloc(4096, 0xaa);
  const buf = pool.subarray(64, 64 + file.length);
  buf.set(file);
  for (const input of [file, buf]) {
    for (const copy of [false, true]) {
      const t = Object.fromEntries(parseSafetensors(input, { copy }).tensors.map((x) => [x.name, x]));
      assert.deepEqual(Array.from(t.u8.data), [7, 8, 255]);
      assert.deepEqual(Array.from(t.f.data), [1.5, -2.25]);
      assert.deepEqual(Array.from(t.h.data), [0x3800]);
    }
  }
});
