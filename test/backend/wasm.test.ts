// WebAssembly backend specifics: SIMD availability, the worker-thread pool, the allocator. Its kernels
// are checked against the reference with every other fast backend in fast-backends.test.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { MatmulParams, View } from '../../src/backend/backend.js';
import { referenceKernels as ref } from '../../src/backend/reference/kernels.js';
import { kernelFor } from '../../src/backend/dispatch.js';
import { createWasmBackend, type WasmBackend } from '../../src/backend/wasm/backend.js';
import { WasmAllocator, sizeClass } from '../../src/backend/wasm/allocator.js';
import { relaxedSimdSupported } from '../../src/backend/wasm/module.js';
import { Ctx, close, rng } from './kernel-helpers.js';

// ---- backends: both builds x 1 and 2 threads ------------------------------------------------------
const configs: { variant: 'relaxed' | 'simd'; threads: number }[] = [];
for (const variant of ['relaxed', 'simd'] as const) for (const threads of [1, 2]) configs.push({ variant, threads });

const backends = new Map<string, WasmBackend>();
before(async () => {
  for (const c of configs) {
    if (c.variant === 'relaxed' && !relaxedSimdSupported()) continue;
    // forceParallel: even the small test shapes are split over the threads
    backends.set(`${c.variant}/${c.threads}`, await createWasmBackend({ ...c, forceParallel: c.threads > 1 }));
  }
});
after(async () => {
  for (const be of backends.values()) await be.dispose();
});

test('relaxed SIMD is available under the test runner flags', () => {
  assert.ok(relaxedSimdSupported(), 'run with --experimental-wasm-relaxed-simd (scripts/run-tests.mjs does)');
});

describe('thread pool', () => {
  test('jobs posted right after start and many in a row all complete, on fresh backends', async () => {
    for (let round = 0; round < 3; round++) {
      const be = await createWasmBackend({ threads: 2 });
      const ctx = new Ctx(be);
      const r = rng(round + 1);
      // 128^3 * 2 flops is above the threading threshold: every call is split over both threads
      const a = ctx.t([128, 128], r);
      const b = ctx.t([128, 128], r);
      const o1 = ctx.t([128, 128], null);
      const o2 = ctx.t([128, 128], null);
      const p: MatmulParams = {
        batch: 1,
        M: 128,
        N: 128,
        K: 128,
        transA: false,
        transB: false,
        strideA: 0,
        strideB: 0,
      };
      ref.matmul(a, b, o2, p);
      for (let i = 0; i < 200; i++) kernelFor(be, 'matmul')(a, b, o1, p);
      close(ctx.arr(o1), ctx.arr(o2), 1e-4, 'matmul after many dispatches');
      ctx.done();
      await be.dispose();
      // after dispose kernels still run, on the calling thread
      const c2 = new Ctx(be);
      const x = c2.t([4], () => 1);
      const y = c2.t([4], null);
      kernelFor(be, 'unary')('exp', x, y);
      assert.ok(Math.abs(c2.arr(y)[0]! - Math.E) < 1e-6);
      c2.done();
    }
  });

  test('a kernel error names the kernel and shapes', async () => {
    const be = await createWasmBackend({ threads: 1 });
    const a: View = { buf: be.allocate('float32', 4), shape: [2, 2], strides: [2, 1], offset: 0 };
    // pointers far outside the memory make the wasm kernel trap
    const bogus = { ...a, offset: 2 ** 29 };
    assert.throws(
      () =>
        kernelFor(be, 'matmul')(bogus, a, a, {
          batch: 1,
          M: 2,
          N: 2,
          K: 2,
          transA: false,
          transB: false,
          strideA: 0,
          strideB: 0,
        }),
      /gemm(SmallM)?\(batch=1, M=2, N=2, K=2/,
    );
    await be.dispose();
  });
});

describe('allocator', () => {
  test('alignment, zero fill on reuse, bytesInUse, growth', async () => {
    const be = await createWasmBackend({ threads: 1 });
    const base = be.bytesInUse();
    const a = be.allocate('float32', 3);
    assert.equal(a.ptr % 64, 0);
    (be.view(a) as Float32Array).set([1, 2, 3]);
    be.free(a);
    const b = be.allocate('float32', 3);
    assert.equal(b.ptr, a.ptr, 'a freed block of the same class is reused');
    assert.deepEqual([...be.view(b)], [0, 0, 0]);
    (be.view(b) as Float32Array).set([4, 5, 6]);
    be.free(b);
    const u = be.allocate('float32', 3, false); // uninitialised: may keep old contents
    assert.equal(u.ptr, b.ptr);
    be.free(u);
    const z = be.allocate('float32', 3);
    assert.deepEqual([...be.view(z)], [0, 0, 0], 'zero-filled by default');
    be.free(z);
    const b2 = be.allocate('float32', 3);
    assert.equal(b2.ptr, b.ptr);
    assert.ok(be.bytesInUse() > base);
    // grow: 64 MiB, then the view reflects the grown memory
    const big = be.allocate('float32', 16 << 20);
    const v = be.view(big) as Float32Array;
    v[v.length - 1] = 7;
    assert.equal((be.read(big, v.length - 1, 1) as Float32Array)[0], 7);
    assert.equal((be.view(b2) as Float32Array).length, 3);
    be.free(big);
    be.free(b2);
    assert.equal(be.bytesInUse(), base);
    await be.dispose();
  });

  test('coalescing: random alloc/free never overlaps, accounts exactly, and returns to empty', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 4096 });
    const a = new WasmAllocator(memory, 1000);
    const base = a.reservedBytes();
    const live = new Map<number, number>(); // ptr -> requested bytes
    let seed = 7;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    for (let i = 0; i < 5000; i++) {
      if (live.size > 0 && rnd(100) < 48) {
        const ptrs = [...live.keys()];
        const p = ptrs[rnd(ptrs.length)]!;
        a.release(p, 'test');
        live.delete(p);
      } else {
        const bytes = 1 + rnd(rnd(4) === 0 ? 200_000 : 3000);
        const p = a.alloc(bytes, true, 'test');
        assert.equal(p % 64, 0);
        const z = new Uint8Array(memory.buffer, p, bytes);
        assert.ok(
          z.every((x) => x === 0),
          'zeroed on request, fresh or reused',
        );
        z.fill(0xab); // dirty it so a later reuse must zero it again
        live.set(p, bytes);
      }
      // no two live blocks overlap; live + free blocks tile [base, top) exactly
      const spans = [...live].map(([p, n]) => [p, p + sizeClass(n)] as const).sort((x, y) => x[0] - y[0]);
      for (let k = 1; k < spans.length; k++) assert.ok(spans[k - 1]![1] <= spans[k]![0], 'overlap');
      const used = spans.reduce((s, [p, e]) => s + (e - p), 0);
      assert.equal(used, a.bytesInUse());
      assert.equal(used + a.freeBytes(), a.reservedBytes() - base, 'live + free tile the reserved span');
    }
    for (const p of live.keys()) a.release(p, 'test');
    assert.equal(a.reservedBytes(), base, 'everything merged back into the bump region');
    assert.equal(a.freeBytes(), 0);
  });

  test('coalescing: shapes that change every step reuse memory instead of growing it', () => {
    // the inference engine's pattern: each step allocates activations sized by its (varying) token count
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
    const a = new WasmAllocator(memory, 1024);
    let seed = 3;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    let peakLive = 0;
    for (let step = 0; step < 2000; step++) {
      const T = 1 + rnd(512);
      const ptrs = [T * 4 * 256, T * 4 * 1024, T * 4 * 65, T * 4 * 256].map((n) => a.alloc(n, false, 'act'));
      peakLive = Math.max(peakLive, a.bytesInUse());
      for (const p of ptrs.reverse()) a.release(p, 'act');
    }
    assert.ok(a.reservedBytes() - 1024 <= 2 * peakLive, `reserved ${a.reservedBytes()} vs peak live ${peakLive}`);
  });

  test('double free and use after free are rejected', async () => {
    const be = await createWasmBackend({ threads: 1 });
    const a = be.allocate('int32', 10);
    be.free(a);
    assert.throws(() => be.free(a), /already freed/);
    assert.throws(() => be.view(a), /already freed/);
    assert.throws(() => be.read(a), /already freed/);
    assert.throws(() => be.write(a, new Int32Array(1)), /already freed/);
    const x = be.allocate('float32', 4);
    const out = be.allocate('float32', 4);
    be.free(x);
    const vx = { buf: x, shape: [4], strides: [1], offset: 0 };
    const vo = { buf: out, shape: [4], strides: [1], offset: 0 };
    assert.throws(() => kernelFor(be, 'unary')('exp', vx, vo), /already freed/);
    await be.dispose();
  });

  test('exceeding 4 GiB is a clear error', async () => {
    const be = await createWasmBackend({ threads: 1 });
    assert.throws(() => be.allocate('float32', 2 ** 30 + 16), /out of memory|4 GiB/);
    await be.dispose();
  });
});

// The kernels of every fast backend (both wasm builds x 1 and 2 threads, and native) are checked against
// the reference by one suite: test/backend/fast-backends.test.ts.
