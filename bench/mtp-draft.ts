// DeepSeek-V3 MTP as the speculative drafter, on a trained model directory: per draft length k and
// temperature, the acceptance rate, new tokens per target forward (what carries over to a deep target,
// where one MTP layer is a small fraction of a step) and the CPU-time speed ratio against plain decoding
// (interleaved rounds, same process); and, teacher-forced on held-out text, how often depth 1's argmax is the
// token two ahead (the main head's next-token accuracy beside it).
//
//   node --experimental-wasm-relaxed-simd dist/bench/mtp-draft.js --model DIR [--k 1,2,3] [--temperatures 0,0.8]
//     [--prompts 8] [--prompt-tokens 32] [--max-tokens 64] [--rounds 2] [--threads 1]
import { readFileSync } from 'node:fs';
import { noGrad, tidy } from '../src/tensor/engine.js';
import { tensor } from '../src/ops/index.js';
import { loadModelDir } from '../src/infer/model-dir-node.js';
import { shutdownBackend, useFastBackend } from '../src/cli/backend-node.js';
import { Engine } from '../src/infer/engine/engine.js';
import { mtpModel } from '../src/infer/engine/mtp-drafter.js';
import { argmax } from '../src/infer/engine/sampler.js';
import type { DecoderLM } from '../src/models/decoder.js';

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1]! : def;
};
const list = (name: string, def: string) => arg(name, def).split(',').map(Number);
const cpuSeconds = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** every prompt one after the other (one sequence at a time); steps = target forwards */
function pass(engine: Engine, prompts: number[][], maxTokens: number, temperature: number) {
  const c0 = cpuSeconds();
  const handles = prompts.map((prompt, i) => ({ prompt, seed: i }));
  let [tokens, steps] = [0, 0];
  for (const { prompt, seed } of handles) {
    engine.add({ prompt, maxTokens, temperature, seed, ignoreEos: true });
    while (engine.step()) steps++;
    tokens += maxTokens;
  }
  const r = { tokens, steps, cpu: cpuSeconds() - c0, acceptance: engine.stats().acceptanceRate };
  engine.dispose(); // one engine per pass: its pools are native memory
  return r;
}

/** teacher-forced accuracy over windows of held-out ids: main head (t+1) and MTP depth 1 (t+2) */
function teacherForced(model: DecoderLM, ids: number[], window: number, windows: number) {
  let [main, mtp, n1, n2] = [0, 0, 0, 0];
  const V = model.config.vocabSize;
  for (let w = 0; w < windows; w++) {
    const seq = ids.slice(w * window, (w + 1) * window);
    noGrad(() =>
      tidy(() => {
        const x = tensor(Int32Array.from(seq), { shape: [1, seq.length], dtype: 'int32' });
        const out = model.forward({ inputIds: x });
        const logits = out.logits.data() as Float32Array;
        const d1 = model.mtpForward(x, out.lastHiddenState!)[0]!.data() as Float32Array;
        for (let i = 0; i + 1 < seq.length; i++, n1++)
          main += +(argmax(logits.subarray(i * V, (i + 1) * V)) === seq[i + 1]);
        for (let i = 0; i + 2 < seq.length; i++, n2++) mtp += +(argmax(d1.subarray(i * V, (i + 1) * V)) === seq[i + 2]);
      }),
    );
  }
  return { mainNextTokenAccuracy: main / n1, mtpDepth1Accuracy: mtp / n2 };
}

async function main(): Promise<void> {
  await useFastBackend({ threads: Number(arg('threads', '1')) });
  const { model, tokenizer } = await loadModelDir(arg('model', ''));
  const target = mtpModel(model).eval();
  if (!tokenizer) throw new Error('mtp-draft bench: the model directory needs a tokenizer.json');
  const [P, T, nPrompts, rounds] = [
    +arg('prompt-tokens', '32'),
    +arg('max-tokens', '64'),
    +arg('prompts', '8'),
    +arg('rounds', '2'),
  ];
  const text = readFileSync(arg('data', 'data/tinyshakespeare.txt'), 'utf8');
  // the last 10% (the trainer's validation split) for prompts and the teacher-forced accuracy
  const held = tokenizer.encode(text.slice(Math.floor(text.length * 0.9)), { addSpecialTokens: false });
  const prompts = Array.from({ length: nPrompts }, (_, i) => held.slice(i * 997, i * 997 + P));
  const rows = [];
  for (const temperature of list('temperatures', '0,0.8')) {
    for (const k of list('k', '1,2,3')) {
      const opts = { kvMemoryBytes: 16 << 20, maxRunningSeqs: 1, prefixCaching: false, autoRun: false };
      const spec = () => new Engine(target, { ...opts, mtpDraft: true, speculativeTokens: k });
      const plain = () => new Engine(target, opts);
      pass(spec(), prompts.slice(0, 1), T, temperature); // warm-up
      pass(plain(), prompts.slice(0, 1), T, temperature);
      const ratios: number[] = [];
      let last = { acceptance: 0, tokensPerTargetForward: 0 };
      for (let r = 0; r < rounds; r++) {
        const a = pass(spec(), prompts, T, temperature);
        const b = pass(plain(), prompts, T, temperature);
        ratios.push(b.cpu / a.cpu);
        last = { acceptance: a.acceptance, tokensPerTargetForward: a.tokens / a.steps };
      }
      rows.push({ temperature, k, ...last, speedRatioCpu: ratios });
    }
  }
  const tf = teacherForced(target, held, Math.min(64, target.config.maxContext), 32);
  console.log(JSON.stringify({ rows, teacherForced: tf, prompts: nPrompts, promptTokens: P, maxTokens: T }));
  await shutdownBackend();
}

void main();
