// Cases of the shared fast-backend suite (fast-backends.test.ts) for the inference kernels: paged attention
// over random block layouts, and the weight-only quantized matmul. Each runs the kernel as the op layer
// dispatches it on the backend under test and compares with the reference kernel on the same buffers.
import assert from 'node:assert/strict';
import type { DType, PagedAttentionParams, PagedScales, View } from '../../src/backend/backend.js';
import { f32ToBf16, f32ToF16 } from '../../src/backend/dtype.js';
import { referenceKernels as ref } from '../../src/backend/reference/kernels.js';
import { dequantizeRows, quantizeRows } from '../../src/backend/reference/quant.js';
import { Ctx, close, rng } from './kernel-helpers.js';

/** Fisher-Yates with the suite's generator */
function shuffle<T>(xs: T[], r: () => number): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor((r() + 0.5) * (i + 1)) % (i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

/** a contiguous KV pool of `dtype` holding r()'s values (rounded to the dtype; int8: random codes, see scalesOf) */
function pool(ctx: Ctx, shape: number[], r: () => number, dtype: DType): View {
  if (dtype === 'float32') return ctx.t(shape, r, 'float32', 1);
  if (dtype === 'int8') return ctx.t(shape, () => Math.round(127 * Math.max(-1, Math.min(1, r()))), 'int8', 1);
  const t = ctx.t(shape, null, dtype, 1);
  const a = ctx.be.view(t.buf) as Uint16Array;
  const enc = dtype === 'float16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < a.length - 1; i++) a[1 + i] = enc(r());
  return t;
}

/**
 * Ragged batches over shuffled blocks: sequences whose step is a prefill chunk (several tokens, starting
 * mid-sequence) or one decode token, tokens of different sequences interleaved, odd head dims, GQA / MQA,
 * sliding windows, block sizes 1..7, unused table entries -1. KV pools of `kvDtype`; a float16 pool holds
 * V values around 1e-4, half of them float16 subnormals (outputs compared scaled back up).
 */
export function pagedAttentionCases(ctx: Ctx, kvDtype: DType = 'float32'): void {
  if (kvDtype !== 'float32' && ctx.be.name.startsWith('native')) {
    // the native kernel must run these itself, not hand them to the reference it is compared with
    const dt: DType[] = ['float32', kvDtype, kvDtype, 'int32', 'int32', 'int32', 'float32'];
    assert.ok(ctx.be.supports?.('pagedAttention', dt), `${ctx.be.name} runs pagedAttention over a ${kvDtype} pool`);
  }
  const vScale = kvDtype === 'float16' ? 1e-4 : 1;
  const r = rng(77);
  const cases: [H: number, Hkv: number, Dk: number, Dv: number, bs: number, window: number][] = [
    [4, 2, 16, 16, 4, 0],
    [3, 1, 10, 6, 3, 0],
    [4, 4, 8, 8, 5, 5],
    [2, 1, 7, 3, 1, 3],
    [8, 2, 64, 64, 16, 0],
    [6, 3, 33, 17, 7, 11],
  ];
  for (const [H, Hkv, Dk, Dv, bs, window] of cases) {
    // per sequence: total length after this step, and how many of its last tokens run now
    const seqs: [len: number, now: number][] = [
      [1, 1],
      [37, 1],
      [20, 9],
      [9, 9],
      [64, 3],
    ];
    const blocksNeeded = seqs.reduce((s, [n]) => s + Math.ceil(n / bs), 0);
    const numBlocks = blocksNeeded + 5;
    const free = shuffle(
      Array.from({ length: numBlocks }, (_, i) => i),
      r,
    );
    const maxBlocks = Math.max(...seqs.map(([n]) => Math.ceil(n / bs))) + 1;
    const tab = new Array<number>(seqs.length * maxBlocks).fill(-1);
    seqs.forEach(([n], s) => {
      for (let b = 0; b < Math.ceil(n / bs); b++) tab[s * maxBlocks + b] = free.pop()!;
    });
    // tokens of the step, interleaved across sequences
    const toks: [number, number][] = [];
    seqs.forEach(([n, now], s) => {
      for (let p = n - now; p < n; p++) toks.push([s, p]);
    });
    shuffle(toks, r);
    const T = toks.length;
    const slots = numBlocks * bs;
    const q = ctx.t([H, T, Dk], r, 'float32', 2);
    const k = pool(ctx, [slots, Hkv, Dk], () => 2 * r(), kvDtype);
    const v = pool(ctx, [slots, Hkv, Dv], () => vScale * r(), kvDtype);
    // int8: per-row scales around 1/64 (one row at 0: an all-zero row), in views with an offset
    const scales: PagedScales | undefined =
      kvDtype === 'int8'
        ? {
            k: ctx.t([slots, Hkv], () => (1 + r()) / 64, 'float32', 3),
            v: ctx.t([slots, Hkv], () => (1 + r()) / 64, 'float32', 2),
          }
        : undefined;
    if (scales) (ctx.be.view(scales.v.buf) as Float32Array)[2] = 0;
    const tables = ctx.ints([seqs.length, maxBlocks], tab);
    const seq = ctx.ints(
      [T],
      toks.map(([s]) => s),
    );
    const pos = ctx.ints(
      [T],
      toks.map(([, p]) => p),
    );
    const o = [ctx.t([H, T, Dv], null), ctx.t([H, T, Dv], null)] as [View, View];
    const p: PagedAttentionParams = { T, H, Hkv, Dk, Dv, blockSize: bs, S: seqs.length, maxBlocks, window, scale: 0.3 };
    ctx.k.pagedAttention(q, k, v, tables, seq, pos, o[0], p, scales);
    ref.pagedAttention(q, k, v, tables, seq, pos, o[1], p, scales);
    const up = (a: Float32Array) => a.map((x) => x / vScale);
    close(up(ctx.arr(o[0])), up(ctx.arr(o[1])), 2e-5, `pagedAttention ${kvDtype} ${JSON.stringify(p)}`);
  }
  ctx.done();
}

/**
 * A step's new keys into a pool of `dtype` at shuffled slots, equal bit for bit to the reference: odd and
 * vector-sized row lengths, a pool view with an offset, and the values whose encoding has edges (float16
 * subnormals and underflow, ties, finite overflow saturating to +-65504, infinities, NaN, -0).
 */
export function pagedWriteCases(ctx: Ctx, dtype: DType): void {
  if (ctx.be.name.startsWith('native')) {
    const dt: DType[] = ['float32', 'int32', dtype];
    assert.ok(ctx.be.supports?.('pagedWrite', dt), `${ctx.be.name} runs pagedWrite into a ${dtype} pool`);
  }
  const r = rng(5);
  const edges = [
    0,
    -0,
    1e-6,
    -3e-8,
    1e-9,
    65504,
    65519,
    65520,
    7e4,
    -7e4,
    1e38,
    Infinity,
    -Infinity,
    NaN,
    1 + 2 ** -11,
    1 + 3 * 2 ** -11,
    1 + 2 ** -8,
    5.96e-8,
  ];
  for (const [T, Hkv, D] of [
    [1, 1, 7],
    [5, 2, 16],
    [32, 4, 32],
    [13, 3, 33],
    [40, 2, 64],
  ] as const) {
    const slots = 2 * T + 3;
    const order = shuffle(
      Array.from({ length: slots }, (_, i) => i),
      r,
    ).slice(0, T);
    let e = 0;
    // int8: edge values only in a few rows (one NaN or infinity zeroes its whole row), ties at x / s = k + 1/2
    const edgeP = dtype === 'int8' ? 0.004 : 0.1;
    const src = ctx.t([Hkv, T, D], () => (r() < edgeP ? edges[e++ % edges.length]! : r() * 8));
    if (dtype === 'int8') {
      // a row whose scale is 1 / 127 * 127 / 127... : max 127 makes s = 1, and x = 2.5, -2.5 are exact ties
      const a = ctx.be.view(src.buf) as Float32Array;
      a.set([127, 2.5, -2.5, 0.5, -0.5, 126.5], 0);
      a.fill(0, D, Math.min(2 * D, a.length)); // an all-zero row
    }
    const sl = ctx.ints([T], order);
    const pools = [0, 1].map(() => ctx.t([slots, Hkv, D], () => 0, dtype, 1));
    const scales = dtype === 'int8' ? [0, 1].map(() => ctx.t([slots, Hkv], () => -1, 'float32', 2)) : [];
    const p = { T, Hkv, D };
    ctx.k.pagedWrite(src, sl, pools[0]!, p, scales[0]);
    ref.pagedWrite(src, sl, pools[1]!, p, scales[1]);
    for (const [what, pair] of [
      ['element', pools],
      ['scale', scales],
    ] as const) {
      if (pair.length === 0) continue;
      const [got, want] = pair.map((v) => Array.from(ctx.be.view(v.buf)));
      for (let i = 0; i < want!.length; i++)
        if (!Object.is(got![i], want![i]))
          assert.fail(`pagedWrite ${dtype} T=${T} Hkv=${Hkv} D=${D} ${what} ${i}: got ${got![i]}, want ${want![i]}`);
    }
  }
  // a slot outside the pool is an error naming the token, never a write out of bounds
  const src = ctx.t([1, 2, 4], () => 1);
  const pool = ctx.t([3, 1, 4], () => 0, dtype);
  const scale = dtype === 'int8' ? ctx.t([3, 1], null) : undefined;
  if (ctx.be.name.startsWith('native'))
    assert.throws(
      () => ctx.k.pagedWrite(src, ctx.ints([2], [0, 3]), pool, { T: 2, Hkv: 1, D: 4 }, scale),
      /token 1 writes slot 3/,
    );
  // an int8 pool without its scales (or scales with a float pool) is an error, not a silent write
  assert.throws(
    () =>
      ctx.k.pagedWrite(
        src,
        ctx.ints([2], [0, 1]),
        pool,
        { T: 2, Hkv: 1, D: 4 },
        dtype === 'int8' ? undefined : ctx.t([3, 1], null),
      ),
    /needs its scales|has no scales/,
  );
  ctx.done();
}

/**
 * Token-major rows to head-major with rotate_half RoPE, bit for bit the reference's (its products rounded to
 * float32 before the sum): full and partial rotary dims, no rotation (a transpose), one token, views with
 * offsets, sizes with vector tails.
 */
export function ropeHeadsCases(ctx: Ctx): void {
  const r = rng(12);
  for (const [T, H, D, half] of [
    [1, 8, 32, 16],
    [5, 3, 10, 5],
    [7, 2, 12, 4],
    [3, 4, 8, 0],
    [33, 4, 64, 32],
    [130, 8, 32, 16],
  ] as const) {
    const x = ctx.t([T, H, D], r, 'float32', 3);
    const cos = ctx.t([T, half], r, 'float32', 1);
    const sin = ctx.t([T, half], r, 'float32', 2);
    const outs = [0, 1].map(() => ctx.t([H, T, D], null));
    const p = { T, H, D, half };
    ctx.k.ropeHeads(x, cos, sin, outs[0]!, p);
    ref.ropeHeads(x, cos, sin, outs[1]!, p);
    const [got, want] = outs.map((o) => ctx.arr(o));
    for (let i = 0; i < want!.length; i++)
      if (!Object.is(got![i], want![i]))
        assert.fail(`ropeHeads T=${T} H=${H} D=${D} half=${half} at ${i}: ${got![i]} vs ${want![i]}`);
  }
  ctx.done();
}

/** a table entry of -1 inside a token's window is an error naming the token, never a read out of bounds */
export function pagedAttentionBadTable(ctx: Ctx): void {
  const q = ctx.t([1, 1, 4], () => 1);
  const k = ctx.t([8, 1, 4], () => 1);
  const v = ctx.t([8, 1, 4], () => 1);
  const tables = ctx.ints([1, 2], [0, -1]);
  const seq = ctx.ints([1], [0]);
  const pos = ctx.ints([1], [5]);
  const out = ctx.t([1, 1, 4], null);
  const p: PagedAttentionParams = {
    T: 1,
    H: 1,
    Hkv: 1,
    Dk: 4,
    Dv: 4,
    blockSize: 4,
    S: 1,
    maxBlocks: 2,
    window: 0,
    scale: 1,
  };
  if (ctx.be.kernels.pagedAttention) {
    assert.throws(
      () => ctx.k.pagedAttention(q, k, v, tables, seq, pos, out, p),
      /token 0 \(position 5\) reads block -1/,
    );
  }
  ctx.done();
}

/**
 * q8_0 / q4_0 x @ dequant(W)^T, few rows (the GEMV path) and many (the GEMM path). A fast GEMV may quantize
 * the activations to int8 per block of 32 (llama.cpp's scheme): its error is then at most
 * sum over blocks of (sum |w|) * max|x| / 254 per output, which is the bound checked on top of the
 * float tolerance; the GEMM path stays within float rounding.
 */
export function quantMatmulCases(ctx: Ctx): void {
  const r = rng(91);
  for (const bits of [8, 4] as const) {
    for (const [M, N, K] of [
      [1, 1, 32],
      [1, 37, 96],
      [2, 19, 64],
      [4, 5, 288],
      [5, 9, 32],
      [37, 13, 320],
      [130, 41, 416],
    ] as const) {
      const wf = Float32Array.from({ length: N * K }, () => r());
      const bytes = quantizeRows(wf, N, K, bits);
      const words = new Int32Array(Math.ceil(bytes.length / 4) + 1);
      new Uint8Array(words.buffer).set(bytes, 4); // a word in front exercises View.offset
      const w = ctx.ints([words.length], Array.from(words));
      const wv: View = { ...w, shape: [words.length - 1], strides: [1], offset: 1 };
      const x = ctx.t([M, K], () => 3 * r(), 'float32', 3);
      const o = [ctx.t([M, N], null), ctx.t([M, N], null)] as [View, View];
      const p = { M, N, K, bits };
      ctx.k.quantMatmul(x, wv, o[0], p);
      ref.quantMatmul(x, wv, o[1], p);
      const [got, want] = [ctx.arr(o[0]), ctx.arr(o[1])];
      const wd = dequantizeRows(bytes, N, K, bits);
      const xs = ctx.arr(x);
      for (let m = 0; m < M; m++) {
        for (let j = 0; j < N; j++) {
          let bound = 0;
          let mag = 0;
          for (let b = 0; b < K / 32; b++) {
            let sw = 0;
            let ax = 0;
            for (let i = b * 32; i < b * 32 + 32; i++) {
              sw += Math.abs(wd[j * K + i]!);
              ax = Math.max(ax, Math.abs(xs[m * K + i]!));
              mag += Math.abs(wd[j * K + i]! * xs[m * K + i]!);
            }
            bound += (sw * ax) / 254;
          }
          const err = Math.abs(got[m * N + j]! - want[m * N + j]!);
          // the int8 activation rounding (native AVX2 / AVX-512 targets, every M) is within `bound`
          const tol = bound * 1.001 + 2e-6 * mag + 1e-6;
          assert.ok(
            err <= tol,
            `quantMatmul q${bits} M=${M} N=${N} K=${K} at (${m}, ${j}): |${got[m * N + j]} - ${want[m * N + j]}| > ${tol}`,
          );
        }
      }
    }
  }
  ctx.done();
}
