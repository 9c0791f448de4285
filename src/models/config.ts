// The one model configuration type. Every architecture Lineage builds is described by a `ModelConfig`:
// plain JSON data (no classes, no functions, no `undefined`), so it can be saved next to a checkpoint,
// diffed, sent to a worker, or shown in the studio.
//
// Each block kind is a discriminated union (`kind` field), so a combination the code cannot build is a
// type error rather than a runtime surprise: an RNN has no attention field, MLA has no `kvHeads`, a
// learned position table cannot carry a RoPE base, a Mamba stack has no FFN. What the type checker
// cannot express (e.g. `heads % kvHeads === 0`) is checked by `validateConfig`, whose errors name the
// offending field by its path (`decoder.block.attention.kvHeads`).
//
// Absent values are `null`, never omitted, so `JSON.parse(JSON.stringify(cfg))` deep-equals `cfg`.
//
// Notation in comments: V vocabulary, D model width (`hidden`), L layers, nh query heads,
// nkv key/value heads, hs head size, F feed-forward width, E routed experts, N SSM state size.

// ----------------------------------------------------------------------------------------------------
// Blocks

// The block-level types live with the blocks that take them.
import type { NormConfig, RopeScaling, PositionConfig, AttentionWindow, StandardAttention, MlaAttention, AttentionConfig, Activation, GluActivation, MoeRouting, MoeFfn, FfnConfig, ResidualKind } from '../nn/config.js';
export type { CorrectionBias } from '../nn/config.js';
export type { NormConfig, RopeScaling, PositionConfig, AttentionWindow, StandardAttention, MlaAttention, AttentionConfig, Activation, GluActivation, MoeRouting, MoeFfn, FfnConfig, ResidualKind } from '../nn/config.js';

/** One transformer layer. Decoder layers of an encoder-decoder stack add cross-attention with the same
 * `attention` shape and norm. */
export interface TransformerBlock {
  residual: ResidualKind;
  norm: NormConfig;
  attention: AttentionConfig;
  ffn: FfnConfig;
}

/** A stack of identical layers (MoE layer placement is described by MoeFfn). */
export interface TransformerStack {
  layers: number;
  block: TransformerBlock;
  /** norm after the last layer (pre-norm stacks: Llama `norm`, GPT-2 `ln_f`); null for post-norm */
  finalNorm: NormConfig | null;
}

/** Dropout probabilities (0 = off). `activation` is inside the FFN, `residual` on block outputs. */
export interface DropoutConfig {
  embedding: number;
  attention: number;
  residual: number;
  activation: number;
}

/** Special token ids carried over from config.json (null when the family leaves them unset). */
export interface TokenIds {
  bos: number | null;
  eos: number | null;
  pad: number | null;
  /** first decoder input of encoder-decoder models */
  decoderStart: number | null;
}

/** ViT-style patch embedding for a tiny vision-language model: an image (channels, imageSize, imageSize)
 * is cut into (imageSize/patchSize)^2 patches, each projected to D by a conv with bias, plus a learned
 * position per patch; the patch vectors are prepended to the text tokens. */
export interface VisionConfig {
  imageSize: number;
  patchSize: number;
  channels: number;
}

// ----------------------------------------------------------------------------------------------------
// Architectures

/** Fields every architecture has. */
interface ModelBase {
  vocabSize: number;
  /** model width D */
  hidden: number;
  /** output head shares the token embedding matrix */
  tieEmbeddings: boolean;
  dropout: DropoutConfig;
  /** std of the normal initializer (transformers `initializer_range`) */
  initStd: number;
  tokens: TokenIds;
}

/** Token embeddings multiplied by sqrt(D) before positions are added (Vaswani, Marian, Gemma). */
export type EmbedScale = 'none' | 'sqrt-hidden';

/** Fields of every transformer architecture. */
interface TransformerBase extends ModelBase {
  /** longest sequence the position scheme was trained for */
  maxContext: number;
  positions: PositionConfig;
  embedScale: EmbedScale;
  /** norm applied to the embedding sum before the first layer (BERT, BART `layernorm_embedding`) */
  embedNorm: NormConfig | null;
  /** logits multiplied by 1/sqrt(D) before the tied head (T5 v1.0) */
  headScale: 'none' | 'rsqrt-hidden';
}

export type DecoderFamily = 'gpt2' | 'gpt3' | 'openai-gpt' | 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'qwen3_moe' | 'gemma' | 'gemma2' | 'phi3' | 'minicpm' | 'mixtral' | 'deepseek_v2' | 'deepseek_v3';

/**
 * MiniCPM's µP-style width/depth scalars (config.json `scale_emb`, `scale_depth`, `dim_model_base`): token
 * embeddings times `scaleEmb`; each residual branch (attention, FFN) times scaleDepth / sqrt(layers); the
 * final hidden state divided by hidden / dimModelBase before the head.
 */
export interface MupScalars {
  scaleEmb: number;
  scaleDepth: number;
  dimModelBase: number;
}

/** Causal language model (GPT, Llama, Mixtral, DeepSeek...). */
export interface DecoderConfig extends TransformerBase {
  arch: 'decoder';
  family: DecoderFamily;
  decoder: TransformerStack;
  vision: VisionConfig | null;
  /** DeepSeek-V3 multi-token prediction (absent or null: none; configs written before it still read) */
  mtp?: MtpConfig | null;
  /** tanh soft-cap of the output logits, cap * tanh(z / cap) (Gemma 2 `final_logit_softcapping`); absent = none */
  logitSoftcap?: number;
  /** MiniCPM's µP scalars; absent = none (every scale 1) */
  mup?: MupScalars;
}

/**
 * Multi-token prediction (DeepSeek-V3 §2.2): `depth` sequential modules after the main stack; module k
 * predicts token t+k+1 from module k-1's states (the main model's for k = 1) and the embedding of token t+k,
 * through one transformer block of the stack's kind, sharing the embedding and output head. Its loss, times
 * `lossWeight` (λ) averaged over the depths, joins the auxiliary loss while training.
 */
export interface MtpConfig {
  depth: number;
  lossWeight: number;
}

/** How a sequence classifier's loss reads its labels (transformers `problem_type`): MSE, cross-entropy, or
 * per-class binary cross-entropy. null: transformers' inference (1 label: regression; else by label dtype). */
export type ProblemType = 'regression' | 'single_label_classification' | 'multi_label_classification';

/**
 * BERT fine-tuning heads (transformers `BertFor*`), each with only the fields it uses.
 * - sequence-classification: pooler -> dropout -> `classifier` Linear(D, numLabels).
 * - token-classification: no pooler; per token dropout -> `classifier` Linear(D, numLabels).
 * - question-answering: no pooler; `qa_outputs` Linear(D, 2) = start | end logits (always 2 outputs, no
 *   dropout, so it has no fields).
 * `labels` are the class names by id (config.json `id2label`); null = transformers' defaults `LABEL_{i}`.
 * `dropout` is transformers' `classifier_dropout`; null = the hidden dropout (`dropout.residual`).
 */
export type EncoderTaskHead =
  | { kind: 'sequence-classification'; numLabels: number; labels: string[] | null; problemType: ProblemType | null; dropout: number | null }
  | { kind: 'token-classification'; numLabels: number; labels: string[] | null; dropout: number | null }
  | { kind: 'question-answering' };

/** BERT heads, exactly the transformers classes: backbone+pooler (BertModel), masked-LM head without pooler
 * (BertForMaskedLM), both plus next-sentence head (BertForPreTraining), or a fine-tuning head. */
export type EncoderHead = 'model' | 'masked-lm' | 'pretraining' | EncoderTaskHead;

/** The head's name: the string heads themselves, a task head's `kind`. */
export type EncoderHeadKind = Extract<EncoderHead, string> | EncoderTaskHead['kind'];

export const ENCODER_HEAD_KINDS: readonly EncoderHeadKind[] = [
  'model', 'masked-lm', 'pretraining', 'sequence-classification', 'token-classification', 'question-answering',
];

export function encoderHeadKind(head: EncoderHead): EncoderHeadKind {
  return typeof head === 'string' ? head : head.kind;
}

/** Whether a head runs the pooler (transformers builds BertModel with `add_pooling_layer`). */
export function encoderHasPooler(head: EncoderHead): boolean {
  const k = encoderHeadKind(head);
  return k === 'model' || k === 'pretraining' || k === 'sequence-classification';
}

/** Whether an encoder builds the pooler: BERT-style heads by `encoderHasPooler`; transformers' BigBirdForMaskedLM
 * keeps BigBirdModel's pooler (add_pooling_layer defaults to true there). */
export function encoderBuildsPooler(cfg: { family: EncoderFamily; head: EncoderHead }): boolean {
  return encoderHasPooler(cfg.head) || (cfg.family === 'big_bird' && cfg.head === 'masked-lm');
}

/** Whether a head predicts tokens through the masked-LM head (`cls.predictions`, tied to the embeddings). */
export function encoderHasLmHead(head: EncoderHead): boolean {
  return head === 'masked-lm' || head === 'pretraining';
}

/** Output width of a task head's Linear (`classifier` / `qa_outputs`); 0 for the other heads. */
export function encoderTaskOutputs(head: EncoderHead): number {
  if (typeof head === 'string') return 0;
  return head.kind === 'question-answering' ? 2 : head.numLabels;
}

/** Encoder families: BERT; RoBERTa (positions offset past the padding id, `lm_head`); Longformer (RoBERTa
 * plus sliding-window + global attention with its own global q/k/v); BigBird (BERT names, block-sparse). */
export type EncoderFamily = 'bert' | 'roberta' | 'longformer' | 'big_bird';

/** Bidirectional encoder (BERT). */
export interface EncoderConfig extends TransformerBase {
  arch: 'encoder';
  family: EncoderFamily;
  encoder: TransformerStack;
  /** segment ("token type") embedding rows */
  typeVocabSize: number;
  head: EncoderHead;
}

/** Sequence-to-sequence transformer (T5, BART, Marian / Vaswani 2017). Embeddings are shared by encoder and
 * decoder. */
export interface EncoderDecoderConfig extends TransformerBase {
  arch: 'encoder-decoder';
  family: 't5' | 'bart' | 'marian';
  encoder: TransformerStack;
  decoder: TransformerStack;
}

/** Recurrent LM: embedding (V, embedSize) → `layers` torch-style RNN/LSTM/GRU layers → head (V, hidden). */
export interface RnnConfig extends ModelBase {
  arch: 'rnn';
  family: 'lineage-rnn';
  cell: 'rnn' | 'lstm' | 'gru';
  embedSize: number;
  layers: number;
}

/** Mamba (S6) block parameters. dInner = expand * D. */
export interface SsmConfig {
  dState: number;
  dConv: number;
  expand: number;
  dtRank: number;
  convBias: boolean;
  /** bias on in_proj / out_proj */
  projBias: boolean;
  dtMin: number;
  dtMax: number;
  dtInit: 'random' | 'constant';
  dtScale: number;
  dtInitFloor: number;
  /** init only: out_proj divided by sqrt(layers) (transformers `rescale_prenorm_residual`; absent = false) */
  rescalePrenormResidual?: boolean;
}

/** Selective state-space LM: embedding → L × (norm → Mamba mixer, residual) → final norm → head. */
export interface MambaConfig extends ModelBase {
  arch: 'mamba';
  family: 'mamba';
  layers: number;
  ssm: SsmConfig;
  norm: NormConfig;
  residualInFp32: boolean;
}

export type ModelConfig = DecoderConfig | EncoderConfig | EncoderDecoderConfig | RnnConfig | MambaConfig;
export type Arch = ModelConfig['arch'];
export type Family = ModelConfig['family'];

/** The config type of a family (e.g. FamilyConfig<'t5'> is EncoderDecoderConfig). */
export type FamilyConfig<F extends Family> = F extends DecoderFamily
  ? DecoderConfig
  : F extends EncoderDecoderConfig['family']
    ? EncoderDecoderConfig
    : F extends EncoderConfig['family']
      ? EncoderConfig
      : F extends MambaConfig['family']
        ? MambaConfig
        : RnnConfig;

// ----------------------------------------------------------------------------------------------------
// Helpers shared by modules, inspect and the HF mapping

/** The transformer stacks of a config, named as in parameter paths; empty for RNN and Mamba. */
export function transformerStacks(cfg: ModelConfig): { name: 'encoder' | 'decoder'; stack: TransformerStack }[] {
  switch (cfg.arch) {
    case 'decoder':
      return [{ name: 'decoder', stack: cfg.decoder }];
    case 'encoder':
      return [{ name: 'encoder', stack: cfg.encoder }];
    case 'encoder-decoder':
      return [
        { name: 'encoder', stack: cfg.encoder },
        { name: 'decoder', stack: cfg.decoder },
      ];
    case 'rnn':
    case 'mamba':
      return [];
    default:
      return cfg satisfies never;
  }
}

/** FFN kind actually used by layer `layer` (MoE stacks keep some dense layers). */
export function layerFfn(ffn: FfnConfig, layer: number): FfnConfig {
  if (ffn.kind !== 'moe') return ffn;
  const dense = layer < ffn.denseLayers || (layer - ffn.denseLayers) % ffn.layerFreq !== 0;
  return dense ? denseFfnOf(ffn) : ffn;
}

/** The dense FFN that replaces experts in a MoE stack's dense layers. */
export function denseFfnOf(ffn: MoeFfn): FfnConfig {
  if (ffn.expert === 'mlp') return { kind: 'mlp', act: ffn.act, hidden: ffn.denseHidden, bias: ffn.bias };
  return { kind: 'glu', act: ffn.act as GluActivation, hidden: ffn.denseHidden, bias: ffn.bias }; // validateConfig: no relu GLU
}

/** Attention window used by layer `layer` (an alternating window resolves to plain sliding or full). */
export function layerWindow(window: AttentionWindow, layer: number): AttentionWindow {
  if (window.kind === 'sliding' && layer < window.firstFullLayers) return { kind: 'full' };
  if (window.kind === 'sliding' && window.alternate) {
    const slides = layer % 2 === (window.alternate === 'even' ? 0 : 1);
    return slides ? { kind: 'sliding', size: window.size, firstFullLayers: 0 } : { kind: 'full' };
  }
  return window;
}

/** Layers of a `layers`-deep stack grouped by the FFN they use (in O(1), whatever the depth). */
export function ffnGroups(ffn: FfnConfig, layers: number): { ffn: FfnConfig; count: number }[] {
  if (ffn.kind !== 'moe') return [{ ffn, count: layers }];
  const moe = layers > ffn.denseLayers ? Math.ceil((layers - ffn.denseLayers) / ffn.layerFreq) : 0;
  return [{ ffn: denseFfnOf(ffn), count: layers - moe }, { ffn: ffn as FfnConfig, count: moe }].filter((g) => g.count > 0);
}

/** Layers grouped by the attention window they use (in O(1), whatever the depth). */
export function windowGroups(window: AttentionWindow, layers: number): { window: AttentionWindow; count: number }[] {
  if (window.kind === 'sliding' && window.alternate) {
    const first = Math.min(window.firstFullLayers, layers);
    const below = (n: number) => (window.alternate === 'even' ? Math.ceil(n / 2) : Math.floor(n / 2)); // sliding indices < n
    const sliding = below(layers) - below(first);
    const local: AttentionWindow = { kind: 'sliding', size: window.size, firstFullLayers: 0 };
    return [{ window: { kind: 'full' } as AttentionWindow, count: layers - sliding }, { window: local, count: sliding }].filter((g) => g.count > 0);
  }
  const full = window.kind === 'sliding' ? Math.min(window.firstFullLayers, layers) : 0;
  return [{ window: { kind: 'full' } as AttentionWindow, count: full }, { window, count: layers - full }].filter((g) => g.count > 0);
}

/** Key/value heads of an attention (MLA expands its latent to one key/value per query head). */
export function attentionKvHeads(att: AttentionConfig): number {
  return att.kind === 'mla' ? att.heads : att.kvHeads;
}

/** SSM inner width. */
export function mambaInner(cfg: MambaConfig): number {
  return cfg.ssm.expand * cfg.hidden;
}

/** Gates per RNN cell, in torch order: LSTM (i, f, g, o), GRU (r, z, n). */
export function rnnGates(cell: RnnConfig['cell']): number {
  return { rnn: 1, lstm: 4, gru: 3 }[cell];
}

/** A dropout config with every probability `p`. */
export function dropoutAll(p: number): DropoutConfig {
  return { embedding: p, attention: p, residual: p, activation: p };
}

export const NO_TOKENS: TokenIds = { bos: null, eos: null, pad: null, decoderStart: null };

// ----------------------------------------------------------------------------------------------------
// Validation

/** A config problem, carrying the dotted path of the field at fault. */
export class ConfigError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`invalid model config: ${field}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Check = (field: string, ok: boolean, message: string) => void;

/** Throws a ConfigError naming the first invalid field; returns the config for chaining. Also rejects
 * values the type allows but no code can build (non-integer sizes, heads not dividing, ...). */
export function validateConfig<C extends ModelConfig>(cfg: C): C {
  const problems = configProblems(cfg);
  if (problems.length > 0) throw problems[0];
  return cfg;
}

/** Every problem found (empty when valid). */
export function configProblems(cfg: ModelConfig): ConfigError[] {
  const problems: ConfigError[] = [];
  const check: Check = (field, ok, message) => {
    if (!ok) problems.push(new ConfigError(field, message));
  };
  checkShape(cfg, check);
  if (problems.length > 0) return problems; // later checks read these objects
  checkBase(cfg, check);
  switch (cfg.arch) {
    case 'decoder':
    case 'encoder':
    case 'encoder-decoder':
      checkTransformer(cfg, check);
      break;
    case 'rnn':
      checkRnn(cfg, check);
      break;
    case 'mamba':
      checkMamba(cfg, check);
      break;
    default:
      cfg satisfies never;
      check('arch', false, `unknown arch ${JSON.stringify((cfg as { arch: unknown }).arch)}`);
  }
  return problems;
}

/** Families each architecture admits (the compiler keeps the table complete). */
export const ARCH_FAMILIES: { [A in Arch]: readonly Extract<ModelConfig, { arch: A }>['family'][] } = {
  decoder: ['gpt2', 'gpt3', 'openai-gpt', 'llama', 'mistral', 'qwen2', 'qwen3', 'qwen3_moe', 'gemma', 'gemma2', 'phi3', 'minicpm', 'mixtral', 'deepseek_v2', 'deepseek_v3'],
  encoder: ['bert', 'roberta', 'longformer', 'big_bird'],
  'encoder-decoder': ['t5', 'bart', 'marian'],
  rnn: ['lineage-rnn'],
  mamba: ['mamba'],
};

/** Nested objects each architecture must have; checked first so a config read from a hand-edited file
 * fails with a field name instead of a TypeError. */
const REQUIRED_OBJECTS: { [A in Arch]: readonly string[] } = {
  decoder: ['positions', ...stackObjects('decoder')],
  encoder: ['positions', ...stackObjects('encoder')],
  'encoder-decoder': ['positions', ...stackObjects('encoder'), ...stackObjects('decoder')],
  rnn: [],
  mamba: ['ssm', 'norm'],
};

function stackObjects(name: string): string[] {
  return [name, `${name}.block`, `${name}.block.norm`, `${name}.block.attention`, `${name}.block.attention.window`, `${name}.block.ffn`];
}

function checkShape(cfg: ModelConfig, check: Check): void {
  const isObject = (x: unknown): boolean => typeof x === 'object' && x !== null && !Array.isArray(x);
  if (!isObject(cfg)) return check('(root)', false, 'a model config must be an object');
  const arch = cfg.arch as Arch;
  if (!(arch in ARCH_FAMILIES)) return check('arch', false, `must be one of ${Object.keys(ARCH_FAMILIES).join(', ')}, got ${JSON.stringify(arch)}`);
  const families = ARCH_FAMILIES[arch] as readonly string[];
  check('family', families.includes(cfg.family), `arch '${arch}' admits ${families.join(', ')}, got ${JSON.stringify(cfg.family)}`);
  for (const path of ['dropout', 'tokens', ...REQUIRED_OBJECTS[arch]]) {
    const value = path.split('.').reduce<unknown>((o, k) => (isObject(o) ? (o as Record<string, unknown>)[k] : undefined), cfg);
    check(path, isObject(value), `must be an object, got ${JSON.stringify(value)}`);
  }
}

const positiveInt = (x: unknown): boolean => Number.isInteger(x) && (x as number) > 0;
const nonNegInt = (x: unknown): boolean => Number.isInteger(x) && (x as number) >= 0;
const prob = (x: unknown): boolean => typeof x === 'number' && x >= 0 && x < 1;
const positive = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

function checkBase(cfg: ModelConfig, check: Check): void {
  check('vocabSize', positiveInt(cfg.vocabSize), `must be a positive integer, got ${cfg.vocabSize}`);
  check('hidden', positiveInt(cfg.hidden), `must be a positive integer, got ${cfg.hidden}`);
  check('initStd', positive(cfg.initStd), `must be > 0, got ${cfg.initStd}`);
  for (const k of ['embedding', 'attention', 'residual', 'activation'] as const) {
    check(`dropout.${k}`, prob(cfg.dropout?.[k]), `must be in [0, 1), got ${cfg.dropout?.[k]}`);
  }
  for (const k of ['bos', 'eos', 'pad', 'decoderStart'] as const) {
    const id = cfg.tokens?.[k];
    check(`tokens.${k}`, id === null || (nonNegInt(id) && id < cfg.vocabSize), `must be null or in 0..vocabSize-1 (${cfg.vocabSize - 1}), got ${id}`);
  }
}

function checkTransformer(cfg: DecoderConfig | EncoderConfig | EncoderDecoderConfig, check: Check): void {
  check('maxContext', positiveInt(cfg.maxContext), `must be a positive integer, got ${cfg.maxContext}`);
  checkPositions(cfg.positions, check);
  if (cfg.embedNorm) checkNorm('embedNorm', cfg.embedNorm, check);
  for (const { name, stack } of transformerStacks(cfg)) checkStack(name, stack, cfg, check);
  if (cfg.arch === 'encoder') {
    check('typeVocabSize', nonNegInt(cfg.typeVocabSize), `must be a non-negative integer, got ${cfg.typeVocabSize}`);
    checkEncoderHead(cfg.head, check);
  }
  if (cfg.arch === 'decoder' && cfg.vision) checkVision(cfg.vision, check);
  if (cfg.arch === 'decoder' && cfg.mtp) {
    check('mtp.depth', positiveInt(cfg.mtp.depth), `must be a positive integer, got ${cfg.mtp.depth}`);
    check('mtp.lossWeight', cfg.mtp.lossWeight >= 0, `must be >= 0, got ${cfg.mtp.lossWeight}`);
  }
  if (cfg.arch === 'decoder') checkDecoderScalars(cfg, check);
  if (cfg.positions.kind === 't5-relative' && cfg.arch === 'decoder') {
    check('positions.bidirectional', !cfg.positions.bidirectional, 'a decoder-only stack cannot bucket future positions');
  }
}

const PROBLEM_TYPES: readonly ProblemType[] = ['regression', 'single_label_classification', 'multi_label_classification'];

function checkEncoderHead(head: EncoderHead, check: Check): void {
  if (typeof head === 'string' || typeof head !== 'object' || head === null) {
    const names = ENCODER_HEAD_KINDS.slice(0, 3).map((k) => `'${k}'`).join(', ');
    check('head', ['model', 'masked-lm', 'pretraining'].includes(head as string),
      `must be ${names} or a task head object, got ${JSON.stringify(head)}`);
    return;
  }
  switch (head.kind) {
    case 'sequence-classification':
    case 'token-classification':
      if (head.kind === 'sequence-classification') {
        check('head.problemType', head.problemType === null || PROBLEM_TYPES.includes(head.problemType),
          `must be null or one of ${PROBLEM_TYPES.join(', ')}, got ${JSON.stringify(head.problemType)}`);
      }
      check('head.numLabels', positiveInt(head.numLabels), `must be a positive integer, got ${head.numLabels}`);
      check('head.labels', head.labels === null || (Array.isArray(head.labels) && head.labels.length === head.numLabels &&
        head.labels.every((l) => typeof l === 'string')), `must be null or numLabels (${head.numLabels}) label names, got ${JSON.stringify(head.labels)}`);
      // config.json cannot tell explicit default names from none: one spelling keeps round trips exact
      check('head.labels', head.labels === null || !head.labels.every((l, i) => l === `LABEL_${i}`),
        'LABEL_0, LABEL_1, ... are the default names: write null');
      check('head.dropout', head.dropout === null || prob(head.dropout), `must be null or in [0, 1), got ${head.dropout}`);
      break;
    case 'question-answering':
      break;
    default:
      head satisfies never;
      check('head.kind', false, `must be one of ${ENCODER_HEAD_KINDS.slice(3).join(', ')}, got ${JSON.stringify((head as { kind: unknown }).kind)}`);
  }
}

function checkPositions(p: PositionConfig, check: Check): void {
  switch (p.kind) {
    case 'learned':
      check('positions.offset', nonNegInt(p.offset), `must be a non-negative integer, got ${p.offset}`);
      break;
    case 'rope':
      check('positions.theta', positive(p.theta), `must be > 0, got ${p.theta}`);
      check('positions.dim', p.dim === null || (positiveInt(p.dim) && p.dim % 2 === 0),
        `must be null or a positive even integer, got ${p.dim}`);
      if (p.scaling) checkRopeScaling(p.scaling, check);
      break;
    case 't5-relative':
      check('positions.buckets', positiveInt(p.buckets), `must be a positive integer, got ${p.buckets}`);
      check('positions.maxDistance', positiveInt(p.maxDistance), `must be a positive integer, got ${p.maxDistance}`);
      break;
    case 'sinusoidal':
    case 'alibi':
    case 'none':
      break;
    default:
      p satisfies never;
      check('positions.kind', false, `unknown kind ${JSON.stringify((p as { kind: unknown }).kind)}`);
  }
}

function checkRopeScaling(s: RopeScaling, check: Check): void {
  check('positions.scaling.factor', positive(s.factor), `must be > 0, got ${s.factor}`);
  if (s.kind === 'yarn' || s.kind === 'llama3') {
    check('positions.scaling.originalMax', positiveInt(s.originalMax), `must be a positive integer, got ${s.originalMax}`);
  }
  if (s.kind === 'llama3') {
    check('positions.scaling.highFreqFactor', s.highFreqFactor > s.lowFreqFactor,
      `must exceed lowFreqFactor (${s.lowFreqFactor}), got ${s.highFreqFactor}`);
  }
}

function checkNorm(field: string, n: NormConfig, check: Check): void {
  check(`${field}.kind`, n.kind === 'layernorm' || n.kind === 'rmsnorm', `unknown norm kind ${JSON.stringify(n.kind)}`);
  check(`${field}.eps`, positive(n.eps), `must be > 0, got ${n.eps}`);
}

function checkStack(name: string, s: TransformerStack, cfg: ModelConfig, check: Check): void {
  check(`${name}.layers`, positiveInt(s.layers), `must be a positive integer, got ${s.layers}`);
  const b = s.block;
  check(`${name}.block.residual`, ['pre', 'post', 'parallel', 'sandwich'].includes(b.residual),
    `must be 'pre', 'post', 'parallel' or 'sandwich', got ${JSON.stringify(b.residual)}`);
  checkNorm(`${name}.block.norm`, b.norm, check);
  if (s.finalNorm) checkNorm(`${name}.finalNorm`, s.finalNorm, check);
  check(`${name}.finalNorm`, b.residual === 'post' || s.finalNorm !== null,
    `a ${b.residual}-norm stack needs a final norm (its residual stream is never normalized otherwise)`);
  checkAttention(`${name}.block.attention`, b.attention, cfg, check);
  checkFfn(`${name}.block.ffn`, b.ffn, s.layers, check);
}

function checkAttention(field: string, a: AttentionConfig, cfg: ModelConfig, check: Check): void {
  check(`${field}.heads`, positiveInt(a.heads), `must be a positive integer, got ${a.heads}`);
  checkWindow(`${field}.window`, a.window, check);
  if (a.kind === 'mla') {
    check(`${field}.qLoraRank`, a.qLoraRank === null || positiveInt(a.qLoraRank), `must be null or a positive integer, got ${a.qLoraRank}`);
    for (const k of ['kvLoraRank', 'qkNopeHeadDim', 'qkRopeHeadDim', 'vHeadDim'] as const) {
      check(`${field}.${k}`, positiveInt(a[k]), `must be a positive integer, got ${a[k]}`);
    }
    check(`${field}.qkRopeHeadDim`, a.qkRopeHeadDim % 2 === 0, `must be even (rotary pairs), got ${a.qkRopeHeadDim}`);
    const rope = 'positions' in cfg && cfg.positions.kind === 'rope';
    check(`positions.kind`, rope, 'MLA carries a decoupled rotary key; positions must be rope');
    return;
  }
  check(`${field}.kind`, ['mha', 'gqa', 'mqa'].includes(a.kind), `unknown attention kind ${JSON.stringify(a.kind)}`);
  check(`${field}.headDim`, positiveInt(a.headDim), `must be a positive integer, got ${a.headDim}`);
  check(`${field}.kvHeads`, positiveInt(a.kvHeads) && a.heads % a.kvHeads === 0,
    `must divide heads (${a.heads}), got ${a.kvHeads}`);
  if (a.kind === 'mha') check(`${field}.kvHeads`, a.kvHeads === a.heads, `mha needs kvHeads === heads (${a.heads}), got ${a.kvHeads}`);
  if (a.kind === 'mqa') check(`${field}.kvHeads`, a.kvHeads === 1, `mqa needs kvHeads === 1, got ${a.kvHeads}`);
  check(`${field}.scale`, a.scale === null || positive(a.scale), `must be null or > 0, got ${a.scale}`);
  check(`${field}.qkNorm`, a.qkNorm === undefined || typeof a.qkNorm === 'boolean', `must be a boolean when present, got ${JSON.stringify(a.qkNorm)}`);
  check(`${field}.softcap`, a.softcap === undefined || positive(a.softcap), `must be > 0 when present, got ${a.softcap}`);
  if ('positions' in cfg && cfg.positions.kind === 'rope' && cfg.positions.dim !== null) {
    check('positions.dim', cfg.positions.dim <= a.headDim, `partial rotary dim must be <= headDim (${a.headDim}), got ${cfg.positions.dim}`);
  }
}

function checkWindow(field: string, w: AttentionWindow, check: Check): void {
  switch (w.kind) {
    case 'full':
      break;
    case 'sliding':
      check(`${field}.size`, positiveInt(w.size), `must be a positive integer, got ${w.size}`);
      check(`${field}.firstFullLayers`, nonNegInt(w.firstFullLayers), `must be a non-negative integer, got ${w.firstFullLayers}`);
      check(`${field}.alternate`, w.alternate === undefined || w.alternate === 'even' || w.alternate === 'odd', `must be 'even' or 'odd' when present, got ${JSON.stringify(w.alternate)}`);
      break;
    case 'dilated':
      check(`${field}.size`, positiveInt(w.size), `must be a positive integer, got ${w.size}`);
      check(`${field}.dilation`, positiveInt(w.dilation), `must be a positive integer, got ${w.dilation}`);
      break;
    case 'longformer':
      check(`${field}.size`, positiveInt(w.size), `must be a positive integer, got ${w.size}`);
      check(`${field}.globalTokens`, nonNegInt(w.globalTokens), `must be a non-negative integer, got ${w.globalTokens}`);
      break;
    case 'bigbird':
      for (const k of ['blockSize', 'windowBlocks'] as const) check(`${field}.${k}`, positiveInt(w[k]), `must be a positive integer, got ${w[k]}`);
      for (const k of ['globalBlocks', 'randomBlocks', 'seed'] as const) check(`${field}.${k}`, nonNegInt(w[k]), `must be a non-negative integer, got ${w[k]}`);
      break;
    default:
      w satisfies never;
      check(`${field}.kind`, false, `unknown window kind ${JSON.stringify((w as { kind: unknown }).kind)}`);
  }
}

function checkFfn(field: string, f: FfnConfig, layers: number, check: Check): void {
  const acts: Activation[] = ['relu', 'gelu', 'gelu_tanh', 'silu'];
  check(`${field}.act`, acts.includes(f.act), `must be one of ${acts.join(', ')}, got ${JSON.stringify(f.act)}`);
  if (f.kind === 'glu' || (f.kind === 'moe' && f.expert === 'glu')) check(`${field}.act`, f.act !== ('relu' as Activation), 'GLU needs a smooth gate (silu, gelu, gelu_tanh)');
  if (f.kind !== 'moe') {
    check(`${field}.hidden`, positiveInt(f.hidden), `must be a positive integer, got ${f.hidden}`);
    return;
  }
  check(`${field}.experts`, positiveInt(f.experts), `must be a positive integer, got ${f.experts}`);
  check(`${field}.topK`, positiveInt(f.topK) && f.topK <= f.experts, `must be in 1..experts (${f.experts}), got ${f.topK}`);
  check(`${field}.expertHidden`, positiveInt(f.expertHidden), `must be a positive integer, got ${f.expertHidden}`);
  check(`${field}.sharedExperts`, nonNegInt(f.sharedExperts), `must be a non-negative integer, got ${f.sharedExperts}`);
  check(`${field}.sharedHidden`, nonNegInt(f.sharedHidden) && (f.sharedExperts === 0) === (f.sharedHidden === 0),
    `must be > 0 exactly when sharedExperts > 0, got ${f.sharedHidden}`);
  check(`${field}.capacityFactor`, f.capacityFactor === null || positive(f.capacityFactor), `must be null or > 0, got ${f.capacityFactor}`);
  check(`${field}.denseLayers`, nonNegInt(f.denseLayers) && f.denseLayers < layers, `must be in 0..layers-1 (${layers - 1}), got ${f.denseLayers}`);
  check(`${field}.layerFreq`, positiveInt(f.layerFreq), `must be a positive integer, got ${f.layerFreq}`);
  check(`${field}.denseHidden`, f.denseLayers === 0 && f.layerFreq === 1 ? nonNegInt(f.denseHidden) : positiveInt(f.denseHidden),
    `must be a positive integer when some layers are dense, got ${f.denseHidden}`);
  check(`${field}.routedScale`, positive(f.routedScale), `must be > 0, got ${f.routedScale}`);
  check(`${field}.auxLossCoef`, f.auxLossCoef >= 0, `must be >= 0, got ${f.auxLossCoef}`);
  check(`${field}.zLossCoef`, f.zLossCoef >= 0, `must be >= 0, got ${f.zLossCoef}`);
  if (f.routing.kind === 'group-limited') {
    const r = f.routing;
    check(`${field}.routing.groups`, positiveInt(r.groups) && f.experts % r.groups === 0, `must divide experts (${f.experts}), got ${r.groups}`);
    check(`${field}.routing.topkGroups`, positiveInt(r.topkGroups) && r.topkGroups <= r.groups, `must be in 1..groups (${r.groups}), got ${r.topkGroups}`);
    if (r.groupScore === 'top2-sum') check(`${field}.routing.groupScore`, f.experts / r.groups >= 2, `'top2-sum' needs >= 2 experts per group, got ${f.experts / r.groups}`);
  }
  if (f.correctionBias) {
    check(`${field}.correctionBias.updateRate`, f.correctionBias.updateRate >= 0, `must be >= 0, got ${f.correctionBias.updateRate}`);
    check(`${field}.gating`, f.gating === 'sigmoid', `the correction bias needs sigmoid gating (DeepSeek-V3), got ${JSON.stringify(f.gating)}`);
  }
}

function checkDecoderScalars(cfg: DecoderConfig, check: Check): void {
  check('logitSoftcap', cfg.logitSoftcap === undefined || positive(cfg.logitSoftcap), `must be > 0 when present, got ${cfg.logitSoftcap}`);
  if (cfg.mup === undefined) return;
  for (const k of ['scaleEmb', 'scaleDepth', 'dimModelBase'] as const) check(`mup.${k}`, positive(cfg.mup?.[k]), `must be > 0, got ${cfg.mup?.[k]}`);
}

function checkVision(v: VisionConfig, check: Check): void {
  for (const k of ['imageSize', 'patchSize', 'channels'] as const) check(`vision.${k}`, positiveInt(v[k]), `must be a positive integer, got ${v[k]}`);
  check('vision.patchSize', v.imageSize % v.patchSize === 0, `must divide imageSize (${v.imageSize}), got ${v.patchSize}`);
}

function checkRnn(cfg: RnnConfig, check: Check): void {
  check('cell', ['rnn', 'lstm', 'gru'].includes(cfg.cell), `must be 'rnn', 'lstm' or 'gru', got ${JSON.stringify(cfg.cell)}`);
  check('embedSize', positiveInt(cfg.embedSize), `must be a positive integer, got ${cfg.embedSize}`);
  check('layers', positiveInt(cfg.layers), `must be a positive integer, got ${cfg.layers}`);
  check('tieEmbeddings', !cfg.tieEmbeddings || cfg.embedSize === cfg.hidden,
    `tied embeddings need embedSize === hidden, got ${cfg.embedSize} and ${cfg.hidden}`);
}

function checkMamba(cfg: MambaConfig, check: Check): void {
  check('layers', positiveInt(cfg.layers), `must be a positive integer, got ${cfg.layers}`);
  checkNorm('norm', cfg.norm, check);
  for (const k of ['dState', 'dConv', 'expand', 'dtRank'] as const) {
    check(`ssm.${k}`, positiveInt(cfg.ssm[k]), `must be a positive integer, got ${cfg.ssm[k]}`);
  }
  check('ssm.dtMin', positive(cfg.ssm.dtMin) && cfg.ssm.dtMin <= cfg.ssm.dtMax, `must be in (0, dtMax], got ${cfg.ssm.dtMin}`);
}
