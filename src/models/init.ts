// Parameter initialisation per family, following each family's transformers `_init_weights`
// (read in transformers' modeling_<family>.py; never copied). `createModel` builds the module tree with
// random initialisation off (`withoutInit`: zero-filled, nothing drawn), then, unless asked for
// `init: 'none'`, walks `namedParameters()` once and gives every tensor the initialiser its family's
// plan names for it. A plan is a function of the parameter's checkpoint name and shape, so it reads like
// `_init_weights`: Linear / Embedding weights normal(std), biases zero, norm weights one, plus each
// family's exceptions (GPT-2's scaled c_proj, T5's fan-in scaled projections, Mamba's dt / A / D).
//
// The same plans initialise the tensors a non-strict checkpoint load leaves missing (as transformers
// initialises missing keys), so a partial load never leaves zeros behind.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { add, clamp, exp, full, log, mul, neg, rand, randn, tensor, zeros } from '../ops/index.js';
import type { Module } from '../nn/module.js';
import type {
  DecoderConfig, EncoderConfig, EncoderDecoderConfig, Family, FamilyConfig, MambaConfig, RnnConfig, StandardAttention,
  TransformerStack,
} from './config.js';
import { mambaInner } from './config.js';

/** How one parameter is initialised. `zeroRow`: an embedding's padding row (transformers' padding_idx). */
export type Init =
  | { kind: 'normal'; std: number; zeroRow?: number | null }
  | { kind: 'uniform'; bound: number }
  | { kind: 'const'; value: number }
  | { kind: 'custom'; what: string; make: (shape: number[], rng: Rng) => Tensor };

/** name -> initialiser, for every parameter of one model */
export type InitPlan = (name: string, shape: readonly number[]) => Init;

export const normal = (std: number, zeroRow: number | null = null): Init => ({ kind: 'normal', std, zeroRow });
export const uniform = (bound: number): Init => ({ kind: 'uniform', bound });
export const ZEROS: Init = { kind: 'const', value: 0 };
export const ONES: Init = { kind: 'const', value: 1 };

/** the tensor an initialiser makes for `shape` (draws from `rng` only for random kinds) */
export function makeInit(init: Init, shape: number[], rng: Rng): Tensor {
  switch (init.kind) {
    case 'normal':
      if (init.zeroRow == null || shape.length !== 2) return randn(shape, { std: init.std, rng });
      return withZeroRow(shape, init, rng);
    case 'uniform':
      return rand(shape, { low: -init.bound, high: init.bound, rng });
    case 'const':
      return init.value === 0 ? zeros(shape) : full(shape, init.value);
    case 'custom':
      return init.make(shape, rng);
    default:
      return init satisfies never;
  }
}

function withZeroRow(shape: number[], init: { std: number; zeroRow?: number | null }, rng: Rng): Tensor {
  const data = randn(shape, { std: init.std, rng }).data() as Float32Array;
  const [rows, cols] = shape as [number, number];
  const r = init.zeroRow!;
  if (r >= 0 && r < rows) data.fill(0, r * cols, (r + 1) * cols);
  return tensor(data, { shape });
}

/**
 * Re-initialises `model`'s parameters (all of them, or those named in `only`) by `plan`, drawing from one
 * generator in parameter order. Each tensor keeps its dtype (a bfloat16 parameter gets a rounded draw).
 */
export function applyInit(model: Module, plan: InitPlan, rng: Rng, only?: ReadonlySet<string>): void {
  noGrad(() => {
    for (const [name, t] of model.namedParameters()) {
      if (only && !only.has(name)) continue;
      tidy(() => model.setParameter(name, makeInit(plan(name, t.shape), [...t.shape], rng)));
    }
  });
}

// ----------------------------------------------------------------------------------------------------
// Shared rules

const endsWithAny = (name: string, tails: readonly string[]): boolean => tails.some((t) => name.endsWith(t));

/**
 * transformers' common `_init_weights`: Linear and Embedding weights normal(std), biases zero, LayerNorm /
 * RMSNorm weights one (1-D weights are norm scales in every transformer family here), an embedding's
 * padding row zero when `padEmbeddings` names it.
 */
function standard(std: number, pad: number | null = null, padEmbeddings: readonly string[] = []): InitPlan {
  return (name, shape) => {
    if (name.endsWith('bias')) return ZEROS;
    if (shape.length === 1) return ONES;
    if (pad !== null && endsWithAny(name, padEmbeddings)) return normal(std, pad);
    return normal(std);
  };
}

// ----------------------------------------------------------------------------------------------------
// Families

/**
 * GPT-2: standard(initializer_range), then every `c_proj.weight` (attention and MLP output projections,
 * the writes into the residual stream) normal(initializer_range / sqrt(2 · n_layer)).
 * OpenAI GPT: standard(initializer_range), no scaling. LLaMA, Mistral, Qwen2, Qwen3 (q_norm / k_norm ones), Phi-3
 * (fused qkv_proj / gate_up_proj), MiniCPM (its µP scalars act in the forward, not the init), Mixtral (router and experts
 * included) and DeepSeek-V2 (MLA projections, MoE gate and experts included): standard(initializer_range)
 * with the token embedding's padding_idx = pad_token_id row zeroed.
 */
function decoderPlan(cfg: DecoderConfig): InitPlan {
  const std = cfg.initStd;
  switch (cfg.family) {
    case 'gpt2':
    case 'gpt3': {
      const base = standard(std);
      const scaled = std / Math.sqrt(2 * cfg.decoder.layers);
      return (name, shape) => (name.endsWith('c_proj.weight') ? normal(scaled) : base(name, shape));
    }
    case 'openai-gpt':
      return standard(std);
    case 'llama':
    case 'mistral':
    case 'qwen2':
    case 'qwen3':
    case 'qwen3_moe':
    case 'mixtral':
    case 'deepseek_v2':
    case 'deepseek_v3':
    case 'phi3':
    case 'minicpm':
      return standard(std, cfg.tokens.pad, ['embed_tokens.weight']);
    case 'gemma':
    case 'gemma2': {
      // GemmaRMSNorm scales by (1 + weight): its weights start at zero, not one
      const base = standard(std, cfg.tokens.pad, ['embed_tokens.weight']);
      return (name, shape) => (shape.length === 1 && name.endsWith('norm.weight') ? ZEROS : base(name, shape));
    }
    default:
      return cfg.family satisfies never;
  }
}

/** RoBERTa / Longformer: BERT's, plus the position table's padding row zero (its padding_idx is pad_token_id). */
function robertaPlan(cfg: EncoderConfig): InitPlan {
  return standard(cfg.initStd, cfg.tokens.pad, ['word_embeddings.weight', 'position_embeddings.weight']);
}

/** BERT: standard(initializer_range); word_embeddings' padding row (pad_token_id) zero. */
function bertPlan(cfg: EncoderConfig): InitPlan {
  return standard(cfg.initStd, cfg.tokens.pad, ['word_embeddings.weight']);
}

/** BART / Marian: standard(init_std); the shared token embedding's padding row (pad_token_id) zero. */
function bartPlan(cfg: EncoderDecoderConfig): InitPlan {
  return standard(cfg.initStd, cfg.tokens.pad, ['shared.weight', 'embed_tokens.weight']);
}

/**
 * T5 (`initStd` holds initializer_factor f): Mesh TensorFlow's fan-in scaling, so that attention scores
 * (T5 does not divide by sqrt(d_kv)) start O(1):
 *   q: f·(d_model·d_kv)^-0.5   k, v: f·d_model^-0.5   o: f·(n_heads·d_kv)^-0.5
 *   relative_attention_bias: f·d_model^-0.5   wi, wi_0, wi_1: f·d_model^-0.5   wo: f·d_ff^-0.5
 *   shared: f·1.0   lm_head (untied): f·1.0   layer norms: f   biases (none in T5): 0.
 */
function t5Plan(cfg: EncoderDecoderConfig): InitPlan {
  const f = cfg.initStd;
  const D = cfg.hidden;
  const stackOf = (name: string): TransformerStack => (name.startsWith('decoder.') ? cfg.decoder : cfg.encoder);
  return (name, shape) => {
    if (name.endsWith('bias')) return ZEROS;
    if (shape.length === 1) return { kind: 'const', value: f };
    if (name === 'shared.weight' || name === 'lm_head.weight') return normal(f);
    if (name.endsWith('relative_attention_bias.weight')) return normal(f * D ** -0.5);
    const s = stackOf(name);
    const a = s.block.attention as StandardAttention;
    if (/Attention\.q\.weight$/.test(name)) return normal(f * (D * a.headDim) ** -0.5);
    if (/Attention\.[kv]\.weight$/.test(name)) return normal(f * D ** -0.5);
    if (/Attention\.o\.weight$/.test(name)) return normal(f * (a.heads * a.headDim) ** -0.5);
    if (/DenseReluDense\.wi(_[01])?\.weight$/.test(name)) return normal(f * D ** -0.5);
    if (name.endsWith('DenseReluDense.wo.weight')) {
      const ffn = s.block.ffn;
      if (ffn.kind === 'moe') throw new Error(`t5 init: ${name}: a MoE feed-forward has no T5 initialiser`);
      return normal(f * ffn.hidden ** -0.5);
    }
    throw new Error(`t5 init: no initialiser for parameter ${name}`);
  };
}

/**
 * Mamba, as MambaPreTrainedModel._init_weights (module by module, children before parents, so the mixer's
 * own rules win over the generic Linear one):
 *   in_proj, x_proj (and an untied lm_head): normal(initializer_range); Linear biases zero;
 *   dt_proj.weight: U(±dt_rank^-0.5·time_step_scale) ("random") or that constant ("constant");
 *   dt_proj.bias: softplus⁻¹(dt), dt = exp(U(log dt_min, log dt_max)) clamped below at time_step_floor;
 *   conv1d.weight and out_proj.weight: kaiming_uniform(a=√5) = U(±fan_in^-0.5); conv1d.bias zero;
 *   with rescale_prenorm_residual (off by default) out_proj.weight is then divided by sqrt(num_hidden_layers);
 *   A_log[i, n] = log(n + 1); D = 1; RMS norms 1; embeddings normal(initializer_range).
 */
function mambaPlan(cfg: MambaConfig): InitPlan {
  const s = cfg.ssm;
  const dtStd = s.dtRank ** -0.5 * s.dtScale;
  const outScale = s.rescalePrenormResidual ? Math.sqrt(cfg.layers) : 1; // GPT-2's residual scheme, 1 branch per layer
  return (name, shape) => {
    if (name.endsWith('mixer.dt_proj.weight')) {
      return s.dtInit === 'constant' ? { kind: 'const', value: dtStd } : uniform(dtStd);
    }
    if (name.endsWith('mixer.dt_proj.bias')) {
      return { kind: 'custom', what: 'softplus⁻¹(dt)', make: (sh, rng) => dtBias(sh, cfg, rng) };
    }
    if (name.endsWith('mixer.A_log')) return { kind: 'custom', what: 'log(1..N)', make: (sh) => aLog(sh) };
    if (name.endsWith('mixer.D')) return ONES;
    if (name.endsWith('mixer.conv1d.weight')) return uniform(s.dConv ** -0.5);
    if (name.endsWith('mixer.out_proj.weight')) return uniform(mambaInner(cfg) ** -0.5 / outScale);
    if (name.endsWith('bias')) return ZEROS;
    if (shape.length === 1) return ONES;
    return normal(cfg.initStd);
  };
}

/** dt_proj.bias = dt + log(-expm1(-dt)) (the inverse of softplus) with dt log-uniform in [dtMin, dtMax] */
function dtBias(shape: number[], cfg: MambaConfig, rng: Rng): Tensor {
  const [lo, hi] = [Math.log(cfg.ssm.dtMin), Math.log(cfg.ssm.dtMax)];
  const dt = clamp(exp(add(mul(rand(shape, { rng }), hi - lo), lo)), cfg.ssm.dtInitFloor, null);
  return add(dt, log(neg(add(exp(neg(dt)), -1))));
}

/** S4D-real: A = -(1..N) in every channel, stored as log(1..N) */
function aLog(shape: number[]): Tensor {
  const N = shape[shape.length - 1]!;
  const size = shape.reduce((a, b) => a * b, 1);
  return tensor(Float32Array.from({ length: size }, (_, i) => Math.log((i % N) + 1)), { shape });
}

/**
 * Lineage's RNN LM has no transformers counterpart: torch's defaults for the recurrent layers
 * (U(±hidden^-0.5) for every weight and bias) and normal(initializer_range) for the embedding and head.
 */
function rnnPlan(cfg: RnnConfig): InitPlan {
  return (name) => (/_(ih|hh)_l\d+$/.test(name) ? uniform(cfg.hidden ** -0.5) : normal(cfg.initStd));
}

const PLANS: { [F in Family]: (cfg: FamilyConfig<F>) => InitPlan } = {
  gpt2: decoderPlan,
  gpt3: decoderPlan,
  'openai-gpt': decoderPlan,
  llama: decoderPlan,
  mistral: decoderPlan,
  qwen2: decoderPlan,
  qwen3: decoderPlan,
  qwen3_moe: decoderPlan,
  gemma: decoderPlan,
  gemma2: decoderPlan,
  phi3: decoderPlan,
  minicpm: decoderPlan,
  mixtral: decoderPlan,
  deepseek_v2: decoderPlan,
  deepseek_v3: decoderPlan,
  bert: bertPlan,
  roberta: robertaPlan,
  longformer: robertaPlan,
  big_bird: bertPlan,
  t5: t5Plan,
  bart: bartPlan,
  marian: bartPlan,
  'lineage-rnn': rnnPlan,
  mamba: mambaPlan,
};

/** The initialisation plan of a config's family. */
export function initPlan<F extends Family>(cfg: FamilyConfig<F>): InitPlan {
  return (PLANS[cfg.family as F] as (c: FamilyConfig<F>) => InitPlan)(cfg);
}

/** Initialises every parameter of a freshly built `model` by its family's plan (seeded). */
export function initModel(
  model: Module & { config: FamilyConfig<Family> }, seed = 0, only?: ReadonlySet<string>,
): void {
  applyInit(model, initPlan(model.config), new Rng(seed), only);
}
