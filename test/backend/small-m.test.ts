// The small-M matmul path (2..8 rows on wasm, 2..16 native times a weight, e.g. speculative verification of 1 + k
// tokens) on every fast backend against the reference matmul: M 1..17 across the dispatch threshold,
// odd N and K (vector and register-block tails), every transpose, batch with a broadcast operand, 1
// and 2 threads. For the Linear layout (B [N, K], A not transposed) each row must also equal the
// M = 1 matrix-vector product of that row bit for bit (up to 8 rows, the smallest threshold: wasm), so
// that verifying drafted tokens gives the very logits that decoding them one at a time gives.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MatmulParams } from '../../src/backend/backend.js';
import { referenceKernels as ref } from '../../src/backend/reference/kernels.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { relaxedSimdSupported } from '../../src/backend/wasm/module.js';
import { nativeBackend, nativeTargets } from './native-targets.js';

import { Ctx, close, rng, type FastBackend } from './kernel-helpers.js';

const factories: { key: string; make: () => Promise<FastBackend> }[] = [];
for (const t of nativeTargets())
  for (const threads of [1, 2])
    factories.push({ key: `native-${t.name}/${threads}`, make: async () => nativeBackend(t, threads) });
for (const variant of ['relaxed', 'simd'] as const) {
  if (variant === 'relaxed' && !relaxedSimdSupported()) continue;
  for (const threads of [1, 2]) {
    factories.push({
      key: `wasm-${variant}/${threads}`,
      make: () => createWasmBackend({ variant, threads, forceParallel: threads > 1 }),
    });
  }
}

const backends = new Map<string, FastBackend>();
before(async () => {
  for (const f of factories) backends.set(f.key, await f.make());
});
after(async () => {
  for (const be of backends.values()) await be.dispose?.();
});

for (const { key } of factories) {
  describe(key, () => {
    const B = (): FastBackend => {
      const be = backends.get(key);
      if (!be) throw new Error(`backend ${key} unavailable`);
      return be;
    };

    test('small M: M 1..17, odd N and K, every transpose, batch and broadcast', () => {
      const ctx = new Ctx(B());
      const r = rng(7);
      const NK: [number, number][] = [
        [1, 1],
        [3, 7],
        [5, 17],
        [17, 33],
        [37, 64],
        [70, 129],
        [33, 300],
      ];
      for (let M = 1; M <= 17; M++) {
        for (const [N, K] of NK) {
          for (const transA of [false, true]) {
            for (const transB of [false, true]) {
              for (const [batch, bcB] of [
                [1, false],
                [2, false],
                [3, true],
              ] as const) {
                const a = ctx.t([batch, transA ? K : M, transA ? M : K], r, 'float32', 5);
                const b = ctx.t([bcB ? 1 : batch, transB ? N : K, transB ? K : N], r, 'float32', 3);
                const p: MatmulParams = { batch, M, N, K, transA, transB, strideA: M * K, strideB: bcB ? 0 : K * N };
                const o1 = ctx.t([batch, M, N], null);
                const o2 = ctx.t([batch, M, N], null);
                ctx.k.matmul(a, b, o1, p);
                ref.matmul(a, b, o2, p);
                close(ctx.arr(o1), ctx.arr(o2), 2e-5 * Math.sqrt(K), `matmul ${JSON.stringify(p)}`);
              }
            }
          }
        }
        ctx.done();
      }
    });

    test('small M, Linear layout: every row equals its M = 1 product bit for bit', () => {
      const ctx = new Ctx(B());
      const r = rng(11);
      for (const [N, K] of [
        [65, 256],
        [130, 37],
        [9, 768],
      ] as const) {
        const w = ctx.t([N, K], r);
        for (const M of [2, 3, 5, 7, 8]) {
          const x = ctx.t([M, K], r);
          const y = ctx.t([M, N], null);
          const p: MatmulParams = { batch: 1, M, N, K, transA: false, transB: true, strideA: 0, strideB: 0 };
          ctx.k.matmul(x, w, y, p);
          const got = ctx.arr(y);
          for (let i = 0; i < M; i++) {
            const xi = { ...x, shape: [1, K], offset: x.offset + i * K };
            const yi = ctx.t([1, N], null);
            ctx.k.matmul(xi, w, yi, { ...p, M: 1 });
            const want = ctx.arr(yi);
            for (let j = 0; j < N; j++) {
              assert.equal(got[i * N + j], want[j], `M=${M} N=${N} K=${K}: row ${i} column ${j}`);
            }
          }
        }
      }
      ctx.done();
    });
  });
}
