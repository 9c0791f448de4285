// Where a speculative round's time goes: CPU time per forward of the target and the draft model, by the
// number of tokens it carries, relative to one plain decode step of the target; and the speculative
// speed-up in CPU time and wall time, speculative and plain single-stream passes interleaved.
//   node --experimental-wasm-relaxed-simd dist/bench/spec-cost.js [--model DIR] [--draft-model DIR]
//     [--prompts N] [--prompt-tokens P] [--max-tokens T] [--rounds R] [--threads T]
// CPU time (process.cpuUsage, 1 thread by default) because a shared machine's load distorts wall time
// far more. Prints one JSON object; `identical` says whether greedy speculative output equalled plain.
import { readFileSync } from 'node:fs';
import { loadModelDir } from '../src/infer/model-dir-node.js';
import { Engine, type EngineOptions } from '../src/infer/engine/engine.js';
import { ModelRunner, type RunItem } from '../src/infer/engine/runner.js';
import type { LanguageModel } from '../src/models/model.js';
import { useFastBackend, shutdownBackend } from '../src/cli/backend-node.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}
const int = (name: string, def: number) => {
  const v = Number(arg(name, String(def)));
  if (!Number.isInteger(v) || v < 1) throw new Error(`spec-cost: --${name} must be a positive integer`);
  return v;
};
const cpuMs = (c: NodeJS.CpuUsage) => (c.user + c.system) / 1000;

/** CPU ms per ModelRunner.run, keyed "target T=5" / "draft T=1" (the prototype is wrapped while timing) */
function timeForwards(target: LanguageModel): { stats: Map<string, { n: number; ms: number }>; restore: () => void } {
  const stats = new Map<string, { n: number; ms: number }>();
  const orig = Object.getOwnPropertyDescriptor(ModelRunner.prototype, 'run')!.value as ModelRunner['run'];
  ModelRunner.prototype.run = function (this: ModelRunner, items: RunItem[]) {
    const c0 = process.cpuUsage();
    const r = orig.call(this, items);
    const ms = cpuMs(process.cpuUsage(c0));
    const key = `${this.model === target ? 'target' : 'draft'} T=${items.reduce((s, i) => s + i.ids.length, 0)}`;
    const e = stats.get(key) ?? { n: 0, ms: 0 };
    [e.n, e.ms] = [e.n + 1, e.ms + ms];
    stats.set(key, e);
    return r;
  };
  return { stats, restore: () => void (ModelRunner.prototype.run = orig) };
}

async function pass(engine: Engine, prompts: number[][], maxTokens: number) {
  const [t0, c0] = [performance.now(), process.cpuUsage()];
  const outs: string[] = [];
  let n = 0;
  for (const prompt of prompts) {
    const got: number[] = [];
    for await (const e of engine.add({ prompt, maxTokens, temperature: 0, ignoreEos: true })) {
      if (e.token >= 0) got.push(e.token);
    }
    n += got.length;
    outs.push(got.join(','));
  }
  engine.dispose(); // its pools are native memory: one engine per pass
  return { wall: n / ((performance.now() - t0) / 1000), cpu: n / (cpuMs(process.cpuUsage(c0)) / 1000), outs };
}

async function main(): Promise<void> {
  await useFastBackend({ threads: int('threads', 1) });
  const { model, tokenizer } = await loadModelDir(arg('model', 'models/shakespeare-llama'));
  const draft = (await loadModelDir(arg('draft-model', 'models/shakespeare-char'))).model;
  const [P, T, nPrompts, rounds] = [
    int('prompt-tokens', 16),
    int('max-tokens', 40),
    int('prompts', 8),
    int('rounds', 3),
  ];
  const text = readFileSync('data/tinyshakespeare.txt', 'utf8').slice(0, 200_000);
  const corpus = tokenizer ? tokenizer.encode(text, { addSpecialTokens: false }) : [];
  const prompts = Array.from({ length: nPrompts }, (_, i) =>
    corpus.length > P ? corpus.slice(1000 + i * 997, 1000 + i * 997 + P) : Array.from({ length: P }, (_, j) => j % 7),
  );
  const opts: EngineOptions = {
    kvMemoryBytes: 64 << 20,
    maxRunningSeqs: 1,
    maxBatchedTokens: 512,
    prefixCaching: false,
    draftKvMemoryBytes: 64 << 20,
    prefaultKv: true,
  };
  const spec = () => new Engine(model, { ...opts, draftModel: draft });
  const plain = () => new Engine(model, { ...opts, draftModel: null });
  // warm-up: every code path at full length (the first timed round ran slow with a short one)
  await pass(spec(), prompts.slice(0, 2), T);
  await pass(plain(), prompts.slice(0, 2), T);
  const { stats, restore } = timeForwards(model);
  const speedupCpu: number[] = [];
  const speedupWall: number[] = [];
  let identical = true;
  for (let r = 0; r < rounds; r++) {
    const a = await pass(spec(), prompts, T);
    const b = await pass(plain(), prompts, T);
    speedupCpu.push(a.cpu / b.cpu);
    speedupWall.push(a.wall / b.wall);
    identical &&= a.outs.every((o, i) => o === b.outs[i]);
  }
  restore();
  const step = stats.get('target T=1');
  const perForward = Object.fromEntries(
    [...stats]
      .filter(([, e]) => e.n >= rounds)
      .sort()
      .map(([k, e]) => [
        k,
        { calls: e.n, msCpu: e.ms / e.n, xPlainStep: step ? e.ms / e.n / (step.ms / step.n) : NaN },
      ]),
  );
  console.log(JSON.stringify({ perForward, speedupCpu, speedupWall, identical, prompts: nPrompts, maxTokens: T }));
  await shutdownBackend();
}

await main();
