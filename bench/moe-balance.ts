// Auxiliary-loss balancing vs DeepSeek-V3's auxiliary-loss-free correction bias, on a tiny DeepSeek-V3-style
// MoE (sigmoid router, 8 routed experts top-2 in 2 of 4 groups, 1 shared expert, first layer dense) trained
// char-level on tinyshakespeare, every arm from the same seed and data order for the same number of steps:
//   nice -n 10 env LINEAGE_THREADS=1 node dist/bench/moe-balance.js --data /work/shared/data/tinyshakespeare.txt
//   [--steps 300] [--arms none,aux,bias] [--seed 1] [--json FILE]
// Arms: none (no balancing), aux (sequence-wise balance loss, α = 0.01; bias frozen at 0), bias (the
// correction bias updated after every step with u = 0.001, no balance loss), bias-fast (u = 0.01).
// Prints per MoE layer the spread of the per-expert token fractions over the validation batches —
// coefficient of variation (std / mean) and max / mean (DeepSeek's MaxVio is max / mean − 1) — and the
// validation cross-entropy (balance loss excluded) at the last step.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crossEntropy, tensor } from '../src/ops/index.js';
import { noGrad, tidy } from '../src/tensor/engine.js';
import { manualSeed } from '../src/index.js';
import { createModel } from '../src/models/registry.js';
import { getPreset } from '../src/models/presets.js';
import type { DecoderConfig, MoeFfn } from '../src/models/config.js';
import type { DecoderLM } from '../src/models/decoder.js';
import { MoE } from '../src/nn/moe.js';
import { MemoryTokenFile } from '../src/train/data/index.js';
import { CausalLMTask, type HostBatch } from '../src/train/family-objectives.js';
import { Trainer } from '../src/train/trainer.js';

const root = fileURLToPath(new URL('../../', import.meta.url)); // dist/bench/ -> package root

interface Arm {
  name: string;
  auxLossCoef: number;
  updateRate: number;
}
const ARMS: Arm[] = [
  { name: 'none', auxLossCoef: 0, updateRate: 0 },
  { name: 'aux', auxLossCoef: 0.01, updateRate: 0 },
  { name: 'bias', auxLossCoef: 0, updateRate: 0.001 },
  { name: 'bias-fast', auxLossCoef: 0, updateRate: 0.01 },
];

interface LayerSpread {
  layer: number;
  fractions: number[];
  cv: number;
  maxOverMean: number;
}
interface ArmResult {
  arm: string;
  steps: number;
  valLoss: number;
  trainLoss: number;
  layers: LayerSpread[];
  seconds: number;
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** char-level ids over the sorted characters of the text */
function encode(text: string): { ids: Int32Array; vocab: number } {
  const chars = [...new Set(text)].sort();
  const index = new Map(chars.map((c, i) => [c, i]));
  return { ids: Int32Array.from(text, (c) => index.get(c)!), vocab: chars.length };
}

function config(vocab: number, arm: Arm): DecoderConfig {
  const base = getPreset('tiny-deepseek-v3') as DecoderConfig;
  const ffn: MoeFfn = {
    ...(base.decoder.block.ffn as MoeFfn),
    auxLossCoef: arm.auxLossCoef,
    correctionBias: { updateRate: arm.updateRate },
  };
  return {
    ...base,
    vocabSize: vocab,
    mtp: null,
    decoder: { ...base.decoder, layers: 3, block: { ...base.decoder.block, ffn } },
  };
}

/** std / mean and max / mean of per-expert fractions */
function spread(counts: number[]): { fractions: number[]; cv: number; maxOverMean: number } {
  const total = counts.reduce((a, b) => a + b, 0);
  const f = counts.map((c) => c / total);
  const mean = 1 / f.length;
  const sd = Math.sqrt(f.reduce((s, x) => s + (x - mean) ** 2, 0) / f.length);
  return { fractions: f, cv: sd / mean, maxOverMean: Math.max(...f) / mean };
}

/** validation CE (no balance loss) and per-layer expert load over fixed val batches */
function evaluate(model: DecoderLM, batches: HostBatch[]): { loss: number; layers: LayerSpread[] } {
  const moes = model.stack.layers.items.map((l, i) => [i, l.ffn] as const).filter(([, f]) => f instanceof MoE) as [
    number,
    MoE,
  ][];
  const counts = moes.map(() => new Array<number>(8).fill(0));
  model.eval();
  let loss = 0;
  for (const b of batches) {
    loss += noGrad(() =>
      tidy(() => {
        const a = b.arrays;
        const out = model.forward({ inputIds: tensor(a.inputIds!.data, { shape: a.inputIds!.shape, dtype: 'int32' }) });
        moes.forEach(([, m], j) => m.lastStats!.tokensPerExpert.forEach((c, e) => (counts[j]![e]! += c)));
        return crossEntropy(out.logits, tensor(a.labels!.data, { shape: a.labels!.shape, dtype: 'int32' })).item();
      }),
    );
  }
  model.train();
  return { loss: loss / batches.length, layers: moes.map(([i], j) => ({ layer: i, ...spread(counts[j]!) })) };
}

function runArm(arm: Arm, data: { ids: Int32Array; vocab: number }, steps: number, seed: number): ArmResult {
  manualSeed(seed);
  const split = Math.floor(data.ids.length * 0.9);
  const task = new CausalLMTask(
    { train: new MemoryTokenFile(data.ids.slice(0, split)), val: new MemoryTokenFile(data.ids.slice(split)) },
    { batchSize: 8, blockSize: 64, seed },
  );
  const model = createModel(config(data.vocab, arm), { seed }) as DecoderLM;
  const trainer = new Trainer(model, task, {
    steps,
    schedule: {
      kind: 'cosine',
      lr: 3e-3,
      minLr: 3e-4,
      warmup: Math.min(20, Math.floor(steps / 10)),
      decaySteps: steps,
    },
    optimizer: { kind: 'adamw', lr: 3e-3, beta2: 0.99, weightDecay: 0.1, decay: 'matrices' },
    gradClip: 1,
    evalInterval: 0,
    evalBatches: 1,
  });
  const t0 = performance.now();
  let trainLoss = 0;
  for (let s = 0; s < steps; s++) trainLoss = trainer.trainStep().loss;
  const { loss, layers } = evaluate(model, task.evalBatches('val', 0, 16));
  return { arm: arm.name, steps, valLoss: loss, trainLoss, layers, seconds: (performance.now() - t0) / 1000 };
}

async function main(): Promise<void> {
  const { useFastBackend, shutdownBackend } = await import('../src/cli/backend-node.js');
  await useFastBackend();
  const file = arg('data', join(root, 'data', 'tinyshakespeare.txt'));
  const steps = Number(arg('steps', '300'));
  const seed = Number(arg('seed', '1'));
  const names = arg('arms', ARMS.map((a) => a.name).join(',')).split(',');
  const arms = names.map((n) => {
    const a = ARMS.find((x) => x.name === n);
    if (!a) throw new Error(`--arms: unknown arm '${n}' (known: ${ARMS.map((x) => x.name).join(', ')})`);
    return a;
  });
  const data = encode(readFileSync(file, 'utf8'));
  console.log(
    `tiny DeepSeek-V3 MoE (3 layers, 2 MoE layers of 8 experts top-2), char-level ${file}, ${steps} steps, seed ${seed}`,
  );
  const results: ArmResult[] = [];
  for (const arm of arms) {
    const r = runArm(arm, data, steps, seed);
    results.push(r);
    const spreadText = r.layers
      .map((l) => `layer ${l.layer}: CV ${l.cv.toFixed(3)}, max/mean ${l.maxOverMean.toFixed(2)}`)
      .join('; ');
    console.log(
      `${arm.name.padEnd(9)} val loss ${r.valLoss.toFixed(4)} (train ${r.trainLoss.toFixed(4)})  ${spreadText}  [${r.seconds.toFixed(0)} s]`,
    );
  }
  const out = arg('json', '');
  if (out) {
    writeFileSync(`${out}.tmp-${process.pid}`, JSON.stringify(results, null, 1) + '\n');
    renameSync(`${out}.tmp-${process.pid}`, out);
  }
  console.log(
    JSON.stringify(
      results.map((r) => ({
        arm: r.arm,
        valLoss: r.valLoss,
        layers: r.layers.map((l) => ({ layer: l.layer, cv: l.cv, maxOverMean: l.maxOverMean })),
      })),
    ),
  );
  await shutdownBackend();
}

await main();
