// Numerics of one optimizer step that torch users rely on: gradient accumulation equal to one large batch
// when micro-batches have different numbers of target tokens, low-precision gradients accumulated in the
// float32 masters, and which parameters the default decay rule exempts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { MemoryTokenFile } from '../../src/train/data/index.js';
import { CausalLMTask, createTask, type HostBatch, type TrainTask } from '../../src/train/family-objectives.js';
import { decays } from '../../src/train/optim.js';
import { tensor } from '../../src/ops/index.js';
import { Trainer, type TrainerOptions } from '../../src/train/trainer.js';

const TEXT = 'ROMEO: But soft, what light through yonder window breaks? It is the east.\n'.repeat(30);
const ids = Int32Array.from(new TextEncoder().encode(TEXT));
const data = () => ({ train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids) });
const SGD: TrainerOptions = {
  steps: 2,
  schedule: { kind: 'constant', lr: 1 },
  optimizer: { kind: 'sgd', lr: 1 },
};

function trainer(task: TrainTask, opts: Partial<TrainerOptions>): Trainer {
  const t = new Trainer(createModel(getPreset('tiny-gpt2'), { seed: 1 }), task, { ...SGD, ...opts });
  t.model.eval(); // no dropout: both sides of each comparison compute the same function
  return t;
}

/** a task that serves fixed batches and declares a token-mean loss (as MLM and seq2seq do) */
function fixedTask(batches: HostBatch[]): TrainTask {
  const inner = new CausalLMTask(data(), { batchSize: 1, blockSize: 8, seed: 3 });
  let i = 0;
  return {
    objective: 'causal-lm',
    tokenMeanLoss: true,
    get position() {
      return i;
    },
    next: () => batches[i++ % batches.length]!,
    seek: (p) => void (i = p),
    loss: (m, b) => inner.loss(m, b),
    evalBatches: () => [],
  };
}

/** two rows of one causal batch as micro-batches with 1 and 8 target tokens, and the inputs / labels they cut */
function raggedRows(): { rows: HostBatch[]; x: Int32Array; labels: Int32Array[] } {
  const src = new CausalLMTask(data(), { batchSize: 2, blockSize: 8, seed: 3 }).next();
  const x = src.arrays.inputIds!.data;
  const y = src.arrays.labels!.data;
  const labels = [y.slice(0, 8).fill(-100, 1), y.slice(8, 16)]; // 1 and 8 target tokens
  const rows = labels.map((lab, r): HostBatch => ({
    arrays: { inputIds: { data: x.slice(r * 8, r * 8 + 8), shape: [1, 8] }, labels: { data: lab, shape: [1, 8] } },
    tokens: lab.filter((v) => v !== -100).length,
  }));
  return { rows, x, labels };
}

const masters = (t: Trainer) => t.mp.masters.map(([, p]) => Float64Array.from(p.data() as Float32Array));

test('gradient accumulation over micro-batches with different target counts equals one large batch', () => {
  const { rows, x, labels } = raggedRows();
  const [lab0, lab1] = labels as [Int32Array, Int32Array];
  const big: HostBatch = {
    arrays: {
      inputIds: { data: x.slice(0, 16), shape: [2, 8] },
      labels: { data: Int32Array.from([...lab0, ...lab1]), shape: [2, 8] },
    },
    tokens: 9,
  };
  const full = trainer(fixedTask([big]), { gradAccum: 1 });
  const acc = trainer(fixedTask(rows), { gradAccum: 2 });
  full.trainStep();
  acc.trainStep();
  const [a, b] = [masters(full), masters(acc)];
  let worst = 0;
  a.forEach((w, i) => w.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - b[i]![j]!)))));
  // the old 1/K weighting gave the single-target micro-batch 4.5x its share: differences of ~1e-2
  assert.ok(worst < 1e-6, `weights after one SGD step differ by ${worst}`);
  full.dispose();
  acc.dispose();
});

test('evaluation of a token-mean objective is the mean over target tokens, not over batches', () => {
  const { rows } = raggedRows();
  const task = { ...fixedTask(rows), evalBatches: () => rows };
  const t = trainer(task, { evalBatches: 2 });
  const each = rows.map((b) => task.loss(t.model, b).loss.item());
  const want = (each[0]! * 1 + each[1]! * 8) / 9;
  const got = t.evaluate();
  t.model.eval();
  assert.ok(
    Math.abs(got.val - want) < 1e-5,
    `val ${got.val}, token mean ${want}, batch mean ${(each[0]! + each[1]!) / 2}`,
  );
  t.dispose();
});

test('the ragged-target objectives declare a token-mean loss', () => {
  const cfg = createModel(getPreset('tiny-t5'), { seed: 1 }).config;
  const t5 = createTask('span-corruption', cfg, data(), { batchSize: 2, blockSize: 32, seed: 1 });
  assert.equal(t5.tokenMeanLoss, true);
  const gpt = createTask('causal-lm', getPreset('tiny-gpt2') as never, data(), {
    batchSize: 2,
    blockSize: 8,
    seed: 1,
  });
  assert.notEqual(gpt.tokenMeanLoss, true); // every window has the same number of targets: plain 1/K
});

test('bf16: micro-batch gradients are summed in the float32 masters, not in bfloat16', () => {
  const K = 4;
  const mk = () =>
    trainer(new CausalLMTask(data(), { batchSize: 2, blockSize: 16, seed: 5 }), {
      gradAccum: K,
      precision: 'bf16',
    });
  const t = mk();
  const before = masters(t);
  t.trainStep();
  const after = masters(t);
  // reference: each micro-batch's bf16 gradient (weighted 1/K), summed in float64
  const ref = mk();
  const sums = ref.mp.masters.map(([, p]) => new Float64Array(p.size));
  const byName = new Map(ref.model.namedParameters());
  for (let i = 0; i < K; i++) {
    ref.microStep(ref.task.next());
    ref.mp.masters.forEach(([n], j) => {
      const g = byName.get(n)!.grad!.to('float32').data() as Float32Array;
      g.forEach((v, k) => (sums[j]![k]! += v));
    });
    ref.mp.zeroGrad();
  }
  let worst = 0;
  let scale = 0;
  before.forEach((w, i) =>
    w.forEach((v, j) => {
      const g = sums[i]![j]!;
      worst = Math.max(worst, Math.abs(v - after[i]![j]! - g));
      scale = Math.max(scale, Math.abs(g));
    }),
  );
  assert.ok(worst < 1e-5 * scale, `update differs from the float32 sum by ${worst} (largest gradient ${scale})`);
  t.dispose();
  ref.dispose();
});

test("default decay rule: no decay on GPT-1's embeddings, Mamba's embeddings and A_log, BART's final_logits_bias", () => {
  const noDecay = (preset: string) =>
    createModel(getPreset(preset), { seed: 1 })
      .namedParameters()
      .filter(([n, p]) => p.ndim >= 2 && !decays('no-norm-bias-embed', n, p))
      .map(([n]) => n);
  assert.deepEqual(noDecay('tiny-gpt'), ['transformer.tokens_embed.weight', 'transformer.positions_embed.weight']);
  const mamba = noDecay('tiny-mamba');
  assert.ok(mamba.includes('backbone.embeddings.weight'), mamba.join(', '));
  assert.ok(mamba.length > 1 && mamba.slice(1).every((n) => n.endsWith('.mixer.A_log')), mamba.join(', '));
  assert.ok(noDecay('tiny-bart').includes('final_logits_bias'));
  // weight matrices still decay
  assert.ok(decays('no-norm-bias-embed', 'model.layers.0.mlp.down_proj.weight', { ndim: 2 } as never));
});

test('MoE: the balancing loss is added while training, not to an evaluation (validation loss is cross-entropy)', () => {
  const model = createModel(getPreset('tiny-mixtral'), { seed: 1 });
  const task = new CausalLMTask(data(), { batchSize: 2, blockSize: 8, seed: 3 });
  const b = task.next();
  const out = model.forward({
    inputIds: tensor(b.arrays.inputIds!.data, { shape: b.arrays.inputIds!.shape, dtype: 'int32' }),
  });
  const aux = out.auxLoss!.item();
  assert.ok(aux > 0);
  model.train();
  const trainLoss = task.loss(model, b).loss.item();
  model.eval();
  const evalLoss = task.loss(model, b).loss.item();
  assert.ok(Math.abs(trainLoss - evalLoss - aux) < 1e-5, `train ${trainLoss}, eval ${evalLoss}, aux ${aux}`);
  model.dispose();
});
