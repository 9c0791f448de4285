// `lineage align <method>`: post-training of a model directory on a TRL-format JSONL file, run by the
// same Trainer as `lineage train` (progress bar, metrics.jsonl, SVG plots, atomic checkpoints, --resume).
//
// OUT/ layout:
//   config.json, model.safetensors, tokenizer.json   the trained model (full fine-tuning; reward: the decoder)
//   adapter_config.json, adapter_model.safetensors   instead, with --lora-r (PEFT layout)
//   reward_head.safetensors                          reward: the scalar head (score.weight)
//   metrics.jsonl, loss-curve.svg, <method>-metrics.svg, align_config.json, align_summary.json
//   checkpoint/                                      the last checkpoint (weights, optimizer, trainer state)
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { manualSeed } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { LanguageModel } from '../../models/model.js';
import type { ModelConfig } from '../../models/config.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { vocabularyDifference } from '../../tokenizers/compare.js';
import { contextLimit } from '../../infer/generate.js';
import { loadModelDir, saveModelDir } from '../../infer/model-dir-node.js';
import { fromRaw, toRaw } from '../../models/load-node.js';
import { readSafetensorsFile } from '../../io/checkpoint-node.js';
import { noGrad } from '../../tensor/engine.js';
import { serializeSafetensors } from '../../io/safetensors.js';
import { checkpointDir, recoverCheckpointDir, writeFileAtomic, writeJSONAtomic } from '../../train/atomic-node.js';
import { MetricsLogger, seriesOf, type MetricRecord } from '../../train/metrics.js';
import { jsonlFileSink } from '../../train/metrics-node.js';
import { lineChart, lossChart } from '../../train/plot.js';
import { parsePrecision, type Precision } from '../../train/precision.js';
import { Trainer, runTraining } from '../../train/trainer.js';
import { parseAlignData, Encoder } from '../../align/data.js';
import { applyLora, quantizedBits, type LoraConfig } from '../../align/lora.js';
import { klControl } from '../../align/kl-controller.js';
import { saveAdapterDir } from '../../align/lora-node.js';
import { ScalarHeadModel } from '../../align/heads.js';
import { checkRewardData, parseRewards } from '../../align/rewards.js';
import {
  ALIGN_METHODS,
  AlignTask,
  DATA_KIND,
  METHOD_DEFAULTS,
  encodeExamples,
  type AlignMethod,
  type Metrics,
} from '../../align/task.js';
import { flagNumber, flagString, parseFlags } from '../flags.js';
import { readTrainCheckpoint, truncateMetrics } from './train.js';
import { ProgressBar } from '../progress.js';

const VALUED = [
  'model',
  'data',
  'out',
  'ref-model',
  'lora-r',
  'lora-alpha',
  'lora-targets',
  'lora-dropout',
  'steps',
  'lr',
  'batch-size',
  'beta',
  'label-smoothing',
  'loss-type',
  'simpo-gamma',
  'group-size',
  'max-new-tokens',
  'temperature',
  'reward',
  'precision',
  'grad-accum',
  'grad-clip',
  'warmup',
  'seed',
  'checkpoint-interval',
  'eval-interval',
  'reward-model',
  'ppo-epochs',
  'kl-target',
  'kl-horizon',
];
const BOOLS = ['json', 'resume', 'overwrite', 'rloo', 'quiet'];

const HELP = `usage: lineage align <method> --model DIR --data FILE.jsonl --out DIR [options]

methods: ${ALIGN_METHODS.join(', ')}   (data formats: TRL's, see docs/ALIGNMENT.md)

  --model DIR              model directory to start from (config.json, model.safetensors, tokenizer.json)
  --data FILE.jsonl        one JSON object per line
  --out DIR                output: a model directory, or a PEFT adapter directory with --lora-r
                           (a 'lineage quantize' output as --model + --lora-r: QLoRA, the base stays int8/int4)
  --ref-model DIR          frozen reference (default: the starting model; dpo, ipo, kto, grpo with --beta > 0)
  --lora-r R --lora-alpha A --lora-targets q_proj,v_proj,...  [--lora-dropout P]   train LoRA adapters only
  --steps N (100)  --lr LR (1e-4; 5e-5 for dpo family)  --batch-size B (8)  --beta B (method's TRL default)
  --label-smoothing E  --loss-type sigmoid|hinge (dpo)  --simpo-gamma G (γ/β, 0.5)
  --group-size G (4)  --max-new-tokens N (16)  --temperature T (1)  --reward exact-match,format  --rloo   (grpo, ppo)
  --reward-model DIR (ppo: a 'lineage align reward' output instead of reward functions)  --ppo-epochs K (2)
  --kl-target KL --kl-horizon H (10000)   ppo: adaptive KL coefficient from --beta (Ziegler et al.; TRL)
  --precision fp32|bf16|fp16  --grad-accum K  --grad-clip C (1)  --warmup N  --seed S
  --checkpoint-interval N  --eval-interval N
  --resume                 continue from OUT/checkpoint (the same method, model, data and LoRA settings)
  --overwrite              replace the earlier run in OUT (without it, a non-empty OUT is refused)
  --json                   last stdout line: one JSON object of final metrics
  --quiet                  no progress bar`;

export interface AlignConfig {
  method: AlignMethod;
  model: string;
  data: string;
  out: string;
  refModel: string | null;
  lora: LoraConfig | null;
  steps: number;
  lr: number;
  batchSize: number;
  beta: number;
  labelSmoothing: number;
  lossType: 'sigmoid' | 'hinge';
  simpoGamma: number;
  groupSize: number;
  maxNewTokens: number;
  temperature: number;
  reward: string;
  rewardModel: string | null;
  ppoEpochs: number;
  klTarget: number | null;
  klHorizon: number | null;
  rloo: boolean;
  precision: Precision;
  gradAccum: number;
  gradClip: number;
  warmup: number;
  seed: number;
  checkpointInterval: number;
  evalInterval: number;
}

/** every flag → AlignConfig in one place (the shared flag parser can replace parseFlags here alone) */
export function resolveAlignConfig(argv: readonly string[]): {
  c: AlignConfig;
  json: boolean;
  resume: boolean;
  overwrite: boolean;
  quiet: boolean;
  help: boolean;
} {
  const [method, ...rest] = argv;
  const help = {
    c: null as unknown as AlignConfig,
    json: false,
    resume: false,
    overwrite: false,
    quiet: false,
    help: true,
  };
  if (!method || method === '--help') return help;
  if (!(ALIGN_METHODS as readonly string[]).includes(method))
    throw new Error(`unknown method ${JSON.stringify(method)} (methods: ${ALIGN_METHODS.join(', ')})`);
  const m = method as AlignMethod;
  const f = parseFlags('align', rest, VALUED, BOOLS);
  if (f.help) return help;
  const need = (n: string) => flagString(f, n) ?? fail(`--${n} is required (see 'lineage align --help')`);
  const num = (n: string, d: number, o: { int?: boolean; min?: number } = {}) => flagNumber(f, n, o) ?? d;
  const lossType = flagString(f, 'loss-type') ?? 'sigmoid';
  if (lossType !== 'sigmoid' && lossType !== 'hinge')
    fail(`--loss-type: expected sigmoid or hinge, got ${JSON.stringify(lossType)}`);
  const c: AlignConfig = {
    method: m,
    model: need('model'),
    data: need('data'),
    out: need('out'),
    refModel: flagString(f, 'ref-model') ?? null,
    lora: resolveLora(f),
    steps: num('steps', 100, { int: true, min: 0 }),
    lr: num('lr', m === 'sft' || m === 'reward' || m === 'grpo' ? 1e-4 : 5e-5, { min: 0 }),
    batchSize: num('batch-size', 8, { int: true, min: 1 }),
    beta: num('beta', METHOD_DEFAULTS[m].beta, { min: 0 }),
    labelSmoothing: num('label-smoothing', 0, { min: 0 }),
    lossType,
    simpoGamma: num('simpo-gamma', 0.5),
    groupSize: num('group-size', 4, { int: true, min: 2 }),
    maxNewTokens: num('max-new-tokens', 16, { int: true, min: 1 }),
    temperature: num('temperature', 1, { min: 0 }),
    reward: flagString(f, 'reward') ?? 'exact-match,format',
    rloo: f.bools.has('rloo'),
    rewardModel: flagString(f, 'reward-model') ?? null,
    ppoEpochs: num('ppo-epochs', 2, { int: true, min: 1 }),
    klTarget: flagNumber(f, 'kl-target') ?? null,
    klHorizon: flagNumber(f, 'kl-horizon') ?? null,
    precision: parsePrecision(flagString(f, 'precision') ?? 'fp32'),
    gradAccum: num('grad-accum', 1, { int: true, min: 1 }),
    gradClip: num('grad-clip', 1, { min: 0 }),
    warmup: num('warmup', 0, { int: true, min: 0 }),
    seed: num('seed', 1337, { int: true }),
    checkpointInterval: num('checkpoint-interval', 0, { int: true, min: 0 }),
    evalInterval: num('eval-interval', 0, { int: true, min: 0 }),
  };
  if (c.labelSmoothing >= 0.5) fail(`--label-smoothing must be below 0.5, got ${c.labelSmoothing}`);
  checkMethodFlags(m, f, c);
  klControl(c.beta, c.klTarget ?? undefined, c.klHorizon ?? undefined); // validates the flags up front
  const resume = f.bools.has('resume');
  const overwrite = f.bools.has('overwrite');
  if (resume && overwrite) fail('--resume continues the run in --out and --overwrite replaces it: give one of them');
  return { c, json: f.bools.has('json'), resume, overwrite, quiet: f.bools.has('quiet'), help: false };
}

/** the methods each method-specific flag applies to: anything else would be silently ignored, so it is refused */
const METHOD_FLAGS: Record<string, readonly AlignMethod[]> = {
  beta: ['dpo', 'ipo', 'kto', 'orpo', 'simpo', 'ppo', 'grpo'],
  'ref-model': ['dpo', 'ipo', 'kto', 'ppo', 'grpo'],
  'label-smoothing': ['dpo', 'simpo'],
  'loss-type': ['dpo'],
  'simpo-gamma': ['simpo'],
  'group-size': ['grpo', 'ppo'],
  'max-new-tokens': ['grpo', 'ppo'],
  temperature: ['grpo', 'ppo'],
  reward: ['grpo', 'ppo'],
  rloo: ['grpo'],
  'reward-model': ['ppo'],
  'ppo-epochs': ['ppo'],
  'kl-target': ['ppo'],
  'kl-horizon': ['ppo'],
};

function checkMethodFlags(m: AlignMethod, f: ReturnType<typeof parseFlags>, c: AlignConfig): void {
  for (const [flag, methods] of Object.entries(METHOD_FLAGS)) {
    if (!(f.values.has(flag) || f.bools.has(flag)) || methods.includes(m)) continue;
    fail(`--${flag} does not apply to ${m} (it is used by ${methods.join(', ')})`);
  }
  if (m === 'dpo' && c.lossType === 'hinge' && f.values.has('label-smoothing'))
    fail('--label-smoothing applies to the sigmoid DPO loss, not --loss-type hinge');
  if (m === 'grpo' && c.refModel && c.beta === 0)
    fail('--ref-model: grpo uses a reference only for its KL term; give --beta > 0 (e.g. 0.04)');
  if (m === 'ppo' && c.rewardModel && f.values.has('reward'))
    fail('--reward and --reward-model are alternatives: give one of them');
}

/** files an earlier align or train run (or a model) leaves in OUT; --overwrite removes them */
const RUN_FILES = [
  'checkpoint',
  'metrics.jsonl',
  'align_config.json',
  'align_summary.json',
  'train_config.json',
  'train_summary.json',
  'config.json',
  'model.safetensors',
  'model.safetensors.index.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'generation_config.json',
  'adapter_config.json',
  'adapter_model.safetensors',
  'reward_head.safetensors',
  'loss-curve.svg',
  'reward-vs-kl.svg',
  ...ALIGN_METHODS.map((m) => `${m}-metrics.svg`),
];

const same = (a: string, b: string) => resolve(a) === resolve(b);

/**
 * --out must not be an input (the base model would be overwritten while it is still read), and a non-empty
 * --out is refused unless --resume continues it or --overwrite replaces it. --overwrite clears the earlier
 * run's files, its checkpoint above all: a fresh run killed before its first checkpoint must not leave the
 * old one for a later --resume.
 */
export function checkAlignOut(c: AlignConfig, resume: boolean, overwrite: boolean): void {
  const inputs: [string, string | null][] = [
    ['--model', c.model],
    ['--ref-model', c.refModel],
    ['--reward-model', c.rewardModel],
  ];
  for (const [flag, dir] of inputs)
    if (dir !== null && same(dir, c.out)) fail(`--out ${c.out} is the ${flag} directory: choose another --out`);
  if (!existsSync(c.out)) return;
  if (!statSync(c.out).isDirectory()) fail(`--out ${c.out}: exists and is not a directory`);
  const entries = readdirSync(c.out);
  if (entries.length === 0 || resume) return;
  if (!overwrite)
    fail(
      `--out ${c.out} is not empty (${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', ...' : ''}): ` +
        'pass --resume to continue the run in it, --overwrite to replace it, or choose another --out',
    );
  recoverCheckpointDir(join(c.out, CKPT));
  for (const name of RUN_FILES) rmSync(join(c.out, name), { recursive: true, force: true });
}

/** fields of align_config.json a resumed run must share with the run it continues */
const RESUME_FIELDS: (keyof AlignConfig)[] = ['method', 'model', 'data', 'refModel', 'rewardModel', 'lora', 'reward'];

/** --resume: refuses a command that differs from the checkpointed run in what the checkpoint depends on */
export function checkAlignResume(c: AlignConfig): void {
  recoverCheckpointDir(join(c.out, CKPT));
  const file = join(c.out, 'align_config.json');
  if (!existsSync(join(c.out, CKPT, 'trainer_state.json')) || !existsSync(file)) return;
  let saved: Partial<AlignConfig>;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<AlignConfig>;
  } catch (e) {
    return fail(`--resume: ${file} is not valid JSON (${(e as Error).message})`);
  }
  const norm = (k: keyof AlignConfig, v: unknown) =>
    (k === 'model' || k === 'data' || k === 'refModel' || k === 'rewardModel') && typeof v === 'string'
      ? resolve(v)
      : v;
  const diffs = RESUME_FIELDS.filter(
    (k) => k in saved && JSON.stringify(norm(k, saved[k])) !== JSON.stringify(norm(k, c[k])),
  ).map((k) => `${k}: ${JSON.stringify(saved[k])} in the checkpointed run, ${JSON.stringify(c[k])} now`);
  if (diffs.length)
    fail(
      `--resume: the command differs from the run in ${c.out}:\n  ${diffs.join('\n  ')}\n` +
        'give the same settings, or --overwrite to start a new run',
    );
}

function resolveLora(f: ReturnType<typeof parseFlags>): LoraConfig | null {
  const r = flagNumber(f, 'lora-r', { int: true, min: 1 });
  if (r === undefined) {
    for (const n of ['lora-alpha', 'lora-targets', 'lora-dropout']) if (f.values.has(n)) fail(`--${n} needs --lora-r`);
    return null;
  }
  const targets = (flagString(f, 'lora-targets') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (!targets.length) fail('--lora-targets: give the layers to adapt, e.g. q_proj,v_proj (GPT-2: c_attn)');
  return {
    r,
    alpha: flagNumber(f, 'lora-alpha', { min: 0 }) ?? 2 * r,
    dropout: flagNumber(f, 'lora-dropout', { min: 0 }) ?? 0,
    targets,
  };
}

function fail(msg: string): never {
  throw new Error(msg);
}

// ---- setup ----

interface Setup {
  policy: LanguageModel;
  /** what the trainer trains: the policy, or the policy with a reward head */
  trained: LanguageModel;
  config: ModelConfig;
  tokenizer: Tokenizer;
  task: AlignTask;
  ref: LanguageModel | null;
}

async function setup(c: AlignConfig): Promise<Setup> {
  if (!existsSync(c.data)) fail(`--data ${c.data}: no such file`);
  const { model: policy, config, tokenizer } = await loadModelDir(c.model, { seed: c.seed });
  if (!tokenizer) fail(`--model ${c.model}: no tokenizer.json (align needs one to encode the data)`);
  if (config.arch !== 'decoder')
    fail(`--model ${c.model}: ${config.family} is not a decoder-only model (align trains causal LMs)`);
  const qbits = quantizedBits(policy);
  if (qbits.length && !c.lora)
    fail(
      `--model ${c.model}: the model is quantized (int${qbits.join('/int')}); ` +
        'train LoRA adapters over it (QLoRA) with --lora-r',
    );
  const enc = new Encoder(tokenizer);
  const records = parseAlignData(readFileSync(c.data, 'utf8'), DATA_KIND[c.method], c.data);
  const examples = encodeExamples(records, enc, c.data);
  if (c.method === 'grpo' || (c.method === 'ppo' && !c.rewardModel))
    checkRewardData(parseRewards(c.reward).names, records, c.data);
  const eos = config.tokens.eos;
  const newline = tokenizer.encode('\n', { addSpecialTokens: false });
  const stopIds = eos !== null ? [eos] : newline.length === 1 ? newline : [];
  const task = new AlignTask(
    examples,
    {
      method: c.method,
      beta: c.beta,
      batchSize: c.batchSize,
      seed: c.seed,
      limit: contextLimit(policy),
      labelSmoothing: c.labelSmoothing,
      lossType: c.lossType,
      simpoGamma: c.simpoGamma,
      groupSize: c.groupSize,
      maxNewTokens: c.maxNewTokens,
      temperature: c.temperature,
      rloo: c.rloo,
      stopIds,
      vocabSize: tokenizer.vocabSize,
      ppoEpochs: c.ppoEpochs,
      klControl: klControl(c.beta, c.klTarget ?? undefined, c.klHorizon ?? undefined),
      ...(c.method === 'grpo' || (c.method === 'ppo' && !c.rewardModel) ? { reward: parseRewards(c.reward).fn } : {}),
    },
    policy,
  );
  task.decode = (ids) => tokenizer.decode(ids);
  const online = c.method === 'grpo' || c.method === 'ppo';
  const needsRef = METHOD_DEFAULTS[c.method].reference || (c.method === 'grpo' && c.beta > 0);
  const ref = needsRef && c.refModel ? await loadPaired('--ref-model', c.refModel, config, tokenizer, c.seed) : null;
  if (needsRef && !online) {
    task.computeReferences(ref ?? policy); // once, before the policy changes
    ref?.dispose();
  }
  // online methods score fresh samples under the reference: keep a frozen copy
  if (needsRef && online) task.ref = ref ?? (await loadModelDir(c.model, { seed: c.seed })).model;
  const trained =
    c.method === 'reward'
      ? new ScalarHeadModel(policy, 'score', c.seed)
      : c.method === 'ppo'
        ? new ScalarHeadModel(policy, 'v_head', c.seed)
        : policy;
  if (c.method === 'ppo') {
    task.valueModel = trained as ScalarHeadModel;
    if (c.rewardModel) task.rewardModel = await loadRewardModel(c.rewardModel, c.seed, { config, tokenizer });
  }
  if (c.lora) applyLora(policy, c.lora, c.seed); // after the references: they come from the untouched model
  return { policy, trained, config, tokenizer, task, ref: task.ref };
}

/**
 * A model that reads the policy's token ids (the reference, a reward model): it must share the policy's
 * vocabulary, or every log-probability or score it gives is of different text.
 */
async function loadPaired(
  flag: string,
  dir: string,
  policy: ModelConfig,
  policyTok: Tokenizer,
  seed: number,
): Promise<LanguageModel> {
  const { model, config, tokenizer } = await loadModelDir(dir, { seed });
  const why =
    config.vocabSize !== policy.vocabSize
      ? `its vocabulary (${config.vocabSize}) differs from the policy's (${policy.vocabSize})`
      : tokenizer
        ? vocabularyDifference(policyTok, tokenizer) &&
          `its tokenizer differs from the policy's (${vocabularyDifference(policyTok, tokenizer)}, policy first)`
        : null;
  if (why) {
    model.dispose();
    fail(`${flag} ${dir}: ${why}; it must use the policy's tokenizer (--model)`);
  }
  return model;
}

/** a 'lineage align reward' output: the decoder plus reward_head.safetensors; `policy` checks its vocabulary */
export async function loadRewardModel(
  dir: string,
  seed: number,
  policy?: { config: ModelConfig; tokenizer: Tokenizer },
): Promise<ScalarHeadModel> {
  const head = join(dir, 'reward_head.safetensors');
  if (!existsSync(head))
    fail(`--reward-model ${dir}: no reward_head.safetensors (train one with 'lineage align reward')`);
  const base = policy
    ? await loadPaired('--reward-model', dir, policy.config, policy.tokenizer, seed)
    : (await loadModelDir(dir, { seed })).model;
  const rm = new ScalarHeadModel(base, 'score', seed);
  const w = (await readSafetensorsFile(head)).tensors.find((t) => t.name === 'score.weight');
  if (!w) fail(`${head}: no tensor 'score.weight'`);
  noGrad(() => rm.loadStateDict(new Map([['score.weight', fromRaw(w)]]), { strict: false }));
  for (const p of rm.parameters()) p.requiresGrad = false;
  return rm.eval();
}

// ---- checkpoints and outputs ----

const CKPT = 'checkpoint';

async function writeCheckpoint(c: AlignConfig, s: Setup, trainer: Trainer): Promise<void> {
  const { json, buffers } = trainer.state();
  await checkpointDir(join(c.out, CKPT), async (tmp) => {
    await saveModelDir(tmp, s.config, trainer.weights(), s.tokenizer);
    const raw = Object.entries(buffers).map(([name, b]) => ({
      name,
      dtype: 'float32' as const,
      shape: b.shape,
      data: b.data,
    }));
    writeFileSync(join(tmp, 'optimizer.safetensors'), serializeSafetensors(raw));
    writeFileSync(join(tmp, 'trainer_state.json'), JSON.stringify(json, null, 2) + '\n');
  });
}

/** the final model: an adapter directory (LoRA), or a model directory (+ reward head) */
async function writeOutputs(c: AlignConfig, s: Setup, trainer: Trainer): Promise<void> {
  if (c.lora) return saveAdapterDir(c.out, s.policy, c.lora, c.model);
  const weights = new Map(trainer.weights());
  const lmNames = s.policy.namedParameters().map(([n]) => n);
  await saveModelDir(
    c.out,
    s.config,
    lmNames.map((n) => [n, weights.get(n)!] as [string, Tensor]),
    s.tokenizer,
  );
  if (c.method === 'reward')
    writeFileAtomic(
      join(c.out, 'reward_head.safetensors'),
      serializeSafetensors([toRaw('score.weight', weights.get('score.weight')!)]),
    );
}

// ---- held-out evaluation ----

/** held-out metrics: preference accuracy (implicit reward margin > 0) and margins, or the eval loss */
function heldOut(s: Setup): Metrics {
  const { task, trained } = s;
  if (task.online || task.split.val.length === 0) return {};
  const was = trained.training;
  trained.eval();
  const sums: Metrics = {};
  let n = 0;
  try {
    for (const hb of task.evalBatches('val', 0, 1 << 30)) {
      const k = hb.arrays.idx!.shape[1];
      const r = task.evaluateBatch(trained, hb);
      for (const [key, v] of Object.entries({ loss: r.loss, ...r.metrics })) sums[key] = (sums[key] ?? 0) + v * k;
      n += k;
    }
  } finally {
    trained.train(was);
  }
  return Object.fromEntries(Object.entries(sums).map(([key, v]) => [key, v / n]));
}

function writePlots(out: string, method: AlignMethod, records: MetricRecord[]): void {
  const train = records.filter((r) => r.kind === 'train');
  writeFileAtomic(
    join(out, 'loss-curve.svg'),
    lossChart(
      seriesOf(train, 'loss'),
      seriesOf(
        records.filter((r) => r.kind === 'eval'),
        'val_loss',
      ),
      { smooth: 0.9, title: `${method} loss` },
    ),
  );
  const keys = ['accuracy', 'margin', 'reward', 'kl', 'kl_coef', 'entropy', 'clip_fraction'].filter((k) =>
    train.some((r) => typeof r[k] === 'number'),
  );
  if (!keys.length) return;
  const series = keys.map((k) => ({ name: k, points: seriesOf(train, k) }));
  writeFileAtomic(
    join(out, `${method}-metrics.svg`),
    lineChart({ title: `${method}: training metrics`, xLabel: 'step', yLabel: 'value', series }),
  );
  if (!keys.includes('reward') || !keys.includes('kl')) return;
  // InstructGPT's view of RLHF: reward gained against KL spent, one point per step (in step order)
  const points = train
    .filter((r) => typeof r.kl === 'number' && typeof r.reward === 'number')
    .map((r) => [r.kl as number, r.reward as number] as [number, number]);
  writeFileAtomic(
    join(out, 'reward-vs-kl.svg'),
    lineChart({
      title: `${method}: reward vs KL to the reference`,
      xLabel: 'KL',
      yLabel: 'reward',
      series: [{ name: 'reward', points }],
    }),
  );
}

// ---- the command ----

export async function alignCommand(argv: string[]): Promise<void> {
  const { c, json, resume, overwrite, quiet, help } = resolveAlignConfig(argv);
  if (help) return void console.log(HELP);
  checkAlignOut(c, resume, overwrite);
  if (resume) checkAlignResume(c);
  manualSeed(c.seed);
  const s = await setup(c);
  const trainer = new Trainer(s.trained, s.task, {
    steps: c.steps,
    gradAccum: c.gradAccum,
    schedule: { kind: 'constant', lr: c.lr, warmup: c.warmup },
    gradClip: c.gradClip,
    optimizer: { kind: 'adamw', lr: c.lr, weightDecay: 0 },
    precision: c.precision,
    evalInterval: c.evalInterval,
    evalBatches: 8,
  });
  const haveCkpt = resume && existsSync(join(c.out, CKPT, 'trainer_state.json'));
  if (resume && !haveCkpt && !json)
    console.error(`--resume: no checkpoint in ${join(c.out, CKPT)}; starting from step 0`);
  if (haveCkpt) {
    const saved = await readTrainCheckpoint(c.out);
    trainer.loadWeights(saved.weights);
    for (const t of saved.weights.values()) t.dispose();
    trainer.loadState(saved.json, saved.buffers);
  }
  try {
    await run(c, s, trainer, json, quiet);
  } finally {
    trainer.dispose();
    s.trained.dispose();
    s.ref?.dispose();
    s.task.rewardModel?.dispose();
  }
}

async function run(c: AlignConfig, s: Setup, trainer: Trainer, json: boolean, quiet: boolean): Promise<void> {
  mkdirSync(c.out, { recursive: true });
  const metricsFile = join(c.out, 'metrics.jsonl');
  const previous = truncateMetrics(metricsFile, trainer.step);
  const start = trainer.step;
  writeJSONAtomic(join(c.out, 'align_config.json'), c);
  const logger = new MetricsLogger({ sink: jsonlFileSink(metricsFile) });
  // a resumed run takes the step-0 held-out record its first part logged (metrics.jsonl keeps it)
  const before = start === 0 ? heldOut(s) : earlierHeldOut(previous);
  if (start === 0 && Object.keys(before).length) logger.log(0, { kind: 'heldout', ...before });
  const trainable = s.trained
    .namedParameters()
    .filter(([, p]) => p.requiresGrad)
    .reduce((n, [, p]) => n + p.size, 0);
  if (!json)
    console.error(
      `align ${c.method}: ${s.task.split.train.length} train / ${s.task.split.val.length} held-out examples, ` +
        `${trainable} trainable of ${s.trained.numParameters()} parameters, ${c.steps} steps` +
        (start ? `, resuming at ${start}` : ''),
    );
  const bar =
    quiet || json ? null : new ProgressBar({ total: Math.max(0, c.steps - start), label: c.method, unit: 'step' });
  const r = await runTraining(trainer, {
    onStep: (st) => {
      logger.log(st.step, {
        kind: 'train',
        loss: st.loss,
        lr: st.lr,
        grad_norm: st.gradNorm,
        ms: Math.round(st.ms),
        ...s.task.last,
      });
      bar?.update(st.step + 1 - start, { loss: st.loss, ...pick(s.task.last) });
    },
    onEval: (e) => Number.isFinite(e.val) && logger.log(e.step, { kind: 'eval', train_loss: e.train, val_loss: e.val }),
    checkpointInterval: c.checkpointInterval,
    checkpoint: async (step) => {
      await writeCheckpoint(c, s, trainer);
      logger.log(step, { kind: 'checkpoint' });
    },
  });
  bar?.done();
  const after = heldOut(s);
  if (Object.keys(after).length) logger.log(r.steps, { kind: 'heldout', ...after });
  await writeOutputs(c, s, trainer);
  writePlots(c.out, c.method, [...previous, ...logger.history]);
  const summary = {
    method: c.method,
    steps: r.steps,
    seconds: r.seconds,
    trainLoss: r.trainLoss,
    trainable,
    params: s.trained.numParameters(),
    lora: !!c.lora,
    quantizedBits: quantizedBits(s.policy),
    heldOutBefore: before,
    heldOutAfter: after,
    last: s.task.last,
    out: c.out,
  };
  writeJSONAtomic(join(c.out, 'align_summary.json'), summary);
  if (json) console.log(JSON.stringify(summary));
  else
    console.error(
      `done: ${r.steps} steps in ${r.seconds.toFixed(1)} s` +
        (after.accuracy !== undefined ? `, held-out accuracy ${(100 * after.accuracy).toFixed(1)}%` : '') +
        `; written to ${c.out}`,
    );
}

function earlierHeldOut(previous: readonly MetricRecord[]): Metrics {
  const r = previous.find((x) => x.kind === 'heldout' && x.step === 0);
  if (!r) return {};
  return Object.fromEntries(
    Object.entries(r).filter(([k, v]) => typeof v === 'number' && k !== 'step' && k !== 'time'),
  ) as Metrics;
}

const pick = (m: Metrics): Record<string, number> =>
  Object.fromEntries(Object.entries(m).filter(([k]) => ['accuracy', 'reward', 'kl'].includes(k)));
