// Batch invariance of the quantized matmul (q8_0 / q4_0 weights): a row's output must not depend on how many
// rows share the call (M), on which rows they are, or on the thread count, on every native CPU target and both
// WebAssembly builds. The engine flattens a step's tokens into one M (concurrent decodes, prefill chunks,
// speculative verify rows), so anything else makes a request's greedy tokens depend on its neighbours.
// Each row of every M-row product must equal, bit for bit, the same row computed alone (M = 1, one thread).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { View } from '../../src/backend/backend.js';
import { quantizeRows } from '../../src/backend/reference/quant.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { relaxedSimdSupported } from '../../src/backend/wasm/module.js';
import { nativeBackend, nativeTargets } from './native-targets.js';

import { Ctx, rng, type FastBackend } from './kernel-helpers.js';

/** one target, on 1 and 2 threads (2 with forceParallel: even small shapes are split) */
const groups: { key: string; make: (threads: number) => Promise<FastBackend> }[] = [];
for (const t of nativeTargets()) groups.push({ key: `native-${t.name}`, make: async (n) => nativeBackend(t, n) });
for (const variant of ['relaxed', 'simd'] as const) {
  if (variant === 'relaxed' && !relaxedSimdSupported()) continue;
  groups.push({
    key: `wasm-${variant}`,
    make: (threads) => createWasmBackend({ variant, threads, forceParallel: threads > 1 }),
  });
}

const backends = new Map<string, FastBackend>();
before(async () => {
  for (const g of groups) for (const n of [1, 2]) backends.set(`${g.key}/${n}`, await g.make(n));
});
after(async () => {
  for (const be of backends.values()) await be.dispose?.();
});

const ROWS = 64;
const MS = [1, 2, 3, 4, 5, 8, 17, 64];

/** out rows of x[first, first + M) @ dequant(W)^T */
function run(
  be: FastBackend,
  bits: 4 | 8,
  bytes: Uint8Array,
  x: Float32Array,
  N: number,
  K: number,
  first: number,
  M: number,
): Float32Array {
  const ctx = new Ctx(be);
  try {
    const words = new Int32Array(Math.ceil(bytes.length / 4));
    new Uint8Array(words.buffer).set(bytes);
    const w = ctx.ints([words.length], Array.from(words));
    const xv = ctx.t([M, K], null);
    (be.view(xv.buf) as Float32Array).set(x.subarray(first * K, (first + M) * K));
    const out: View = ctx.t([M, N], null);
    ctx.k.quantMatmul(xv, w, out, { M, N, K, bits });
    return ctx.arr(out);
  } finally {
    ctx.done();
  }
}

for (const g of groups) {
  describe(g.key, () => {
    for (const bits of [8, 4] as const) {
      test(`q${bits}_0: every row of an M-row product equals its M = 1 result bit for bit (M ${MS.join(', ')}; 1 and 2 threads)`, () => {
        const r = rng(bits * 7 + 3);
        for (const [N, K] of [
          [37, 64],
          [130, 256],
          [9, 768],
          [67, 96],
        ] as const) {
          const w = Float32Array.from({ length: N * K }, () => r());
          const bytes = quantizeRows(w, N, K, bits);
          // rows of very different magnitudes (as in a real batch), so shared scales would show
          const x = Float32Array.from({ length: ROWS * K }, (_, i) => r() * (1 + (Math.floor(i / K) % 5) * 3));
          const single = backends.get(`${g.key}/1`)!;
          const alone: Float32Array[] = [];
          for (let i = 0; i < ROWS; i++) alone.push(run(single, bits, bytes, x, N, K, i, 1));
          for (const threads of [1, 2]) {
            const be = backends.get(`${g.key}/${threads}`)!;
            for (const M of MS) {
              for (const first of M === ROWS ? [0] : [0, ROWS - M, Math.floor((ROWS - M) / 2)]) {
                const got = run(be, bits, bytes, x, N, K, first, M);
                for (let m = 0; m < M; m++) {
                  const want = alone[first + m]!;
                  for (let j = 0; j < N; j++) {
                    if (got[m * N + j] !== want[j]) {
                      assert.fail(
                        `q${bits} N=${N} K=${K} M=${M} (rows ${first}..${first + M - 1}), ${threads} thread(s): row ${first + m} column ${j}: ${got[m * N + j]} != ${want[j]} alone`,
                      );
                    }
                  }
                }
              }
            }
          }
        }
      });
    }
  });
}

// ggml's reference quantizers compute in float32 (d = amax / 127, id = 1.0f / d, roundf(x * id); q4_0: d = max / -8,
// (int8_t)(x * id + 8.5f)). These blocks put x * id exactly on a .5 in float32 where the float64 quotient is just
// below it, so only the float32 steps give ggml's bytes (checked against those formulas compiled with gcc).
test('quantizeRows: q8_0 / q4_0 bytes equal ggml reference quantizers on exact float32 ties', () => {
  const q8 = new Float32Array(32);
  q8.set([0.8314370512962341, 0.2782368063926697, -0.2782368063926697]);
  const b8 = quantizeRows(q8, 1, 32, 8);
  assert.deepEqual([b8[2], (b8[3]! << 24) >> 24, (b8[4]! << 24) >> 24, b8[5]], [127, 43, -43, 0]);
  const q4 = new Float32Array(32);
  q4.set([-0.7905206084251404, -0.44466784596443176]);
  const b4 = quantizeRows(q4, 1, 32, 4);
  assert.deepEqual([b4[2]! & 15, b4[3]! & 15, b4[4]! & 15], [0, 4, 8]);
});
