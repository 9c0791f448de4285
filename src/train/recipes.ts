// Training configuration: one JSON-able type (what `--config FILE` holds and `--recipe` names), its
// defaults, and the named recipes. A recipe is a complete TrainConfig minus the data file and output dir.
import type { Activation, ModelConfig } from '../models/config.js';
import type { ObjectiveName } from './family-objectives.js';
import type { OptimizerConfig } from './optim.js';
import type { Precision } from './precision.js';
import type { Schedule } from './schedule.js';

export interface ModelTweaks {
  /** false removes every bias (linear layers and LayerNorms): nanoGPT's `bias=False`; true adds them all */
  bias?: boolean;
  /** one dropout probability for embeddings, attention and residuals */
  dropout?: number;
  /** FFN activation (nanoGPT uses exact GELU, HF GPT-2 the tanh approximation) */
  activation?: Activation;
}

export interface TrainConfig {
  /** preset name (e.g. tiny-gpt2) or a model directory (config.json + model.safetensors) */
  model: string;
  /** config.json overrides (`n_layer=4`), applied to a preset */
  set: string[];
  tweaks: ModelTweaks;
  /** 'char' (built from the data), 'bytes', or a tokenizer.json / model directory */
  tokenizer: string;
  /** a UTF-8 text file (split train/val by characters) or a directory with train.bin + val.bin */
  data: string;
  /** fraction of the text used for validation (the tail) */
  valFraction: number;
  /** default: the family's (see family-objectives.ts) */
  objective: ObjectiveName | null;
  batchSize: number;
  blockSize: number;
  steps: number;
  gradAccum: number;
  optimizer: OptimizerConfig;
  schedule: Schedule;
  gradClip: number;
  precision: Precision;
  gradientCheckpointing: boolean;
  evalInterval: number;
  evalBatches: number;
  checkpointInterval: number;
  seed: number;
  /** output model directory (HF layout) */
  out: string;
}

export const DEFAULT_CONFIG: TrainConfig = {
  model: 'tiny-gpt2',
  set: [],
  tweaks: {},
  tokenizer: 'bytes',
  data: '',
  valFraction: 0.1,
  objective: null,
  batchSize: 12,
  blockSize: 64,
  steps: 1000,
  gradAccum: 1,
  optimizer: { kind: 'adamw', lr: 1e-3, beta1: 0.9, beta2: 0.99, weightDecay: 0.1, decay: 'no-norm-bias-embed' },
  schedule: { kind: 'cosine', lr: 1e-3, minLr: 1e-4, warmup: 100, decaySteps: 1000 },
  gradClip: 1,
  precision: 'fp32',
  gradientCheckpointing: false,
  evalInterval: 250,
  evalBatches: 20,
  checkpointInterval: 250,
  seed: 1337,
  out: '',
};

/**
 * nanoGPT's CPU Shakespeare recipe (README "I only have a macbook"):
 *   python train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
 *     --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128
 *     --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0
 * with train_shakespeare_char.py's lr 1e-3, min_lr 1e-4, beta2 0.99, warmup 100, eval_interval 250,
 * and train.py's defaults: weight_decay 0.1 on ≥2-D params, grad_clip 1.0, bias False, tied embeddings.
 * nanoGPT reaches val ≈ 1.88 with it.
 */
const SHAKESPEARE_CHAR_CPU: Omit<TrainConfig, 'data' | 'out'> = {
  model: 'gpt2',
  set: ['n_layer=4', 'n_head=4', 'n_embd=128', 'n_positions=64', 'bos_token_id=null', 'eos_token_id=null'],
  tweaks: { bias: false, dropout: 0, activation: 'gelu' },
  tokenizer: 'char',
  valFraction: 0.1,
  objective: 'causal-lm',
  batchSize: 12,
  blockSize: 64,
  steps: 2000,
  gradAccum: 1,
  optimizer: { kind: 'adamw', lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, decay: 'matrices' },
  schedule: { kind: 'cosine', lr: 1e-3, minLr: 1e-4, warmup: 100, decaySteps: 2000 },
  gradClip: 1,
  precision: 'fp32',
  gradientCheckpointing: false,
  evalInterval: 250,
  evalBatches: 20,
  checkpointInterval: 250,
  seed: 1337,
};

/**
 * The second bundled model (models/shakespeare-llama): a LLaMA-style decoder (RMSNorm, SwiGLU, RoPE, GQA 8/4)
 * of 4.8M parameters on the same character vocabulary as shakespeare-char (its tokenizer.json), so that the
 * small model can draft for it. Sized to train in about 25 minutes on the idle 2-core machine (~1.7 s a
 * step of 8 x 256 tokens, 1.7M tokens in all, about two passes over the training split); the first version
 * (300 steps of 2 x 256, sized for a heavily loaded machine) stopped at val 2.22, worse than the 0.8M
 * shakespeare-char. With more CPU, raise --steps and --batch-size. 256-token windows: 64-token prompts plus 128 new tokens stay in the
 * trained range. A tokenizer file does not resize the preset's vocab_size (256): the unused rows of the
 * embedding and head are dropped afterwards by `scripts/cast-model.mjs --vocab 65`.
 */
const SHAKESPEARE_LLAMA_CPU: Omit<TrainConfig, 'data' | 'out'> = {
  model: 'tiny-llama',
  set: [
    'hidden_size=256',
    'intermediate_size=768',
    'num_hidden_layers=6',
    'num_attention_heads=8',
    'num_key_value_heads=4',
    'max_position_embeddings=256',
    'bos_token_id=null',
    'eos_token_id=null',
    'pad_token_id=null',
  ],
  tweaks: { dropout: 0 },
  tokenizer: 'models/shakespeare-char/tokenizer.json',
  valFraction: 0.1,
  objective: 'causal-lm',
  batchSize: 8,
  blockSize: 256,
  steps: 850,
  gradAccum: 1,
  optimizer: {
    kind: 'adamw',
    lr: 1.5e-3,
    beta1: 0.9,
    beta2: 0.99,
    eps: 1e-8,
    weightDecay: 0.1,
    decay: 'no-norm-bias-embed',
  },
  schedule: { kind: 'cosine', lr: 1.5e-3, minLr: 1.5e-4, warmup: 40, decaySteps: 850 },
  gradClip: 1,
  precision: 'fp32',
  gradientCheckpointing: false,
  evalInterval: 170,
  evalBatches: 16,
  checkpointInterval: 50,
  seed: 1337,
};

export const RECIPES: Record<string, Omit<TrainConfig, 'data' | 'out'>> = {
  'shakespeare-char-cpu': SHAKESPEARE_CHAR_CPU,
  'shakespeare-llama-cpu': SHAKESPEARE_LLAMA_CPU,
};

export function getRecipe(name: string): Omit<TrainConfig, 'data' | 'out'> {
  const r = RECIPES[name];
  if (!r) throw new Error(`unknown recipe ${JSON.stringify(name)} (known: ${Object.keys(RECIPES).join(', ')})`);
  return structuredClone(r);
}

/** Applies ModelTweaks to a built config (returns a new object). Biases: decoders and encoders only. */
export function applyTweaks(cfg: ModelConfig, t: ModelTweaks): ModelConfig {
  const c = structuredClone(cfg);
  if (t.dropout !== undefined)
    c.dropout = {
      embedding: t.dropout,
      attention: t.dropout,
      residual: t.dropout,
      activation: c.dropout.activation && t.dropout,
    };
  const stacks = 'decoder' in c ? [c.decoder] : [];
  if ('encoder' in c) stacks.push(c.encoder);
  for (const s of stacks) {
    const b = s.block;
    if (t.bias !== undefined) {
      if (b.attention.kind !== 'mla') Object.assign(b.attention, { qkvBias: t.bias, outBias: t.bias });
      if (b.ffn.kind !== 'moe') b.ffn.bias = t.bias;
      if (b.norm.kind === 'layernorm') b.norm.bias = t.bias;
      if (s.finalNorm?.kind === 'layernorm') s.finalNorm.bias = t.bias;
    }
    if (t.activation && b.ffn.kind === 'mlp') b.ffn.act = t.activation;
  }
  if (t.bias !== undefined && 'embedNorm' in c && c.embedNorm?.kind === 'layernorm') c.embedNorm.bias = t.bias;
  return c;
}

/** Config sanity checks with messages naming the field. */
export function validateTrainConfig(c: TrainConfig): void {
  const posInt = (k: keyof TrainConfig) => {
    const v = c[k] as number;
    if (!(Number.isInteger(v) && v > 0))
      throw new Error(`train config: ${k} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  for (const k of ['batchSize', 'blockSize', 'gradAccum', 'evalBatches'] as const) posInt(k);
  for (const k of ['steps', 'evalInterval', 'checkpointInterval'] as const) {
    if (!(Number.isInteger(c[k]) && c[k] >= 0))
      throw new Error(`train config: ${k} must be a non-negative integer, got ${JSON.stringify(c[k])}`);
  }
  if (!(c.valFraction > 0 && c.valFraction < 1))
    throw new Error(`train config: valFraction must be in (0, 1), got ${c.valFraction}`);
  if (!(c.gradClip >= 0)) throw new Error(`train config: gradClip must be >= 0, got ${c.gradClip}`);
  validateOptimizer(c.optimizer);
  if (!c.data)
    throw new Error('train: --data FILE is required (a text file, or a directory with train.bin and val.bin)');
  if (!c.out) throw new Error('train: --out DIR is required');
}

/** optimizer hyper-parameters in the ranges the update rules need (a config file bypasses the flag checks) */
function validateOptimizer(o: TrainConfig['optimizer']): void {
  const bad = (field: string, v: unknown, want: string) =>
    new Error(`train config: optimizer.${field} must be ${want}, got ${JSON.stringify(v)}`);
  if (!(typeof o.lr === 'number' && o.lr >= 0)) throw bad('lr', o.lr, 'a number >= 0');
  for (const k of ['beta1', 'beta2', 'momentum'] as const) {
    const v = o[k];
    if (v !== undefined && !(typeof v === 'number' && v >= 0 && v < 1)) throw bad(k, v, 'in [0, 1)');
  }
  const d = o.dampening;
  if (d !== undefined && !(typeof d === 'number' && d >= 0 && d <= 1)) throw bad('dampening', d, 'in [0, 1]');
  if (o.eps !== undefined && !(typeof o.eps === 'number' && o.eps > 0)) throw bad('eps', o.eps, '> 0');
  if (o.weightDecay !== undefined && !(typeof o.weightDecay === 'number' && o.weightDecay >= 0))
    throw bad('weightDecay', o.weightDecay, '>= 0');
}
