// Every fast backend, kernel by kernel, against the reference kernels (run on the same buffers
// through view()): random shapes, odd sizes, non-contiguous views, 1 and 2 threads. The backends
// under test are a list of factories: the native addon per CPU target it can run (when it was
// built; the avx512 target through its emulated build where the CPU has no AVX-512: native-targets.ts)
// and the WebAssembly backend. test/backend/wasm.test.ts keeps the wasm-only pool and
// allocator tests and both wasm builds.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AttentionParams, MatmulParams, View } from '../../src/backend/backend.js';
import { referenceKernels as ref } from '../../src/backend/reference/kernels.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { relaxedSimdSupported } from '../../src/backend/wasm/module.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { loadEmulatedAddon, nativeBackend, nativeTargets } from './native-targets.js';

import { Ctx, close, numel, rng, strides, type FastBackend } from './kernel-helpers.js';
import {
  pagedAttentionBadTable,
  pagedAttentionCases,
  pagedWriteCases,
  quantMatmulCases,
  ropeHeadsCases,
} from './engine-kernel-cases.js';

// ---- backends ---------------------------------------------------------------------------------------
const { addon, error: addonError } = loadNativeAddon();

// the addon's own target (the best this CPU runs) and an emulated avx512 on 1 and 2 threads, every other
// target on 2 (forceParallel: even the small test shapes are split over the threads); both WebAssembly builds
// (relaxed SIMD, plain SIMD) on 1 and 2 threads
const factories: { key: string; make: () => Promise<FastBackend> }[] = [];
for (const t of nativeTargets()) {
  const both = t.name === 'avx512-emulated' || t.target === addon!.info().target;
  for (const threads of both ? [1, 2] : [2])
    factories.push({ key: `native-${t.name}/${threads}`, make: async () => nativeBackend(t, threads) });
}
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

test(
  'the native addon is built (npm install builds it; this is skipped where it could not be)',
  { skip: addon ? false : addonError },
  () => {
    assert.ok(addon);
    assert.ok(['avx512', 'avx2', 'portable'].includes(addon.info().target));
  },
);

// Where the CPU has no AVX-512 (this project's machines), the avx512 source runs through its emulated build.
// Under CI it must: .ci/run installs SIMDe and `npm test` builds it (scripts/build-native-emu.mjs).
const emulated = addon && !addon.info().avx512f ? loadEmulatedAddon() : null;
test(
  'the avx512 target runs here: on the CPU, or through the emulated build (VNNI included)',
  { skip: !addon || (!emulated?.addon && process.env.CI !== 'true') ? (emulated?.why ?? 'no addon') : false },
  () => {
    const real = addon!.info().avx512f;
    assert.ok(real || emulated?.addon, emulated?.why);
    assert.ok(factories.some((f) => f.key.startsWith(real ? 'native-avx512/' : 'native-avx512-emulated/')));
    if (!real) {
      const i = emulated!.addon!.info();
      assert.deepEqual([i.target, i.emulated, i.avx512vnni, i.quantVnni], ['avx512', true, true, true]);
    }
  },
);

for (const { key } of factories) {
  describe(key, () => {
    const B = (): FastBackend => {
      const be = backends.get(key);
      if (!be) throw new Error(`backend ${key} unavailable`);
      return be;
    };

    test('matmul: odd sizes, all transposes, batch broadcast, offsets', () => {
      const ctx = new Ctx(B());
      const r = rng(1);
      const sizes: [number, number, number][] = [
        [1, 1, 1],
        [3, 17, 5],
        [1, 65, 63],
        [1, 100, 37],
        [1, 3, 1000],
        [63, 65, 129],
        [129, 3, 17],
        [4, 8, 256],
        [17, 1, 300],
        [65, 129, 300],
      ];
      for (const [M, N, K] of sizes) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            for (const [batch, bcA, bcB] of [
              [1, false, false],
              [3, false, false],
              [2, true, false],
              [2, false, true],
            ] as const) {
              const a = ctx.t([bcA ? 1 : batch, transA ? K : M, transA ? M : K], r, 'float32', 5);
              const b = ctx.t([bcB ? 1 : batch, transB ? N : K, transB ? K : N], r, 'float32', 3);
              const p: MatmulParams = {
                batch,
                M,
                N,
                K,
                transA,
                transB,
                strideA: bcA ? 0 : M * K,
                strideB: bcB ? 0 : K * N,
              };
              const o1 = ctx.t([batch, M, N], null);
              const o2 = ctx.t([batch, M, N], null);
              ctx.k.matmul(a, b, o1, p);
              ref.matmul(a, b, o2, p);
              close(ctx.arr(o1), ctx.arr(o2), 2e-5 * Math.sqrt(K), `matmul ${JSON.stringify(p)}`);
            }
          }
        }
      }
      // large enough to be split across threads
      const [M, N, K] = [200, 190, 150];
      const a = ctx.t([M, K], r);
      const b = ctx.t([N, K], r);
      const p: MatmulParams = { batch: 1, M, N, K, transA: false, transB: true, strideA: 0, strideB: 0 };
      const o1 = ctx.t([M, N], null);
      const o2 = ctx.t([M, N], null);
      ctx.k.matmul(a, b, o1, p);
      ref.matmul(a, b, o2, p);
      close(ctx.arr(o1), ctx.arr(o2), 5e-4, 'matmul large');
      // K = 0 gives zeros
      const z = ctx.t([2, 3], () => 1);
      ctx.k.matmul(ctx.t([2, 0], null), ctx.t([0, 3], null), z, {
        batch: 1,
        M: 2,
        N: 3,
        K: 0,
        transA: false,
        transB: false,
        strideA: 0,
        strideB: 0,
      });
      assert.deepEqual([...ctx.arr(z)], [0, 0, 0, 0, 0, 0]);
      ctx.done();
    });

    const attnCases: (Partial<AttentionParams> & {
      name: string;
      biasShape?: number[];
      kv?: number[];
      maskBias?: boolean;
    })[] = [
      { name: 'plain', B: 1, H: 2, Hkv: 2, Tq: 17, Tk: 17, Dk: 16, Dv: 16 },
      { name: 'causal multi-block', B: 2, H: 2, Hkv: 2, Tq: 130, Tk: 130, Dk: 8, Dv: 8, causal: true },
      { name: 'GQA, Dk != Dv, odd dims', B: 1, H: 4, Hkv: 2, Tq: 65, Tk: 65, Dk: 3, Dv: 5, causal: true },
      { name: 'decode offset Tq < Tk', B: 2, H: 2, Hkv: 1, Tq: 3, Tk: 70, Dk: 16, Dv: 12, causal: true },
      { name: 'sliding window', B: 1, H: 2, Hkv: 2, Tq: 129, Tk: 129, Dk: 8, Dv: 8, causal: true, window: 7 },
      { name: 'window, not causal', B: 1, H: 1, Hkv: 1, Tq: 20, Tk: 20, Dk: 4, Dv: 4, window: 5 },
      { name: 'kvLen padding (incl. empty)', B: 3, H: 2, Hkv: 2, Tq: 9, Tk: 67, Dk: 8, Dv: 8, kv: [67, 30, 0] },
      // query i sits at i + Tk - Tq: rows 0..29 see no key, in the same query block as rows that do
      {
        name: 'causal Tq > Tk: leading rows fully masked',
        B: 1,
        H: 2,
        Hkv: 1,
        Tq: 100,
        Tk: 70,
        Dk: 8,
        Dv: 8,
        causal: true,
      },
      // head dim 64 (whole register tiles and 8 x 8 transposes of the native kernel), keys over three
      // 128-key chunks: the running max rises across chunks (lazy rescale of O)
      { name: 'head dim 64, keys over several chunks', B: 1, H: 2, Hkv: 2, Tq: 100, Tk: 300, Dk: 64, Dv: 64 },
      {
        name: 'head dim 64, causal GQA over several chunks',
        B: 1,
        H: 2,
        Hkv: 1,
        Tq: 290,
        Tk: 290,
        Dk: 64,
        Dv: 64,
        causal: true,
      },
      {
        name: 'long non-causal rows, odd Tk over one GEMM depth block',
        B: 1,
        H: 2,
        Hkv: 2,
        Tq: 70,
        Tk: 401,
        Dk: 16,
        Dv: 24,
      },
      // a non-positive scale takes the general (scale-then-max) softmax path of the native kernel
      { name: 'negative scale', B: 1, H: 2, Hkv: 2, Tq: 40, Tk: 40, Dk: 8, Dv: 8, causal: true, scale: -0.3 },
      {
        name: 'bias broadcast over B and H',
        B: 2,
        H: 3,
        Hkv: 3,
        Tq: 33,
        Tk: 70,
        Dk: 8,
        Dv: 8,
        biasShape: [1, 1, 33, 70],
      },
      {
        name: 'bias per head, causal, GQA',
        B: 1,
        H: 4,
        Hkv: 1,
        Tq: 66,
        Tk: 66,
        Dk: 17,
        Dv: 9,
        causal: true,
        biasShape: [1, 4, 66, 66],
      },
      {
        name: 'mask-style bias: -inf / -1e9 entries, a fully masked row',
        B: 1,
        H: 2,
        Hkv: 2,
        Tq: 70,
        Tk: 70,
        Dk: 8,
        Dv: 8,
        biasShape: [1, 1, 70, 70],
        maskBias: true,
      },
    ];
    for (const cs of attnCases) {
      test(`attention forward + backward: ${cs.name}`, () => {
        const ctx = new Ctx(B());
        const r = rng(7);
        const p: AttentionParams = {
          B: cs.B!,
          H: cs.H!,
          Hkv: cs.Hkv!,
          Tq: cs.Tq!,
          Tk: cs.Tk!,
          Dk: cs.Dk!,
          Dv: cs.Dv!,
          scale: cs.scale ?? 1 / Math.sqrt(cs.Dk!),
          causal: !!cs.causal,
          window: cs.window ?? 0,
          kvLen: null,
          bias: null,
        };
        const s = () => 3 * r(); // spread the scores so softmax is not flat
        const q = ctx.t([p.B, p.H, p.Tq, p.Dk], s, 'float32', 1);
        const k = ctx.t([p.B, p.Hkv, p.Tk, p.Dk], s, 'float32', 2);
        const v = ctx.t([p.B, p.Hkv, p.Tk, p.Dv], r);
        if (cs.kv) p.kvLen = ctx.ints([p.B], cs.kv);
        if (cs.biasShape) {
          const bv = ctx.t(cs.biasShape, r);
          if (cs.maskBias) {
            const ba = ctx.be.view(bv.buf) as Float32Array;
            for (let i = 0; i < ba.length; i++) if (i % 3 === 0) ba[i] = i % 2 ? -Infinity : -1e9;
            ba.fill(-Infinity, 5 * p.Tk, 6 * p.Tk); // query row 5 sees nothing
            // row 9: one large negative offset on the whole row (a float32 score of -1e9 would swamp
            // q.k in any float32 engine; the reference computes in float64)
            ba.fill(-30, 9 * p.Tk, 10 * p.Tk);
          }
          const full = [p.B, p.H, p.Tq, p.Tk];
          p.bias = { ...bv, shape: full, strides: bv.strides.map((st, d) => (cs.biasShape![d] === 1 ? 0 : st)) };
        }
        const o1 = ctx.t([p.B, p.H, p.Tq, p.Dv], null);
        const l1 = ctx.t([p.B, p.H, p.Tq], null);
        const o2 = ctx.t([p.B, p.H, p.Tq, p.Dv], null);
        const l2 = ctx.t([p.B, p.H, p.Tq], null);
        ctx.k.attention(q, k, v, o1, l1, p);
        ref.attention(q, k, v, o2, l2, p);
        close(ctx.arr(o1), ctx.arr(o2), 2e-5, 'attention out');
        close(ctx.arr(l1), ctx.arr(l2), 2e-5, 'attention lse');
        const dout = ctx.t([p.B, p.H, p.Tq, p.Dv], r);
        const g1 = [
          ctx.t([p.B, p.H, p.Tq, p.Dk], () => 9),
          ctx.t([p.B, p.Hkv, p.Tk, p.Dk], () => 9),
          ctx.t([p.B, p.Hkv, p.Tk, p.Dv], () => 9),
        ];
        const g2 = [
          ctx.t([p.B, p.H, p.Tq, p.Dk], null),
          ctx.t([p.B, p.Hkv, p.Tk, p.Dk], null),
          ctx.t([p.B, p.Hkv, p.Tk, p.Dv], null),
        ];
        ctx.k.attentionBackward(q, k, v, o2, l2, dout, g1[0]!, g1[1]!, g1[2]!, p);
        ref.attentionBackward(q, k, v, o2, l2, dout, g2[0]!, g2[1]!, g2[2]!, p);
        for (let i = 0; i < 3; i++)
          close(ctx.arr(g1[i]!), ctx.arr(g2[i]!), 1e-4, `attention backward ${['dq', 'dk', 'dv'][i]}`);
        // the backward pass as training runs it: fed the fast forward's own out and lse
        ctx.k.attentionBackward(q, k, v, o1, l1, dout, g1[0]!, g1[1]!, g1[2]!, p);
        for (let i = 0; i < 3; i++)
          close(ctx.arr(g1[i]!), ctx.arr(g2[i]!), 1e-4, `attention backward from fast lse ${['dq', 'dk', 'dv'][i]}`);
        ctx.done();
      });
    }

    test('attention backward matches a composed (matmul, softmax, matmul) gradient', () => {
      // independent check of the reference too: finite differences of sum(out * dout) w.r.t. a few q/k/v entries
      const ctx = new Ctx(B());
      const r = rng(11);
      const p: AttentionParams = {
        B: 1,
        H: 2,
        Hkv: 1,
        Tq: 5,
        Tk: 7,
        Dk: 3,
        Dv: 4,
        scale: 0.7,
        causal: true,
        window: 0,
        kvLen: null,
        bias: null,
      };
      const q = ctx.t([1, 2, 5, 3], r);
      const k = ctx.t([1, 1, 7, 3], r);
      const v = ctx.t([1, 1, 7, 4], r);
      const dout = ctx.t([1, 2, 5, 4], r);
      const out = ctx.t([1, 2, 5, 4], null);
      const lse = ctx.t([1, 2, 5], null);
      const f = (): number => {
        ctx.k.attention(q, k, v, out, lse, p);
        const o = ctx.arr(out);
        const d = ctx.arr(dout);
        let s = 0;
        for (let i = 0; i < o.length; i++) s += o[i]! * d[i]!;
        return s;
      };
      f();
      const g = [ctx.t([1, 2, 5, 3], null), ctx.t([1, 1, 7, 3], null), ctx.t([1, 1, 7, 4], null)];
      ctx.k.attentionBackward(q, k, v, out, lse, dout, g[0]!, g[1]!, g[2]!, p);
      const eps = 1e-2;
      [q, k, v].forEach((x, xi) => {
        const xa = ctx.be.view(x.buf) as Float32Array;
        const ga = ctx.arr(g[xi]!);
        for (let i = 0; i < xa.length; i += 2) {
          const x0 = xa[i]!;
          xa[i] = x0 + eps;
          const fp = f();
          xa[i] = x0 - eps;
          const fm = f();
          xa[i] = x0;
          const num = (fp - fm) / (2 * eps);
          assert.ok(Math.abs(num - ga[i]!) < 2e-3, `d${'qkv'[xi]}[${i}]: analytic ${ga[i]} vs numeric ${num}`);
        }
      });
      ctx.done();
    });

    test('softmax / log-softmax and backward', () => {
      const ctx = new Ctx(B());
      const r = rng(3);
      for (const [rows, n] of [
        [1, 1],
        [3, 17],
        [5, 64],
        [7, 129],
        [300, 300],
      ] as const) {
        for (const log of [false, true]) {
          const x = ctx.t([rows, n], () => 8 * r(), 'float32', 3);
          const y1 = ctx.t([rows, n], null);
          const y2 = ctx.t([rows, n], null);
          ctx.k.softmax(x, y1, rows, n, log);
          ref.softmax(x, y2, rows, n, log);
          close(ctx.arr(y1), ctx.arr(y2), 1e-5, `softmax ${rows}x${n} log=${log}`);
          const dy = ctx.t([rows, n], r);
          const d1 = ctx.t([rows, n], null);
          const d2 = ctx.t([rows, n], null);
          ctx.k.softmaxBackward(y2, dy, d1, rows, n, log);
          ref.softmaxBackward(y2, dy, d2, rows, n, log);
          close(ctx.arr(d1), ctx.arr(d2), 1e-5, `softmaxBackward ${rows}x${n} log=${log}`);
        }
      }
      ctx.done();
    });

    test('layerNorm / rmsNorm and backward, with and without affine params', () => {
      const ctx = new Ctx(B());
      const r = rng(5);
      for (const [rows, n] of [
        [1, 1],
        [3, 17],
        [4, 64],
        [9, 131],
        [300, 256],
      ] as const) {
        for (const affine of [false, true]) {
          const p = { rows, n, eps: 1e-5 };
          const x = ctx.t([rows, n], () => 2 + 3 * r(), 'float32', 1);
          const w = affine ? ctx.t([n], () => 1 + r()) : null;
          const b = affine ? ctx.t([n], r) : null;
          const dy = ctx.t([rows, n], r);
          const o = [ctx.t([rows, n], null), ctx.t([rows, n], null)];
          const mean = [ctx.t([rows], null), ctx.t([rows], null)];
          const rstd = [ctx.t([rows], null), ctx.t([rows], null)];
          ctx.k.layerNorm(x, w, b, o[0]!, mean[0]!, rstd[0]!, p);
          ref.layerNorm(x, w, b, o[1]!, mean[1]!, rstd[1]!, p);
          close(ctx.arr(o[0]!), ctx.arr(o[1]!), 1e-5, 'layerNorm out');
          close(ctx.arr(rstd[0]!), ctx.arr(rstd[1]!), 1e-5, 'layerNorm rstd');
          const dx = [ctx.t([rows, n], null), ctx.t([rows, n], null)];
          const dw = affine ? [ctx.t([n], () => 5), ctx.t([n], null)] : [null, null];
          const db = affine ? [ctx.t([n], () => 5), ctx.t([n], null)] : [null, null];
          ctx.k.layerNormBackward(x, w, mean[1]!, rstd[1]!, dy, dx[0]!, dw[0]!, db[0]!, p);
          ref.layerNormBackward(x, w, mean[1]!, rstd[1]!, dy, dx[1]!, dw[1]!, db[1]!, p);
          close(ctx.arr(dx[0]!), ctx.arr(dx[1]!), 2e-5, 'layerNormBackward dx');
          if (affine) {
            close(ctx.arr(dw[0]!), ctx.arr(dw[1]!), 2e-5, 'layerNormBackward dw');
            close(ctx.arr(db[0]!), ctx.arr(db[1]!), 2e-5, 'layerNormBackward db');
          }
          ctx.k.rmsNorm(x, w, o[0]!, rstd[0]!, p);
          ref.rmsNorm(x, w, o[1]!, rstd[1]!, p);
          close(ctx.arr(o[0]!), ctx.arr(o[1]!), 1e-5, 'rmsNorm out');
          close(ctx.arr(rstd[0]!), ctx.arr(rstd[1]!), 1e-5, 'rmsNorm rstd');
          ctx.k.rmsNormBackward(x, w, rstd[1]!, dy, dx[0]!, dw[0]!, p);
          ref.rmsNormBackward(x, w, rstd[1]!, dy, dx[1]!, dw[1]!, p);
          close(ctx.arr(dx[0]!), ctx.arr(dx[1]!), 2e-5, 'rmsNormBackward dx');
          if (affine) close(ctx.arr(dw[0]!), ctx.arr(dw[1]!), 2e-5, 'rmsNormBackward dw');
        }
      }
      ctx.done();
    });

    test('crossEntropy and backward: ignoreIndex, label smoothing', () => {
      const ctx = new Ctx(B());
      const r = rng(9);
      for (const [rows, V] of [
        [1, 1],
        [4, 17],
        [6, 130],
        [70, 1000],
      ] as const) {
        for (const ls of [0, 0.1]) {
          const p = { rows, V, ignoreIndex: -100, labelSmoothing: ls };
          const logits = ctx.t([rows, V], () => 6 * r(), 'float32', 2);
          const tg = Array.from({ length: rows }, (_, i) => (i % 3 === 1 ? -100 : Math.floor((r() + 0.5) * V) % V));
          const targets = ctx.ints([rows], tg);
          const loss = [ctx.t([rows], null), ctx.t([rows], null)];
          const lse = [ctx.t([rows], null), ctx.t([rows], null)];
          ctx.k.crossEntropy(logits, targets, loss[0]!, lse[0]!, p);
          ref.crossEntropy(logits, targets, loss[1]!, lse[1]!, p);
          close(ctx.arr(loss[0]!), ctx.arr(loss[1]!), 1e-5, 'crossEntropy loss');
          close(ctx.arr(lse[0]!), ctx.arr(lse[1]!), 1e-5, 'crossEntropy lse');
          const dloss = ctx.t([rows], r);
          const d = [ctx.t([rows, V], () => 3), ctx.t([rows, V], null)];
          ctx.k.crossEntropyBackward(logits, targets, lse[1]!, dloss, d[0]!, p);
          ref.crossEntropyBackward(logits, targets, lse[1]!, dloss, d[1]!, p);
          close(ctx.arr(d[0]!), ctx.arr(d[1]!), 1e-5, 'crossEntropyBackward');
        }
      }
      ctx.done();
    });

    test('adamw', () => {
      const ctx = new Ctx(B());
      const r = rng(13);
      for (const n of [1, 3, 17, 1000, 300000]) {
        const grad = ctx.t([n], r);
        const sets = [0, 1].map(() => {
          const rr = rng(n);
          return [ctx.t([n], rr), ctx.t([n], () => 0.1 * rr()), ctx.t([n], () => Math.abs(0.1 * rr()))];
        });
        const p = { n, lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 };
        ctx.k.adamw(sets[0]![0]!, grad, sets[0]![1]!, sets[0]![2]!, p);
        ref.adamw(sets[1]![0]!, grad, sets[1]![1]!, sets[1]![2]!, p);
        for (let i = 0; i < 3; i++) close(ctx.arr(sets[0]![i]!), ctx.arr(sets[1]![i]!), 2e-6, `adamw n=${n} [${i}]`);
      }
      ctx.done();
    });

    test('unary fast ops (and fallback for the rest / strided input)', () => {
      const ctx = new Ctx(B());
      const r = rng(17);
      const ops = [
        'neg',
        'abs',
        'exp',
        'sqrt',
        'rsqrt',
        'relu',
        'square',
        'reciprocal',
        'sigmoid',
        'silu',
        'tanh',
        'gelu_tanh',
        'log',
        'gelu',
        'erf',
        'sin',
      ] as const;
      for (const n of [1, 3, 17, 1000, 300001]) {
        const x = ctx.t([n], () => 12 * r(), 'float32', 1);
        const xp = ctx.t([n], () => 10 * (r() + 0.5) + 1e-3);
        for (const op of ops) {
          const src = op === 'sqrt' || op === 'rsqrt' || op === 'log' ? xp : x;
          const o1 = ctx.t([n], null);
          const o2 = ctx.t([n], null);
          ctx.k.unary(op, src, o1);
          ref.unary(op, src, o2);
          close(
            ctx.arr(o1),
            ctx.arr(o2),
            op === 'tanh' || op === 'gelu_tanh' || op === 'gelu' || op === 'erf' ? 1e-6 : 3e-7,
            `unary ${op} n=${n}`,
          );
          ctx.be.free(o1.buf);
          ctx.be.free(o2.buf);
        }
      }
      // derivatives: out = dy * op'(x), y = op(x)
      for (const op of [
        'neg',
        'exp',
        'sqrt',
        'rsqrt',
        'relu',
        'square',
        'reciprocal',
        'sigmoid',
        'silu',
        'tanh',
        'gelu_tanh',
        'log',
        'gelu',
        'abs',
      ] as const) {
        const n = 1001;
        const src =
          op === 'sqrt' || op === 'rsqrt' || op === 'log'
            ? ctx.t([n], () => 10 * (r() + 0.5) + 1e-2)
            : ctx.t([n], () => 8 * r());
        (ctx.be.view(src.buf) as Float32Array)[7] = 0; // x = 0 (relu, gelu near 0)
        (ctx.be.view(src.buf) as Float32Array)[8] = 1e-4;
        const y = ctx.t([n], null);
        ref.unary(op, src, y);
        const dy = ctx.t([n], r);
        const o1 = ctx.t([n], null);
        const o2 = ctx.t([n], null);
        ctx.k.unaryBackward(op, src, y, dy, o1);
        ref.unaryBackward(op, src, y, dy, o2);
        close(ctx.arr(o1), ctx.arr(o2), 2e-6, `unaryBackward ${op}`);
      }
      // exp edge values: underflow to 0, overflow to inf, NaN
      const e = ctx.t([6], null);
      (ctx.be.view(e.buf) as Float32Array).set([-Infinity, -100, 0, 1, 100, NaN]);
      const eo = ctx.t([6], null);
      ctx.k.unary('exp', e, eo);
      const got = ctx.arr(eo);
      assert.equal(got[0], 0);
      assert.equal(got[1], 0);
      assert.equal(got[2], 1);
      assert.ok(Math.abs(got[3]! - Math.E) < 1e-6);
      assert.equal(got[4], Infinity);
      assert.ok(Number.isNaN(got[5]));
      // a transposed (non-contiguous) input goes to the reference kernel
      const m = ctx.t([3, 5], r);
      const mt: View = { buf: m.buf, shape: [5, 3], strides: [1, 5], offset: 0 };
      const o1 = ctx.t([5, 3], null);
      const o2 = ctx.t([5, 3], null);
      ctx.k.unary('exp', mt, o1);
      ref.unary('exp', mt, o2);
      close(ctx.arr(o1), ctx.arr(o2), 1e-6, 'unary strided');
      ctx.done();
    });

    test('copy: strided views (transposes, slices, broadcasts) of float32 and int32', () => {
      const ctx = new Ctx(B());
      const r = rng(23);
      for (const dtype of ['float32', 'int32'] as const) {
        const base = ctx.t([4, 5, 6, 7], () => Math.round(100 * r()), dtype, 2);
        const views: View[] = [
          base,
          { ...base, shape: [7, 6, 5, 4], strides: [1, 7, 42, 210] }, // full transpose
          { ...base, shape: [4, 6, 5, 7], strides: [210, 7, 42, 1] }, // swap middle axes
          { ...base, shape: [2, 3, 7], strides: [420, 42, 1], offset: 2 + 42 }, // slice
          { ...base, shape: [3, 4, 7], strides: [0, 210, 1] }, // broadcast
          { ...base, shape: [4, 5], strides: [-210, 42], offset: 2 + 3 * 210 }, // negative stride
          { ...base, shape: [], strides: [], offset: 9 }, // scalar
        ];
        for (const v of views) {
          const n = numel(v.shape);
          const o1 = ctx.t([...v.shape], null, dtype);
          const o2 = ctx.t([...v.shape], null, dtype);
          ctx.k.copy(v, o1);
          ref.copy(v, o2);
          assert.deepEqual(
            Array.from(ctx.be.view(o1.buf)).slice(0, n),
            Array.from(ctx.be.view(o2.buf)).slice(0, n),
            `copy ${dtype} ${v.shape}`,
          );
        }
      }
      // large: split over threads
      const big = ctx.t([300, 1000], r);
      const bt: View = { ...big, shape: [1000, 300], strides: [1, 1000] };
      const o1 = ctx.t([1000, 300], null);
      const o2 = ctx.t([1000, 300], null);
      ctx.k.copy(bt, o1);
      ref.copy(bt, o2);
      close(ctx.arr(o1), ctx.arr(o2), 0, 'copy large transpose');
      ctx.done();
    });

    test('reduce sum / max / min over [outer, n, inner]', () => {
      const ctx = new Ctx(B());
      const r = rng(29);
      for (const [outer, n, inner] of [
        [1, 1, 1],
        [3, 17, 1],
        [2, 5, 3],
        [4, 63, 65],
        [1, 1000, 1],
        [7, 3, 130],
        [300, 300, 1],
        [2, 300, 300],
      ] as const) {
        const x = ctx.t([outer, n, inner], r, 'float32', 1);
        for (const op of ['sum', 'max', 'min', 'argmax'] as const) {
          const dt = op === 'argmax' ? 'int32' : 'float32';
          const o1 = ctx.t([outer, inner], null, dt);
          const o2 = ctx.t([outer, inner], null, dt);
          ctx.k.reduce(op, x, outer, n, inner, o1);
          ref.reduce(op, x, outer, n, inner, o2);
          if (dt === 'int32') assert.deepEqual(Array.from(ctx.be.view(o1.buf)), Array.from(ctx.be.view(o2.buf)));
          else close(ctx.arr(o1), ctx.arr(o2), 1e-5 * Math.sqrt(n), `reduce ${op} ${outer}x${n}x${inner}`);
        }
      }
      ctx.done();
    });

    test('pagedAttention: random block layouts, ragged steps, GQA, sliding windows, odd sizes', () =>
      pagedAttentionCases(new Ctx(B())));
    for (const kvDtype of ['float16', 'bfloat16', 'int8'] as const)
      test(`pagedAttention over a ${kvDtype} KV pool`, () => pagedAttentionCases(new Ctx(B()), kvDtype));
    for (const kvDtype of ['float32', 'float16', 'bfloat16', 'int8'] as const)
      test(`pagedWrite into a ${kvDtype} KV pool: bits equal the reference's`, () =>
        pagedWriteCases(new Ctx(B()), kvDtype));
    test('ropeHeads: bits equal the reference (full / partial / no rotation)', () => ropeHeadsCases(new Ctx(B())));
    test('pagedAttention: a missing block inside a window is an error', () => pagedAttentionBadTable(new Ctx(B())));
    test('quantMatmul q8_0 / q4_0: GEMV and GEMM paths', () => quantMatmulCases(new Ctx(B())));

    test('gather / scatterAdd (repeated indices)', () => {
      const ctx = new Ctx(B());
      const r = rng(31);
      for (const [outer, n, inner, m] of [
        [1, 10, 1, 4],
        [1, 50, 65, 200],
        [3, 7, 130, 11],
        [2, 5, 3, 1],
      ] as const) {
        const idxVals = Array.from({ length: m }, (_, i) => (i * 7 + 3) % n);
        const idx = ctx.ints([m], idxVals);
        const x = ctx.t([outer, n, inner], r, 'float32', 1);
        const g = [ctx.t([outer, m, inner], null), ctx.t([outer, m, inner], null)];
        ctx.k.gather(x, idx, g[0]!, outer, n, inner, m);
        ref.gather(x, idx, g[1]!, outer, n, inner, m);
        close(ctx.arr(g[0]!), ctx.arr(g[1]!), 0, `gather ${outer}x${n}x${inner} m=${m}`);
        const src = ctx.t([outer, m, inner], r);
        const o = [ctx.t([outer, n, inner], () => 1), ctx.t([outer, n, inner], () => 1)];
        ctx.k.scatterAdd(src, idx, o[0]!, outer, n, inner, m);
        ref.scatterAdd(src, idx, o[1]!, outer, n, inner, m);
        close(ctx.arr(o[0]!), ctx.arr(o[1]!), 1e-6, `scatterAdd ${outer}x${n}x${inner} m=${m}`);
      }
      ctx.done();
    });

    test('binary: same shape, scalar and row broadcast, fallback', () => {
      const ctx = new Ctx(B());
      const r = rng(19);
      const ops = ['add', 'sub', 'mul', 'div', 'maximum', 'minimum', 'pow', 'lt'] as const;
      for (const [rows, n] of [
        [1, 1],
        [3, 17],
        [5, 64],
        [130, 513],
      ] as const) {
        const shape = [rows, n];
        const a = ctx.t(shape, r, 'float32', 3);
        const b = ctx.t(shape, () => r() + 2);
        const s = ctx.t([1], () => 1.5);
        const row = ctx.t([n], r);
        const col = ctx.t([rows], r);
        const cases: [string, View, View][] = [
          ['same', a, b],
          ['b scalar', a, { buf: s.buf, shape, strides: [0, 0], offset: 0 }],
          ['a scalar', { buf: s.buf, shape, strides: [0, 0], offset: 0 }, b],
          ['b row', a, { buf: row.buf, shape, strides: [0, 1], offset: 0 }],
          ['a row', { buf: row.buf, shape, strides: [0, 1], offset: 0 }, b],
          ['b column (fallback)', a, { buf: col.buf, shape, strides: [1, 0], offset: 0 }],
        ];
        for (const op of ops) {
          for (const [name, x, y] of cases) {
            const dt = op === 'lt' ? 'bool' : 'float32';
            const o1 = ctx.t(shape, null, dt);
            const o2 = ctx.t(shape, null, dt);
            ctx.k.binary(op, x, y, o1);
            ref.binary(op, x, y, o2);
            assert.deepEqual(
              Array.from(ctx.be.view(o1.buf) as Float32Array, (v) => (Number.isNaN(v) ? 'NaN' : v)),
              Array.from(ctx.be.view(o2.buf) as Float32Array, (v) => (Number.isNaN(v) ? 'NaN' : v)),
              `binary ${op} ${name} ${rows}x${n}`,
            );
            ctx.be.free(o1.buf);
            ctx.be.free(o2.buf);
          }
        }
      }
      ctx.done();
    });
  });
}
