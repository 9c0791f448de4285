// Hugging Face config.json <-> ModelConfig, one codec per `model_type`, with the exact field names
// transformers uses. Families transformers lacks use a Lineage model_type in the same layout
// ("lineage-rnn"). Lineage-only knobs a family's config.json cannot hold (MoE capacity factor, router
// z-loss, a vision patch embedding) are written as extra keys only when they differ from the default.
//
// Round trips are guaranteed rather than hoped for: `toHFConfig` re-reads what it wrote and throws,
// naming the field, when the config uses something the model_type cannot express (e.g. a sliding window
// on gpt2). Unknown keys of a real config.json (`architectures`, `torch_dtype`, ...) are ignored on read.

import {
  type Activation,
  type DecoderConfig,
  type DecoderFamily,
  type DropoutConfig,
  type EncoderDecoderConfig,
  type EncoderHead,
  type EncoderHeadKind,
  type Family,
  type FamilyConfig,
  type FfnConfig,
  type GluActivation,
  type ModelConfig,
  type MoeRouting,
  type NormConfig,
  type PositionConfig,
  type ProblemType,
  type RopeScaling,
  type StandardAttention,
  type TokenIds,
  type TransformerStack,
  type VisionConfig,
  dropoutAll,
  validateConfig,
} from './config.js';

/** A parsed config.json. */
export type HfJson = Record<string, unknown>;

type ConfigOf<F extends Family> = FamilyConfig<F>;

interface Codec<F extends Family> {
  from(r: HfReader): ConfigOf<F>;
  to(cfg: ConfigOf<F>): HfJson;
}

// ----------------------------------------------------------------------------------------------------
// Reading config.json fields with type checks; records every key it looks at (the family's field names).

class HfReader {
  readonly seen = new Set<string>(['model_type']);
  constructor(
    readonly json: HfJson,
    readonly modelType: string,
  ) {}

  fail(key: string, message: string): never {
    throw new Error(`config.json (model_type "${this.modelType}"): field "${key}" ${message}`);
  }

  private get(key: string): unknown {
    this.seen.add(key);
    return this.json[key];
  }

  private value<T>(key: string, def: T | undefined, ok: (v: unknown) => boolean, what: string): T {
    const v = this.get(key);
    if (v === undefined) {
      if (def === undefined) this.fail(key, 'is required but missing');
      return def;
    }
    if (!ok(v)) this.fail(key, `must be ${what}, got ${JSON.stringify(v)}`);
    return v as T;
  }

  num(key: string, def?: number): number {
    return this.value(key, def, (v) => typeof v === 'number' && Number.isFinite(v), 'a number');
  }
  int(key: string, def?: number): number {
    return this.value(key, def, (v) => Number.isInteger(v), 'an integer');
  }
  /** a size: an integer > 0 (checked here so that the error names this field, not one derived from it) */
  posInt(key: string, def?: number): number {
    return this.value(key, def, (v) => Number.isInteger(v) && (v as number) > 0, 'a positive integer');
  }
  intOrNull(key: string, def: number | null): number | null {
    return this.value<number | null>(key, def, (v) => v === null || Number.isInteger(v), 'an integer or null');
  }
  numOrNull(key: string, def: number | null): number | null {
    return this.value<number | null>(key, def, (v) => v === null || (typeof v === 'number' && Number.isFinite(v)), 'a number or null');
  }
  str(key: string, def?: string): string {
    return this.value(key, def, (v) => typeof v === 'string', 'a string');
  }
  bool(key: string, def?: boolean): boolean {
    return this.value(key, def, (v) => typeof v === 'boolean', 'a boolean');
  }
  objOrNull(key: string): Record<string, unknown> | null {
    return this.value<Record<string, unknown> | null>(key, null,
      (v) => v === null || (typeof v === 'object' && !Array.isArray(v)), 'an object or null');
  }
  intList(key: string): number[] {
    return this.value<number[]>(key, [], (v) => Array.isArray(v) && v.every((n) => Number.isInteger(n)), 'a list of integers');
  }
  strList(key: string): string[] {
    return this.value<string[]>(key, [], (v) => Array.isArray(v) && v.every((s) => typeof s === 'string'), 'a list of strings');
  }
  oneOf<T extends string>(key: string, options: readonly T[], def?: T): T {
    const v = this.str(key, def);
    if (!options.includes(v as T)) this.fail(key, `must be one of ${options.map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  }
  oneOfOrNull<T extends string>(key: string, options: readonly T[], def: T | null): T | null {
    return this.value<T | null>(key, def, (v) => v === null || options.includes(v as T),
      `null or one of ${options.map((o) => JSON.stringify(o)).join(', ')}`);
  }
  /** a field the config must have at a fixed value for Lineage to build it */
  require(key: string, expected: unknown, def: unknown): void {
    const v = this.get(key) ?? def;
    if (v !== expected) this.fail(key, `= ${JSON.stringify(v)} is not supported (only ${JSON.stringify(expected)})`);
  }
  /** hidden / heads, which must divide; a bad hidden size is blamed on its own field, not on the heads */
  headDim(hidden: number, heads: number, key: string, hiddenKey: string): number {
    if (!(hidden > 0)) this.fail(hiddenKey, `must be a positive integer, got ${hidden}`);
    if (!(heads > 0)) this.fail(key, `must be a positive integer, got ${heads}`);
    if (hidden % heads !== 0) this.fail(key, `= ${heads} must divide the hidden size ${hiddenKey} = ${hidden}`);
    return hidden / heads;
  }
}

// ----------------------------------------------------------------------------------------------------
// Pieces shared by several families

const ACT_FROM_HF: Record<string, Activation> = {
  relu: 'relu',
  gelu: 'gelu',
  gelu_new: 'gelu_tanh',
  gelu_pytorch_tanh: 'gelu_tanh',
  gelu_fast: 'gelu_tanh',
  silu: 'silu',
  swish: 'silu',
};
const ACT_TO_HF: { [A in Activation]: string } = { relu: 'relu', gelu: 'gelu', gelu_tanh: 'gelu_new', silu: 'silu' };

function readAct(r: HfReader, key: string, def: string): Activation {
  const name = r.str(key, def);
  const act = ACT_FROM_HF[name];
  if (!act) r.fail(key, `names an unsupported activation ${JSON.stringify(name)} (known: ${Object.keys(ACT_FROM_HF).join(', ')})`);
  return act;
}

function gluAct(r: HfReader, key: string, def: string): GluActivation {
  const act = readAct(r, key, def);
  if (act === 'relu') r.fail(key, 'relu cannot gate a GLU feed-forward');
  return act;
}

function tokensFrom(r: HfReader, d: { bos: number | null; eos: number | null; pad: number | null; start?: number | null }): TokenIds {
  return {
    bos: r.intOrNull('bos_token_id', d.bos),
    eos: r.intOrNull('eos_token_id', d.eos),
    pad: r.intOrNull('pad_token_id', d.pad),
    decoderStart: d.start === undefined ? null : r.intOrNull('decoder_start_token_id', d.start),
  };
}

function tokensTo(t: TokenIds, withStart: boolean): HfJson {
  const out: HfJson = { bos_token_id: t.bos, eos_token_id: t.eos, pad_token_id: t.pad };
  if (withStart) out.decoder_start_token_id = t.decoderStart;
  return out;
}

const layerNorm = (eps: number): NormConfig => ({ kind: 'layernorm', eps, bias: true });

function mha(heads: number, headDim: number, bias: boolean, scale: number | null = null): StandardAttention {
  return { kind: 'mha', heads, kvHeads: heads, headDim, qkvBias: bias, outBias: bias, scale, window: { kind: 'full' } };
}

function visionFrom(r: HfReader): VisionConfig | null {
  const v = r.objOrNull('vision_config');
  if (v === null) return null;
  const sub = new HfReader(v, `${r.modelType}.vision_config`);
  return { imageSize: sub.int('image_size'), patchSize: sub.int('patch_size'), channels: sub.int('num_channels', 3) };
}

function visionTo(v: VisionConfig | null): HfJson {
  return v ? { vision_config: { image_size: v.imageSize, patch_size: v.patchSize, num_channels: v.channels } } : {};
}

/** `rope_scaling` (transformers 4.x) or the scaling part of `rope_parameters` (transformers 5). */
function ropeScalingFrom(r: HfReader, key: 'rope_scaling' | 'rope_parameters' = 'rope_scaling'): RopeScaling | null {
  const s = r.objOrNull(key);
  if (s === null) return null;
  const sub = new HfReader(s, `${r.modelType}.${key}`);
  const type = typeof s.rope_type === 'string' ? sub.str('rope_type') : sub.str('type');
  switch (type) {
    case 'default':
      return null;
    case 'linear':
      return { kind: 'linear', factor: sub.num('factor') };
    case 'dynamic':
      return { kind: 'ntk', factor: sub.num('factor'), originalMax: sub.intOrNull('original_max_position_embeddings', null) };
    case 'yarn':
      return {
        kind: 'yarn',
        factor: sub.num('factor'),
        originalMax: sub.int('original_max_position_embeddings'),
        betaFast: sub.num('beta_fast', 32),
        betaSlow: sub.num('beta_slow', 1),
        mscale: sub.num('mscale', 1),
        mscaleAllDim: sub.num('mscale_all_dim', 0),
      };
    case 'llama3':
      return {
        kind: 'llama3',
        factor: sub.num('factor'),
        originalMax: sub.int('original_max_position_embeddings'),
        lowFreqFactor: sub.num('low_freq_factor'),
        highFreqFactor: sub.num('high_freq_factor'),
      };
    default:
      return r.fail(key, `has an unsupported type ${JSON.stringify(type)} (known: linear, dynamic, yarn, llama3)`);
  }
}

/** `typeKey`: transformers writes "rope_type"; DeepSeek's remote code reads "type". */
function ropeScalingTo(s: RopeScaling | null, typeKey: 'rope_type' | 'type'): HfJson | null {
  if (s === null) return null;
  switch (s.kind) {
    case 'linear':
      return { [typeKey]: 'linear', factor: s.factor };
    case 'ntk':
      return { [typeKey]: 'dynamic', factor: s.factor, ...(s.originalMax === null ? {} : { original_max_position_embeddings: s.originalMax }) };
    case 'yarn':
      return {
        [typeKey]: 'yarn', factor: s.factor, original_max_position_embeddings: s.originalMax,
        beta_fast: s.betaFast, beta_slow: s.betaSlow, mscale: s.mscale, mscale_all_dim: s.mscaleAllDim,
      };
    case 'llama3':
      return {
        [typeKey]: 'llama3', factor: s.factor, original_max_position_embeddings: s.originalMax,
        low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor,
      };
    default:
      return s satisfies never;
  }
}

function ropeFrom(r: HfReader, headDim: number | null, thetaDefault: number): PositionConfig {
  const factor = headDim === null ? 1 : r.num('partial_rotary_factor', 1);
  const dim = headDim === null || factor === 1 ? null : Math.round(headDim * factor);
  const theta = r.num('rope_theta', thetaDefault);
  const params = r.objOrNull('rope_parameters'); // transformers 5 nests theta and scaling here
  if (params === null) return { kind: 'rope', theta, dim, scaling: ropeScalingFrom(r) };
  const sub = new HfReader(params, `${r.modelType}.rope_parameters`);
  return { kind: 'rope', theta: sub.num('rope_theta', theta), dim, scaling: ropeScalingFrom(r, 'rope_parameters') };
}

function ropeTo(p: PositionConfig, headDim: number, typeKey: 'rope_type' | 'type' = 'rope_type'): HfJson {
  if (p.kind !== 'rope') return {};
  const out: HfJson = { rope_theta: p.theta, rope_scaling: ropeScalingTo(p.scaling, typeKey) };
  if (p.dim !== null) out.partial_rotary_factor = p.dim / headDim;
  return out;
}

function moeExtrasFrom(r: HfReader): { capacityFactor: number | null; zLossCoef: number } {
  return { capacityFactor: r.numOrNull('capacity_factor', null), zLossCoef: r.num('router_z_loss_coef', 0) };
}

function moeExtrasTo(f: FfnConfig): HfJson {
  if (f.kind !== 'moe') return {};
  const out: HfJson = {};
  if (f.capacityFactor !== null) out.capacity_factor = f.capacityFactor;
  if (f.zLossCoef !== 0) out.router_z_loss_coef = f.zLossCoef;
  return out;
}

const noDropout = (attention = 0): DropoutConfig => ({ embedding: 0, attention, residual: 0, activation: 0 });

// ----------------------------------------------------------------------------------------------------
// GPT-1 / GPT-2

function gptFrom(r: HfReader, family: 'gpt2' | 'gpt3' | 'openai-gpt'): DecoderConfig {
  const d = r.posInt('n_embd');
  const heads = r.int('n_head');
  const gpt2 = family !== 'openai-gpt'; // GPT-3 is a Lineage model_type in GPT-2's layout
  // Lineage extension: "bias": false = nanoGPT's GPTConfig(bias=False), no bias in any linear or
  // LayerNorm of the stack (transformers' GPT2Config cannot express it; written only when false)
  const bias = gpt2 ? r.bool('bias', true) : true;
  const ln: NormConfig = { kind: 'layernorm', eps: r.num('layer_norm_epsilon', 1e-5), bias };
  const act = gpt2 ? readAct(r, 'activation_function', 'gelu_new') : readAct(r, 'afn', 'gelu');
  const ffnHidden = gpt2 ? r.intOrNull('n_inner', null) ?? 4 * d : 4 * d;
  if (gpt2) {
    r.require('scale_attn_by_inverse_layer_idx', false, false);
    r.require('reorder_and_upcast_attn', false, false);
  }
  const attention = mha(heads, r.headDim(d, heads, 'n_head', 'n_embd'), bias);
  // GPT-3 (Lineage): odd layers attend to a band of the last `local_attention_window` keys
  if (family === 'gpt3') attention.window = { kind: 'sliding', size: r.posInt('local_attention_window', 256), firstFullLayers: 0, alternate: 'odd' };
  return {
    arch: 'decoder',
    family,
    vocabSize: r.int('vocab_size'),
    hidden: d,
    maxContext: r.int('n_positions'),
    positions: { kind: 'learned', offset: 0 },
    embedScale: 'none',
    embedNorm: null,
    headScale: 'none',
    tieEmbeddings: r.bool('tie_word_embeddings', true),
    dropout: { embedding: r.num('embd_pdrop', 0.1), attention: r.num('attn_pdrop', 0.1), residual: r.num('resid_pdrop', 0.1), activation: 0 },
    initStd: r.num('initializer_range', 0.02),
    tokens: gpt2 ? tokensFrom(r, { bos: 50256, eos: 50256, pad: null }) : tokensFrom(r, { bos: null, eos: null, pad: null }),
    vision: visionFrom(r),
    decoder: {
      layers: r.int('n_layer'),
      finalNorm: gpt2 ? ln : null,
      block: {
        residual: gpt2 ? 'pre' : 'post',
        norm: ln,
        attention,
        ffn: { kind: 'mlp', act, hidden: ffnHidden, bias },
      },
    },
  };
}

/** true when every bias of a GPT stack is present, false when none is (anything else: mixed) */
function gptBias(b: DecoderConfig['decoder']['block']): boolean {
  const flags = [b.norm.kind === 'layernorm' && b.norm.bias, b.attention.kind !== 'mla' && b.attention.qkvBias, b.attention.kind !== 'mla' && b.attention.outBias, b.ffn.kind !== 'moe' && b.ffn.bias];
  return flags.every(Boolean) || !flags.some(Boolean) ? flags[0]! : true;
}

function gptTo(cfg: DecoderConfig): HfJson {
  const b = cfg.decoder.block;
  const gpt2 = cfg.family !== 'openai-gpt';
  const ffnHidden = b.ffn.kind === 'moe' ? 0 : b.ffn.hidden;
  const w = b.attention.window;
  return {
    model_type: cfg.family,
    architectures: [{ gpt2: 'GPT2LMHeadModel', gpt3: 'GPT3LMHeadModel', 'openai-gpt': 'OpenAIGPTLMHeadModel' }[cfg.family as 'gpt2']],
    ...(cfg.family === 'gpt3' && w.kind === 'sliding' ? { local_attention_window: w.size } : {}),
    vocab_size: cfg.vocabSize,
    n_positions: cfg.maxContext,
    n_embd: cfg.hidden,
    n_layer: cfg.decoder.layers,
    n_head: b.attention.heads,
    ...(gpt2
      ? { n_inner: ffnHidden === 4 * cfg.hidden ? null : ffnHidden, activation_function: ACT_TO_HF[b.ffn.act] }
      : { afn: ACT_TO_HF[b.ffn.act] }),
    resid_pdrop: cfg.dropout.residual,
    embd_pdrop: cfg.dropout.embedding,
    attn_pdrop: cfg.dropout.attention,
    layer_norm_epsilon: b.norm.eps,
    initializer_range: cfg.initStd,
    tie_word_embeddings: cfg.tieEmbeddings,
    ...tokensTo(cfg.tokens, false),
    ...visionTo(cfg.vision),
    ...(gpt2 && !gptBias(b) ? { bias: false } : {}),
  };
}

// ----------------------------------------------------------------------------------------------------
// BERT

const BERT_HEAD_CLASS: { [H in EncoderHeadKind]: string } = {
  model: 'BertModel',
  'masked-lm': 'BertForMaskedLM',
  pretraining: 'BertForPreTraining',
  'sequence-classification': 'BertForSequenceClassification',
  'token-classification': 'BertForTokenClassification',
  'question-answering': 'BertForQuestionAnswering',
};

const PROBLEM_TYPES: readonly ProblemType[] = ['regression', 'single_label_classification', 'multi_label_classification'];

const defaultLabel = (i: number): string => `LABEL_${i}`;

/**
 * Label count and names as transformers keeps them: `id2label` ({"0": name, ...}; what save_pretrained
 * writes), else `num_labels` (older files), else 2. Default names (LABEL_i) read as null. A `num_labels` that
 * disagrees with `id2label` wins over default names (so `--set num_labels=5` works on a saved config) and is
 * an error against custom ones. `label2id` is derived from id2label (transformers' models never read it).
 */
function labelsFrom(r: HfReader): { numLabels: number; labels: string[] | null } {
  const n = r.intOrNull('num_labels', null);
  const id2label = r.objOrNull('id2label');
  r.objOrNull('label2id');
  if (id2label === null) return { numLabels: n ?? 2, labels: null };
  const count = Object.keys(id2label).length;
  const names = Array.from({ length: count }, (_, i) => id2label[String(i)]);
  if (!names.every((l) => typeof l === 'string')) {
    r.fail('id2label', `must map "0".."${count - 1}" to label names, got ${JSON.stringify(id2label)}`);
  }
  const custom = !(names as string[]).every((l, i) => l === defaultLabel(i));
  if (n !== null && n !== count) {
    if (custom) r.fail('num_labels', `= ${n} disagrees with id2label (${count} labels ${JSON.stringify(names)}); change id2label instead`);
    return { numLabels: n, labels: null };
  }
  return { numLabels: count, labels: custom ? (names as string[]) : null };
}

/** id2label / label2id as transformers writes them (string ids; label2id the inverse map) */
function labelsTo(numLabels: number, labels: string[] | null): HfJson {
  const names = labels ?? Array.from({ length: numLabels }, (_, i) => defaultLabel(i));
  return {
    id2label: Object.fromEntries(names.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(names.map((l, i) => [l, i])),
  };
}

function bertHeadFrom(r: HfReader): EncoderHead {
  const classes = r.strList('architectures');
  const kind = (Object.keys(BERT_HEAD_CLASS) as EncoderHeadKind[]).find((h) => classes.includes(BERT_HEAD_CLASS[h])) ?? 'model';
  // read whatever the head, so every head's fields are valid `--set` names
  const { numLabels, labels } = labelsFrom(r);
  const problem = r.oneOfOrNull<ProblemType>('problem_type', PROBLEM_TYPES, null);
  const dropout = r.numOrNull('classifier_dropout', null);
  switch (kind) {
    case 'model':
    case 'masked-lm':
    case 'pretraining':
      return kind;
    case 'sequence-classification':
      return { kind, numLabels, labels, problemType: problem, dropout };
    case 'token-classification':
      return { kind, numLabels, labels, dropout };
    case 'question-answering':
      // qa_outputs is Linear(D, num_labels), split into start | end: only 2 works
      if (numLabels !== 2) r.fail('num_labels', `must be 2 for BertForQuestionAnswering (start and end logits), got ${numLabels}`);
      return { kind };
    default:
      return kind satisfies never;
  }
}

function bertHeadTo(head: EncoderHead): HfJson {
  if (typeof head === 'string') return { architectures: [BERT_HEAD_CLASS[head]] };
  const architectures = [BERT_HEAD_CLASS[head.kind]];
  switch (head.kind) {
    case 'sequence-classification':
      return {
        architectures, ...labelsTo(head.numLabels, head.labels), classifier_dropout: head.dropout,
        ...(head.problemType === null ? {} : { problem_type: head.problemType }), // save_pretrained omits the default
      };
    case 'token-classification':
      return { architectures, ...labelsTo(head.numLabels, head.labels), classifier_dropout: head.dropout };
    case 'question-answering':
      return { architectures, ...labelsTo(2, null) };
    default:
      return head satisfies never;
  }
}

const bert: Codec<'bert'> = {
  from(r) {
    const d = r.posInt('hidden_size');
    const heads = r.int('num_attention_heads');
    const ln = layerNorm(r.num('layer_norm_eps', 1e-12));
    r.require('position_embedding_type', 'absolute', 'absolute');
    const head = bertHeadFrom(r);
    const hiddenDrop = r.num('hidden_dropout_prob', 0.1);
    return {
      arch: 'encoder',
      family: 'bert',
      vocabSize: r.int('vocab_size'),
      hidden: d,
      maxContext: r.int('max_position_embeddings', 512),
      positions: { kind: 'learned', offset: 0 },
      embedScale: 'none',
      embedNorm: ln,
      headScale: 'none',
      tieEmbeddings: r.bool('tie_word_embeddings', true),
      dropout: { embedding: hiddenDrop, attention: r.num('attention_probs_dropout_prob', 0.1), residual: hiddenDrop, activation: 0 },
      initStd: r.num('initializer_range', 0.02),
      tokens: tokensFrom(r, { bos: null, eos: null, pad: 0 }),
      typeVocabSize: r.int('type_vocab_size', 2),
      head,
      encoder: {
        layers: r.int('num_hidden_layers'),
        finalNorm: null,
        block: {
          residual: 'post',
          norm: ln,
          attention: mha(heads, r.headDim(d, heads, 'num_attention_heads', 'hidden_size'), true),
          ffn: { kind: 'mlp', act: readAct(r, 'hidden_act', 'gelu'), hidden: r.int('intermediate_size'), bias: true },
        },
      },
    };
  },
  to(cfg) {
    const b = cfg.encoder.block;
    const { architectures, ...headFields } = bertHeadTo(cfg.head);
    return {
      model_type: 'bert',
      architectures,
      vocab_size: cfg.vocabSize,
      hidden_size: cfg.hidden,
      num_hidden_layers: cfg.encoder.layers,
      num_attention_heads: b.attention.heads,
      intermediate_size: b.ffn.kind === 'moe' ? 0 : b.ffn.hidden,
      hidden_act: ACT_TO_HF[b.ffn.act],
      hidden_dropout_prob: cfg.dropout.residual,
      attention_probs_dropout_prob: cfg.dropout.attention,
      max_position_embeddings: cfg.maxContext,
      type_vocab_size: cfg.typeVocabSize,
      initializer_range: cfg.initStd,
      layer_norm_eps: b.norm.eps,
      position_embedding_type: 'absolute',
      tie_word_embeddings: cfg.tieEmbeddings,
      ...tokensTo(cfg.tokens, false),
      ...headFields,
    };
  },
};

// ----------------------------------------------------------------------------------------------------
// RoBERTa, Longformer, BigBird: BERT's config.json fields plus each family's own

type RobertaLike = 'roberta' | 'longformer' | 'big_bird';

/** The transformers classes each family maps (other heads of these families are not built by Lineage). */
const ENCODER_HEAD_CLASSES: { [F in RobertaLike]: Partial<Record<EncoderHeadKind, string>> } = {
  roberta: { model: 'RobertaModel', 'masked-lm': 'RobertaForMaskedLM' },
  longformer: { model: 'LongformerModel', 'masked-lm': 'LongformerForMaskedLM' },
  big_bird: { model: 'BigBirdModel', 'masked-lm': 'BigBirdForMaskedLM', pretraining: 'BigBirdForPreTraining' },
};

function encoderHeadFrom(r: HfReader, family: RobertaLike): EncoderHead {
  const table = ENCODER_HEAD_CLASSES[family];
  const classes = r.strList('architectures');
  if (classes.length === 0) return 'model';
  const kind = (Object.keys(table) as EncoderHeadKind[]).find((h) => classes.includes(table[h]!));
  if (!kind) r.fail('architectures', `= ${JSON.stringify(classes)} is not supported for ${family} (supported: ${Object.values(table).join(', ')})`);
  return kind as 'model' | 'masked-lm' | 'pretraining';
}

/** Longformer's `attention_window`: one even size for every layer (an int, or a list transformers writes per layer). */
function longformerWindow(r: HfReader, layers: number): number {
  r.seen.add('attention_window');
  const v = r.json.attention_window ?? 512;
  const sizes = Array.isArray(v) ? v : [v];
  if (!sizes.every((s) => Number.isInteger(s) && s > 0 && s % 2 === 0)) r.fail('attention_window', `must be a positive even integer or a list of them, got ${JSON.stringify(v)}`);
  if (Array.isArray(v) && v.length !== layers) r.fail('attention_window', `has ${v.length} entries, expected one per layer (num_hidden_layers = ${layers})`);
  if (new Set(sizes).size !== 1) r.fail('attention_window', `differs between layers (${JSON.stringify(v)}); Lineage builds one window size for every layer`);
  return sizes[0] as number;
}

/** BigBird's attention: `original_full` is plain attention, `block_sparse` the ITC pattern (3 sliding blocks,
 * the first and last block global, `num_random_blocks` random blocks; "random_seed" is Lineage's, default 0). */
function bigbirdWindow(r: HfReader): StandardAttention['window'] {
  const type = r.oneOf('attention_type', ['block_sparse', 'original_full'] as const, 'block_sparse');
  const blockSize = r.posInt('block_size', 64);
  const randomBlocks = r.int('num_random_blocks', 3);
  const seed = r.int('random_seed', 0);
  if (type === 'original_full') return { kind: 'full' };
  return { kind: 'bigbird', blockSize, windowBlocks: 3, globalBlocks: 1, randomBlocks, seed };
}

function robertaLikeFrom(r: HfReader, family: RobertaLike): FamilyConfig<'roberta'> {
  const d = r.posInt('hidden_size');
  const heads = r.int('num_attention_heads');
  const layers = r.posInt('num_hidden_layers');
  const ln = layerNorm(r.num('layer_norm_eps', 1e-12));
  const bird = family === 'big_bird';
  if (!bird) r.require('position_embedding_type', 'absolute', 'absolute');
  if (bird) {
    r.require('use_bias', true, true);
    r.require('rescale_embeddings', false, false);
  }
  const tokens = bird ? tokensFrom(r, { bos: 1, eos: 2, pad: 0 }) : tokensFrom(r, { bos: 0, eos: 2, pad: 1 });
  // RoBERTa numbers positions from padding_idx + 1 (position ids = padding_idx + running count of real tokens)
  const offset = bird ? 0 : (tokens.pad ?? r.fail('pad_token_id', 'must be set: RoBERTa positions start at pad_token_id + 1')) + 1;
  const maxPos = r.posInt('max_position_embeddings', bird ? 4096 : 514);
  if (maxPos <= offset) r.fail('max_position_embeddings', `must exceed pad_token_id + 1 (${offset}), got ${maxPos}`);
  const hiddenDrop = r.num('hidden_dropout_prob', 0.1);
  const attention = mha(heads, r.headDim(d, heads, 'num_attention_heads', 'hidden_size'), true);
  if (family === 'longformer') attention.window = { kind: 'longformer', size: longformerWindow(r, layers), globalTokens: 0 };
  if (bird) attention.window = bigbirdWindow(r);
  return {
    arch: 'encoder',
    family,
    vocabSize: r.int('vocab_size'),
    hidden: d,
    maxContext: maxPos - offset,
    positions: { kind: 'learned', offset },
    embedScale: 'none',
    embedNorm: ln,
    headScale: 'none',
    tieEmbeddings: r.bool('tie_word_embeddings', true),
    dropout: { embedding: hiddenDrop, attention: r.num('attention_probs_dropout_prob', 0.1), residual: hiddenDrop, activation: 0 },
    initStd: r.num('initializer_range', 0.02),
    tokens,
    typeVocabSize: r.int('type_vocab_size', bird ? 2 : 1),
    head: encoderHeadFrom(r, family),
    encoder: {
      layers,
      finalNorm: null,
      block: { residual: 'post', norm: ln, attention, ffn: { kind: 'mlp', act: readAct(r, 'hidden_act', bird ? 'gelu_new' : 'gelu'), hidden: r.int('intermediate_size'), bias: true } },
    },
  };
}

function robertaLikeTo(cfg: FamilyConfig<'roberta'>): HfJson {
  const family = cfg.family as RobertaLike;
  const b = cfg.encoder.block;
  const w = b.attention.window;
  const headClass = ENCODER_HEAD_CLASSES[family][typeof cfg.head === 'string' ? cfg.head : cfg.head.kind];
  const out: HfJson = {
    model_type: family,
    architectures: headClass ? [headClass] : [],
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hidden,
    num_hidden_layers: cfg.encoder.layers,
    num_attention_heads: b.attention.heads,
    intermediate_size: b.ffn.kind === 'moe' ? 0 : b.ffn.hidden,
    hidden_act: ACT_TO_HF[b.ffn.act],
    hidden_dropout_prob: cfg.dropout.residual,
    attention_probs_dropout_prob: cfg.dropout.attention,
    max_position_embeddings: cfg.maxContext + (cfg.positions.kind === 'learned' ? cfg.positions.offset : 0),
    type_vocab_size: cfg.typeVocabSize,
    initializer_range: cfg.initStd,
    layer_norm_eps: b.norm.eps,
    tie_word_embeddings: cfg.tieEmbeddings,
    ...tokensTo(cfg.tokens, false),
  };
  if (family !== 'big_bird') out.position_embedding_type = 'absolute';
  if (family === 'longformer' && w.kind === 'longformer') out.attention_window = Array.from({ length: cfg.encoder.layers }, () => w.size);
  if (family === 'big_bird') {
    Object.assign(out, { use_bias: true, rescale_embeddings: false, attention_type: w.kind === 'bigbird' ? 'block_sparse' : 'original_full' });
    if (w.kind === 'bigbird') {
      Object.assign(out, { block_size: w.blockSize, num_random_blocks: w.randomBlocks });
      if (w.seed !== 0) out.random_seed = w.seed;
    }
  }
  return out;
}

const robertaLike = (family: RobertaLike): Codec<RobertaLike> => ({ from: (r) => robertaLikeFrom(r, family), to: robertaLikeTo });

// ----------------------------------------------------------------------------------------------------
// T5 (v1.0 relu, v1.1 gated-gelu)

function t5Ffn(r: HfReader, hidden: number): FfnConfig {
  const proj = r.str('feed_forward_proj', 'relu');
  const gated = proj.startsWith('gated-');
  const name = gated ? proj.slice('gated-'.length) : proj;
  // transformers special-cases "gated-gelu" to the tanh approximation (gelu_new)
  const act = proj === 'gated-gelu' ? 'gelu_tanh' : ACT_FROM_HF[name];
  if (!act) r.fail('feed_forward_proj', `must be "{act}" or "gated-{act}", got ${JSON.stringify(proj)}`);
  if (!gated) return { kind: 'mlp', act, hidden, bias: false };
  if (act === 'relu') r.fail('feed_forward_proj', 'gated-relu is not supported');
  return { kind: 'glu', act, hidden, bias: false };
}

function t5ProjName(f: FfnConfig): string {
  if (f.kind === 'glu') return f.act === 'gelu_tanh' ? 'gated-gelu' : `gated-${ACT_TO_HF[f.act]}`;
  return ACT_TO_HF[f.act];
}

const t5: Codec<'t5'> = {
  from(r) {
    const d = r.posInt('d_model');
    const heads = r.int('num_heads');
    const norm: NormConfig = { kind: 'rmsnorm', eps: r.num('layer_norm_epsilon', 1e-6) };
    const layers = r.int('num_layers');
    const block = {
      residual: 'pre' as const,
      norm,
      attention: { ...mha(heads, r.int('d_kv'), false), scale: 1 },
      ffn: t5Ffn(r, r.int('d_ff')),
    };
    const tie = r.bool('tie_word_embeddings', true);
    return {
      arch: 'encoder-decoder',
      family: 't5',
      vocabSize: r.int('vocab_size'),
      hidden: d,
      maxContext: r.int('n_positions', 512),
      positions: {
        kind: 't5-relative',
        buckets: r.int('relative_attention_num_buckets', 32),
        maxDistance: r.int('relative_attention_max_distance', 128),
        bidirectional: true,
      },
      embedScale: 'none',
      embedNorm: null,
      headScale: tie ? 'rsqrt-hidden' : 'none',
      tieEmbeddings: tie,
      dropout: dropoutAll(r.num('dropout_rate', 0.1)),
      initStd: r.num('initializer_factor', 1),
      tokens: tokensFrom(r, { bos: null, eos: 1, pad: 0, start: 0 }),
      encoder: { layers, block, finalNorm: norm },
      decoder: { layers: r.intOrNull('num_decoder_layers', null) ?? layers, block, finalNorm: norm },
    };
  },
  to(cfg) {
    const b = cfg.encoder.block;
    const att = b.attention as StandardAttention;
    return {
      model_type: 't5',
      architectures: ['T5ForConditionalGeneration'],
      vocab_size: cfg.vocabSize,
      d_model: cfg.hidden,
      d_kv: att.headDim,
      d_ff: b.ffn.kind === 'moe' ? 0 : b.ffn.hidden,
      num_layers: cfg.encoder.layers,
      num_decoder_layers: cfg.decoder.layers,
      num_heads: att.heads,
      relative_attention_num_buckets: cfg.positions.kind === 't5-relative' ? cfg.positions.buckets : 0,
      relative_attention_max_distance: cfg.positions.kind === 't5-relative' ? cfg.positions.maxDistance : 0,
      dropout_rate: cfg.dropout.residual,
      layer_norm_epsilon: b.norm.eps,
      initializer_factor: cfg.initStd,
      feed_forward_proj: t5ProjName(b.ffn),
      is_encoder_decoder: true,
      tie_word_embeddings: cfg.tieEmbeddings,
      n_positions: cfg.maxContext,
      ...tokensTo(cfg.tokens, true),
    };
  },
};

// ----------------------------------------------------------------------------------------------------
// BART and Marian (Vaswani 2017): post-norm encoder-decoders with per-stack sizes

function bartStack(r: HfReader, side: 'encoder' | 'decoder', d: number, act: Activation): TransformerStack {
  const heads = r.int(`${side}_attention_heads`);
  return {
    layers: r.int(`${side}_layers`),
    finalNorm: null,
    block: {
      residual: 'post',
      norm: layerNorm(1e-5), // nn.LayerNorm default; not configurable in transformers
      attention: mha(heads, r.headDim(d, heads, `${side}_attention_heads`, 'd_model'), true),
      ffn: { kind: 'mlp', act, hidden: r.int(`${side}_ffn_dim`), bias: true },
    },
  };
}

function bartLikeFrom(r: HfReader, family: 'bart' | 'marian'): EncoderDecoderConfig {
  const d = r.posInt('d_model');
  const bartFamily = family === 'bart';
  const act = readAct(r, 'activation_function', 'gelu');
  const vocabSize = r.int('vocab_size');
  if (!bartFamily) {
    const decoderVocab = r.intOrNull('decoder_vocab_size', null);
    if (decoderVocab !== null && decoderVocab !== vocabSize) {
      r.fail('decoder_vocab_size', `must equal vocab_size (${vocabSize}): Lineage shares one embedding`);
    }
    r.require('share_encoder_decoder_embeddings', true, true);
  }
  return {
    arch: 'encoder-decoder',
    family,
    vocabSize,
    hidden: d,
    maxContext: r.int('max_position_embeddings', 1024),
    positions: bartFamily ? { kind: 'learned', offset: 2 } : { kind: 'sinusoidal' },
    embedScale: r.bool('scale_embedding', false) ? 'sqrt-hidden' : 'none',
    embedNorm: bartFamily ? layerNorm(1e-5) : null,
    headScale: 'none',
    tieEmbeddings: r.bool('tie_word_embeddings', true),
    dropout: {
      embedding: r.num('dropout', 0.1),
      attention: r.num('attention_dropout', 0),
      residual: r.num('dropout', 0.1),
      activation: r.num('activation_dropout', 0),
    },
    initStd: r.num('init_std', 0.02),
    tokens: bartFamily
      ? tokensFrom(r, { bos: 0, eos: 2, pad: 1, start: 2 })
      : tokensFrom(r, { bos: null, eos: 0, pad: 58100, start: 58100 }),
    encoder: bartStack(r, 'encoder', d, act),
    decoder: bartStack(r, 'decoder', d, act),
  };
}

function bartLikeTo(cfg: EncoderDecoderConfig): HfJson {
  const side = (s: TransformerStack, name: 'encoder' | 'decoder'): HfJson => ({
    [`${name}_layers`]: s.layers,
    [`${name}_ffn_dim`]: s.block.ffn.kind === 'moe' ? 0 : s.block.ffn.hidden,
    [`${name}_attention_heads`]: s.block.attention.heads,
  });
  const marian = cfg.family === 'marian';
  return {
    model_type: cfg.family,
    architectures: [marian ? 'MarianMTModel' : 'BartForConditionalGeneration'],
    vocab_size: cfg.vocabSize,
    ...(marian ? { decoder_vocab_size: cfg.vocabSize, share_encoder_decoder_embeddings: true } : {}),
    max_position_embeddings: cfg.maxContext,
    d_model: cfg.hidden,
    ...side(cfg.encoder, 'encoder'),
    ...side(cfg.decoder, 'decoder'),
    activation_function: ACT_TO_HF[cfg.encoder.block.ffn.act],
    dropout: cfg.dropout.residual,
    attention_dropout: cfg.dropout.attention,
    activation_dropout: cfg.dropout.activation,
    init_std: cfg.initStd,
    scale_embedding: cfg.embedScale === 'sqrt-hidden',
    is_encoder_decoder: true,
    tie_word_embeddings: cfg.tieEmbeddings,
    ...tokensTo(cfg.tokens, true),
  };
}

// ----------------------------------------------------------------------------------------------------
// Llama and its descendants (Mistral, Qwen2, Qwen3, Qwen3-MoE, Gemma, Mixtral)
//
// Qwen3-MoE (model_type "qwen3_moe") is Qwen3 attention with a Mixtral-style router (softmax, top-k, the k
// weights renormalised when `norm_topk_prob`) over `num_experts` SwiGLU experts of `moe_intermediate_size`,
// no shared expert. Every layer is sparse: `decoder_sparse_step` must be 1 and `mlp_only_layers` empty
// (transformers' other placements, dense where (layer + 1) % step != 0, are not Lineage's MoE placement).
//
// Gemma (model_type "gemma") is Llama with: embeddings times sqrt(hidden) (GemmaModel's normalizer), RMSNorm
// scaling by (1 + weight), a GeGLU MLP, head_dim 256 by default and tied embeddings. Its activation is read
// from `hidden_activation`; when that is null or absent it is the tanh GELU (what transformers uses, with a
// warning, for the original checkpoints whose `hidden_act: "gelu"` was a mistake), never `hidden_act`.

type LlamaFamily = 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'qwen3_moe' | 'gemma' | 'mixtral';

function llamaAttention(r: HfReader, family: LlamaFamily, d: number): StandardAttention {
  const heads = r.int('num_attention_heads');
  const kvHeads = r.int('num_key_value_heads', heads);
  // Qwen3Config defaults head_dim to 128 whatever the width; the others derive it from hidden / heads
  const qwen3 = family === 'qwen3' || family === 'qwen3_moe';
  const defaultHeadDim = qwen3 ? 128 : family === 'gemma' ? 256 : null;
  const headDim = r.intOrNull('head_dim', defaultHeadDim) ?? r.headDim(d, heads, 'num_attention_heads', 'hidden_size');
  const bias = (family === 'llama' || qwen3 || family === 'gemma') && r.bool('attention_bias', false);
  const kind = kvHeads === heads ? 'mha' : kvHeads === 1 ? 'mqa' : 'gqa';
  const att: StandardAttention = { kind, heads, kvHeads, headDim, qkvBias: bias, outBias: bias, scale: null, window: { kind: 'full' } };
  if (qwen3) att.qkNorm = true; // Qwen3Attention always has q_norm / k_norm
  if (family === 'qwen2' || qwen3) {
    if (family === 'qwen2') att.qkvBias = true; // hard-coded in transformers' Qwen2Attention
    const size = r.intOrNull('sliding_window', 4096);
    const firstFull = r.int('max_window_layers', 28);
    if (r.bool('use_sliding_window', false) && size !== null) att.window = { kind: 'sliding', size, firstFullLayers: firstFull };
  } else if (family === 'mistral' || family === 'mixtral') {
    const size = r.intOrNull('sliding_window', family === 'mistral' ? 4096 : null);
    if (size !== null) att.window = { kind: 'sliding', size, firstFullLayers: 0 };
  }
  return att;
}

function gemmaAct(r: HfReader): GluActivation {
  r.str('hidden_act', 'gelu_pytorch_tanh'); // read (so --set accepts it) but not used, see above
  const name = r.oneOfOrNull('hidden_activation', Object.keys(ACT_FROM_HF), null);
  return name === null ? 'gelu_tanh' : gluAct(r, 'hidden_activation', name);
}

function llamaFfn(r: HfReader, family: LlamaFamily): FfnConfig {
  const act = family === 'gemma' ? gemmaAct(r) : gluAct(r, 'hidden_act', 'silu');
  const hidden = r.int('intermediate_size');
  if (family === 'qwen3_moe') return qwen3MoeFfn(r, hidden);
  if (family !== 'mixtral') return { kind: 'glu', act, hidden, bias: family === 'llama' && r.bool('mlp_bias', false) };
  return {
    kind: 'moe',
    experts: r.int('num_local_experts', 8),
    topK: r.int('num_experts_per_tok', 2),
    expert: 'glu',
    act,
    expertHidden: hidden,
    bias: false,
    gating: 'softmax',
    normTopK: true,
    routedScale: 1,
    routing: { kind: 'greedy' },
    sharedExperts: 0,
    sharedHidden: 0,
    auxLossCoef: r.num('router_aux_loss_coef', 0.001),
    ...moeExtrasFrom(r),
    denseLayers: 0,
    layerFreq: 1,
    denseHidden: 0,
  };
}

function qwen3MoeFfn(r: HfReader, denseHidden: number): FfnConfig {
  r.require('decoder_sparse_step', 1, 1);
  if (r.intList('mlp_only_layers').length > 0) r.fail('mlp_only_layers', 'must be empty (every layer a MoE layer)');
  return {
    kind: 'moe',
    experts: r.int('num_experts', 128),
    topK: r.int('num_experts_per_tok', 8),
    expert: 'glu',
    act: gluAct(r, 'hidden_act', 'silu'),
    expertHidden: r.int('moe_intermediate_size', 768),
    bias: false,
    gating: 'softmax',
    normTopK: r.bool('norm_topk_prob', false),
    routedScale: 1,
    routing: { kind: 'greedy' },
    sharedExperts: 0,
    sharedHidden: 0,
    auxLossCoef: r.num('router_aux_loss_coef', 0.001),
    ...moeExtrasFrom(r),
    denseLayers: 0,
    layerFreq: 1,
    denseHidden, // intermediate_size, which only mlp_only_layers (none here) would use
  };
}

const LLAMA_DEFAULTS: { [F in LlamaFamily]: { theta: number; eps: number; ctx: number; tokens: TokenIds } } = {
  llama: { theta: 10000, eps: 1e-6, ctx: 2048, tokens: { bos: 1, eos: 2, pad: null, decoderStart: null } },
  mistral: { theta: 10000, eps: 1e-6, ctx: 131072, tokens: { bos: 1, eos: 2, pad: null, decoderStart: null } },
  qwen2: { theta: 10000, eps: 1e-6, ctx: 32768, tokens: { bos: null, eos: null, pad: null, decoderStart: null } },
  qwen3: { theta: 10000, eps: 1e-6, ctx: 32768, tokens: { bos: null, eos: null, pad: null, decoderStart: null } },
  qwen3_moe: { theta: 10000, eps: 1e-6, ctx: 32768, tokens: { bos: null, eos: null, pad: null, decoderStart: null } },
  gemma: { theta: 10000, eps: 1e-6, ctx: 8192, tokens: { bos: 2, eos: 1, pad: 0, decoderStart: null } },
  mixtral: { theta: 1e6, eps: 1e-5, ctx: 131072, tokens: { bos: 1, eos: 2, pad: null, decoderStart: null } },
};

function llamaFrom(r: HfReader, family: LlamaFamily): DecoderConfig {
  const d = r.posInt('hidden_size');
  const def = LLAMA_DEFAULTS[family];
  const gemma = family === 'gemma';
  const eps = r.num('rms_norm_eps', def.eps);
  const norm: NormConfig = gemma ? { kind: 'rmsnorm', eps, unitOffset: true } : { kind: 'rmsnorm', eps };
  const attention = llamaAttention(r, family, d);
  return {
    arch: 'decoder',
    family,
    vocabSize: r.int('vocab_size'),
    hidden: d,
    maxContext: r.int('max_position_embeddings', def.ctx),
    positions: ropeFrom(r, attention.headDim, def.theta),
    embedScale: gemma ? 'sqrt-hidden' : 'none',
    embedNorm: null,
    headScale: 'none',
    tieEmbeddings: r.bool('tie_word_embeddings', gemma),
    dropout: noDropout(r.num('attention_dropout', 0)),
    initStd: r.num('initializer_range', 0.02),
    tokens: tokensFrom(r, def.tokens),
    vision: visionFrom(r),
    decoder: {
      layers: r.int('num_hidden_layers'),
      finalNorm: norm,
      block: { residual: 'pre', norm, attention, ffn: llamaFfn(r, family) },
    },
  };
}

/** transformers' names for Gemma's gate activations (`gelu_pytorch_tanh` is the tanh approximation) */
const GEMMA_ACT_TO_HF: { [A in Activation]: string } = { relu: 'relu', gelu: 'gelu', gelu_tanh: 'gelu_pytorch_tanh', silu: 'silu' };

function llamaTo(cfg: DecoderConfig): HfJson {
  const b = cfg.decoder.block;
  const att = b.attention as StandardAttention;
  const f = b.ffn;
  const family = cfg.family as LlamaFamily;
  const out: HfJson = {
    model_type: family,
    architectures: [{ llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM', qwen3_moe: 'Qwen3MoeForCausalLM', gemma: 'GemmaForCausalLM', mixtral: 'MixtralForCausalLM' }[family]],
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.hidden,
    intermediate_size: f.kind === 'moe' ? f.expertHidden : f.hidden,
    num_hidden_layers: cfg.decoder.layers,
    num_attention_heads: att.heads,
    num_key_value_heads: att.kvHeads,
    hidden_act: ACT_TO_HF[f.act],
    max_position_embeddings: cfg.maxContext,
    initializer_range: cfg.initStd,
    rms_norm_eps: b.norm.eps,
    tie_word_embeddings: cfg.tieEmbeddings,
    ...ropeTo(cfg.positions, att.headDim),
    attention_dropout: cfg.dropout.attention,
    ...tokensTo(cfg.tokens, false),
  };
  const qwen3 = family === 'qwen3' || family === 'qwen3_moe';
  if (att.headDim * att.heads !== cfg.hidden || qwen3 || family === 'gemma') out.head_dim = att.headDim;
  if (qwen3 || family === 'gemma') out.attention_bias = att.qkvBias;
  if (family === 'gemma') Object.assign(out, { hidden_act: 'gelu_pytorch_tanh', hidden_activation: GEMMA_ACT_TO_HF[f.act] });
  if (family === 'llama') Object.assign(out, { attention_bias: att.qkvBias, mlp_bias: f.kind !== 'moe' && f.bias });
  const w = att.window;
  if (family === 'mistral' || family === 'mixtral') out.sliding_window = w.kind === 'sliding' ? w.size : null;
  if (family === 'qwen2' || qwen3) {
    Object.assign(out, w.kind === 'sliding'
      ? { use_sliding_window: true, sliding_window: w.size, max_window_layers: w.firstFullLayers }
      : { use_sliding_window: false, sliding_window: null, max_window_layers: cfg.decoder.layers });
  }
  if (f.kind === 'moe' && family === 'qwen3_moe') {
    Object.assign(out, {
      intermediate_size: f.denseHidden, moe_intermediate_size: f.expertHidden, num_experts: f.experts, num_experts_per_tok: f.topK,
      norm_topk_prob: f.normTopK, decoder_sparse_step: 1, mlp_only_layers: [], router_aux_loss_coef: f.auxLossCoef,
    }, moeExtrasTo(f));
  } else if (f.kind === 'moe') {
    Object.assign(out, { num_local_experts: f.experts, num_experts_per_tok: f.topK, router_aux_loss_coef: f.auxLossCoef }, moeExtrasTo(f));
  }
  return { ...out, ...visionTo(cfg.vision) };
}

// ----------------------------------------------------------------------------------------------------
// Gemma 2, Phi-3 (Phi-4), MiniCPM: Llama-shaped decoders, each with its own additions.
//
// Gemma 2 (model_type "gemma2", modeling_gemma2.py): Gemma's (1 + w) RMSNorm, sqrt(D) embeddings, GeGLU and tied
// head, plus: a norm before AND after each sublayer ('sandwich': input_layernorm, post_attention_layernorm,
// pre_feedforward_layernorm, post_feedforward_layernorm); local sliding-window attention on even layers and
// global on odd ones (`sliding_window`); scores scaled by query_pre_attn_scalar^-0.5 and soft-capped
// (`attn_logit_softcapping`), logits soft-capped (`final_logit_softcapping`); null disables a cap.
//
// Phi-3 (model_type "phi3", modeling_phi3.py; Phi-4 uses it): Llama with the q|k|v and gate|up projections
// fused (`qkv_proj`, `gate_up_proj`, kept fused as parameters), no biases, optional partial rotary
// (`partial_rotary_factor`), optional sliding window on every layer, `embd_pdrop` / `resid_pdrop` dropouts.
// Its long-context "longrope" rope_scaling is not supported (rejected by name).
//
// MiniCPM (model_type "minicpm", openbmb's modeling_minicpm.py on the Hub): Llama with the µP scalars
// `scale_emb`, `scale_depth`, `dim_model_base` (see MupScalars) and a tied head by default.

function qpasFrom(r: HfReader, headDim: number): number | null {
  const qpas = r.num('query_pre_attn_scalar', 256);
  if (!(qpas > 0)) r.fail('query_pre_attn_scalar', `must be > 0, got ${qpas}`);
  return qpas === headDim ? null : 1 / Math.sqrt(qpas);
}

/** query_pre_attn_scalar of a scale (exact for the integers config.json files hold) */
function qpasTo(scale: number | null, headDim: number): number {
  if (scale === null) return headDim;
  const x = 1 / (scale * scale);
  return Math.abs(x - Math.round(x)) < 1e-9 * x ? Math.round(x) : x;
}

/** a positive soft-cap, or null = no cap */
function softcapFrom(r: HfReader, key: string, def: number): number | undefined {
  const v = r.numOrNull(key, def);
  if (v !== null && !(v > 0)) r.fail(key, `must be > 0 or null, got ${v}`);
  return v ?? undefined;
}

function gemma2From(r: HfReader): DecoderConfig {
  const d = r.posInt('hidden_size');
  const norm: NormConfig = { kind: 'rmsnorm', eps: r.num('rms_norm_eps', 1e-6), unitOffset: true };
  const heads = r.int('num_attention_heads');
  const kvHeads = r.int('num_key_value_heads', heads);
  const headDim = r.int('head_dim', 256);
  const bias = r.bool('attention_bias', false);
  const size = r.intOrNull('sliding_window', 4096);
  const attention: StandardAttention = {
    kind: kvHeads === heads ? 'mha' : kvHeads === 1 ? 'mqa' : 'gqa', heads, kvHeads, headDim, qkvBias: bias, outBias: bias,
    scale: qpasFrom(r, headDim),
    window: size === null ? { kind: 'full' } : { kind: 'sliding', size, firstFullLayers: 0, alternate: 'even' },
  };
  const attnCap = softcapFrom(r, 'attn_logit_softcapping', 50);
  if (attnCap !== undefined) attention.softcap = attnCap;
  const finalCap = softcapFrom(r, 'final_logit_softcapping', 30);
  const cfg: DecoderConfig = {
    arch: 'decoder', family: 'gemma2', vocabSize: r.int('vocab_size'), hidden: d,
    maxContext: r.int('max_position_embeddings', 8192), positions: ropeFrom(r, null, 10000),
    embedScale: 'sqrt-hidden', embedNorm: null, headScale: 'none', tieEmbeddings: r.bool('tie_word_embeddings', true),
    dropout: noDropout(r.num('attention_dropout', 0)), initStd: r.num('initializer_range', 0.02),
    tokens: tokensFrom(r, { bos: 2, eos: 1, pad: 0 }), vision: null,
    decoder: { layers: r.int('num_hidden_layers'), finalNorm: norm, block: { residual: 'sandwich', norm, attention, ffn: { kind: 'glu', act: gemmaAct(r), hidden: r.int('intermediate_size'), bias: false } } },
  };
  if (finalCap !== undefined) cfg.logitSoftcap = finalCap;
  return cfg;
}

function gemma2To(cfg: DecoderConfig): HfJson {
  const b = cfg.decoder.block;
  const att = b.attention as StandardAttention;
  const f = b.ffn;
  const w = att.window;
  return {
    model_type: 'gemma2', architectures: ['Gemma2ForCausalLM'], vocab_size: cfg.vocabSize, hidden_size: cfg.hidden,
    intermediate_size: f.kind === 'moe' ? f.expertHidden : f.hidden, num_hidden_layers: cfg.decoder.layers,
    num_attention_heads: att.heads, num_key_value_heads: att.kvHeads, head_dim: att.headDim,
    hidden_act: 'gelu_pytorch_tanh', hidden_activation: GEMMA_ACT_TO_HF[f.act], max_position_embeddings: cfg.maxContext,
    initializer_range: cfg.initStd, rms_norm_eps: b.norm.eps, tie_word_embeddings: cfg.tieEmbeddings,
    ...ropeTo(cfg.positions, att.headDim), attention_bias: att.qkvBias, attention_dropout: cfg.dropout.attention,
    query_pre_attn_scalar: qpasTo(att.scale, att.headDim), sliding_window: w.kind === 'sliding' ? w.size : null,
    attn_logit_softcapping: att.softcap ?? null, final_logit_softcapping: cfg.logitSoftcap ?? null,
    ...tokensTo(cfg.tokens, false),
  };
}

function phi3From(r: HfReader): DecoderConfig {
  const d = r.posInt('hidden_size');
  const norm: NormConfig = { kind: 'rmsnorm', eps: r.num('rms_norm_eps', 1e-5) };
  const heads = r.int('num_attention_heads');
  const kvHeads = r.int('num_key_value_heads', heads);
  const headDim = r.headDim(d, heads, 'num_attention_heads', 'hidden_size');
  const size = r.intOrNull('sliding_window', null);
  const attention: StandardAttention = {
    kind: kvHeads === heads ? 'mha' : kvHeads === 1 ? 'mqa' : 'gqa', heads, kvHeads, headDim, qkvBias: false, outBias: false,
    scale: null, window: size === null ? { kind: 'full' } : { kind: 'sliding', size, firstFullLayers: 0 },
  };
  if (r.objOrNull('rope_scaling') !== null) r.fail('rope_scaling', 'is not supported for phi3 (its "longrope" scaling); only null');
  const maxContext = r.int('max_position_embeddings', 4096);
  r.int('original_max_position_embeddings', maxContext); // longrope's base length: read so --set accepts it
  return {
    arch: 'decoder', family: 'phi3', vocabSize: r.int('vocab_size'), hidden: d, maxContext,
    positions: ropeFrom(r, headDim, 10000), embedScale: 'none', embedNorm: null, headScale: 'none',
    tieEmbeddings: r.bool('tie_word_embeddings', false),
    dropout: { embedding: r.num('embd_pdrop', 0), attention: r.num('attention_dropout', 0), residual: r.num('resid_pdrop', 0), activation: 0 },
    initStd: r.num('initializer_range', 0.02), tokens: tokensFrom(r, { bos: 1, eos: 32000, pad: 32000 }), vision: null,
    decoder: { layers: r.int('num_hidden_layers'), finalNorm: norm, block: { residual: 'pre', norm, attention, ffn: { kind: 'glu', act: gluAct(r, 'hidden_act', 'silu'), hidden: r.int('intermediate_size'), bias: false } } },
  };
}

function phi3To(cfg: DecoderConfig): HfJson {
  const b = cfg.decoder.block;
  const att = b.attention as StandardAttention;
  const f = b.ffn;
  return {
    model_type: 'phi3', architectures: ['Phi3ForCausalLM'], vocab_size: cfg.vocabSize, hidden_size: cfg.hidden,
    intermediate_size: f.kind === 'moe' ? f.expertHidden : f.hidden, num_hidden_layers: cfg.decoder.layers,
    num_attention_heads: att.heads, num_key_value_heads: att.kvHeads, hidden_act: ACT_TO_HF[f.act],
    max_position_embeddings: cfg.maxContext, original_max_position_embeddings: cfg.maxContext,
    initializer_range: cfg.initStd, rms_norm_eps: b.norm.eps, tie_word_embeddings: cfg.tieEmbeddings,
    ...ropeTo(cfg.positions, att.headDim), sliding_window: att.window.kind === 'sliding' ? att.window.size : null,
    embd_pdrop: cfg.dropout.embedding, resid_pdrop: cfg.dropout.residual, attention_dropout: cfg.dropout.attention,
    ...tokensTo(cfg.tokens, false),
  };
}

function minicpmFrom(r: HfReader): DecoderConfig {
  const cfg = llamaFrom(r, 'llama');
  cfg.family = 'minicpm';
  cfg.tieEmbeddings = r.bool('tie_word_embeddings', true);
  cfg.mup = { scaleEmb: r.num('scale_emb', 1), scaleDepth: r.num('scale_depth', 1), dimModelBase: r.num('dim_model_base', 1) };
  return cfg;
}

function minicpmTo(cfg: DecoderConfig): HfJson {
  const out = llamaTo({ ...cfg, family: 'llama' });
  const m = cfg.mup ?? { scaleEmb: 1, scaleDepth: 1, dimModelBase: 1 };
  return {
    ...out, model_type: 'minicpm', architectures: ['MiniCPMForCausalLM'],
    scale_emb: m.scaleEmb, scale_depth: m.scaleDepth, dim_model_base: m.dimModelBase,
  };
}

// ----------------------------------------------------------------------------------------------------
// DeepSeek-V2: multi-head latent attention + DeepSeekMoE

const deepseek: Codec<'deepseek_v2'> = {
  from(r) {
    const d = r.posInt('hidden_size');
    const norm: NormConfig = { kind: 'rmsnorm', eps: r.num('rms_norm_eps', 1e-6) };
    const heads = r.int('num_attention_heads');
    r.int('num_key_value_heads', heads); // MLA has no separate kv heads; read so overrides accept it
    r.require('attention_bias', false, false);
    const ropeDim = r.int('qk_rope_head_dim', 64);
    return {
      arch: 'decoder',
      family: 'deepseek_v2',
      vocabSize: r.int('vocab_size'),
      hidden: d,
      maxContext: r.int('max_position_embeddings', 2048),
      positions: ropeFrom(r, null, 10000), // MLA ropes only its qk_rope_head_dim part
      embedScale: 'none',
      embedNorm: null,
      headScale: 'none',
      tieEmbeddings: r.bool('tie_word_embeddings', false),
      dropout: noDropout(r.num('attention_dropout', 0)),
      initStd: r.num('initializer_range', 0.02),
      tokens: tokensFrom(r, { bos: 100000, eos: 100001, pad: null }),
      vision: visionFrom(r),
      decoder: {
        layers: r.int('num_hidden_layers'),
        finalNorm: norm,
        block: {
          residual: 'pre',
          norm,
          attention: {
            kind: 'mla',
            heads,
            qLoraRank: r.intOrNull('q_lora_rank', 1536),
            kvLoraRank: r.int('kv_lora_rank', 512),
            qkNopeHeadDim: r.int('qk_nope_head_dim', 128),
            qkRopeHeadDim: ropeDim,
            vHeadDim: r.int('v_head_dim', 128),
            window: { kind: 'full' },
          },
          ffn: deepseekFfn(r),
        },
      },
    };
  },
  to(cfg) {
    const b = cfg.decoder.block;
    const att = b.attention;
    const f = b.ffn;
    if (att.kind !== 'mla') throw new Error('toHFConfig(deepseek_v2): decoder.block.attention.kind must be "mla"');
    const out: HfJson = {
      model_type: 'deepseek_v2',
      architectures: ['DeepseekV2ForCausalLM'],
      vocab_size: cfg.vocabSize,
      hidden_size: cfg.hidden,
      intermediate_size: f.kind === 'moe' ? f.denseHidden : f.hidden,
      num_hidden_layers: cfg.decoder.layers,
      num_attention_heads: att.heads,
      num_key_value_heads: att.heads,
      q_lora_rank: att.qLoraRank,
      kv_lora_rank: att.kvLoraRank,
      qk_nope_head_dim: att.qkNopeHeadDim,
      qk_rope_head_dim: att.qkRopeHeadDim,
      v_head_dim: att.vHeadDim,
      hidden_act: ACT_TO_HF[f.act],
      max_position_embeddings: cfg.maxContext,
      initializer_range: cfg.initStd,
      rms_norm_eps: b.norm.eps,
      tie_word_embeddings: cfg.tieEmbeddings,
      ...ropeTo(cfg.positions, att.qkRopeHeadDim, 'type'),
      attention_bias: false,
      attention_dropout: cfg.dropout.attention,
      ...tokensTo(cfg.tokens, false),
      ...visionTo(cfg.vision),
    };
    if (f.kind !== 'moe') return { ...out, n_routed_experts: null, n_shared_experts: null };
    return {
      ...out,
      moe_intermediate_size: f.expertHidden,
      n_routed_experts: f.experts,
      n_shared_experts: f.sharedExperts === 0 ? null : f.sharedExperts,
      num_experts_per_tok: f.topK,
      first_k_dense_replace: f.denseLayers,
      moe_layer_freq: f.layerFreq,
      topk_method: f.routing.kind === 'greedy' ? 'greedy' : 'group_limited_greedy',
      n_group: f.routing.kind === 'greedy' ? 1 : f.routing.groups,
      topk_group: f.routing.kind === 'greedy' ? 1 : f.routing.topkGroups,
      norm_topk_prob: f.normTopK,
      routed_scaling_factor: f.routedScale,
      scoring_func: f.gating,
      aux_loss_alpha: f.auxLossCoef,
      ...moeExtrasTo(f),
    };
  },
};

function deepseekFfn(r: HfReader): FfnConfig {
  const act = gluAct(r, 'hidden_act', 'silu');
  const denseHidden = r.int('intermediate_size');
  const experts = r.intOrNull('n_routed_experts', null);
  const expertHidden = r.int('moe_intermediate_size', 1407);
  const shared = r.intOrNull('n_shared_experts', null) ?? 0;
  const method = r.oneOf('topk_method', ['greedy', 'group_limited_greedy', 'noaux_tc'] as const, 'greedy');
  const groups = r.intOrNull('n_group', null) ?? 1;
  const topkGroups = r.intOrNull('topk_group', null) ?? 1;
  // V3's noaux_tc always runs the group step; with one group it is plain top-k
  if (method === 'noaux_tc' && r.json.model_type !== 'deepseek_v3') r.fail('topk_method', '"noaux_tc" (the correction-bias router) belongs to model_type "deepseek_v3"');
  const grouped = method === 'group_limited_greedy' || (method === 'noaux_tc' && groups > 1);
  const rest = {
    topK: r.intOrNull('num_experts_per_tok', null) ?? 1,
    denseLayers: r.int('first_k_dense_replace', 0),
    layerFreq: r.int('moe_layer_freq', 1),
    normTopK: r.bool('norm_topk_prob', false),
    routedScale: r.num('routed_scaling_factor', 1),
    gating: r.oneOf('scoring_func', ['softmax', 'sigmoid'] as const, 'softmax'),
    auxLossCoef: r.num('aux_loss_alpha', 0.001),
    ...moeExtrasFrom(r),
  };
  if (experts === null) return { kind: 'glu', act, hidden: denseHidden, bias: false };
  return {
    kind: 'moe',
    experts,
    expert: 'glu',
    act,
    expertHidden,
    bias: false,
    routing: grouped ? { kind: 'group-limited', groups, topkGroups } : { kind: 'greedy' },
    sharedExperts: shared,
    sharedHidden: shared * expertHidden,
    denseHidden,
    ...rest,
  };
}

// ----------------------------------------------------------------------------------------------------
// DeepSeek-V3 (and Kimi K2, the same architecture): V2's MLA and DeepSeekMoE with sigmoid scores, the
// auxiliary-loss-free correction bias (`topk_method: "noaux_tc"`), group scores = sum of each group's two
// best biased scores, and `num_nextn_predict_layers` multi-token-prediction depths. Lineage extensions:
// `bias_update_speed` (the bias update rate u, default 0.001 as in the paper) and `mtp_loss_weight` (λ,
// default 0.3, the paper's value for its first 10T tokens).

const deepseekV3: Codec<'deepseek_v3'> = {
  from(r) {
    r.require('rope_interleave', true, true); // MLA rotates interleaved pairs, as V3's checkpoints expect
    r.require('scoring_func', 'sigmoid', 'sigmoid');
    r.require('topk_method', 'noaux_tc', 'noaux_tc');
    const base = deepseek.from(r);
    const depth = r.int('num_nextn_predict_layers', 0);
    const lossWeight = r.num('mtp_loss_weight', 0.3);
    return { ...base, family: 'deepseek_v3', mtp: depth > 0 ? { depth, lossWeight } : null, decoder: { ...base.decoder, block: { ...base.decoder.block, ffn: v3Ffn(r, base.decoder.block.ffn) } } };
  },
  to(cfg) {
    const f = cfg.decoder.block.ffn;
    if (f.kind === 'moe' && !f.correctionBias) throw new Error('toHFConfig(deepseek_v3): decoder.block.ffn.correctionBias must be set (V3 always has e_score_correction_bias)');
    const out = deepseek.to({ ...cfg, family: 'deepseek_v2' });
    const mtp = cfg.mtp ? { num_nextn_predict_layers: cfg.mtp.depth, mtp_loss_weight: cfg.mtp.lossWeight } : { num_nextn_predict_layers: 0 };
    const moe = f.kind === 'moe' ? { topk_method: 'noaux_tc', bias_update_speed: f.correctionBias!.updateRate } : {};
    return { ...out, model_type: 'deepseek_v3', architectures: ['DeepseekV3ForCausalLM'], rope_interleave: true, ...moe, ...mtp };
  },
};

/** V2's MoE reading with V3's router: sigmoid, correction bias, top-2-sum group scores */
function v3Ffn(r: HfReader, f: FfnConfig): FfnConfig {
  if (f.kind !== 'moe') return f;
  const routing: MoeRouting = f.routing.kind === 'group-limited' ? { ...f.routing, groupScore: 'top2-sum' } : f.routing;
  return { ...f, gating: 'sigmoid', routing, correctionBias: { updateRate: r.num('bias_update_speed', 0.001) } };
}

// ----------------------------------------------------------------------------------------------------
// Mamba

const mamba: Codec<'mamba'> = {
  from(r) {
    const d = r.posInt('hidden_size');
    const expand = r.int('expand', 2);
    const inner = r.intOrNull('intermediate_size', null);
    if (inner !== null && inner !== expand * d) r.fail('intermediate_size', `must equal expand * hidden_size (${expand * d}), got ${inner}`);
    const rank = r.json.time_step_rank === 'auto' || r.json.time_step_rank === undefined ? Math.ceil(d / 16) : r.int('time_step_rank');
    r.seen.add('time_step_rank');
    if (readAct(r, 'hidden_act', 'silu') !== 'silu') r.fail('hidden_act', 'must be "silu" for Mamba');
    return {
      arch: 'mamba',
      family: 'mamba',
      vocabSize: r.int('vocab_size'),
      hidden: d,
      layers: r.int('num_hidden_layers'),
      norm: { kind: 'rmsnorm', eps: r.num('layer_norm_epsilon', 1e-5) },
      residualInFp32: r.bool('residual_in_fp32', true),
      ssm: {
        dState: r.int('state_size', 16),
        dConv: r.int('conv_kernel', 4),
        expand,
        dtRank: rank,
        convBias: r.bool('use_conv_bias', true),
        projBias: r.bool('use_bias', false),
        dtMin: r.num('time_step_min', 0.001),
        dtMax: r.num('time_step_max', 0.1),
        dtInit: r.oneOf('time_step_init_scheme', ['random', 'constant'] as const, 'random'),
        dtScale: r.num('time_step_scale', 1),
        dtInitFloor: r.num('time_step_floor', 1e-4),
        ...(r.bool('rescale_prenorm_residual', false) ? { rescalePrenormResidual: true } : {}),
      },
      tieEmbeddings: r.bool('tie_word_embeddings', true),
      dropout: dropoutAll(0),
      initStd: r.num('initializer_range', 0.1),
      tokens: tokensFrom(r, { bos: 0, eos: 0, pad: 0 }),
    };
  },
  to(cfg) {
    const s = cfg.ssm;
    return {
      model_type: 'mamba',
      architectures: ['MambaForCausalLM'],
      vocab_size: cfg.vocabSize,
      hidden_size: cfg.hidden,
      intermediate_size: s.expand * cfg.hidden,
      state_size: s.dState,
      num_hidden_layers: cfg.layers,
      layer_norm_epsilon: cfg.norm.eps,
      expand: s.expand,
      conv_kernel: s.dConv,
      use_bias: s.projBias,
      use_conv_bias: s.convBias,
      hidden_act: 'silu',
      initializer_range: cfg.initStd,
      residual_in_fp32: cfg.residualInFp32,
      time_step_rank: s.dtRank,
      time_step_scale: s.dtScale,
      time_step_min: s.dtMin,
      time_step_max: s.dtMax,
      time_step_init_scheme: s.dtInit,
      time_step_floor: s.dtInitFloor,
      ...(s.rescalePrenormResidual ? { rescale_prenorm_residual: true } : {}),
      tie_word_embeddings: cfg.tieEmbeddings,
      ...tokensTo(cfg.tokens, false),
    };
  },
};

// ----------------------------------------------------------------------------------------------------
// lineage-rnn: torch.nn.RNN / LSTM / GRU language model

const rnn: Codec<'lineage-rnn'> = {
  from(r) {
    const hidden = r.int('hidden_size');
    return {
      arch: 'rnn',
      family: 'lineage-rnn',
      cell: r.oneOf('cell', ['rnn', 'lstm', 'gru'] as const),
      vocabSize: r.int('vocab_size'),
      embedSize: r.int('embedding_size', hidden),
      hidden,
      layers: r.int('num_hidden_layers'),
      tieEmbeddings: r.bool('tie_word_embeddings', false),
      dropout: dropoutAll(r.num('dropout', 0)),
      initStd: r.num('initializer_range', 0.02),
      tokens: tokensFrom(r, { bos: null, eos: null, pad: null }),
    };
  },
  to(cfg) {
    const out: HfJson = {
      model_type: 'lineage-rnn',
      cell: cfg.cell,
      vocab_size: cfg.vocabSize,
      embedding_size: cfg.embedSize,
      hidden_size: cfg.hidden,
      num_hidden_layers: cfg.layers,
      tie_word_embeddings: cfg.tieEmbeddings,
      dropout: cfg.dropout.residual,
    };
    if (cfg.initStd !== 0.02) out.initializer_range = cfg.initStd;
    for (const [k, v] of Object.entries(tokensTo(cfg.tokens, false))) if (v !== null) out[k] = v;
    return out;
  },
};

// ----------------------------------------------------------------------------------------------------
// The table (the compiler insists every family has a codec)

const decoderCodec = (from: (r: HfReader) => DecoderConfig, to: (c: DecoderConfig) => HfJson): Codec<DecoderFamily> => ({ from, to });

const CODECS: { [F in Family]: Codec<F> } = {
  gpt2: decoderCodec((r) => gptFrom(r, 'gpt2'), gptTo),
  gpt3: decoderCodec((r) => gptFrom(r, 'gpt3'), gptTo),
  'openai-gpt': decoderCodec((r) => gptFrom(r, 'openai-gpt'), gptTo),
  llama: decoderCodec((r) => llamaFrom(r, 'llama'), llamaTo),
  mistral: decoderCodec((r) => llamaFrom(r, 'mistral'), llamaTo),
  qwen2: decoderCodec((r) => llamaFrom(r, 'qwen2'), llamaTo),
  qwen3: decoderCodec((r) => llamaFrom(r, 'qwen3'), llamaTo),
  qwen3_moe: decoderCodec((r) => llamaFrom(r, 'qwen3_moe'), llamaTo),
  gemma: decoderCodec((r) => llamaFrom(r, 'gemma'), llamaTo),
  gemma2: decoderCodec(gemma2From, gemma2To),
  phi3: decoderCodec(phi3From, phi3To),
  minicpm: decoderCodec(minicpmFrom, minicpmTo),
  mixtral: decoderCodec((r) => llamaFrom(r, 'mixtral'), llamaTo),
  deepseek_v2: deepseek,
  deepseek_v3: deepseekV3,
  bert,
  roberta: robertaLike('roberta'),
  longformer: robertaLike('longformer'),
  big_bird: robertaLike('big_bird'),
  t5,
  bart: { from: (r) => bartLikeFrom(r, 'bart'), to: bartLikeTo },
  marian: { from: (r) => bartLikeFrom(r, 'marian'), to: bartLikeTo },
  mamba,
  'lineage-rnn': rnn,
};

/** Every model_type Lineage reads and writes. */
export const HF_MODEL_TYPES = Object.keys(CODECS) as Family[];

function codecFor(json: HfJson): { codec: Codec<Family>; modelType: Family } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('config.json must be a JSON object');
  const modelType = json.model_type;
  if (typeof modelType !== 'string') throw new Error(`config.json: field "model_type" must be a string, got ${JSON.stringify(modelType)}`);
  if (!(modelType in CODECS)) {
    throw new Error(`config.json: unsupported model_type ${JSON.stringify(modelType)} (supported: ${HF_MODEL_TYPES.join(', ')})`);
  }
  return { codec: CODECS[modelType as Family] as Codec<Family>, modelType: modelType as Family };
}

/** Reads a transformers config.json into a validated ModelConfig. */
export function fromHFConfig(json: HfJson): ModelConfig {
  const { codec, modelType } = codecFor(json);
  return validateConfig(codec.from(new HfReader(json, modelType)));
}

/** Writes the config.json transformers would write for this config; throws naming the field when the
 * model_type cannot express part of the config. */
export function toHFConfig(cfg: ModelConfig): HfJson {
  validateConfig(cfg);
  const codec = CODECS[cfg.family] as Codec<Family>;
  if (!codec) throw new Error(`toHFConfig: unknown family ${JSON.stringify(cfg.family)} (known: ${HF_MODEL_TYPES.join(', ')})`);
  const json = codec.to(cfg);
  const back = codec.from(new HfReader(json, cfg.family));
  const diff = firstDifference(cfg, back, '');
  if (diff !== null) {
    throw new Error(`toHFConfig: model_type "${cfg.family}" cannot express ${diff} of this config`);
  }
  return json;
}

/** The config.json field names a model_type understands (what `--set` accepts), given a config of it. */
export function hfFieldNames(json: HfJson): string[] {
  const { codec, modelType } = codecFor(json);
  const r = new HfReader(json, modelType);
  codec.from(r);
  return [...r.seen].sort();
}

/** Parses one `--set` value: JSON when it parses (numbers, booleans, null, objects, quoted strings),
 * else the raw text as a string. */
export function parseOverrideValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Applies `field=value` overrides by config.json names (the CLI's `--set`), returning a new object.
 * Unknown fields are an error listing the valid names for the model_type; the result must still parse. */
export function applyOverrides(json: HfJson, sets: readonly string[]): HfJson {
  const out: HfJson = { ...json };
  const names = new Set(hfFieldNames(json));
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new Error(`--set ${JSON.stringify(set)}: expected field=value`);
    const key = set.slice(0, eq).trim();
    if (!names.has(key) || key === 'model_type') {
      const valid = [...names].filter((n) => n !== 'model_type').join(', ');
      throw new Error(`--set ${key}: unknown field for model_type "${String(json.model_type)}" (valid: ${valid})`);
    }
    out[key] = parseOverrideValue(set.slice(eq + 1).trim());
  }
  const setKeys = new Set(sets.map((s) => s.slice(0, s.indexOf('=')).trim()));
  for (const rule of DERIVED) rederive(rule, json, out, setKeys);
  fromHFConfig(out); // fail now, naming the field, rather than when the model is built
  return out;
}

/**
 * A config.json field that transformers derives from others when the config is built. When the
 * original config holds the derived value (or lacks the field) and the user overrides a field it is
 * derived from, the derived field follows, as it would in transformers, unless the user sets it too.
 * A config whose field differs from the derivation (Gemma's head_dim 256) keeps its own value.
 */
interface DerivedField {
  types: readonly string[];
  field: string;
  from: readonly string[];
  /** the derived value, or undefined when the inputs do not give one (then validation reports them) */
  derive(json: HfJson): unknown;
}

const num = (v: unknown, def?: number): number | undefined => (typeof v === 'number' ? v : v === undefined ? def : undefined);
const intOrUndef = (x: number | undefined): number | undefined => (x !== undefined && Number.isInteger(x) && x > 0 ? x : undefined);
const ratio = (a: unknown, b: unknown) => {
  const [x, y] = [num(a), num(b)];
  return x !== undefined && y !== undefined && y > 0 ? intOrUndef(x / y) : undefined;
};

const DERIVED: readonly DerivedField[] = [
  // MambaConfig: intermediate_size = int(expand * hidden_size); time_step_rank "auto" = ceil(hidden_size / 16)
  { types: ['mamba'], field: 'intermediate_size', from: ['hidden_size', 'expand'],
    derive: (j) => intOrUndef((num(j.expand, 2) ?? NaN) * (num(j.hidden_size) ?? NaN)) },
  { types: ['mamba'], field: 'time_step_rank', from: ['hidden_size'],
    derive: (j) => intOrUndef(Math.ceil((num(j.hidden_size) ?? NaN) / 16)) },
  // LlamaConfig and its descendants: head_dim = hidden_size // num_attention_heads when not given
  { types: ['llama', 'mistral', 'qwen2', 'mixtral'], field: 'head_dim', from: ['hidden_size', 'num_attention_heads'],
    derive: (j) => ratio(j.hidden_size, j.num_attention_heads) },
  // GPT2Config: n_inner None = 4 * n_embd
  { types: ['gpt2'], field: 'n_inner', from: ['n_embd'], derive: (j) => intOrUndef(4 * (num(j.n_embd) ?? NaN)) },
  // Lineage shares one embedding: Marian's decoder vocabulary follows vocab_size
  { types: ['marian'], field: 'decoder_vocab_size', from: ['vocab_size'], derive: (j) => num(j.vocab_size) },
];

function rederive(rule: DerivedField, original: HfJson, out: HfJson, setKeys: ReadonlySet<string>): void {
  if (!rule.types.includes(String(out.model_type)) || setKeys.has(rule.field) || !(rule.field in out)) return;
  if (!rule.from.some((k) => setKeys.has(k))) return;
  // null ("derive when built", GPT-2's n_inner) already follows; a value unlike the derivation is independent
  const was = original[rule.field];
  if (was === null || was !== rule.derive(original)) return;
  const v = rule.derive(out);
  if (v !== undefined) out[rule.field] = v;
}

/** Dotted path of the first difference between two JSON values, or null when deep-equal. */
function firstDifference(a: unknown, b: unknown, path: string): string | null {
  if (a === b) return null;
  const here = path === '' ? '(root)' : path;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return `${here} (${JSON.stringify(a)} would read back as ${JSON.stringify(b)})`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const k of keys) {
    const d = firstDifference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], path === '' ? k : `${path}.${k}`);
    if (d !== null) return d;
  }
  return null;
}
