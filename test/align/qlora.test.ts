// QLoRA: LoRA adapters over int8 / int4 QuantLinear bases. Gradients through QuantLinear + LoRA w.r.t. the
// adapter weights and the input match finite differences and the float product with the dequantized
// weight; training lowers the loss while the base stays packed (no float copy, no master, no optimizer
// state); the saved PEFT adapter loads on the quantized base (identical output) and on the float base.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { noGrad, tidy } from '../../src/tensor/engine.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/random.js';
import { add, dequantizeWeight, matmul, mul, randn, sum, tensor } from '../../src/ops/index.js';
import { Linear } from '../../src/nn/layers.js';
import { LoraLinear } from '../../src/nn/lora.js';
import { QuantLinear, quantizeModel } from '../../src/nn/quant.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import type { LanguageModel } from '../../src/models/model.js';
import { applyLora, loraLayers, mergeLora, quantizedBits } from '../../src/align/lora.js';
import { loadAdapterDir, saveAdapterDir } from '../../src/align/lora-node.js';
import { MixedPrecision } from '../../src/train/precision.js';
import { createOptimizer } from '../../src/train/optim.js';
import { packBatch, tokenLogps } from '../../src/align/logprobs.js';
import { sftLoss } from '../../src/align/losses.js';
import { maxAbsDiff, randomIds } from '../models/decoder-helpers.js';

const BITS = [8, 4] as const;

/** a LoRA over a quantized [8, 32] projection with a non-zero B (a fresh B = 0 would hide A's gradient) */
function qloraLayer(bits: 8 | 4): LoraLinear {
  const rng = new Rng(11);
  const lin = new Linear(32, 8, { bias: true, rng });
  const l = new LoraLinear(QuantLinear.from(lin, bits), { r: 3, alpha: 6, rng });
  noGrad(() => l.loraB.setParameter('weight', randn([8, 3], { std: 0.5, rng })));
  return l;
}

/** Σ y ⊙ w for a fixed w: every output element gets a different weight in the gradient */
const objective = (l: LoraLinear, x: Tensor, w: Tensor) => sum(mul(l.forward(x), w));

test('QLoRA: gradients w.r.t. A, B and the input match finite differences and the dequantized product', () => {
  for (const bits of BITS) {
    const l = qloraLayer(bits);
    const rng = new Rng(5);
    const x = randn([2, 3, 32], { rng }); // (B, T, in)
    const w = randn([2, 3, 8], { rng }); // (B, T, out)
    x.requiresGrad = true;
    objective(l, x, w).backward();
    const A = l.loraA.weight;
    const B = l.loraB.weight;
    // x's gradient in closed form: w @ (dequant(W) + s·B·A), the base's weight taken from its blocks
    const want = noGrad(() =>
      tidy(() => {
        const eff = add(dequantizeWeight((l.base as QuantLinear).q), mul(matmul(B, A), l.scaling)); // (out, in)
        return matmul(w, eff).contiguous(); // (B, T, in)
      }),
    );
    assert.ok(maxAbsDiff(x.grad!, want) < 1e-4, `q${bits}: dx vs the dequantized product`);
    // central differences (the objective is linear in each of x, A, B: exact up to float32 rounding)
    const leaves = { x: x.toList(), A: A.toList(), B: B.toList() };
    const f = (v: typeof leaves) =>
      noGrad(() =>
        tidy(() => {
          l.loraA.setParameter('weight', tensor(v.A, { shape: [3, 32] }));
          l.loraB.setParameter('weight', tensor(v.B, { shape: [8, 3] }));
          return objective(l, tensor(v.x, { shape: [2, 3, 32] }), w).item();
        }),
      );
    const grads = { x: x.grad!.toList(), A: A.grad!.toList(), B: B.grad!.toList() };
    for (const k of ['x', 'A', 'B'] as const) {
      for (const i of [0, 7, leaves[k].length - 1]) {
        const at = (d: number) => f({ ...leaves, [k]: leaves[k].map((v, j) => (j === i ? v + d : v)) });
        const fd = (at(0.01) - at(-0.01)) / 0.02;
        const g = grads[k][i]!;
        assert.ok(Math.abs(fd - g) < 2e-2 * Math.max(1, Math.abs(g)), `q${bits} d${k}[${i}]: ${g} vs ${fd}`);
      }
    }
    assert.throws(() => l.merge(), /cannot merge into a quantized \(int\d\) base/);
  }
});

/** random B so the adapter is not the zero update it starts as */
function randomizeB(m: LanguageModel): void {
  const rng = new Rng(4);
  noGrad(() => {
    for (const [n, p] of m.namedParameters())
      if (n.endsWith('lora_B.weight')) m.setParameter(n, randn([...p.shape], { std: 0.3, rng }));
  });
}

const tinyLlama = () => createModel(getPreset('tiny-llama'), { seed: 1 });
const TARGETS = ['q_proj', 'v_proj', 'down_proj'];

const rows = [
  { prompt: [1, 2, 3], completion: [4, 5, 6, 7] },
  { prompt: [9, 8], completion: [10, 11, 12] },
];

function sftStep(model: LanguageModel, mp: MixedPrecision, opt: ReturnType<typeof createOptimizer>): number {
  const loss = tidy(() => {
    const b = packBatch(rows);
    const l = sftLoss(tokenLogps(model.train(), b).logps, b.mask);
    l.backward();
    return l.item();
  });
  mp.unscaleToMasters();
  opt.step();
  mp.copyMastersToModel();
  mp.zeroGrad();
  return loss;
}

test('QLoRA: the loss falls while the base stays packed int8 / int4 (no float copy, master or moments)', () => {
  for (const bits of BITS) {
    const model = tinyLlama();
    quantizeModel(model, { bits });
    const paths = applyLora(model, { r: 4, alpha: 8, dropout: 0, targets: TARGETS });
    assert.deepEqual(quantizedBits(model), [bits]);
    const packed = new Map(
      loraLayers(model).map(([p, l]) => [p, Int32Array.from((l.base as QuantLinear).q.packed.data() as Int32Array)]),
    );
    assert.ok(
      loraLayers(model).every(([, l]) => l.base instanceof QuantLinear),
      'every adapted base is quantized',
    );
    const names = model.namedParameters().map(([n]) => n);
    for (const p of paths) assert.ok(!names.includes(`${p}.base_layer.weight`), `${p}: no float base weight`);
    const mp = new MixedPrecision(model, 'bf16');
    assert.ok(mp.masters.length > 0 && mp.masters.every(([n]) => /lora_[AB]/.test(n)), 'masters for adapters only');
    const opt = createOptimizer(mp.masters, { kind: 'adamw', lr: 1e-2 });
    const losses = Array.from({ length: 12 }, () => sftStep(model, mp, opt));
    assert.ok(losses.at(-1)! < losses[0]! - 0.3, `q${bits}: loss ${losses[0]} -> ${losses.at(-1)}`);
    const keys = Object.keys(opt.stateDict().buffers);
    assert.ok(
      keys.every((k) => /lora_[AB]/.test(k)),
      `optimizer state: ${keys.join(', ')}`,
    );
    for (const [p, l] of loraLayers(model)) {
      const now = Int32Array.from((l.base as QuantLinear).q.packed.data() as Int32Array);
      assert.deepEqual(now, packed.get(p), `${p}: the packed blocks are untouched`);
    }
    mp.dispose();
    opt.dispose();
    model.dispose();
  }
});

test('QLoRA: the PEFT adapter loads on the quantized base (same output) and on the float base', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-qlora-'));
  try {
    const ids = randomIds(2, 6, 64, 3);
    const out = (m: LanguageModel) => noGrad(() => tidy(() => m.eval().forward({ inputIds: ids }).logits.contiguous()));
    const c = { r: 2, alpha: 4, dropout: 0, targets: TARGETS };
    const q = tinyLlama();
    quantizeModel(q, { bits: 8 });
    applyLora(q, c);
    randomizeB(q);
    saveAdapterDir(dir, q, c, 'tiny-llama-q8');
    const cfg = JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.fan_in_fan_out, false);
    const adapted = out(q);
    // the same quantized base: exactly the same output
    const q2 = tinyLlama();
    quantizeModel(q2, { bits: 8 });
    loadAdapterDir(q2, dir);
    assert.equal(maxAbsDiff(out(q2), adapted), 0);
    // the float base: the same adapter, output within int8's rounding of the base; mergeable there
    const f = tinyLlama();
    const plain = out(f);
    loadAdapterDir(f, dir);
    const floatAdapted = out(f);
    assert.ok(maxAbsDiff(floatAdapted, plain) > 1e-3, 'the adapter changes the float model');
    const scale = noGrad(() => (adapted.data() as Float32Array).reduce((a, v) => Math.max(a, Math.abs(v)), 0));
    assert.ok(maxAbsDiff(floatAdapted, adapted) < 0.02 * scale, 'float + adapter ≈ int8 + adapter');
    mergeLora(f);
    assert.ok(maxAbsDiff(out(f), floatAdapted) < 1e-4, 'merged into the float base');
    for (const m of [q, q2, f]) m.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('QLoRA over a GPT-2 Conv1D base: the adapter says fan_in_fan_out and loads on the float Conv1D', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-qlora-gpt2-'));
  try {
    const cfg = { ...getPreset('tiny-gpt2') };
    const ids = tensor([[1, 2, 3, 4]], { dtype: 'int32' });
    const q = createModel(cfg, { seed: 2 });
    quantizeModel(q, { bits: 4 });
    const c = { r: 2, alpha: 4, dropout: 0, targets: ['c_attn'] };
    applyLora(q, c);
    randomizeB(q);
    saveAdapterDir(dir, q, c, 'tiny-gpt2-q4');
    assert.equal(JSON.parse(readFileSync(join(dir, 'adapter_config.json'), 'utf8')).fan_in_fan_out, true);
    const f = createModel(cfg, { seed: 2 });
    loadAdapterDir(f, dir);
    // the float Conv1D ([in, out]) takes the same A, B; merging transposes the update (fan_in_fan_out)
    const before = noGrad(() => tidy(() => f.eval().forward({ inputIds: ids }).logits.contiguous()));
    mergeLora(f);
    const merged = noGrad(() => tidy(() => f.eval().forward({ inputIds: ids }).logits.contiguous()));
    assert.ok(maxAbsDiff(merged, before) < 1e-4);
    for (const m of [q, f]) m.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
