// `lineage bench llamacpp`: single-stream decode of one float32 LLaMA in Lineage (native and wasm backends)
// and in llama.cpp (node-llama-cpp's prebuilt CPU binary), in the same process run, with the ratios.
//   lineage bench llamacpp [--hidden 512 --layers 8 --heads 8 --kv-heads 4 --ffn 1408 --vocab 512]
//     [--max-tokens 128] [--prompt-tokens 16] [--rounds 3] [--threads 1,2] [--backends native,wasm] [--json]
// The vocabulary (default 512) holds llama.cpp's 3 special and 256 byte tokens; the output head is ~1% of
// the weights at this size. Lineage builds the model with random weights (seed 1); the SAME weights go into
// a GGUF (src/io/gguf-llama.ts) that llama.cpp loads, so both run identical shapes and values. Each round times every configuration once
// (Lineage backend x threads, llama.cpp x threads) in turn, so load changes on a shared machine hit all of
// them alike; the median of the rounds is reported. Timing covers the prompt and the new tokens (greedy),
// through each engine's JavaScript API (`generate()` / `LlamaContextSequence.evaluate`).
import os from 'node:os';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generate } from '../src/infer/generate.js';
import { createModel } from '../src/models/registry.js';
import { fromHFConfig, toHFConfig } from '../src/models/hf-config.js';
import { getPreset } from '../src/models/presets.js';
import type { LanguageModel } from '../src/models/model.js';
import { llamaGguf, type LlamaGgufSpec } from '../src/io/gguf-llama.js';
import { setBackendChoice, shutdownBackend, useFastBackend } from '../src/cli/backend-node.js';
import { parseNumber } from '../src/cli/flags.js';

export interface LlamaCppBenchOptions {
  spec: LlamaGgufSpec;
  maxTokens: number;
  promptTokens: number;
  rounds: number;
  threads: number[];
  backends: ('native' | 'wasm')[];
}

export interface LlamaCppBenchResult {
  spec: LlamaGgufSpec;
  maxTokens: number;
  promptTokens: number;
  rounds: number;
  loadAverage: number;
  /** tokens/s, median of the rounds, by configuration ("lineage-native t=1", "llama.cpp t=2", ...) */
  tokensPerSecond: Record<string, number>;
  /** Lineage / llama.cpp at the same thread count, and against llama.cpp's best thread count */
  ratios: Record<string, number>;
  llamaCpp: { version: string; buildType: string } | null;
  llamaCppError?: string;
}

function lineageModel(s: LlamaGgufSpec): LanguageModel {
  const json = {
    ...toHFConfig(getPreset('tiny-llama')),
    vocab_size: s.vocabSize,
    hidden_size: s.hidden,
    intermediate_size: s.ffn,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    max_position_embeddings: s.context,
    rms_norm_eps: s.rmsEps,
    rope_theta: s.ropeTheta,
    tie_word_embeddings: false,
  };
  return createModel(fromHFConfig(json), { seed: 1 }).eval();
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** the GGUF of the model's weights, written to a temporary directory */
function writeModelGguf(model: LanguageModel, spec: LlamaGgufSpec, dir: string): string {
  const params = new Map(model.namedParameters());
  const weight = (name: string) => {
    const t = params.get(name);
    if (!t) throw new Error(`bench llamacpp: the Lineage model has no parameter ${name}`);
    return t.data() as Float32Array;
  };
  const path = join(dir, 'llama.gguf');
  writeFileSync(path, llamaGguf(spec, weight));
  return path;
}

interface LlamaCppRunner {
  info: { version: string; buildType: string };
  run(threads: number, prompt: number[], maxTokens: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * node-llama-cpp, installed by the user (`npm install --no-save node-llama-cpp`): it is not in package.json
 * because its per-platform binary packages (win-*, mac-*) are missing from some npm mirrors, which breaks
 * `npm ci` everywhere. Imported by a computed name and typed loosely, so the build never needs it.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type LlamaCppModule = any;
const LLAMA_CPP = 'node-llama-cpp';

/** node-llama-cpp: null and the reason when it is missing or does not load */
async function loadLlamaCpp(path: string, threads: number[]): Promise<LlamaCppRunner | string> {
  let mod: LlamaCppModule;
  try {
    mod = await import(LLAMA_CPP);
  } catch (e) {
    return `node-llama-cpp is not installed (npm install --no-save node-llama-cpp): ${(e as Error).message}`;
  }
  try {
    const llama = await mod.getLlama({ gpu: false, build: 'never', maxThreads: 0, logLevel: mod.LlamaLogLevel.error });
    const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
    const contexts = new Map<number, LlamaCppModule>();
    for (const t of threads)
      contexts.set(t, await model.createContext({ contextSize: 512, batchSize: 512, threads: { ideal: t, min: t } }));
    return {
      info: { version: llama.llamaCppRelease.release, buildType: llama.buildType },
      async run(t, prompt, maxTokens) {
        const seq = contexts.get(t)!.getSequence();
        try {
          const t0 = performance.now();
          let n = 0;
          for await (const _ of seq.evaluate(prompt, { temperature: 0 })) if (++n >= maxTokens) break;
          return n / ((performance.now() - t0) / 1000);
        } finally {
          seq.dispose();
        }
      },
      async close() {
        for (const c of contexts.values()) await c.dispose();
        await model.dispose();
        await llama.dispose();
      },
    };
  } catch (e) {
    return `node-llama-cpp did not load its prebuilt CPU binary: ${(e as Error).message}`;
  }
}

/** one Lineage configuration: backend and threads chosen, the model rebuilt (same seed), one timed decode */
async function lineageRun(o: LlamaCppBenchOptions, backend: 'native' | 'wasm', t: number, prompt: number[]) {
  await shutdownBackend();
  setBackendChoice(backend);
  await useFastBackend({ threads: t });
  const model = lineageModel(o.spec);
  try {
    generate(model, prompt, { maxTokens: 8, temperature: 0 }); // warm-up
    const t0 = performance.now();
    const out = generate(model, prompt, { maxTokens: o.maxTokens, temperature: 0 });
    return out.length / ((performance.now() - t0) / 1000);
  } finally {
    model.dispose();
  }
}

export async function benchLlamaCpp(o: LlamaCppBenchOptions): Promise<LlamaCppBenchResult> {
  const prompt = Array.from({ length: o.promptTokens }, (_, i) => 3 + ((i * 7) % (o.spec.vocabSize - 3)));
  const dir = mkdtempSync(join(os.tmpdir(), 'lineage-llamacpp-'));
  const times = new Map<string, number[]>();
  const push = (k: string, v: number) => times.set(k, [...(times.get(k) ?? []), v]);
  let cpp: LlamaCppRunner | string;
  try {
    await shutdownBackend();
    setBackendChoice(o.backends[0]!);
    await useFastBackend({ threads: 1 });
    const model = lineageModel(o.spec);
    const path = writeModelGguf(model, o.spec, dir);
    model.dispose();
    cpp = await loadLlamaCpp(path, o.threads);
    for (let r = 0; r < o.rounds; r++) {
      for (const b of o.backends)
        for (const t of o.threads) push(`lineage-${b} t=${t}`, await lineageRun(o, b, t, prompt));
      if (typeof cpp !== 'string') {
        await cpp.run(o.threads[0]!, prompt, 8); // warm-up
        for (const t of o.threads) push(`llama.cpp t=${t}`, await cpp.run(t, prompt, o.maxTokens));
      }
    }
    if (typeof cpp !== 'string') await cpp.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await shutdownBackend();
  }
  const tps = Object.fromEntries([...times].map(([k, v]) => [k, median(v)]));
  return {
    spec: o.spec,
    maxTokens: o.maxTokens,
    promptTokens: o.promptTokens,
    rounds: o.rounds,
    loadAverage: os.loadavg()[0]!,
    tokensPerSecond: tps,
    ratios: ratios(tps, o),
    llamaCpp: typeof cpp === 'string' ? null : cpp.info,
    ...(typeof cpp === 'string' ? { llamaCppError: cpp } : {}),
  };
}

/** "lineage-native t=1 / llama.cpp t=1" at equal threads, and "... / llama.cpp best" */
function ratios(tps: Record<string, number>, o: LlamaCppBenchOptions): Record<string, number> {
  const out: Record<string, number> = {};
  const cpp = o.threads.map((t) => tps[`llama.cpp t=${t}`]).filter((x): x is number => x !== undefined);
  if (cpp.length === 0) return out;
  const best = Math.max(...cpp);
  for (const b of o.backends)
    for (const t of o.threads) {
      const ours = tps[`lineage-${b} t=${t}`]!;
      const theirs = tps[`llama.cpp t=${t}`];
      if (theirs) out[`lineage-${b} t=${t} / llama.cpp t=${t}`] = ours / theirs;
      out[`lineage-${b} t=${t} / llama.cpp best`] = ours / best;
    }
  return out;
}

/** CLI glue: flags -> options, one JSON object or a table */
export async function llamaCppCommand(
  flags: Map<string, string>,
  json: boolean,
  int: (name: string, def?: number) => number,
): Promise<void> {
  const list = (s: string | undefined, def: number[]) =>
    s ? s.split(',').map((x) => parseNumber('--threads', x, { int: true, min: 1 })) : def;
  const backends = (flags.get('backends') ?? 'native,wasm').split(',');
  for (const b of backends)
    if (b !== 'native' && b !== 'wasm') throw new Error(`--backends: '${b}' is not native or wasm`);
  const spec: LlamaGgufSpec = {
    vocabSize: int('vocab', 512),
    hidden: int('hidden', 512),
    layers: int('layers', 8),
    heads: int('heads', 8),
    kvHeads: int('kv-heads', 4),
    ffn: int('ffn', 1408),
    context: 1024,
    rmsEps: 1e-5,
    ropeTheta: 10000,
  };
  const r = await benchLlamaCpp({
    spec,
    maxTokens: int('max-tokens', 128),
    promptTokens: int('prompt-tokens', 16),
    rounds: int('rounds', 3),
    threads: list(flags.get('threads'), [1, 2]),
    backends: backends as ('native' | 'wasm')[],
  });
  if (json) return void console.log(JSON.stringify(r));
  const s = r.spec;
  console.log(
    `single-stream decode, llama ${s.hidden} hidden, ${s.layers} layers, ${s.heads}/${s.kvHeads} heads, ${s.ffn} FFN, ` +
      `vocab ${s.vocabSize}, float32; ${r.promptTokens} prompt + ${r.maxTokens} new tokens, median of ${r.rounds} rounds, ` +
      `load average ${r.loadAverage.toFixed(1)}`,
  );
  for (const [k, v] of Object.entries(r.tokensPerSecond)) console.log(`  ${k.padEnd(20)} ${v.toFixed(1)} tokens/s`);
  if (r.llamaCppError) console.log(`  llama.cpp: not run: ${r.llamaCppError}`);
  for (const [k, v] of Object.entries(r.ratios)) console.log(`  ${k}: ${v.toFixed(2)}x`);
}
