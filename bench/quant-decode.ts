// Single-stream decode speed, float32 vs q8_0 vs q4_0 weights, through the ordinary generate() path:
//   node --experimental-wasm-relaxed-simd dist/bench/quant-decode.js [--model DIR | --llama-512] [--tokens N]
//     [--prompt-tokens P] [--rounds R] [--threads T]
// The three forms are built in memory from one float model (quantizeModel) and timed in interleaved rounds
// (float, q8, q4, float, ...) so load changes on a shared machine hit them alike; the median of each is
// reported with the ratios. --llama-512 times the reference shape (512 hidden, 8 layers, 8 / 4 heads,
// 1408 FFN, random weights) instead of a model directory. Prints one JSON object.
import os from 'node:os';
import { generate } from '../src/infer/generate.js';
import { loadModelDir } from '../src/infer/model-dir-node.js';
import { createModel } from '../src/models/registry.js';
import { fromHFConfig } from '../src/models/hf-config.js';
import { getPreset } from '../src/models/presets.js';
import type { LanguageModel } from '../src/models/model.js';
import { quantizeModel } from '../src/nn/quant.js';
import { useFastBackend, shutdownBackend } from '../src/cli/backend-node.js';
import { toHFConfig } from '../src/models/hf-config.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function build(bits: 0 | 4 | 8): Promise<LanguageModel> {
  const dir = arg('model');
  let model: LanguageModel;
  if (dir) model = (await loadModelDir(dir)).model;
  else {
    const json = {
      ...toHFConfig(getPreset('tiny-llama')),
      vocab_size: 65,
      hidden_size: 512,
      intermediate_size: 1408,
      num_hidden_layers: 8,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      max_position_embeddings: 1024,
    };
    model = createModel(fromHFConfig(json), { seed: 1 });
  }
  if (bits) quantizeModel(model, { bits });
  return model.eval();
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const threads = Number(arg('threads') ?? 1);
  await useFastBackend({ threads });
  const tokens = Number(arg('tokens') ?? 128);
  const promptTokens = Number(arg('prompt-tokens') ?? 16);
  const rounds = Number(arg('rounds') ?? 3);
  const forms = [0, 8, 4] as const;
  const models = await Promise.all(forms.map((b) => build(b)));
  const prompt = Array.from({ length: promptTokens }, (_, i) => (i * 7) % 60);
  const times: number[][] = forms.map(() => []);
  for (const m of models) generate(m, prompt, { maxTokens: 8, temperature: 0 }); // warm-up
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < forms.length; i++) {
      const t0 = performance.now();
      const out = generate(models[i]!, prompt, { maxTokens: tokens, temperature: 0 });
      times[i]!.push(out.length / ((performance.now() - t0) / 1000));
    }
  }
  const [f32, q8, q4] = times.map(median) as [number, number, number];
  for (const m of models) m.dispose();
  console.log(
    JSON.stringify({
      model: arg('model') ?? 'llama-512 (random weights)',
      threads,
      tokens,
      promptTokens,
      rounds,
      loadAverage: os.loadavg()[0],
      tokensPerSecond: { float32: f32, q8_0: q8, q4_0: q4 },
      speedup: { q8_0: q8 / f32, q4_0: q4 / f32 },
    }),
  );
  await shutdownBackend();
}

await main();
