// Weight-only quantization: the GGUF q8_0 / q4_0 codec (layout and error bounds), the WebAssembly kernels
// against the reference kernel and against dequantize-then-matmul (both builds, 1 and 2 threads, odd shapes),
// the op's input gradient, and QuantLinear / quantizeModel on a tiny LLaMA.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  dequantizeRows,
  quantMatmul as refQuantMatmul,
  quantRowBytes,
  quantizeRows,
} from '../../src/backend/reference/quant.js';
import { f16ToF32, f32ToF16 } from '../../src/backend/dtype.js';
import { createWasmBackend, type WasmBackend } from '../../src/backend/wasm/backend.js';
import { relaxedSimdSupported } from '../../src/backend/wasm/module.js';
import { getBackend, noGrad, setBackend } from '../../src/tensor/engine.js';
import { Rng } from '../../src/tensor/random.js';
import {
  dequantizeWeight,
  matmul,
  quantizeWeight,
  quantizedLinear,
  randn,
  sum,
  tensor,
  transpose,
  type QuantBits,
} from '../../src/ops/index.js';
import { Linear, QuantLinear, quantizeModel } from '../../src/nn/index.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';

function rand(n: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = (s / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

function maxRelErr(got: Float32Array, want: Float32Array): number {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  return worst;
}

describe('GGUF block codec', () => {
  test('q8_0 layout: float16 scale then 32 int8, d = max|x| / 127', () => {
    const x = Float32Array.from({ length: 32 }, (_, i) => (i - 16) / 8); // -2 .. 1.875
    const b = quantizeRows(x, 1, 32, 8);
    assert.equal(b.length, 34);
    const d = f16ToF32(b[0]! | (b[1]! << 8));
    assert.equal(b[0]! | (b[1]! << 8), f32ToF16(2 / 127));
    assert.equal((b[2]! << 24) >> 24, -127); // x[0] = -2 = -max
    assert.equal(b[2 + 16], 0); // x[16] = 0
    assert.equal((b[2 + 31]! << 24) >> 24, Math.round(1.875 / (2 / 127)));
    assert.ok(Math.abs(dequantizeRows(b, 1, 32, 8)[0]! - -127 * d) < 1e-7);
  });

  test('q4_0 layout: element i in the low nibble of qs[i], element i + 16 in its high nibble; max maps to -8', () => {
    const x = new Float32Array(32);
    x[0] = 4; // the largest magnitude, positive: d = 4 / -8 = -0.5, so x[0] -> 0 (= -8 + 8)
    x[16] = -4; // -> q = trunc(8 + 8.5) = 16, clamped to 15
    x[1] = 1; // -> trunc(-2 + 8.5) = 6
    x[17] = -1; // -> trunc(2 + 8.5) = 10
    const b = quantizeRows(x, 1, 32, 4);
    assert.equal(b.length, 18);
    assert.equal(b[0]! | (b[1]! << 8), f32ToF16(-0.5));
    assert.equal(b[2], 0 | (15 << 4));
    assert.equal(b[3], 6 | (10 << 4));
    assert.equal(b[4], 8 | (8 << 4)); // zeros -> 8
    const w = dequantizeRows(b, 1, 32, 4);
    assert.deepEqual([w[0], w[16], w[1], w[17], w[2]! + 0], [4, -3.5, 1, -1, 0]); // + 0: d * 0 is -0 for d < 0
  });

  for (const bits of [8, 4] as const) {
    test(`q${bits === 8 ? '8' : '4'}_0 round trip: every error within its block's bound`, () => {
      const N = 7;
      const K = 96;
      const w = rand(N * K, 11 + bits, 0.3);
      w[5] = 0; // an all-zero block must stay zero (d = 0)
      for (let i = 32; i < 64; i++) w[i] = 0;
      const back = dequantizeRows(quantizeRows(w, N, K, bits), N, K, bits);
      for (let blk = 0; blk < (N * K) / 32; blk++) {
        let amax = 0;
        for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(w[blk * 32 + i]!));
        // q8: half a step (amax / 254) plus float16 rounding of the scale; q4: one step (the clamp at 15)
        const bound = bits === 8 ? amax / 254 + amax * 2 ** -10 : amax / 8 + amax * 2 ** -9;
        for (let i = 0; i < 32; i++) {
          const e = Math.abs(back[blk * 32 + i]! - w[blk * 32 + i]!);
          assert.ok(e <= bound + 1e-9, `q${bits} block ${blk} element ${i}: error ${e} > bound ${bound}`);
        }
      }
      for (let i = 32; i < 64; i++) assert.equal(back[i]! + 0, 0);
    });
  }

  test('K not a multiple of 32 and bad bits are clear errors', () => {
    assert.throws(() => quantRowBytes(40, 8), /40 is not a multiple of 32/);
    assert.throws(
      () => quantizeWeight(tensor(rand(80, 1), { shape: [2, 40] }), 8),
      /in_features 40 is not a multiple of 32/,
    );
    assert.throws(
      () => quantizeWeight(tensor(rand(64, 1), { shape: [2, 32] }), 3 as QuantBits),
      /bits must be 8 \(q8_0\) or 4 \(q4_0\), got 3/,
    );
  });
});

// ---- kernels ------------------------------------------------------------------------------------------
const configs: { variant: 'relaxed' | 'simd'; threads: number }[] = [];
for (const variant of ['relaxed', 'simd'] as const) for (const threads of [1, 2]) configs.push({ variant, threads });
const backends = new Map<string, WasmBackend>();
before(async () => {
  for (const c of configs) {
    if (c.variant === 'relaxed' && !relaxedSimdSupported()) continue;
    backends.set(`${c.variant}/${c.threads}`, await createWasmBackend({ ...c, forceParallel: c.threads > 1 }));
  }
});
after(async () => {
  for (const be of backends.values()) await be.dispose();
});

const shapes: [number, number, number][] = [
  [1, 1, 32],
  [1, 7, 96],
  [3, 33, 64],
  [4, 5, 288],
  [5, 9, 32],
  [37, 13, 320],
  [130, 11, 64],
];

describe('quantMatmul kernels (qgemv for M <= 4, qgemm above)', () => {
  for (const bits of [8, 4] as const) {
    for (const [M, N, K] of shapes) {
      test(`q${bits}: M=${M} N=${N} K=${K} on every build and thread count`, () => {
        const w = rand(N * K, M * 131 + N * 7 + K, 0.5);
        const x = rand(M * K, K + 3);
        const bytes = quantizeRows(w, N, K, bits);
        // independent float64 reference: dequantize, then multiply
        const wd = dequantizeRows(bytes, N, K, bits);
        const want = new Float32Array(M * N);
        for (let m = 0; m < M; m++) {
          for (let j = 0; j < N; j++) {
            let s = 0;
            for (let k = 0; k < K; k++) s += x[m * K + k]! * wd[j * K + k]!;
            want[m * N + j] = s;
          }
        }
        for (const [name, be] of backends) {
          const words = new Int32Array(Math.ceil(bytes.length / 4) + 1);
          new Uint8Array(words.buffer).set(bytes, 4); // one word of padding in front: exercises View.offset
          const wb = be.allocate('int32', words.length);
          const xb = be.allocate('float32', M * K);
          const ob = be.allocate('float32', M * N);
          const rb = be.allocate('float32', M * N);
          try {
            (be.view(wb) as Int32Array).set(words);
            (be.view(xb) as Float32Array).set(x);
            const xv = { buf: xb, shape: [M, K], strides: [K, 1], offset: 0 };
            const wv = { buf: wb, shape: [words.length - 1], strides: [1], offset: 1 };
            const p = { M, N, K, bits };
            be.kernels.quantMatmul!(xv, wv, { buf: ob, shape: [M, N], strides: [N, 1], offset: 0 }, p);
            refQuantMatmul(xv, wv, { buf: rb, shape: [M, N], strides: [N, 1], offset: 0 }, p);
            const got = (be.view(ob) as Float32Array).slice();
            const ref = (be.view(rb) as Float32Array).slice();
            assert.ok(maxRelErr(ref, want) < 1e-5, `${name}: reference kernel vs dequantize-then-matmul`);
            assert.ok(maxRelErr(got, ref) < 2e-5, `${name}: wasm vs reference, max rel err ${maxRelErr(got, ref)}`);
          } finally {
            for (const b of [wb, xb, ob, rb]) be.free(b);
          }
        }
      });
    }
  }
});

describe('quantizedLinear op', () => {
  test('matches dequantize-then-linear on the wasm backend, with bias and leading dims', () => {
    const prev = getBackend();
    setBackend(backends.get('simd/2')!);
    try {
      noGrad(() => {
        for (const bits of [8, 4] as const) {
          const w = randn([24, 64], { std: 0.1, rng: new Rng(3) });
          const b = randn([24], { std: 0.1, rng: new Rng(4) });
          const x = randn([2, 3, 64], { rng: new Rng(5) });
          const q = quantizeWeight(w, bits);
          const y = quantizedLinear(x, q, b);
          assert.deepEqual(y.shape, [2, 3, 24]);
          const wd = dequantizeWeight(q);
          const want = matmul(x, transpose(wd)).add(b);
          assert.ok(maxRelErr(y.data() as Float32Array, want.data() as Float32Array) < 1e-5);
          assert.throws(() => quantizedLinear(randn([2, 32]), q), /does not match the quantized weight \[24, 64\]/);
        }
      });
    } finally {
      setBackend(prev);
    }
  });

  test('input gradient: finite differences (the weight stays frozen)', () => {
    const q = quantizeWeight(randn([5, 32], { std: 0.2, rng: new Rng(8) }), 4);
    const x = randn([3, 32], { rng: new Rng(9) });
    x.requiresGrad = true;
    const f = (xt: typeof x) => sum(quantizedLinear(xt, q).square());
    f(x).backward();
    const g = x.grad!.data() as Float32Array;
    const base = x.data() as Float32Array;
    const h = 1e-2;
    for (const i of [0, 17, 40, 95]) {
      const plus = base.slice();
      plus[i]! += h;
      const minus = base.slice();
      minus[i]! -= h;
      const fd = noGrad(
        () => (f(tensor(plus, { shape: [3, 32] })).item() - f(tensor(minus, { shape: [3, 32] })).item()) / (2 * h),
      );
      assert.ok(Math.abs(fd - g[i]!) < 2e-2 * (1 + Math.abs(fd)), `d/dx[${i}]: ${g[i]} vs finite difference ${fd}`);
    }
  });
});

describe('QuantLinear and quantizeModel', () => {
  const tinyLlama = () => createModel(getPreset('tiny-llama'), { seed: 1 });

  test('replaces the projections, keeps lm_head in float, and the logits stay close', () => {
    noGrad(() => {
      const ids = tensor([[1, 5, 9, 200, 3, 7]], { dtype: 'int32' });
      for (const bits of [8, 4] as const) {
        const model = tinyLlama();
        const want = model.forward({ inputIds: ids }).logits.data() as Float32Array;
        const r = quantizeModel(model, { bits });
        assert.equal(r.quantized.length, 2 * 7); // q, k, v, o, gate, up, down per layer
        assert.ok(r.skipped.some((s) => s.path === 'lm_head'));
        assert.ok(model.getModule('model.layers.0.self_attn.q_proj') instanceof QuantLinear);
        assert.ok(model.getModule('lm_head') instanceof Linear);
        assert.ok(!model.namedParameters().some(([n]) => n === 'model.layers.0.self_attn.q_proj.weight'));
        const got = model.forward({ inputIds: ids }).logits.data() as Float32Array;
        let worst = 0;
        for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
        const scale = want.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
        assert.ok(
          worst < (bits === 8 ? 0.02 : 0.15) * scale,
          `q${bits}: max logit change ${worst} (max |logit| ${scale})`,
        );
        assert.ok(worst > 0, 'the quantized model must differ from the float one');
        model.dispose();
      }
    });
  });

  test('options are checked; includeHead and exclude work', () => {
    const model = tinyLlama();
    assert.throws(() => quantizeModel(model, { bits: 8, groupSize: 64 }), /groupSize must be 32/);
    assert.throws(() => quantizeModel(model, { bits: 2 as QuantBits }), /bits must be 8 \(q8_0\) or 4 \(q4_0\), got 2/);
    const r = quantizeModel(model, {
      bits: 8,
      includeHead: true,
      exclude: ['model.layers.1.mlp.down_proj', /k_proj$/],
    });
    assert.ok(r.quantized.includes('lm_head'));
    assert.ok(!r.quantized.includes('model.layers.1.mlp.down_proj'));
    assert.equal(r.quantized.filter((p) => p.endsWith('k_proj')).length, 0);
    assert.throws(() => (model.getModule('lm_head') as QuantLinear).weight, /float weight does not exist/);
    model.dispose();
  });
});
