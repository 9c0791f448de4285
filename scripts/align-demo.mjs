#!/usr/bin/env node
// The demonstrations of docs/ALIGNMENT.md, one command each (after `npm run build`):
//   node scripts/align-demo.mjs sft    [--steps N]   chat-format SFT: format compliance on 200 held-out prompts
//   node scripts/align-demo.mjs prefs  [--steps N]   DPO, IPO, KTO, ORPO, SimPO on the 'e'-avoidance preference set
//   node scripts/align-demo.mjs rlhf   [--steps N]   reward model + PPO against it, compared with DPO
//   node scripts/align-demo.mjs grpo   [--steps N]   SFT warm-up then GRPO on 1-digit addition in words: pass@1
//   node scripts/align-demo.mjs lora   [--steps N]   LoRA vs full fine-tuning on the chat SFT task
// --reuse evaluates outputs already in runs/align/<demo>/ instead of training them again.
// Runs go to runs/align/<demo>/ (data, model outputs, metrics.jsonl, SVG plots); the figures are printed
// and written to runs/align/<demo>/results.json. Everything starts from the bundled models/shakespeare-char.
import v8 from 'node:v8';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileSync, mkdirSync } from 'node:fs';
try {
  v8.setFlagsFromString('--experimental-wasm-relaxed-simd');
} catch {
  /* newer Node */
}

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const dist = (p) => import(join(ROOT, 'dist', 'src', p));
const { useFastBackend, shutdownBackend } = await dist('cli/backend-node.js');
const { alignCommand } = await dist('cli/commands/align.js');
const { loadModelDir } = await dist('infer/model-dir-node.js');
const { generate } = await dist('infer/generate.js');
const { loadAdapterDir } = await dist('align/lora-node.js');
const { Encoder } = await dist('align/data.js');
const { sampleGroup } = await dist('align/rollout.js');
const { referenceLogps } = await dist('align/logprobs.js');
const { Rng } = await dist('tensor/random.js');
const { eRate } = await import(join(ROOT, 'scripts', 'align-data.mjs'));

const BASE = join(ROOT, 'models', 'shakespeare-char');
const [demo, ...rest] = process.argv.slice(2);
const stepsFlag = rest.indexOf('--steps') >= 0 ? Number(rest[rest.indexOf('--steps') + 1]) : null;
const RUN = join(ROOT, 'runs', 'align', demo ?? '');
const readJsonl = (f) =>
  readFileSync(f, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
const summary = (out) => JSON.parse(readFileSync(join(out, 'align_summary.json'), 'utf8'));
const pct = (x) => Math.round(1000 * x) / 10;

function data(set) {
  const dir = join(RUN, 'data', set);
  if (!existsSync(dir))
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'align-data.mjs'), set, dir], { stdio: 'inherit' });
  return dir;
}

/** runs `lineage align`; with --reuse, an output that already has its summary is evaluated again, not retrained */
async function align(method, args) {
  const out = args[args.indexOf('--out') + 1];
  if (rest.includes('--reuse') && existsSync(join(out, 'align_summary.json'))) return out;
  console.error(`\n$ lineage align ${method} ${args.join(' ')}`);
  await alignCommand([method, ...args, '--quiet', '--json']);
  return out;
}

async function model(dir, lora = null) {
  const m = await loadModelDir(lora ? BASE : dir);
  if (lora) loadAdapterDir(m.model, lora);
  return m;
}

/** greedy reply to each prompt, up to the first newline (kept) */
function greedy(m, enc, prompts, maxTokens = 40) {
  const nl = m.tokenizer.encode('\n', { addSpecialTokens: false });
  return prompts.map((p) =>
    m.tokenizer.decode(generate(m.model, enc.ids(enc.promptText(p)), { maxTokens, temperature: 0, stopIds: nl })),
  );
}

// ---- 1. SFT: chat format ----

const COMPLIANT = /^I hear [a-z' ]+\.\n$/;
async function chatCompliance(m, heldout) {
  const enc = new Encoder(m.tokenizer);
  const replies = greedy(
    m,
    enc,
    heldout.map((r) => r.prompt),
  );
  return {
    compliance: pct(replies.filter((r) => COMPLIANT.test(r)).length / replies.length),
    exactEcho: pct(replies.filter((r, i) => r === `${heldout[i].answer}\n`).length / replies.length),
    examples: replies.slice(0, 3),
  };
}

async function sftDemo() {
  const d = data('chat');
  const heldout = readJsonl(join(d, 'heldout.jsonl'));
  const before = await chatCompliance(await model(BASE), heldout);
  const out = join(RUN, 'sft');
  await align('sft', [
    '--model',
    BASE,
    '--data',
    join(d, 'train.jsonl'),
    '--out',
    out,
    '--steps',
    String(stepsFlag ?? 150),
    '--lr',
    '1e-3',
    '--batch-size',
    '16',
  ]);
  const after = await chatCompliance(await model(out), heldout);
  return { before, after, train: summary(out) };
}

// ---- 2. preference methods ----

/** mean 'e' rate of sampled continuations (one 24-token sample per prompt, temperature 1) */
function eRateOfSamples(m, prompts) {
  const rng = new Rng(7);
  const enc = new Encoder(m.tokenizer);
  let total = 0;
  for (const p of prompts) {
    const [ids] = sampleGroup(
      m.model,
      enc.ids(p.prompt),
      1,
      { maxTokens: 24, temperature: 1, vocabSize: m.tokenizer.vocabSize },
      rng,
    );
    total += eRate(m.tokenizer.decode(ids));
  }
  return Math.round((1000 * total) / prompts.length) / 1000;
}

/**
 * One yardstick for all five methods: on the 200 pairs of heldout.jsonl (never trained on), the implicit
 * reward margin (log π − log π_base)(chosen) − (…)(rejected) > 0, with summed log-probs and the base as reference.
 */
async function pairAccuracy(m, base, d) {
  const pairs = readJsonl(join(d, 'heldout.jsonl'));
  const enc = new Encoder(m.tokenizer);
  const rows = (k) => pairs.map((p) => enc.pair(p.prompt, p[k]));
  const lp = (model, k) => referenceLogps(model, rows(k), 64).sum;
  const [pc, pr, bc, br] = [
    lp(m.model, 'chosen'),
    lp(m.model, 'rejected'),
    lp(base.model, 'chosen'),
    lp(base.model, 'rejected'),
  ];
  return pct(pairs.filter((_, i) => pc[i] - bc[i] - (pr[i] - br[i]) > 0).length / pairs.length);
}

async function preferenceRun(method, d, prompts, steps, extra = []) {
  const out = join(RUN, method);
  let file = join(d, 'train.jsonl');
  if (method === 'kto') {
    file = join(d, 'kto.jsonl');
    writeFileSync(
      file,
      readJsonl(join(d, 'train.jsonl'))
        .flatMap((r) => [
          { prompt: r.prompt, completion: r.chosen, label: true },
          { prompt: r.prompt, completion: r.rejected, label: false },
        ])
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n',
    );
  }
  await align(method, [
    '--model',
    BASE,
    '--data',
    file,
    '--out',
    out,
    '--steps',
    String(steps),
    '--batch-size',
    '8',
    ...extra,
  ]);
  const s = summary(out);
  const m = await model(out);
  return {
    heldOutBefore: s.heldOutBefore,
    heldOutAfter: s.heldOutAfter,
    pairAccuracy200: await pairAccuracy(m, await model(BASE), d),
    sampledERate: eRateOfSamples(m, prompts),
    sample: sampleText(m),
    seconds: s.seconds,
  };
}

/** one sampled continuation of a fixed prompt, to read what the property change cost */
function sampleText(m) {
  const enc = new Encoder(m.tokenizer);
  const [ids] = sampleGroup(
    m.model,
    enc.ids('ROMEO:\n'),
    1,
    { maxTokens: 48, temperature: 1, vocabSize: m.tokenizer.vocabSize },
    new Rng(3),
  );
  return m.tokenizer.decode(ids);
}

async function prefsDemo() {
  const d = data('epref');
  const prompts = readJsonl(join(d, 'prompts.jsonl'));
  const base = eRateOfSamples(await model(BASE), prompts);
  const steps = stepsFlag ?? 150;
  const lr = ['--lr', '1e-4'];
  const results = { baseSampledERate: base, baseSample: sampleText(await model(BASE)) };
  for (const m of ['dpo', 'ipo', 'kto', 'orpo', 'simpo']) results[m] = await preferenceRun(m, d, prompts, steps, lr);
  return results;
}

// ---- 3. reward model + PPO vs DPO ----

async function rlhfDemo() {
  const d = data('epref');
  const prompts = readJsonl(join(d, 'prompts.jsonl'));
  const steps = stepsFlag ?? 150;
  const rm = join(RUN, 'reward');
  await align('reward', [
    '--model',
    BASE,
    '--data',
    join(d, 'train.jsonl'),
    '--out',
    rm,
    '--steps',
    String(steps),
    '--lr',
    '3e-4',
    '--batch-size',
    '8',
  ]);
  const ppo = join(RUN, 'ppo');
  await align('ppo', [
    '--model',
    BASE,
    '--data',
    join(d, 'prompts.jsonl'),
    '--reward-model',
    rm,
    '--out',
    ppo,
    '--steps',
    String(steps),
    '--lr',
    '1e-4',
    '--batch-size',
    '8',
    '--group-size',
    '4',
    '--ppo-epochs',
    '4',
    '--max-new-tokens',
    '24',
    '--beta',
    '0.05',
  ]);
  const recs = readFileSync(join(ppo, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
    .filter((r) => r.kind === 'train');
  const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const q = Math.max(1, Math.floor(recs.length / 4));
  return {
    reward: { heldOutBefore: summary(rm).heldOutBefore, heldOutAfter: summary(rm).heldOutAfter },
    ppo: {
      rewardFirstQuarter: avg(recs.slice(0, q).map((r) => r.reward)),
      rewardLastQuarter: avg(recs.slice(-q).map((r) => r.reward)),
      klLastQuarter: avg(recs.slice(-q).map((r) => r.kl)),
      klMax: Math.max(...recs.map((r) => r.kl)),
      sampledERate: eRateOfSamples(await model(ppo), prompts),
    },
    baseSampledERate: eRateOfSamples(await model(BASE), prompts),
    dpo: await dpoForComparison(d, prompts, steps),
  };
}

/** DPO on the same pairs and budget (from runs/align/prefs when it exists) */
async function dpoForComparison(d, prompts, steps) {
  const out = join(RUN, 'dpo');
  await align('dpo', [
    '--model',
    BASE,
    '--data',
    join(d, 'train.jsonl'),
    '--out',
    out,
    '--steps',
    String(steps),
    '--batch-size',
    '8',
    '--lr',
    '1e-4',
  ]);
  return { sampledERate: eRateOfSamples(await model(out), prompts), heldOutAfter: summary(out).heldOutAfter };
}

// ---- 4. GRPO on addition ----

function passAt1(m, test) {
  const enc = new Encoder(m.tokenizer);
  const replies = greedy(
    m,
    enc,
    test.map((r) => r.prompt),
    12,
  );
  return pct(replies.filter((r, i) => r.split('\n')[0].trim() === test[i].answer).length / test.length);
}

async function grpoDemo() {
  const d = data('add');
  const test = readJsonl(join(d, 'test.jsonl'));
  const train = readJsonl(join(d, 'prompts.jsonl'));
  const warm = join(RUN, 'warmup');
  await align('sft', [
    '--model',
    BASE,
    '--data',
    join(d, 'sft.jsonl'),
    '--out',
    warm,
    '--steps',
    String(Math.round((stepsFlag ?? 150) / 2)),
    '--lr',
    '1e-3',
    '--batch-size',
    '16',
  ]);
  const mid = await model(warm);
  const before = { test: passAt1(mid, test), train: passAt1(mid, train) };
  const out = join(RUN, 'grpo');
  await align('grpo', [
    '--model',
    warm,
    '--data',
    join(d, 'prompts.jsonl'),
    '--out',
    out,
    '--steps',
    String(stepsFlag ?? 150),
    '--lr',
    '1e-4',
    '--batch-size',
    '4',
    '--group-size',
    '8',
    '--max-new-tokens',
    '10',
    '--reward',
    'exact-match,format',
    '--beta',
    '0',
  ]);
  const fin = await model(out);
  return {
    passAt1AfterWarmup: before,
    passAt1AfterGrpo: { test: passAt1(fin, test), train: passAt1(fin, train) },
    grpo: summary(out).last,
  };
}

// ---- 5. LoRA vs full ----

async function loraDemo() {
  const d = data('chat');
  const steps = String(stepsFlag ?? 150);
  const common = ['--model', BASE, '--data', join(d, 'train.jsonl'), '--steps', steps, '--batch-size', '16'];
  const full = join(RUN, 'full');
  await align('sft', [...common, '--out', full, '--lr', '1e-3']);
  const lora = join(RUN, 'lora');
  await align('sft', [
    ...common,
    '--out',
    lora,
    '--lr',
    '3e-3',
    '--lora-r',
    '8',
    '--lora-alpha',
    '16',
    '--lora-targets',
    'c_attn,c_proj,c_fc',
  ]);
  const heldout = readJsonl(join(d, 'heldout.jsonl'));
  const row = async (dir, m) => {
    const s = summary(dir);
    return {
      trainable: s.trainable,
      params: s.params,
      adamStateBytes: 2 * 4 * s.trainable,
      finalTrainLoss: s.trainLoss,
      heldOutLoss: s.heldOutAfter.loss,
      compliance: (await chatCompliance(m, heldout)).compliance,
      seconds: s.seconds,
    };
  };
  return { full: await row(full, await model(full)), lora: await row(lora, await model(null, lora)) };
}

const DEMOS = { sft: sftDemo, prefs: prefsDemo, rlhf: rlhfDemo, grpo: grpoDemo, lora: loraDemo };
if (!DEMOS[demo]) {
  console.error(`usage: node scripts/align-demo.mjs ${Object.keys(DEMOS).join('|')} [--steps N]`);
  process.exit(2);
}
await useFastBackend();
try {
  mkdirSync(RUN, { recursive: true });
  const t0 = Date.now();
  const results = await DEMOS[demo]();
  results.wallSeconds = Math.round((Date.now() - t0) / 100) / 10;
  writeFileSync(join(RUN, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  console.log(JSON.stringify(results, null, 2));
} finally {
  await shutdownBackend();
}
