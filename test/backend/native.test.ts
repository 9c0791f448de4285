// The native backend's own contract: memory (alignment, > 4 GiB, free detaches views), dispatch,
// bounds errors, that fast paths really run native code, and that `npm install` never fails
// when the addon cannot be compiled. Kernel-by-kernel checks are in fast-backends.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { View } from '../../src/backend/backend.js';
import { referenceKernels } from '../../src/backend/reference/kernels.js';
import { createNativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';

const { addon, error } = loadNativeAddon();
const skip = addon ? false : error;
// dist/test/backend -> repository root
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

test('allocation: 64-byte aligned, zeroed, bytesInUse, free detaches every view', { skip }, () => {
  const be = createNativeBackend(addon!, { threads: 1 });
  const base = be.bytesInUse();
  const a = be.allocate('float32', 37);
  assert.equal(a.ptr % 64, 0);
  const v = be.view(a) as Float32Array;
  assert.equal(v.length, 37);
  assert.deepEqual([...v].slice(0, 3), [0, 0, 0]);
  v[36] = 5;
  assert.equal((be.read(a, 36, 1) as Float32Array)[0], 5);
  assert.equal(be.bytesInUse(), base + 37 * 4);
  be.free(a);
  assert.equal(v.length, 0, 'the old view is detached, not dangling');
  assert.equal(be.bytesInUse(), base);
  assert.throws(() => be.free(a), /already freed/);
  assert.throws(() => be.view(a), /already freed/);
  const x = { buf: be.allocate('float32', 4), shape: [4], strides: [1], offset: 0 };
  const y = { buf: be.allocate('float32', 4), shape: [4], strides: [1], offset: 0 };
  be.free(x.buf);
  assert.throws(() => be.kernels.unary!('exp', x, y), /already freed/);
  be.free(y.buf);
});

test(
  'large blocks: a freed one is reused for the next allocation of its size class, zeroed when asked',
  { skip },
  () => {
    const be = createNativeBackend(addon!, { threads: 1 });
    addon!.trimCache!();
    const n = (3 << 20) / 4; // 3 MiB of float32: an mmap'd block
    const a = be.allocate('float32', n);
    (be.view(a) as Float32Array).fill(9);
    const at = a.ptr;
    be.free(a);
    assert.ok(addon!.cachedBytes!() >= n * 4, 'the freed block is cached, not unmapped');
    const b = be.allocate('float32', n - 100); // same size class
    assert.equal(b.ptr, at, 'the cached block is reused');
    const v = be.view(b) as Float32Array;
    assert.equal(v.length, n - 100);
    assert.equal(Math.max(...v.subarray(0, 1000)), 0, 'zeroed on reuse');
    assert.equal(v[n - 101], 0);
    assert.equal(addon!.cachedBytes!(), 0);
    be.free(b);
    assert.ok(addon!.trimCache!() > 0);
    assert.equal(addon!.cachedBytes!(), 0);
  },
);

// huge-page advice is visible where the kernel has transparent huge pages (Linux) and says so in smaps
const thp = existsSync('/sys/kernel/mm/transparent_hugepage/enabled') && existsSync('/proc/self/smaps');

/** the VmFlags of the mapping holding address `at` in this process (Linux), or null elsewhere */
function vmFlags(at: number): string | null {
  let inside = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (m) inside = parseInt(m[1]!, 16) <= at && at < parseInt(m[2]!, 16);
    else if (inside && line.startsWith('VmFlags:')) return line.slice(8).trim();
  }
  return null;
}

test('large blocks: carved from huge-page regions in order, each its own memory', { skip }, () => {
  const be = createNativeBackend(addon!, { threads: 1 });
  addon!.trimCache!();
  // the sizes of a decoding model's weights (256 KiB .. 3 MiB), written one by one and read back
  const sizes = [65536, 131072, 720896, 262144, 786432, 131072];
  const bufs = sizes.map((n, i) => {
    const b = be.allocate('float32', n + i);
    (be.view(b) as Float32Array).fill(i + 1);
    return b;
  });
  bufs.forEach((b, i) => {
    const v = be.view(b) as Float32Array;
    assert.equal(b.ptr % 64, 0);
    assert.equal(v[0], i + 1);
    assert.equal(v[v.length - 1], i + 1, `block ${i} was not overwritten by its neighbour`);
  });
  // Linux: the regions are advised for transparent huge pages (VmFlags "hg"), the smaller blocks included
  if (thp) for (const b of bufs) assert.match(vmFlags(b.ptr) ?? '', /\bhg\b/);
  for (const b of bufs) be.free(b);
  addon!.trimCache!();
});

test('LINEAGE_NATIVE_HUGEPAGES=0 maps large blocks on plain pages', { skip: skip || !thp }, () => {
  const addonPath = process.env.LINEAGE_NATIVE_ADDON ?? path.join(root, 'build', 'Release', 'lineage_native.node');
  const script = `
    const a = require(${JSON.stringify(addonPath)});
    const p = a.alloc(3 << 20, true);
    const fs = require('fs');
    let inside = false, flags = '';
    for (const l of fs.readFileSync('/proc/self/smaps', 'utf8').split('\\n')) {
      const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(l);
      if (m) inside = parseInt(m[1], 16) <= p && p < parseInt(m[2], 16);
      else if (inside && l.startsWith('VmFlags:')) flags = l;
    }
    console.log(flags);`;
  for (const [env, huge] of [
    ['0', false],
    ['1', true],
  ] as const) {
    const r = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, LINEAGE_NATIVE_HUGEPAGES: env },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /VmFlags:/);
    assert.equal(/\bhg\b/.test(r.stdout), huge, `LINEAGE_NATIVE_HUGEPAGES=${env}: ${r.stdout}`);
  }
});

test('a buffer larger than 4 GiB (pages are mapped lazily, only the touched ones are used)', { skip }, () => {
  const be = createNativeBackend(addon!, { threads: 1 });
  const n = 2 ** 30 + 1024; // 4 GiB + 4 KiB of float32
  const big = be.allocate('float32', n);
  be.write(big, new Float32Array([7]), n - 1);
  be.write(big, new Float32Array([3]), 0);
  assert.equal((be.read(big, n - 1, 1) as Float32Array)[0], 7);
  // a kernel on the tail, past the 4 GiB mark
  const tail: View = { buf: big, shape: [1024], strides: [1], offset: n - 1024 };
  be.kernels.unary!('neg', tail, tail);
  assert.deepEqual([...be.read(big, n - 2, 2)], [-0, -7]);
  assert.deepEqual([...be.read(big, 0, 1)], [3]);
  // Node caps one ArrayBuffer at 4 GiB: view() says so instead of returning a wrong-length array
  assert.throws(() => be.view(big), /4 GiB limit/);
  be.free(big);
});

test('views reaching outside their buffer are rejected before any native code runs', { skip }, () => {
  const be = createNativeBackend(addon!, { threads: 1 });
  const a: View = { buf: be.allocate('float32', 4), shape: [2, 2], strides: [2, 1], offset: 0 };
  const p = { batch: 1, M: 2, N: 2, K: 2, transA: false, transB: false, strideA: 0, strideB: 0 };
  assert.throws(
    () => be.kernels.matmul!({ ...a, offset: 3 }, a, a, p),
    /matmul: view \[3, 7\) is outside a buffer of 4/,
  );
  assert.throws(() => be.kernels.matmul!(a, a, a, { ...p, batch: 2, strideA: 4 }), /outside a buffer/);
  be.free(a.buf);
});

test('dispatch: the CPU target is reported and an unavailable one is a clear error', { skip }, () => {
  const info = addon!.info();
  assert.ok(['avx512', 'avx2', 'portable'].includes(info.target));
  if (info.avx2) assert.notEqual(info.target, 'portable', 'an AVX2 CPU does not get the portable kernels');
  if (!info.avx512f)
    assert.throws(() => createNativeBackend(addon!, { target: 'avx512' }), /cannot run the 'avx512' kernels/);
  const be = createNativeBackend(addon!, { target: info.target });
  assert.equal(be.name, `native-${info.target}`);
});

test('fast paths run native code, not the reference fallback', { skip }, () => {
  const be = createNativeBackend(addon!, { threads: 2 });
  const names = ['matmul', 'unary', 'binary', 'softmax', 'layerNorm', 'attention', 'adamw', 'copy'] as const;
  const saved = names.map((n) => referenceKernels[n]);
  for (const n of names)
    (referenceKernels as unknown as Record<string, unknown>)[n] = () => assert.fail(`reference ${n} called`);
  try {
    const t = (shape: number[]): View => {
      const buf = be.allocate(
        'float32',
        shape.reduce((a, b) => a * b, 1),
      );
      (be.view(buf) as Float32Array).fill(0.5);
      const st = shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
      return { buf, shape, strides: st, offset: 0 };
    };
    const a = t([8, 8]);
    const o = t([8, 8]);
    be.kernels.matmul!(a, a, o, { batch: 1, M: 8, N: 8, K: 8, transA: false, transB: true, strideA: 0, strideB: 0 });
    assert.equal((be.view(o.buf) as Float32Array)[0], 2);
    be.kernels.unary!('gelu', a, o);
    be.kernels.binary!('add', a, a, o);
    be.kernels.softmax!(a, o, 8, 8, false);
    be.kernels.layerNorm!(a, null, null, o, t([8]), t([8]), { rows: 8, n: 8, eps: 1e-5 });
    be.kernels.adamw!(t([64]), t([64]), t([64]), t([64]), {
      n: 64,
      lr: 0.1,
      beta1: 0.9,
      beta2: 0.99,
      eps: 1e-8,
      weightDecay: 0,
      step: 1,
    });
    be.kernels.copy!({ ...a, strides: [1, 8] }, o);
    const q = t([1, 2, 4, 8]);
    be.kernels.attention!(q, q, q, t([1, 2, 4, 8]), t([1, 2, 4]), {
      B: 1,
      H: 2,
      Hkv: 2,
      Tq: 4,
      Tk: 4,
      Dk: 8,
      Dv: 8,
      scale: 0.3,
      causal: true,
      window: 0,
      kvLen: null,
      bias: null,
    });
  } finally {
    names.forEach((n, i) => ((referenceKernels as unknown as Record<string, unknown>)[n] = saved[i]));
  }
});

test('install script: exit 0 and a one-line notice when the compiler is unavailable', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lineage-native-'));
  try {
    for (const f of ['binding.gyp', 'native', 'package.json'])
      cpSync(path.join(root, f), path.join(dir, f), { recursive: true });
    mkdirSync(path.join(dir, 'scripts'));
    cpSync(path.join(root, 'scripts', 'build-native.mjs'), path.join(dir, 'scripts', 'build-native.mjs'));
    mkdirSync(path.join(dir, 'node_modules'));
    symlinkSync(path.join(root, 'node_modules', 'node-addon-api'), path.join(dir, 'node_modules', 'node-addon-api'));
    for (const env of [{ CXX: '/bin/false', CC: '/bin/false' }, { LINEAGE_SKIP_NATIVE: '1' }]) {
      const r = spawnSync(process.execPath, ['scripts/build-native.mjs'], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, ...env },
      });
      assert.equal(r.status, 0, `exit status with ${JSON.stringify(env)}: ${r.stderr}`);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, 1, `one line: ${r.stdout}`);
      assert.match(lines[0]!, /^lineage: native backend not built \(.+\); using the WebAssembly backend$/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
