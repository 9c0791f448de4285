// The fused elementwise primitive (src/backend/fused.ts) on every backend against the reference
// kernel run on the same buffers: every op alone, full / scalar / repeated-row inputs, odd sizes
// (tails, tiles that wrap a row, sizes split over threads), random programs, 1 and 2 threads; the
// reference program equals the composed reference unary / binary kernels exactly; bad programs and
// layouts are clear errors; the vectorised exp / log / tanh / erf stay within their documented error.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { View } from '../../src/backend/backend.js';
import {
  FUSED_BINARY,
  FUSED_UNARY,
  type FusedNode,
  type FusedProgram,
  type FusedUnaryOp,
} from '../../src/backend/fused.js';
import { referenceKernels as ref } from '../../src/backend/reference/kernels.js';
import { ReferenceBackend } from '../../src/backend/reference/backend.js';
import { erf as erfRef } from '../../src/backend/reference/math.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { relaxedSimdSupported } from '../../src/backend/wasm/module.js';
import { createNativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { nativeBackend, nativeTargets } from './native-targets.js';
import { Ctx, close, numel, rng, strides, type FastBackend } from './kernel-helpers.js';

const { addon } = loadNativeAddon();
const factories: { key: string; make: () => Promise<FastBackend> }[] = [
  { key: 'reference', make: async () => new ReferenceBackend() as FastBackend },
];
for (const variant of ['relaxed', 'simd'] as const) {
  if (variant === 'relaxed' && !relaxedSimdSupported()) continue;
  for (const threads of [1, 2])
    factories.push({
      key: `wasm-${variant}/${threads}`,
      make: () => createWasmBackend({ variant, threads, forceParallel: threads > 1 }),
    });
}
for (const t of nativeTargets())
  for (const threads of [1, 2])
    factories.push({ key: `native-${t.name}/${threads}`, make: async () => nativeBackend(t, threads) });
const backends = new Map<string, FastBackend>();
before(async () => {
  for (const f of factories) backends.set(f.key, await f.make());
});
after(async () => {
  for (const be of backends.values()) await be.dispose?.();
});

/** ops that need positive inputs */
const POSITIVE = new Set<FusedUnaryOp>(['log', 'sqrt', 'rsqrt']);
const SIZES = [1, 3, 8, 17, 255, 257, 1000, 4099];

/** runs `program` through the backend (dispatch) and the reference kernel on the same inputs */
function check(ctx: Ctx, program: FusedProgram, inputs: View[], outShape: number[], tol: number, what: string): void {
  const out = ctx.t(outShape, null, 'float32', 3);
  const want = ctx.t(outShape, null);
  ctx.k.fused(program, inputs, out);
  ref.fused(program, inputs, want);
  close(ctx.arr(out), ctx.arr(want), tol, what);
}

/** a uniform generator over [lo, hi) */
function uniform(seed: number, lo: number, hi: number): () => number {
  const r = rng(seed);
  return () => lo + (r() + 0.5) * (hi - lo);
}

for (const { key } of factories) {
  describe(key, () => {
    const B = (): FastBackend => backends.get(key)!;

    test('every unary op alone, odd sizes, with an offset view', () => {
      const ctx = new Ctx(B());
      for (const op of FUSED_UNARY) {
        for (const n of SIZES) {
          const x = ctx.t([n], POSITIVE.has(op) ? uniform(n, 1e-3, 30) : uniform(n, -12, 12), 'float32', 5);
          check(
            ctx,
            [
              { op: 'input', index: 0 },
              { op, a: 0 },
            ],
            [x],
            [n],
            3e-6,
            `${op} n=${n}`,
          );
        }
      }
      ctx.done();
    });

    test('every unary op on special values: 0, -0, subnormal, negative, infinities, NaN, large', () => {
      const ctx = new Ctx(B());
      // 88.5, 88.72: exp near the float32 overflow point (ln FLT_MAX = 88.7228)
      const vals = [0, -0, 1e-40, -1e-40, -1, 1, Infinity, -Infinity, NaN, 100, -100, 1e30, -1e30, -87.5, 88.5, 88.72];
      const x = ctx.t([vals.length], null);
      (B().view(x.buf) as Float32Array).set(vals);
      for (const op of FUSED_UNARY)
        check(
          ctx,
          [
            { op: 'input', index: 0 },
            { op, a: 0 },
          ],
          [x],
          [vals.length],
          3e-6,
          op,
        );
      ctx.done();
    });

    test('every binary op: full, scalar and repeated-row operands on either side', () => {
      const ctx = new Ctx(B());
      const r = rng(7);
      for (const op of FUSED_BINARY) {
        for (const [rows, R] of [
          [1, 1],
          [3, 5],
          [7, 300],
          [2, 257],
          [40, 33],
          [1, 4099],
        ] as const) {
          const n = rows * R;
          const full = ctx.t([rows, R], r);
          const row = ctx.t([R], uniform(R, 0.5, 2), 'float32', 2);
          const sc = ctx.t([1], () => 1.75);
          for (const [a, b] of [
            [full, full],
            [full, row],
            [row, full],
            [full, sc],
            [sc, full],
          ] as const) {
            const prog: FusedNode[] = [
              { op: 'input', index: 0 },
              { op: 'input', index: 1 },
              { op, a: 0, b: 1 },
            ];
            check(ctx, prog, [a, b], [rows, R], 1e-6, `${op} [${rows},${R}] ${numel(a.shape)}/${numel(b.shape)}`);
          }
        }
      }
      ctx.done();
    });

    test('chains: SwiGLU, bias + GELU, residual sums, constants, outputs that are an input or a constant', () => {
      const ctx = new Ctx(B());
      const r = rng(3);
      const I = (index: number): FusedNode => ({ op: 'input', index });
      const progs: [string, FusedProgram][] = [
        ['silu(g)*u', [I(0), I(1), { op: 'silu', a: 0 }, { op: 'mul', a: 2, b: 1 }]],
        ['gelu(x+b)', [I(0), I(2), { op: 'add', a: 0, b: 1 }, { op: 'gelu', a: 2 }]],
        ['gelu_tanh(x+b)', [I(0), I(2), { op: 'add', a: 0, b: 1 }, { op: 'gelu_tanh', a: 2 }]],
        ['a+b+c', [I(0), I(1), I(2), { op: 'add', a: 0, b: 1 }, { op: 'add', a: 3, b: 2 }]],
        ['input only', [I(1)]],
        ['row input only', [I(2)]],
        ['const only', [{ op: 'const', value: -2.5 }]],
        [
          'scalar math then broadcast',
          [
            I(3),
            { op: 'const', value: 2 },
            { op: 'mul', a: 0, b: 1 },
            { op: 'exp', a: 2 },
            I(0),
            { op: 'mul', a: 4, b: 3 },
          ],
        ],
        [
          'silu backward',
          [
            I(0),
            I(1),
            { op: 'sigmoid', a: 0 },
            { op: 'const', value: 1 },
            { op: 'sub', a: 3, b: 2 },
            { op: 'mul', a: 0, b: 4 },
            { op: 'add', a: 3, b: 5 },
            { op: 'mul', a: 2, b: 6 },
            { op: 'mul', a: 7, b: 1 },
          ],
        ],
      ];
      for (const [rows, R] of [
        [1, 1],
        [5, 7],
        [9, 100],
        [3, 1031],
      ] as const) {
        const ins = [
          ctx.t([rows, R], r, 'float32', 1),
          ctx.t([rows, R], r),
          ctx.t([R], r, 'float32', 4),
          ctx.t([], () => 0.3),
        ];
        for (const [name, p] of progs) check(ctx, p, ins, [rows, R], 3e-6, `${name} [${rows},${R}]`);
      }
      ctx.done();
    });

    test('random programs over full, row and scalar inputs', () => {
      const ctx = new Ctx(B());
      const r = rng(11);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor((r() + 0.5) * xs.length) % xs.length]!;
      for (let trial = 0; trial < 30; trial++) {
        const rows = 1 + Math.floor((r() + 0.5) * 9);
        const R = pick([1, 2, 31, 64, 300]);
        // bounded ops only, so the chains stay finite: their composition is what is under test
        const un = ['tanh', 'erf', 'sigmoid', 'silu', 'gelu', 'gelu_tanh', 'neg', 'relu', 'abs'] as const;
        const prog: FusedNode[] = [0, 1, 2].map((index) => ({ op: 'input', index }));
        const len = 4 + Math.floor((r() + 0.5) * 12);
        while (prog.length < len) {
          const a = Math.floor((r() + 0.5) * prog.length) % prog.length;
          const b = Math.floor((r() + 0.5) * prog.length) % prog.length;
          if (r() < 0.5) prog.push({ op: pick(un), a });
          else prog.push({ op: pick(['add', 'sub', 'mul', 'maximum'] as const), a, b });
        }
        const ins = [ctx.t([rows, R], r), ctx.t([R], r), ctx.t([1], r)];
        check(ctx, prog, ins, [rows, R], 1e-5, `trial ${trial} ${JSON.stringify(prog)}`);
      }
      ctx.done();
    });

    test('bad programs and layouts are clear errors', () => {
      const ctx = new Ctx(B());
      const x = ctx.t([4, 3], rng(1));
      const out = ctx.t([4, 3], null);
      const k = ctx.k.fused;
      assert.throws(() => k([], [x], out), /empty program/);
      assert.throws(() => k([{ op: 'input', index: 1 }], [x], out), /node 0 reads input 1, the program has 1 inputs/);
      assert.throws(
        () =>
          k(
            [
              { op: 'input', index: 0 },
              { op: 'exp', a: 1 },
            ],
            [x],
            out,
          ),
        /node 1 \(exp\) reads node 1/,
      );
      assert.throws(
        () =>
          k(
            [
              { op: 'input', index: 0 },
              { op: 'pow' as 'exp', a: 0 },
            ],
            [x],
            out,
          ),
        /unknown op "pow"/,
      );
      const seven = ctx.t([7], rng(2));
      assert.throws(() => k([{ op: 'input', index: 0 }], [seven], out), /input 0 has 7 elements/);
      const transposed: View = { ...x, shape: [3, 4], strides: [1, 3] };
      assert.throws(
        () => k([{ op: 'input', index: 0 }], [transposed], { ...out, shape: [3, 4], strides: strides([3, 4]) }),
        /input 0 \(shape \[3, 4\]\) is not contiguous; materialise it first/,
      );
      const ints = ctx.t([4, 3], null, 'int32');
      assert.throws(() => k([{ op: 'input', index: 0 }], [ints], out), /input 0 must be float32/);
      ctx.done();
    });
  });
}

test('the reference program equals the composed reference unary / binary kernels exactly', () => {
  const ctx = new Ctx(new ReferenceBackend() as FastBackend);
  const r = rng(5);
  const [g, u, b] = [ctx.t([6, 50], r), ctx.t([6, 50], r), ctx.t([50], r)];
  const prog: FusedProgram = [
    { op: 'input', index: 0 },
    { op: 'input', index: 1 },
    { op: 'input', index: 2 },
    { op: 'silu', a: 0 },
    { op: 'mul', a: 3, b: 1 },
    { op: 'add', a: 4, b: 2 },
    { op: 'gelu', a: 5 },
  ];
  const out = ctx.t([6, 50], null);
  ref.fused(prog, [g, u, b], out);
  const [t1, t2, t3, t4] = [0, 1, 2, 3].map(() => ctx.t([6, 50], null));
  ref.unary('silu', g, t1!);
  ref.binary('mul', t1!, u, t2!);
  ref.binary('add', t2!, { ...b, shape: [6, 50], strides: [0, 1] }, t3!);
  ref.unary('gelu', t3!, t4!);
  assert.deepEqual(ctx.arr(out), ctx.arr(t4!));
  ctx.done();
});

/** max error of a native op over a dense sweep, against float64 Math */
function maxErr(op: FusedUnaryOp, lo: number, hi: number, f: (x: number) => number, rel: boolean): number {
  const be = createNativeBackend(addon!, { threads: 1 });
  const ctx = new Ctx(be);
  const n = 200_001;
  const x = ctx.t([n], null);
  const xs = ctx.arr(x).map((_, i) => lo + ((hi - lo) * i) / (n - 1));
  (be.view(x.buf) as Float32Array).set(xs);
  const out = ctx.t([n], null);
  be.kernels.fused!(
    [
      { op: 'input', index: 0 },
      { op, a: 0 },
    ],
    [x],
    out,
  );
  const got = ctx.arr(out);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const w = f(xs[i]!);
    const e = Math.abs(got[i]! - w) / (rel ? Math.abs(w) : 1);
    if (e > worst) worst = e;
  }
  ctx.done();
  return worst;
}

function bound(
  op: FusedUnaryOp,
  lo: number,
  hi: number,
  f: (x: number) => number,
  rel: boolean,
  tol: number,
  what: string,
) {
  const e = maxErr(op, lo, hi, f, rel);
  assert.ok(e < tol, `${what}: max error ${e} over [${lo}, ${hi}], bound ${tol}`);
}

test('vectorised exp / log / tanh / erf error bounds (docs/FUSION.md)', { skip: addon ? false : 'no addon' }, () => {
  bound('exp', -87, 88, Math.exp, true, 4e-7, 'exp relative');
  bound('log', 1e-30, 1e30, Math.log, true, 1.5e-7, 'log relative over 60 decades');
  bound('log', 0.5, 2, Math.log, false, 1e-7, 'log absolute near 1');
  bound('tanh', -10, 10, Math.tanh, false, 3e-7, 'tanh absolute');
  bound('erf', -6, 6, erfRef, false, 5e-7, 'erf absolute');
});
