#!/usr/bin/env node
// The demonstrations of docs/ALIGNMENT.md, one command each (after `npm run build`):
//   node scripts/align-demo.mjs sft    [--steps N]   chat-format SFT: format compliance on 200 held-out prompts
//   node scripts/align-demo.mjs prefs  [--steps N]   DPO, IPO, KTO, ORPO, SimPO on the 'e'-avoidance preference set
//   node scripts/align-demo.mjs rlhf   [--steps N]   reward model + PPO (fixed and adaptive β) against it, vs DPO
//                                 [--kl-init B --kl-target KL --kl-horizon H]
//   node scripts/align-demo.mjs grpo   [--steps N]   SFT warm-up then GRPO on 'first letter of <word>': pass@1
//                                 [--warmup-steps N --lr LR]
//   node scripts/align-demo.mjs lora   [--steps N]   LoRA vs QLoRA (int8, int4) vs full fine-tuning, chat SFT
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
const { alignCommand, loadRewardModel } = await dist('cli/commands/align.js');
const { rewardModelScores } = await dist('align/ppo.js');
const { quantizeCommand } = await dist('cli/commands/quantize.js');
const { QuantLinear } = await dist('nn/quant.js');
const { loadModelDir } = await dist('infer/model-dir-node.js');
const { generate } = await dist('infer/generate.js');
const { loadAdapterDir } = await dist('align/lora-node.js');
const { Encoder } = await dist('align/data.js');
const { sampleGroup } = await dist('align/rollout.js');
const { referenceLogps } = await dist('align/logprobs.js');
const { Rng } = await dist('tensor/random.js');
const { lineChart } = await dist('train/plot.js');
const { eRate } = await import(join(ROOT, 'scripts', 'align-data.mjs'));

const BASE = join(ROOT, 'models', 'shakespeare-char');
const [demo, ...rest] = process.argv.slice(2);
const stepsFlag = rest.indexOf('--steps') >= 0 ? Number(rest[rest.indexOf('--steps') + 1]) : null;
const RUN = join(ROOT, 'runs', 'align', demo ?? '');
const flag = (name, dflt) => (rest.indexOf(name) >= 0 ? rest[rest.indexOf(name) + 1] : dflt);
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
  const steps = stepsFlag ?? 100;
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
  // PPO twice: β fixed at 0.05, and β adapted (from 0.5) toward a KL target of 3 nats per completion
  const ppoArgs = (out, beta) => [
    '--model',
    BASE,
    '--data',
    join(d, 'prompts.jsonl'),
    '--reward-model',
    rm,
    '--out',
    out,
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
    beta,
  ];
  const fixed = await align('ppo', ppoArgs(join(RUN, 'ppo-fixed'), '0.05'));
  const adaptive = await align('ppo', [
    ...ppoArgs(join(RUN, 'ppo'), flag('--kl-init', '0.5')),
    '--kl-target',
    flag('--kl-target', '3'),
    '--kl-horizon',
    flag('--kl-horizon', '32'),
  ]);
  const dpo = await dpoForComparison(d, prompts, steps);
  // one yardstick for all three policies: RM score and KL to the base on fresh samples of the 100 prompts
  const rmModel = await loadRewardModel(rm, 0);
  const base = await model(BASE);
  const judge = async (dir) => sampledRewardAndKl(await model(dir), base, rmModel, prompts);
  const curve = (dir) =>
    readJsonl(join(dir, 'metrics.jsonl'))
      .filter((r) => r.kind === 'train')
      .map((r) => [r.kl, r.reward, r.kl_coef]);
  const ppoStats = async (dir) => {
    const c = curve(dir);
    const q = Math.max(1, Math.floor(c.length / 4));
    const avg = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      rewardFirstQuarter: avg(c.slice(0, q).map((r) => r[1])),
      rewardLastQuarter: avg(c.slice(-q).map((r) => r[1])),
      klLastQuarter: avg(c.slice(-q).map((r) => r[0])),
      klMax: Math.max(...c.map((r) => r[0])),
      klCoefLast: c.at(-1)[2],
      sampled: await judge(dir),
      sampledERate: eRateOfSamples(await model(dir), prompts),
    };
  };
  const results = {
    reward: { heldOutBefore: summary(rm).heldOutBefore, heldOutAfter: summary(rm).heldOutAfter },
    base: { sampled: await judge(BASE), sampledERate: eRateOfSamples(base, prompts) },
    ppoFixed: await ppoStats(fixed),
    ppoAdaptive: await ppoStats(adaptive),
    dpo: { ...dpo, sampled: await judge(join(RUN, 'dpo')) },
  };
  writeFileSync(
    join(RUN, 'reward-vs-kl.svg'),
    lineChart({
      title: 'PPO vs DPO: reward-model score vs KL to the reference (nats per completion)',
      xLabel: 'KL',
      yLabel: 'reward',
      series: [
        { name: 'PPO, fixed β 0.05 (per step)', points: curve(fixed).map((r) => [r[0], r[1]]) },
        { name: 'PPO, adaptive β (per step)', points: curve(adaptive).map((r) => [r[0], r[1]]) },
        { name: 'DPO (end, sampled)', points: [[results.dpo.sampled.kl, results.dpo.sampled.reward]] },
        { name: 'base (sampled)', points: [[results.base.sampled.kl, results.base.sampled.reward]] },
      ],
    }),
  );
  writeFileSync(
    join(RUN, 'ppo-kl-coef.svg'),
    lineChart({
      title: 'PPO: KL to the reference and the adaptive coefficient β (×100) per step',
      xLabel: 'step',
      yLabel: 'nats / β×100',
      series: [
        { name: 'KL, fixed β', points: curve(fixed).map((r, i) => [i, r[0]]) },
        { name: 'KL, adaptive β', points: curve(adaptive).map((r, i) => [i, r[0]]) },
        { name: 'adaptive β ×100', points: curve(adaptive).map((r, i) => [i, 100 * r[2]]) },
      ],
    }),
  );
  return results;
}

/**
 * Mean reward-model score and mean KL to `ref` (Σ_t log π − log π_ref over the completion, the k1 estimate
 * PPO logs) of 4 sampled completions per prompt, sampled as PPO's rollouts are (temperature 1, up to 24
 * tokens, stopping after a newline).
 */
function sampledRewardAndKl(m, ref, rm, prompts) {
  const rng = new Rng(11);
  const enc = new Encoder(m.tokenizer);
  const rows = [];
  for (const p of prompts) {
    const prompt = enc.ids(p.prompt);
    const stopIds = m.tokenizer.encode('\n', { addSpecialTokens: false });
    const opts = { maxTokens: 24, temperature: 1, vocabSize: m.tokenizer.vocabSize, stopIds };
    for (const c of sampleGroup(m.model, prompt, 4, opts, rng)) if (c.length) rows.push({ prompt, completion: c });
  }
  const [lp, lr] = [referenceLogps(m.model, rows, 64).sum, referenceLogps(ref.model, rows, 64).sum];
  const scores = rewardModelScores(rm, rows, 64);
  const avg = (f) => rows.reduce((s, _, i) => s + f(i), 0) / rows.length;
  const r3 = (x) => Math.round(1000 * x) / 1000;
  return { reward: r3(avg((i) => scores[i])), kl: r3(avg((i) => lp[i] - lr[i])) };
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

// ---- 4. GRPO on a verifiable task ----

function passAt1(m, test) {
  const enc = new Encoder(m.tokenizer);
  const replies = greedy(
    m,
    enc,
    test.map((r) => r.prompt),
    4,
  );
  return pct(replies.filter((r, i) => r.split('\n')[0].trim() === test[i].answer).length / test.length);
}

/**
 * 'first letter of <word>: ' → the letter: a short SFT warm-up leaves held-out pass@1 part-way, GRPO
 * (exact-match + format rewards, 8 samples per prompt) raises it on 200 words no training row contains.
 */
async function grpoDemo() {
  const d = data('first');
  const test = readJsonl(join(d, 'test.jsonl'));
  const train = readJsonl(join(d, 'prompts.jsonl')).slice(0, 200);
  const warm = join(RUN, 'warmup');
  await align('sft', [
    '--model',
    BASE,
    '--data',
    join(d, 'sft.jsonl'),
    '--out',
    warm,
    '--steps',
    flag('--warmup-steps', '20'),
    '--lr',
    '1e-3',
    '--batch-size',
    '16',
  ]);
  const mid = await model(warm);
  const before = { test: passAt1(mid, test), train: passAt1(mid, train) };
  console.error(`pass@1 after warm-up: ${JSON.stringify(before)}`);
  const out = join(RUN, 'grpo');
  const steps = stepsFlag ?? 60;
  const curve = [[0, before.test]];
  // GRPO in chunks of 10 steps (--resume continues exactly), held-out pass@1 measured after each
  for (let end = Math.min(10, steps); ; end = Math.min(end + 10, steps)) {
    await align('grpo', [...grpoArgs(warm, d, out, end), '--resume', '--checkpoint-interval', '10']);
    curve.push([end, passAt1(await model(out), test)]);
    console.error(`pass@1 on the held-out words after ${end} GRPO steps: ${curve.at(-1)[1]}%`);
    if (end >= steps) break;
  }
  const fin = await model(out);
  writeFileSync(
    join(RUN, 'grpo-passat1.svg'),
    lineChart({
      title: "GRPO on 'first letter of <word>': held-out pass@1 (200 words)",
      xLabel: 'GRPO step',
      yLabel: 'pass@1 (%)',
      series: [{ name: 'held-out pass@1', points: curve }],
    }),
  );
  return {
    passAt1AfterWarmup: before,
    passAt1AfterGrpo: { test: passAt1(fin, test), train: passAt1(fin, train) },
    heldOutCurve: curve,
    grpo: summary(out).last,
  };
}

function grpoArgs(warm, d, out, steps) {
  return [
    '--model',
    warm,
    '--data',
    join(d, 'prompts.jsonl'),
    '--out',
    out,
    '--steps',
    String(steps),
    '--lr',
    flag('--lr', '3e-4'),
    '--batch-size',
    '8',
    '--group-size',
    '8',
    '--max-new-tokens',
    '3',
    '--temperature',
    '1',
    '--reward',
    'exact-match,format',
    '--beta',
    '0',
  ];
}

// ---- 5. LoRA vs full ----

async function loraDemo() {
  const d = data('chat');
  const steps = String(stepsFlag ?? 150);
  const common = ['--data', join(d, 'train.jsonl'), '--steps', steps, '--batch-size', '16'];
  const adapter = ['--lr', '3e-3', '--lora-r', '8', '--lora-alpha', '16', '--lora-targets', 'c_attn,c_proj,c_fc'];
  const full = join(RUN, 'full');
  await align('sft', ['--model', BASE, ...common, '--out', full, '--lr', '1e-3']);
  const lora = join(RUN, 'lora');
  await align('sft', ['--model', BASE, ...common, '--out', lora, ...adapter]);
  // QLoRA: the same adapters over int8 / int4 bases written by `lineage quantize`
  const qlora = {};
  for (const bits of [8, 4]) {
    const q = join(RUN, `base-q${bits}`);
    if (!existsSync(join(q, 'config.json'))) await quantizeQuiet(['--model', BASE, '--bits', String(bits), '--out', q]);
    qlora[bits] = { base: q, out: join(RUN, `qlora${bits}`) };
    await align('sft', ['--model', q, ...common, '--out', qlora[bits].out, ...adapter]);
  }
  const heldout = readJsonl(join(d, 'heldout.jsonl'));
  const row = async (dir, m) => {
    const s = summary(dir);
    return {
      trainable: s.trainable,
      params: s.params,
      adamStateBytes: 2 * 4 * s.trainable,
      baseWeightBytes: weightBytes(m.model),
      finalTrainLoss: s.trainLoss,
      heldOutLoss: s.heldOutAfter.loss,
      compliance: (await chatCompliance(m, heldout)).compliance,
      seconds: s.seconds,
    };
  };
  return {
    full: await row(full, await model(full)),
    lora: await row(lora, await model(null, lora)),
    qlora8: await row(qlora[8].out, await modelWith(qlora[8].base, qlora[8].out)),
    qlora4: await row(qlora[4].out, await modelWith(qlora[4].base, qlora[4].out)),
    // the int4 adapter applied to the float base it was not trained on
    qlora4OnFloatBase: (await chatCompliance(await model(null, qlora[4].out), heldout)).compliance,
  };
}

async function modelWith(base, lora) {
  const m = await loadModelDir(base);
  loadAdapterDir(m.model, lora);
  return m;
}

/** bytes held by a model's weights: float parameters plus the packed int8 / int4 blocks of QuantLinears */
function weightBytes(m) {
  const float = m.namedParameters().reduce((n, [, p]) => n + p.size * 4, 0);
  const packed = m.namedModules().reduce((n, [, x]) => n + (x instanceof QuantLinear ? x.q.packed.size * 4 : 0), 0);
  return float + packed;
}

async function quantizeQuiet(argv) {
  const log = console.log;
  console.log = () => {};
  try {
    await quantizeCommand([...argv, '--json']);
  } finally {
    console.log = log;
  }
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
