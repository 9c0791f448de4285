// Dtypes given to the creation functions and casts are checked before any backend sees them, so a typo
// fails the same way on every backend (it used to reach the allocator: "invalid size NaN" on native and
// wasm, and a tensor of dtype "int23" holding the letters of the name on the reference backend).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, DType } from '../../src/backend/backend.js';
import { ReferenceBackend } from '../../src/backend/reference/backend.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { createNativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { arange, full, ones, rand, randn, tensor, zeros } from '../../src/ops/index.js';
import { getBackend, setBackend, tidy } from '../../src/tensor/engine.js';

async function backends(): Promise<[string, Backend][]> {
  const list: [string, Backend][] = [['reference', new ReferenceBackend()]];
  list.push(['wasm', await createWasmBackend({ threads: 1 })]);
  const { addon } = loadNativeAddon();
  if (addon) list.push(['native', createNativeBackend(addon, { threads: 1 })]);
  return list;
}

const UNKNOWN = /unknown dtype "int23" \(float32, float16, bfloat16, int32, bool\)/;

test('unknown dtypes are refused by name on every backend, before allocation', async () => {
  const prev = getBackend();
  try {
    for (const [name, be] of await backends()) {
      setBackend(be);
      const bad = 'int23' as DType;
      const cases: [string, () => unknown][] = [
        ['zeros', () => zeros([2], bad)],
        ['zeros', () => zeros([2], { dtype: bad })],
        ['ones', () => ones([2], bad)],
        ['full', () => full([2], 3, bad)],
        ['arange', () => arange(0, 4, 1, bad)],
        ['tensor', () => tensor([1, 2], { dtype: bad })],
        ['tensor', () => tensor([1, 2], bad)],
        ['rand', () => rand([2], { dtype: bad })],
        ['randn', () => randn([2], { dtype: bad })],
        ['cast', () => tidy(() => zeros([2]).to(bad))],
      ];
      for (const [op, fn] of cases) {
        assert.throws(fn, (e: Error) => e.message.startsWith(`${op}: `) && UNKNOWN.test(e.message), `${name}: ${op}`);
      }
      assert.throws(() => zeros([2], 'int8'), /zeros: dtype "int8" is a storage type, not a tensor dtype/, name);
      assert.throws(() => zeros([2], 5 as unknown as DType), /zeros: argument 2 must be a dtype .* got 5/, name);
      assert.throws(() => full([2], 'x' as unknown as number), /full: value must be a number, got "x"/, name);
      assert.equal(be.bytesInUse(), 0, `${name}: nothing was allocated`);
    }
  } finally {
    setBackend(prev);
  }
});

test('zeros, ones, full and arange take a dtype or { dtype } options alike', () => {
  for (const [d, t] of [
    ['int32', zeros([2], { dtype: 'int32' })],
    ['int32', zeros([2], 'int32')],
    ['float16', ones([2], { dtype: 'float16' })],
    ['bool', full([2], 1, { dtype: 'bool' })],
    ['float32', arange(0, 3, 1, { dtype: 'float32' })],
    ['float32', zeros([2])],
    ['int32', arange(3)],
    ['bfloat16', randn([2], 'bfloat16')],
    ['float32', tensor([1.5], 'float32')],
  ] as const) {
    assert.equal(t.dtype, d);
    t.dispose();
  }
  const g = zeros([2], { requiresGrad: true });
  assert.equal(g.requiresGrad, true);
  g.dispose();
  assert.deepEqual(Array.from(full([3], 2, { dtype: 'int32' }).data()), [2, 2, 2]);
  assert.throws(() => zeros([2], { dtype: 'int32', requiresGrad: true }), /zeros: only floating-point tensors/);
});

test('rand and randn refuse integer dtypes (samples are not integers: randint)', () => {
  assert.throws(() => randn([8], { dtype: 'int32' }), /randn: dtype int32 is not floating-point .*randint/);
  assert.throws(() => rand([8], { dtype: 'bool' }), /rand: dtype bool is not floating-point .*randint/);
  assert.equal(randn([2], { dtype: 'float16' }).dtype, 'float16');
});
