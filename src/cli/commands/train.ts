// `lineage train`: config (recipe ← config file ← flags) → tokenizer, data, model, objective → the
// training loop with a progress bar, metrics.jsonl, periodic validation, atomic checkpoints every N
// steps (`--resume` continues a killed run with identical losses), and at the end an HF model
// directory with a loss-curve SVG beside the weights.
//
// OUT/ layout:
//   config.json, model.safetensors, tokenizer.json, tokenizer_config.json   final model (HF layout)
//   metrics.jsonl, loss-curve.svg, train_config.json, train_summary.json
//   checkpoint/   the last checkpoint: a model dir + optimizer.safetensors + trainer_state.json
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { noGrad } from '../../tensor/engine.js';
import { manualSeed } from '../../tensor/random.js';
import type { Tensor } from '../../tensor/tensor.js';
import { fromRaw } from '../../models/load-node.js';
import type { ModelConfig } from '../../models/config.js';
import { applyOverrides, fromHFConfig } from '../../models/hf-config.js';
import { getPresetInfo, isPreset } from '../../models/presets.js';
import { createModel } from '../../models/registry.js';
import type { LanguageModel } from '../../models/model.js';
import { readSafetensorsFile } from '../../io/checkpoint-node.js';
import { serializeSafetensors } from '../../io/safetensors.js';
import { bytesTokenizer, charTokenizer } from '../../tokenizers/simple.js';
import { loadTokenizer } from '../../tokenizers/load-node.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { vocabularyDifference } from '../../tokenizers/compare.js';
import { MemoryTokenFile, type TokenSource } from '../../train/data/index.js';
import { NodeTokenFile } from '../../train/data/token-file-node.js';
import { checkpointDir, recoverCheckpointDir, writeFileAtomic, writeJSONAtomic } from '../../train/atomic-node.js';
import { MetricsLogger, parseMetricsJsonl, seriesOf, type MetricRecord } from '../../train/metrics.js';
import { jsonlFileSink } from '../../train/metrics-node.js';
import { lossChart } from '../../train/plot.js';
import {
  createTask,
  defaultObjective,
  specialTokensFor,
  OBJECTIVES,
  type ObjectiveName,
  type TaskData,
} from '../../train/family-objectives.js';
import { DEFAULT_CONFIG, applyTweaks, getRecipe, validateTrainConfig, type TrainConfig } from '../../train/recipes.js';
import {
  MixedPrecision,
  measureMemory,
  parsePrecision,
  type MemoryReport,
  type Precision,
} from '../../train/precision.js';
import {
  NonFiniteLossError,
  Trainer,
  enableGradientCheckpointing,
  runTraining,
  type TrainerState,
} from '../../train/trainer.js';
import type { Schedule } from '../../train/schedule.js';
import type { OptimizerKind, OptimizerState } from '../../train/optim.js';
import { configToJson, loadModelDir, saveModelDir } from '../../infer/model-dir-node.js';
import { ProgressBar } from '../progress.js';
import { flagNumber, flagString, parseFlags, type ParsedFlags } from '../flags.js';
import { tokenizerVocabOverrides } from '../config-overrides.js';
import { checkModelFiles, readTextFile } from '../files.js';
import { requireHead } from '../model-hints.js';

// ---- flags ----

const TRAIN_VALUED = [
  'recipe',
  'config',
  'model',
  'set',
  'tokenizer',
  'data',
  'out',
  'objective',
  'steps',
  'batch-size',
  'block-size',
  'grad-accum',
  'lr',
  'min-lr',
  'warmup',
  'decay-steps',
  'decay-start',
  'schedule',
  'optimizer',
  'weight-decay',
  'beta1',
  'beta2',
  'momentum',
  'grad-clip',
  'precision',
  'eval-interval',
  'eval-batches',
  'checkpoint-interval',
  'seed',
  'val-fraction',
  'dropout',
];
const TRAIN_BOOLS = ['json', 'resume', 'overwrite', 'gradient-checkpointing', 'no-bias', 'memory-report', 'quiet'];

export const TRAIN_HELP = `usage: lineage train [--recipe NAME | --config FILE.json] --data FILE --out DIR [options]

  --recipe NAME            shakespeare-char-cpu (nanoGPT's CPU recipe)
  --config FILE            JSON with TrainConfig fields (see docs/TRAINING.md)
  --model PRESET|DIR       preset (e.g. tiny-gpt2) or a model directory to fine-tune
  --set FIELD=VALUE        config.json override for a preset (repeatable)
  --tokenizer T            char | bytes | tokenizer.json | model dir
  --data FILE|DIR          text file (split train/val by characters) or a dir with train.bin and val.bin
  --out DIR                output model directory (HF layout) with metrics.jsonl and loss-curve.svg
  --objective O            ${OBJECTIVES.join(' | ')} (default: by family)
  --steps N  --batch-size B  --block-size T  --grad-accum K  --seed S  --val-fraction F
  --optimizer adamw|adam|sgd  --lr LR  --min-lr LR  --warmup N  --decay-steps N  --schedule cosine|constant|linear|wsd
  --decay-start N          wsd (warmup-stable-decay, MiniCPM): hold lr until step N (default 90% of --steps),
                           then decay linearly to --min-lr by the last step
  --weight-decay WD  --beta1 B1  --beta2 B2  --momentum M  --grad-clip C (0 = off)
  --precision fp32|bf16|fp16  --gradient-checkpointing  --no-bias  --dropout P
  --eval-interval N  --eval-batches N  --checkpoint-interval N
  --resume                 continue from OUT/checkpoint, keeping the run's learning-rate schedule unless
                           --lr/--min-lr/--warmup/--decay-steps/--schedule are given (changes are printed)
  --overwrite              replace the earlier run in OUT (without it, an OUT holding a run is refused)
  --memory-report          print parameter/activation bytes for fp32, bf16, fp16 (and checkpointing) and exit
  --json                   last stdout line: {"valLoss","trainLoss","steps","seconds",...}
  --quiet                  no progress bar

  Ctrl-C (SIGINT) or SIGTERM stops at the next step boundary, writes OUT/checkpoint, prints the command
  that resumes, and exits with status 130 (SIGINT) or 143 (SIGTERM). A loss or gradient that is not
  finite stops training with an error (exit status 1) and keeps the last checkpoint; under --precision
  fp16 such steps are skipped by dynamic loss scaling instead.`;

/** defaults ← recipe ← config file ← flags */
export function resolveTrainConfig(f: ParsedFlags): TrainConfig {
  let c: TrainConfig = structuredClone(DEFAULT_CONFIG);
  const recipe = flagString(f, 'recipe');
  if (recipe) c = { ...c, ...getRecipe(recipe) };
  const file = flagString(f, 'config');
  if (file) c = { ...c, ...readConfigFile(file) };
  const s = (n: string) => flagString(f, n);
  const n = (name: string, o: { int?: boolean; min?: number } = {}) => flagNumber(f, name, o);
  if (s('model')) c.model = s('model')!;
  if (f.values.has('set')) c.set = [...c.set, ...f.values.get('set')!];
  if (s('tokenizer')) c.tokenizer = s('tokenizer')!;
  if (s('data')) c.data = s('data')!;
  if (s('out')) c.out = s('out')!;
  if (s('objective')) c.objective = parseObjective(s('objective')!);
  const ints: [string, keyof TrainConfig][] = [
    ['steps', 'steps'],
    ['batch-size', 'batchSize'],
    ['block-size', 'blockSize'],
    ['grad-accum', 'gradAccum'],
    ['eval-interval', 'evalInterval'],
    ['eval-batches', 'evalBatches'],
    ['checkpoint-interval', 'checkpointInterval'],
    ['seed', 'seed'],
  ];
  for (const [flag, key] of ints) {
    const v = n(flag, { int: true, min: 0 });
    if (v !== undefined) (c as unknown as Record<string, number>)[key] = v;
  }
  if (n('val-fraction') !== undefined) c.valFraction = n('val-fraction')!;
  if (n('grad-clip', { min: 0 }) !== undefined) c.gradClip = n('grad-clip')!;
  if (s('precision')) c.precision = parsePrecision(s('precision')!);
  if (f.bools.has('gradient-checkpointing')) c.gradientCheckpointing = true;
  if (f.bools.has('no-bias')) c.tweaks = { ...c.tweaks, bias: false };
  if (n('dropout', { min: 0 }) !== undefined) c.tweaks = { ...c.tweaks, dropout: n('dropout')! };
  applyOptimizerFlags(c, f);
  return c;
}

function applyOptimizerFlags(c: TrainConfig, f: ParsedFlags): void {
  const n = (name: string) => flagNumber(f, name, { min: 0 });
  const kind = flagString(f, 'optimizer');
  if (kind) {
    if (!['adamw', 'adam', 'sgd'].includes(kind))
      throw new Error(`--optimizer: expected adamw, adam or sgd, got ${JSON.stringify(kind)}`);
    c.optimizer = { ...c.optimizer, kind: kind as OptimizerKind };
  }
  const o = c.optimizer;
  // a decay rate of 1 never forgets (beta2 = 1: the second moment stays 0 and the step divides by eps)
  const rate = (name: string) => {
    const v = n(name);
    if (v !== undefined && !(v < 1)) throw new Error(`--${name}: expected a number in [0, 1), got ${v}`);
    return v;
  };
  if (n('weight-decay') !== undefined) o.weightDecay = n('weight-decay');
  if (rate('beta1') !== undefined) o.beta1 = rate('beta1');
  if (rate('beta2') !== undefined) o.beta2 = rate('beta2');
  if (rate('momentum') !== undefined) o.momentum = rate('momentum');
  const sched = flagString(f, 'schedule');
  const lr = n('lr') ?? ('lr' in c.schedule ? c.schedule.lr : c.optimizer.lr);
  const minLr = n('min-lr') ?? ('minLr' in c.schedule ? (c.schedule.minLr ?? lr / 10) : lr / 10);
  const warmup = n('warmup') ?? c.schedule.warmup ?? 0;
  const stepsChanged = f.values.has('steps') && !f.values.has('decay-steps');
  const decaySteps =
    n('decay-steps') ?? (stepsChanged || !('decaySteps' in c.schedule) ? c.steps : c.schedule.decaySteps);
  const kind2 = sched ?? c.schedule.kind;
  if (kind2 === 'cosine') c.schedule = { kind: 'cosine', lr, minLr, warmup: Math.min(warmup, decaySteps), decaySteps };
  else if (kind2 === 'linear')
    c.schedule = { kind: 'linear', lr, minLr, warmup: Math.min(warmup, decaySteps), decaySteps };
  else if (kind2 === 'constant') c.schedule = { kind: 'constant', lr, warmup };
  else if (kind2 === 'wsd') c.schedule = wsdFromFlags(c, f, lr, minLr, warmup);
  else if (sched) throw new Error(`--schedule: expected cosine, linear, constant or wsd, got ${JSON.stringify(sched)}`);
  o.lr = lr;
}

/** MiniCPM's warmup-stable-decay: stable until --decay-start (default 90% of the steps), linear decay to the end */
function wsdFromFlags(c: TrainConfig, f: ParsedFlags, lr: number, minLr: number, warmup: number): Schedule {
  const prev = c.schedule.kind === 'wsd' && !f.values.has('steps') ? c.schedule.decayStart : undefined;
  const decayStart = flagNumber(f, 'decay-start', { min: 0 }) ?? prev ?? Math.round(0.9 * c.steps);
  if (decayStart > c.steps) throw new Error(`--decay-start: ${decayStart} is beyond --steps ${c.steps}`);
  return { kind: 'wsd', lr, minLr, warmup: Math.min(warmup, decayStart), decayStart, decaySteps: c.steps - decayStart };
}

function parseObjective(s: string): ObjectiveName {
  if (!(OBJECTIVES as readonly string[]).includes(s))
    throw new Error(`--objective: unknown objective ${JSON.stringify(s)} (known: ${OBJECTIVES.join(', ')})`);
  return s as ObjectiveName;
}

function readConfigFile(file: string): Partial<TrainConfig> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`--config ${file}: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new Error(`--config ${file}: expected a JSON object`);
  const known = new Set(Object.keys(DEFAULT_CONFIG));
  const bad = Object.keys(json).filter((k) => !known.has(k) && k !== 'recipe');
  if (bad.length)
    throw new Error(`--config ${file}: unknown field(s) ${bad.join(', ')} (known: ${[...known].join(', ')})`);
  const { recipe, ...rest } = json as Partial<TrainConfig> & { recipe?: string };
  return recipe ? { ...getRecipe(recipe), ...rest } : rest;
}

// ---- data and tokenizer ----

interface Prepared {
  tokenizer: Tokenizer;
  data: TaskData;
}

/** text file: tokenizer (char: built from the whole text, as nanoGPT's prepare.py) and a 90/10 character split */
export function prepareData(c: TrainConfig, dirTokenizer: Tokenizer | null, objective?: ObjectiveName): Prepared {
  if (!existsSync(c.data)) throw new Error(`--data ${c.data}: no such file or directory`);
  if (statSync(c.data).isDirectory()) return prepareBinDir(c, dirTokenizer);
  const text = readTextFile('--data', c.data);
  const tokenizer =
    c.tokenizer === 'char' ? charWithSpecials(text, objective) : pickTokenizer(c.tokenizer, dirTokenizer);
  const cut = Math.floor(text.length * (1 - c.valFraction));
  const [trainText, valText] = [text.slice(0, cut), text.slice(cut)];
  const encode = (s: string) => tokenizer.encode(s, { addSpecialTokens: false });
  return {
    tokenizer,
    data: {
      train: new MemoryTokenFile(Int32Array.from(encode(trainText))),
      val: new MemoryTokenFile(Int32Array.from(encode(valText))),
      trainText,
      valText,
      encode,
    },
  };
}

/** a char tokenizer, plus real special tokens after the characters when the objective needs [MASK] & co. */
function charWithSpecials(text: string, objective?: ObjectiveName): Tokenizer {
  const tok = charTokenizer(text);
  const specials = objective ? specialTokensFor(objective) : [];
  return specials.length ? tok.withAddedTokens(specials) : tok;
}

/** the objective the run will use, known before the tokenizer is built (the family does not depend on it) */
function plannedObjective(c: TrainConfig, dirConfig: ModelConfig | null): ObjectiveName | undefined {
  if (c.objective) return c.objective;
  if (dirConfig) return defaultObjective(dirConfig);
  if (!isPreset(c.model)) return undefined;
  try {
    return defaultObjective(fromHFConfig(applyOverrides(getPresetInfo(c.model).hf, c.set)));
  } catch {
    return undefined; // a bad --set is reported by buildModelConfig
  }
}

function pickTokenizer(spec: string, dirTokenizer: Tokenizer | null): Tokenizer {
  if (spec === 'bytes') return bytesTokenizer();
  if (spec === 'char') throw new Error('--tokenizer char needs a text file as --data');
  if (spec === 'model' || spec === '') {
    if (!dirTokenizer) throw new Error('the model directory has no tokenizer.json; pass --tokenizer');
    return dirTokenizer;
  }
  return loadTokenizer(spec);
}

function prepareBinDir(c: TrainConfig, dirTokenizer: Tokenizer | null): Prepared {
  const [train, val] = ['train.bin', 'val.bin'].map((n) => join(c.data, n));
  for (const p of [train, val])
    if (!existsSync(p!)) throw new Error(`--data ${c.data}: directory has no ${p === train ? 'train.bin' : 'val.bin'}`);
  const tokenizer = pickTokenizer(c.tokenizer === 'char' ? 'model' : c.tokenizer, dirTokenizer);
  return { tokenizer, data: { train: new NodeTokenFile(train!), val: new NodeTokenFile(val!) } };
}

// ---- model ----

/** preset + overrides + tweaks (vocab sized to a char tokenizer), or a model directory's config */
export function buildModelConfig(c: TrainConfig, tok: Tokenizer, dirConfig: ModelConfig | null): ModelConfig {
  let cfg: ModelConfig;
  if (dirConfig) cfg = dirConfig;
  else {
    if (!isPreset(c.model)) throw new Error(`--model ${c.model}: neither a preset nor a model directory (config.json)`);
    const hf = getPresetInfo(c.model).hf;
    // a char or bytes tokenizer defines the vocabulary: its size, no special-token ids (unless --set)
    const sized =
      c.tokenizer === 'char' || c.tokenizer === 'bytes'
        ? tokenizerVocabOverrides(hf, tok.vocabSize, c.set, c.tokenizer)
        : [];
    cfg = fromHFConfig(applyOverrides(hf, [...sized, ...c.set]));
  }
  cfg = applyTweaks(cfg, c.tweaks);
  requireHead(cfg, 'training');
  if (tok.vocabSize > cfg.vocabSize)
    throw new Error(
      `tokenizer has ${tok.vocabSize} ids but the model's vocab_size is ${cfg.vocabSize} (use --set vocab_size=${tok.vocabSize})`,
    );
  if ('maxContext' in cfg && cfg.positions.kind === 'learned' && c.blockSize > cfg.maxContext) {
    throw new Error(`--block-size ${c.blockSize} exceeds the model's context of ${cfg.maxContext} learned positions`);
  }
  return cfg;
}

const isModelDir = (p: string) => existsSync(join(p, 'config.json'));

/** fine-tuning a model directory: its embedding rows belong to its own tokenizer's ids */
function checkSameVocabulary(c: TrainConfig, own: Tokenizer, chosen: Tokenizer): void {
  const diff = vocabularyDifference(own, chosen);
  if (diff)
    throw new Error(
      `--tokenizer ${c.tokenizer}: its vocabulary differs from ${c.model}'s tokenizer.json (${diff}, the model's ` +
        "first), so the model's weights would read other tokens; pass --tokenizer model to keep its own",
    );
}

// ---- checkpoints ----

const CKPT = 'checkpoint';

async function writeTrainCheckpoint(
  out: string,
  trainer: Trainer,
  cfg: ModelConfig,
  tok: Tokenizer,
  c: TrainConfig,
  dataId: string,
): Promise<void> {
  const { json, buffers } = trainer.state();
  await checkpointDir(join(out, CKPT), async (tmp) => {
    await saveModelDir(tmp, cfg, trainer.weights(), tok);
    const raw = Object.entries(buffers).map(([name, b]) => ({
      name,
      dtype: 'float32' as const,
      shape: b.shape,
      data: b.data,
    }));
    writeFileSync(join(tmp, 'optimizer.safetensors'), serializeSafetensors(raw));
    writeFileSync(join(tmp, 'trainer_state.json'), JSON.stringify(json, null, 2) + '\n');
    // the data's fingerprint lets --resume tell a changed file from a moved one
    writeFileSync(join(tmp, 'train_config.json'), JSON.stringify({ ...c, dataId }, null, 2) + '\n');
  });
}

/** OUT/checkpoint's fp32 weights and the trainer state to apply */
export async function readTrainCheckpoint(
  out: string,
): Promise<{ weights: Map<string, Tensor>; json: TrainerState; buffers: OptimizerState['buffers'] }> {
  const dir = join(out, CKPT);
  recoverCheckpointDir(dir);
  if (!existsSync(join(dir, 'trainer_state.json')))
    throw new Error(`--resume: ${dir} has no checkpoint (trainer_state.json)`);
  const saved = await readSafetensorsFile(join(dir, 'model.safetensors'));
  const weights = new Map(saved.tensors.map((r) => [r.name, fromRaw(r)] as [string, Tensor]));
  const opt = await readSafetensorsFile(join(dir, 'optimizer.safetensors'));
  const buffers: OptimizerState['buffers'] = {};
  for (const r of opt.tensors) buffers[r.name] = { shape: r.shape, data: r.data as Float32Array };
  return { weights, json: readTrainerState(join(dir, 'trainer_state.json')), buffers };
}

/** trainer_state.json, checked enough that a damaged file is reported by name, not deep in the trainer */
export function readTrainerState(file: string): TrainerState {
  const damaged = (why: string) =>
    new Error(
      `${file}: ${why}; the checkpoint is damaged (delete ${join(file, '..')} to start over, or restore it from a copy)`,
    );
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw damaged(`not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw damaged('expected a JSON object');
  const o = json as Record<string, unknown>;
  const fields: [string, (v: unknown) => boolean, string][] = [
    ['step', (v) => Number.isInteger(v) && (v as number) >= 0, 'an integer >= 0'],
    ['taskPosition', (v) => Number.isInteger(v) && (v as number) >= 0, 'an integer >= 0'],
    ['objective', (v) => typeof v === 'string', 'a string'],
    ['precision', (v) => typeof v === 'string', 'a string'],
    ['rng', (v) => Array.isArray(v), 'a list'],
    ['optimizer', (v) => typeof v === 'object' && v !== null && !Array.isArray(v), 'an object'],
  ];
  for (const [k, ok, what] of fields)
    if (!ok(o[k])) throw damaged(`field "${k}" must be ${what}, got ${JSON.stringify(o[k])}`);
  return json as TrainerState;
}

/** metrics.jsonl without the records a resumed run will write again (steps ≥ the checkpoint's) */
export function truncateMetrics(file: string, step: number): MetricRecord[] {
  if (!existsSync(file)) return [];
  const kept = parseMetricsJsonl(readFileSync(file, 'utf8'), file).filter(
    (r) => r.step < step || (r.kind === 'checkpoint' && r.step === step),
  );
  writeFileAtomic(file, kept.map((r) => JSON.stringify(r)).join('\n') + (kept.length ? '\n' : ''));
  return kept;
}

function writeLossCurve(out: string, records: MetricRecord[]): void {
  const train = seriesOf(
    records.filter((r) => r.kind === 'train'),
    'loss',
  );
  const val = seriesOf(
    records.filter((r) => r.kind === 'eval'),
    'val_loss',
  );
  writeFileAtomic(join(out, 'loss-curve.svg'), lossChart(train, val, { smooth: 0.9, title: 'Loss' }));
}

/** what a failed run leaves: the last good checkpoint, if any */
function lastCheckpointNote(out: string): string {
  const file = join(out, CKPT, 'trainer_state.json');
  if (!existsSync(file)) return `No checkpoint was written to ${join(out, CKPT)}; no model was saved.`;
  const step = (JSON.parse(readFileSync(file, 'utf8')) as TrainerState).step;
  return (
    `The last good checkpoint (step ${step}) is kept in ${join(out, CKPT)}; no final model was saved. ` +
    'Continue from it with --resume and a lower --lr.'
  );
}

// ---- memory report ----

/** one forward+backward per precision (and with checkpointing when the model supports it) */
export function memoryReports(
  cfg: ModelConfig,
  c: TrainConfig,
  data: TaskData,
  tok: Tokenizer,
): (MemoryReport & { checkpointing: boolean })[] {
  const out: (MemoryReport & { checkpointing: boolean })[] = [];
  for (const precision of ['fp32', 'bf16', 'fp16'] as Precision[]) {
    for (const ckpt of [false, true]) {
      const model = createModel(cfg, { seed: c.seed });
      try {
        if (ckpt) enableGradientCheckpointing(model);
      } catch {
        model.dispose();
        continue;
      }
      const task = createTask(
        c.objective ?? defaultObjective(cfg),
        cfg,
        data,
        { batchSize: c.batchSize, blockSize: c.blockSize, seed: c.seed },
        tok,
      );
      const mp = new MixedPrecision(model, precision);
      const batch = task.next();
      out.push({ ...measureMemory(mp, () => task.loss(model, batch).loss), checkpointing: ckpt });
      mp.dispose();
      model.dispose();
      task.dispose?.();
    }
  }
  return out;
}

const mib = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;

function printMemory(reports: ReturnType<typeof memoryReports>, json: boolean): void {
  const base = reports.find((r) => r.precision === 'fp32' && !r.checkpointing)!;
  for (const r of reports) {
    const vs = (a: number, b: number) => (b > 0 ? ` (${((100 * a) / b).toFixed(0)}% of fp32)` : '');
    console.error(
      `${r.precision}${r.checkpointing ? ' +ckpt' : ''}: params ${mib(r.parameterBytes)}${vs(r.parameterBytes, base.parameterBytes)} + masters ${mib(r.masterBytes)}, activations ${mib(r.activationBytes)}${vs(r.activationBytes, base.activationBytes)}, peak ${mib(r.peakBytes)}`,
    );
  }
  if (json) console.log(JSON.stringify({ memory: reports }));
}

// ---- the output directory ----

/** files a training run leaves in OUT: any of them means OUT holds an earlier run (or a model) */
const RUN_FILES = [
  'metrics.jsonl',
  CKPT,
  'train_summary.json',
  'train_config.json',
  'model.safetensors',
  'config.json',
];

/** refuses to replace an earlier run unless --resume or --overwrite; --overwrite clears its checkpoint */
function checkOutDir(c: TrainConfig, f: ParsedFlags): void {
  const resume = f.bools.has('resume');
  const overwrite = f.bools.has('overwrite');
  if (resume && overwrite)
    throw new Error('--resume continues the run in --out and --overwrite replaces it: give one of them');
  if (!existsSync(c.out)) return;
  if (!statSync(c.out).isDirectory()) throw new Error(`--out ${c.out}: exists and is not a directory`);
  const found = RUN_FILES.filter((n) => existsSync(join(c.out, n)));
  if (found.length === 0 || resume) return;
  if (!overwrite) {
    throw new Error(
      `--out ${c.out} holds an earlier run (${found.join(', ')}): pass --resume to continue it, ` +
        '--overwrite to replace it, or choose another --out',
    );
  }
  // a stale checkpoint must not be resumed later as if it belonged to the new run
  recoverCheckpointDir(join(c.out, CKPT));
  rmSync(join(c.out, CKPT), { recursive: true, force: true });
  rmSync(join(c.out, 'train_summary.json'), { force: true });
}

// ---- resuming ----

/** size and SHA-256 of a file (of its first and last 8 MiB when larger: enough to tell corpora apart) */
function fileFingerprint(file: string): string {
  const size = statSync(file).size;
  const h = createHash('sha256');
  const span = 8 << 20;
  const fd = openSync(file, 'r');
  try {
    const starts = size <= 2 * span ? [0] : [0, size - span];
    for (const start of starts) {
      const buf = Buffer.alloc(Math.min(size <= 2 * span ? size : span, size - start));
      readSync(fd, buf, 0, buf.length, start);
      h.update(buf);
    }
  } finally {
    closeSync(fd);
  }
  return `${size}:${h.digest('hex').slice(0, 16)}`;
}

/** --data's fingerprint: the text file, or a bin directory's train.bin and val.bin */
export function dataFingerprint(data: string): string {
  if (!statSync(data).isDirectory()) return fileFingerprint(data);
  return ['train.bin', 'val.bin'].map((n) => fileFingerprint(join(data, n))).join(',');
}

const tokenizerSpec = (t: string) => (['char', 'bytes', 'model', ''].includes(t) ? t : resolve(t));

/**
 * --resume continues the checkpoint's run: a command whose model config, tokenizer, data or objective
 * differs would load the weights into another model (dropping layers) or read its ids through another
 * vocabulary. Every difference is named; the command is refused.
 */
export function resumeDifferences(
  dir: string,
  now: { cfg: ModelConfig; tokenizer: Tokenizer; c: TrainConfig; objective: string; dataId: string },
  state: TrainerState,
): string[] {
  const out: string[] = [];
  const readJson = (f: string) =>
    existsSync(join(dir, f)) ? (JSON.parse(readFileSync(join(dir, f), 'utf8')) as Record<string, unknown>) : null;
  const savedCfg = readJson('config.json');
  if (savedCfg) {
    const cur = configToJson(now.cfg) as Record<string, unknown>;
    for (const k of new Set([...Object.keys(savedCfg), ...Object.keys(cur)]))
      if (JSON.stringify(savedCfg[k]) !== JSON.stringify(cur[k]))
        out.push(`config.json ${k}: ${JSON.stringify(savedCfg[k])} in the checkpoint, ${JSON.stringify(cur[k])} now`);
  }
  if (existsSync(join(dir, 'tokenizer.json'))) {
    const diff = vocabularyDifference(loadTokenizer(join(dir, 'tokenizer.json')), now.tokenizer);
    if (diff) out.push(`tokenizer: ${diff} (the checkpoint's first)`);
  }
  const saved = readJson('train_config.json') as (Partial<TrainConfig> & { dataId?: string }) | null;
  if (saved) {
    if (saved.tokenizer !== undefined && tokenizerSpec(saved.tokenizer) !== tokenizerSpec(now.c.tokenizer))
      out.push(
        `--tokenizer: ${JSON.stringify(saved.tokenizer)} in the checkpoint, ${JSON.stringify(now.c.tokenizer)} now`,
      );
    if (saved.dataId !== undefined ? saved.dataId !== now.dataId : resolve(saved.data ?? '') !== resolve(now.c.data))
      out.push(
        `--data: ${JSON.stringify(saved.data)} in the checkpoint, ${JSON.stringify(now.c.data)} now` +
          (saved.dataId !== undefined ? ' (the contents differ)' : ''),
      );
  }
  if (state.objective !== now.objective)
    out.push(`--objective: ${state.objective} in the checkpoint, ${now.objective} now`);
  return out;
}

const SCHEDULE_FLAGS = ['lr', 'min-lr', 'warmup', 'decay-steps', 'schedule'];

const describeSchedule = (s: Schedule): string =>
  s.kind +
  ' ' +
  Object.entries(s)
    .filter(([k]) => k !== 'kind')
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

/**
 * The schedule a resumed run uses: the checkpoint's, so that a different --steps does not silently
 * re-plan the learning rate; the command line's when a schedule flag asks for a change. Either way a
 * difference is printed.
 */
export function resumeSchedule(
  c: TrainConfig,
  f: ParsedFlags,
  state: TrainerState,
  say: (s: string) => void,
): Schedule {
  const prev = state.schedule;
  if (!prev || JSON.stringify(prev) === JSON.stringify(c.schedule)) return c.schedule;
  const stepsNote =
    state.steps !== undefined && state.steps !== c.steps ? `--steps changed from ${state.steps} to ${c.steps}; ` : '';
  const explicit = SCHEDULE_FLAGS.filter((n) => f.values.has(n));
  if (explicit.length === 0) {
    const tail =
      'decaySteps' in prev && c.steps > prev.decaySteps ? `; steps after ${prev.decaySteps} run at the final lr` : '';
    say(
      `--resume: ${stepsNote}keeping the run's learning-rate schedule (${describeSchedule(prev)})${tail}. ` +
        'To re-plan it, pass --decay-steps N (or --lr, --min-lr, --warmup, --schedule).',
    );
    return prev;
  }
  const next = changedSchedule(prev, c.schedule, f);
  say(
    `--resume: ${stepsNote}learning-rate schedule changed by ${explicit.map((n) => '--' + n).join(' ')} ` +
      `from (${describeSchedule(prev)}) to (${describeSchedule(next)})`,
  );
  return next;
}

const SCHEDULE_FIELD: Record<string, string> = {
  lr: 'lr',
  'min-lr': 'minLr',
  warmup: 'warmup',
  'decay-steps': 'decaySteps',
};

/** the run's schedule with the fields the command line gives; a new --schedule kind takes the command line's whole */
function changedSchedule(prev: Schedule, asked: Schedule, f: ParsedFlags): Schedule {
  if (asked.kind !== prev.kind) return asked;
  const next = { ...prev } as Record<string, unknown>;
  for (const [flag, field] of Object.entries(SCHEDULE_FIELD)) {
    if (f.values.has(flag) && field in asked) next[field] = (asked as unknown as Record<string, unknown>)[field];
  }
  return next as unknown as Schedule;
}

/** POSIX shell quoting for the resume command we print */
const shellQuote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** the command that continues this run */
export function resumeCommand(argv: readonly string[]): string {
  const args = argv.filter((a) => a !== '--overwrite');
  if (!args.includes('--resume')) args.push('--resume');
  return `lineage train ${args.map(shellQuote).join(' ')}`;
}

/** an error that makes the CLI exit with its own status (130 / 143 after a signal) */
class ExitError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

const SIGNAL_STATUS: Record<string, number> = { SIGINT: 130, SIGTERM: 143 };

// ---- the command ----

export async function trainCommand(argv: string[]): Promise<void> {
  const f = parseFlags('train', argv, TRAIN_VALUED, TRAIN_BOOLS);
  if (f.help) {
    console.log(TRAIN_HELP);
    return;
  }
  const c = resolveTrainConfig(f);
  validateTrainConfig(c);
  const json = f.bools.has('json');
  if (!f.bools.has('memory-report')) checkOutDir(c, f);
  manualSeed(c.seed); // dropout draws from the global tensor RNG: same command + seed, same curve
  if (isModelDir(c.model)) checkModelFiles('--model', c.model);
  const fromDir = isModelDir(c.model) ? await loadModelDir(c.model, { seed: c.seed }) : null;
  const { tokenizer, data } = prepareData(
    c,
    fromDir?.tokenizer ?? null,
    plannedObjective(c, fromDir ? fromDir.config : null),
  );
  const cfg = buildModelConfig(c, tokenizer, fromDir ? fromDir.config : null);
  if (fromDir?.tokenizer && tokenizer !== fromDir.tokenizer) checkSameVocabulary(c, fromDir.tokenizer, tokenizer);
  configToJson(cfg); // fail before training when the config cannot be saved
  if (f.bools.has('memory-report')) {
    fromDir?.model.dispose();
    printMemory(memoryReports(cfg, c, data, tokenizer), json);
    return;
  }
  const model =
    fromDir && JSON.stringify(fromDir.config) === JSON.stringify(cfg)
      ? fromDir.model
      : createModel(cfg, { seed: c.seed });
  if (fromDir && model !== fromDir.model) {
    noGrad(() => model.loadStateDict(new Map(fromDir.model.namedParameters()), { strict: false }));
    fromDir.model.dispose();
  }
  const resume = f.bools.has('resume') && existsSync(join(c.out, CKPT, 'trainer_state.json'));
  if (f.bools.has('resume') && !resume && !json)
    console.error(`--resume: no checkpoint in ${join(c.out, CKPT)}; starting from step 0`);
  const saved = resume ? await readTrainCheckpoint(c.out) : null;
  const dataId = dataFingerprint(c.data);
  const objective = c.objective ?? defaultObjective(cfg);
  if (saved) {
    const diffs = resumeDifferences(join(c.out, CKPT), { cfg, tokenizer, c, objective, dataId }, saved.json);
    if (diffs.length) {
      for (const t of saved.weights.values()) t.dispose();
      model.dispose();
      throw new Error(
        `--resume: the command differs from the checkpoint in ${join(c.out, CKPT)}:\n  ${diffs.join('\n  ')}\n` +
          'give the settings of the run it continues, or --overwrite to start a new run',
      );
    }
    c.schedule = resumeSchedule(c, f, saved.json, (m) => console.error(m));
  }
  const task = createTask(
    objective,
    cfg,
    data,
    { batchSize: c.batchSize, blockSize: c.blockSize, seed: c.seed },
    tokenizer,
  );
  const trainer = new Trainer(model, task, {
    steps: c.steps,
    gradAccum: c.gradAccum,
    schedule: c.schedule,
    optimizer: c.optimizer,
    gradClip: c.gradClip,
    precision: c.precision,
    gradientCheckpointing: c.gradientCheckpointing,
    evalInterval: c.evalInterval,
    evalBatches: c.evalBatches,
  });
  if (saved) {
    trainer.loadWeights(saved.weights);
    for (const t of saved.weights.values()) t.dispose();
    trainer.loadState(saved.json, saved.buffers);
  }
  try {
    await runCommand(c, trainer, cfg, tokenizer, f, json, argv, dataId);
  } finally {
    trainer.dispose();
    model.dispose();
  }
}

async function runCommand(
  c: TrainConfig,
  trainer: Trainer,
  cfg: ModelConfig,
  tok: Tokenizer,
  f: ParsedFlags,
  json: boolean,
  argv: readonly string[],
  dataId: string,
): Promise<void> {
  mkdirSync(c.out, { recursive: true });
  const metricsFile = join(c.out, 'metrics.jsonl');
  const previous = truncateMetrics(metricsFile, trainer.step);
  const startStep = trainer.step;
  writeJSONAtomic(join(c.out, 'train_config.json'), c);
  // a resumed run's metrics `time` continues from the seconds it had trained when checkpointed
  const logger = new MetricsLogger({ sink: jsonlFileSink(metricsFile), elapsed: trainer.elapsedBefore });
  const quiet = f.bools.has('quiet');
  // counts this session's steps, so rate and ETA stay right after --resume
  const bar = quiet
    ? null
    : new ProgressBar({
        total: Math.max(0, c.steps - startStep),
        label: startStep ? `train (from ${startStep})` : 'train',
        unit: 'step',
      });
  let tokPerSec = 0;
  // the loop yields to the event loop between steps, so these run within a step of Ctrl-C
  let signal: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signal) return; // already stopping: the checkpoint is being written
    signal = sig;
    console.error(`\n${sig}: stopping after this step and writing a checkpoint ...`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  if (!json)
    console.error(
      `training ${cfg.family} (${(trainer.model.numParameters() / 1e6).toFixed(2)}M params) objective ${trainer.task.objective}, ${c.precision}, ${c.steps} steps${startStep ? `, resuming at step ${startStep}` : ''}`,
    );
  let r: Awaited<ReturnType<typeof runTraining>>;
  try {
    r = await runTraining(trainer, {
      onStep: (s) => {
        tokPerSec = (s.tokens * 1000) / s.ms;
        logger.log(s.step, {
          kind: 'train',
          loss: s.loss,
          lr: s.lr,
          grad_norm: s.gradNorm,
          tokens_per_sec: Math.round(tokPerSec),
          ms: Math.round(s.ms * 10) / 10,
          ...(s.skipped ? { skipped: true } : {}),
          ...(s.lossScale !== undefined ? { loss_scale: s.lossScale } : {}),
        });
        bar?.update(s.step + 1 - startStep, { loss: s.loss, 'tok/s': Math.round(tokPerSec), lr: s.lr });
      },
      onEval: (e) => {
        logger.log(e.step, { kind: 'eval', train_loss: e.train, val_loss: e.val });
        if (!quiet && !json)
          console.error(`\nstep ${e.step}: train loss ${e.train.toFixed(4)}, val loss ${e.val.toFixed(4)}`);
      },
      checkpointInterval: c.checkpointInterval,
      checkpoint: async (step) => {
        await writeTrainCheckpoint(c.out, trainer, cfg, tok, c, dataId);
        logger.log(step, { kind: 'checkpoint' });
      },
      shouldStop: () => signal !== null,
    });
  } catch (e) {
    bar?.done();
    writeLossCurve(c.out, [...previous, ...logger.history]);
    if (e instanceof NonFiniteLossError) throw new Error(`${e.message}. ${lastCheckpointNote(c.out)}`);
    throw e;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  bar?.done();
  if (r.interrupted) {
    writeLossCurve(c.out, [...previous, ...logger.history]);
    const sig = (signal as NodeJS.Signals | null) ?? 'SIGINT';
    throw new ExitError(
      `interrupted by ${sig} at step ${r.steps} of ${c.steps}; checkpoint written to ${join(c.out, CKPT)} ` +
        `(itself a model directory). Resume with:\n  ${resumeCommand(argv)}`,
      SIGNAL_STATUS[sig] ?? 130,
    );
  }
  await saveModelDir(c.out, cfg, trainer.weights(), tok);
  writeLossCurve(c.out, [...previous, ...logger.history]);
  const summary = {
    valLoss: r.valLoss,
    trainLoss: r.lastEval?.train ?? r.trainLoss,
    lastStepLoss: r.trainLoss,
    steps: r.steps,
    seconds: r.seconds,
    tokensPerSecond: r.seconds > 0 ? r.tokens / r.seconds : 0,
    resumedFrom: startStep,
    params: trainer.model.numParameters(),
    precision: c.precision,
    objective: trainer.task.objective,
    out: c.out,
  };
  writeJSONAtomic(join(c.out, 'train_summary.json'), summary);
  if (json) console.log(JSON.stringify(summary));
  else
    console.error(
      `done: ${r.steps} steps in ${r.seconds.toFixed(1)} s, val loss ${r.valLoss.toFixed(4)}; model written to ${c.out}`,
    );
}
