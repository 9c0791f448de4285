// Model arithmetic from the config alone (no weights are allocated, so a 47B model inspects instantly):
// parameter counts (total, active per token for MoE, by component), FLOPs per token, and the
// inference cache (KV cache, SSM state, RNN state) a context needs.
//
// Counting rules (they reproduce the published counts exactly, see test/models/inspect.test.ts):
// - every weight and bias tensor counts once; a tied output head adds nothing;
// - sinusoidal / ALiBi / RoPE positions and the causal mask are buffers, not parameters;
// - "active" parameters are those one token touches: all of them for dense models; MoE layers count
//   the router, the shared experts and `topK` routed experts. Embeddings and the head count in both.
// - DeepSeek-V3's multi-token-prediction depths (`mtp`) count in the total but not as active: next-token
//   inference does not run them. Their embedding and head are the main model's (counted once).
// FLOPs per token (forward): 2 x (active parameters that multiply activations: everything except the
// embedding lookups; a tied head still multiplies) + the context-dependent attention term: per layer,
// 2 x heads x (qk dim + v dim) x keys attended (the last token of a `context`-long sequence; windows cap
// the keys). Mamba adds ~6 x dInner x dState per layer for the scan. Training is 3 x forward.
// Encoder-decoders are counted per (source token + target token) pair with source length = context.

import {
  type AttentionConfig,
  type AttentionWindow,
  type FfnConfig,
  type MambaConfig,
  type ModelConfig,
  type NormConfig,
  type RnnConfig,
  type TransformerStack,
  encoderBuildsPooler,
  encoderHasLmHead,
  encoderTaskOutputs,
  ffnGroups,
  layerFfn,
  windowGroups,
  mambaInner,
  rnnGates,
  transformerStacks,
  validateConfig,
} from './config.js';

export type CacheDType = 'float32' | 'float16' | 'bfloat16' | 'int8';
export const CACHE_DTYPES: readonly CacheDType[] = ['float32', 'float16', 'bfloat16', 'int8'];
export const DTYPE_BYTES: { [D in CacheDType]: number } = { float32: 4, float16: 2, bfloat16: 2, int8: 1 };

/** Where parameters live, in reading order. `experts` are routed experts, `sharedExperts` DeepSeek's
 * always-on ones. */
export const COMPONENTS = [
  'embeddings', 'positions', 'vision', 'attention', 'ffn', 'router', 'experts', 'sharedExperts', 'ssm', 'rnn',
  'norms', 'pooler', 'head', 'mtp',
] as const;
export type Component = (typeof COMPONENTS)[number];

export type ComponentCounts = Partial<Record<Component, number>>;

export interface ParamCounts {
  params: number;
  activeParams: number;
  byComponent: ComponentCounts;
  activeByComponent: ComponentCounts;
  /** parameters read by an index rather than multiplied (token/type/position tables) */
  lookupParams: number;
}

export interface InspectReport extends ParamCounts {
  family: ModelConfig['family'];
  arch: ModelConfig['arch'];
  /** tokens of context the FLOPs and cache figures are for */
  context: number;
  dtype: CacheDType;
  flopsPerToken: { inference: number; training: number };
  /** cache growth per generated token (0 for Mamba / RNN, whose state is constant) */
  kvCacheBytesPerToken: number;
  /** inference cache for `context` tokens: KV (window-capped), or SSM/RNN state */
  kvCacheBytes: number;
  /** parameters x dtype bytes */
  weightBytes: number;
}

export interface InspectOptions {
  /** default: the config's maxContext (2048 for RNN / Mamba) */
  context?: number;
  /** element type of cache and weights; default bfloat16 */
  dtype?: CacheDType;
}

// ----------------------------------------------------------------------------------------------------
// Parameter counting

class Tally {
  readonly total: ComponentCounts = {};
  readonly active: ComponentCounts = {};
  lookup = 0;
  add(c: Component, n: number, active = n): void {
    if (n === 0 && active === 0) return;
    this.total[c] = (this.total[c] ?? 0) + n;
    this.active[c] = (this.active[c] ?? 0) + active;
  }
  addLookup(c: Component, n: number): void {
    this.add(c, n);
    this.lookup += n;
  }
}

const ordered = (c: ComponentCounts): ComponentCounts =>
  Object.fromEntries(COMPONENTS.filter((k) => k in c).map((k) => [k, c[k]]));

const sum = (c: ComponentCounts): number => Object.values(c).reduce((a, b) => a + b, 0);

const normParams = (n: NormConfig, d: number): number => (n.kind === 'layernorm' && n.bias ? 2 * d : d);

const linear = (inDim: number, outDim: number, bias: boolean): number => inDim * outDim + (bias ? outDim : 0);

/** q, k, v, o projections (plus MLA's latent norms). */
export function attentionParams(a: AttentionConfig, d: number, norm: NormConfig): number {
  if (a.kind === 'mla') {
    const qkHead = a.qkNopeHeadDim + a.qkRopeHeadDim;
    const q = a.qLoraRank === null
      ? linear(d, a.heads * qkHead, false)
      : linear(d, a.qLoraRank, false) + normParams(norm, a.qLoraRank) + linear(a.qLoraRank, a.heads * qkHead, false);
    const kvA = linear(d, a.kvLoraRank + a.qkRopeHeadDim, false) + normParams(norm, a.kvLoraRank);
    const kvB = linear(a.kvLoraRank, a.heads * (a.qkNopeHeadDim + a.vHeadDim), false);
    return q + kvA + kvB + linear(a.heads * a.vHeadDim, d, false);
  }
  const q = linear(d, a.heads * a.headDim, a.qkvBias);
  const kv = 2 * linear(d, a.kvHeads * a.headDim, a.qkvBias);
  const qkNorm = a.qkNorm ? 2 * normParams(norm, a.headDim) : 0; // Qwen3 q_norm + k_norm, shared by the heads
  return q + kv + linear(a.heads * a.headDim, d, a.outBias) + qkNorm;
}

/** One dense FFN (mlp: up, down; glu: gate, up, down). */
function denseFfnParams(kind: 'mlp' | 'glu', d: number, hidden: number, bias: boolean): number {
  const ins = kind === 'glu' ? 2 : 1;
  return ins * linear(d, hidden, bias) + linear(hidden, d, bias);
}

function addFfn(t: Tally, ffn: FfnConfig, d: number, layers: number): void {
  if (ffn.kind !== 'moe') {
    t.add('ffn', layers * denseFfnParams(ffn.kind, d, ffn.hidden, ffn.bias));
    return;
  }
  const expert = denseFfnParams(ffn.expert, d, ffn.expertHidden, ffn.bias);
  t.add('router', layers * (linear(d, ffn.experts, false) + (ffn.correctionBias ? ffn.experts : 0)));
  t.add('experts', layers * ffn.experts * expert, layers * ffn.topK * expert);
  if (ffn.sharedExperts > 0) t.add('sharedExperts', layers * denseFfnParams(ffn.expert, d, ffn.sharedHidden, ffn.bias));
}

function addStack(t: Tally, s: TransformerStack, d: number, cross: boolean): void {
  const b = s.block;
  const norms = (cross ? 3 : 2) + (b.residual === 'sandwich' ? 2 : 0); // sandwich: a post-norm after each sublayer too
  t.add('attention', s.layers * attentionParams(b.attention, d, b.norm) * (cross ? 2 : 1));
  t.add('norms', s.layers * norms * normParams(b.norm, d));
  for (const g of ffnGroups(b.ffn, s.layers)) addFfn(t, g.ffn, d, g.count);
  if (s.finalNorm) t.add('norms', normParams(s.finalNorm, d));
}

function addPositions(t: Tally, cfg: Extract<ModelConfig, { maxContext: number }>, heads: number): void {
  const p = cfg.positions;
  if (p.kind === 'learned') t.addLookup('positions', (cfg.maxContext + p.offset) * cfg.hidden);
  if (p.kind === 't5-relative') t.add('positions', p.buckets * heads);
}

function countTransformer(t: Tally, cfg: Extract<ModelConfig, { maxContext: number }>): void {
  const d = cfg.hidden;
  t.addLookup('embeddings', cfg.vocabSize * d);
  for (const { name, stack } of transformerStacks(cfg)) {
    addPositions(t, cfg, stack.block.attention.heads); // per stack: BART and T5 stacks own theirs
    if (cfg.embedNorm) t.add('norms', normParams(cfg.embedNorm, d));
    addStack(t, stack, d, cfg.arch === 'encoder-decoder' && name === 'decoder');
  }
  if (cfg.arch === 'encoder') {
    t.addLookup('embeddings', cfg.typeVocabSize * d);
    if (encoderBuildsPooler(cfg)) t.add('pooler', linear(d, d, true));
    if (cfg.family === 'longformer') t.add('attention', cfg.encoder.layers * 3 * linear(d, d, true)); // query/key/value_global
    if (encoderHasLmHead(cfg.head)) {
      // transform (dense + layernorm) and the decoder's bias; the decoder weight is tied or counted below
      t.add('head', linear(d, d, true) + normParams(cfg.encoder.block.norm, d) + cfg.vocabSize);
      if (!cfg.tieEmbeddings) t.add('head', cfg.vocabSize * d);
    }
    if (cfg.head === 'pretraining') t.add('head', linear(d, 2, true)); // next-sentence classifier
    const task = encoderTaskOutputs(cfg.head); // classifier / qa_outputs
    if (task > 0) t.add('head', linear(d, task, true));
    return;
  }
  if (cfg.arch === 'decoder' && cfg.vision) {
    const v = cfg.vision;
    const patches = (v.imageSize / v.patchSize) ** 2;
    t.add('vision', v.channels * v.patchSize * v.patchSize * d + d + patches * d);
  }
  if (!cfg.tieEmbeddings) t.add('head', cfg.vocabSize * d);
  if (cfg.arch === 'decoder' && cfg.mtp) t.add('mtp', cfg.mtp.depth * mtpDepthParams(cfg.decoder, d), 0);
}

/** One MTP depth: a transformer layer (MoE when the stack's MoE placement says so at its index) plus
 * enorm, hnorm, eh_proj (2D -> D) and shared_head.norm; the embedding and head are shared. */
function mtpDepthParams(s: TransformerStack, d: number): number {
  const b = s.block;
  const layer = new Tally();
  addFfn(layer, layerFfn(b.ffn, s.layers), d, 1);
  return attentionParams(b.attention, d, b.norm) + 5 * normParams(b.norm, d) + linear(2 * d, d, false) + sum(layer.total);
}

function countRnn(t: Tally, cfg: RnnConfig): void {
  const g = rnnGates(cfg.cell);
  const h = cfg.hidden;
  t.addLookup('embeddings', cfg.vocabSize * cfg.embedSize);
  const layer = (inDim: number): number => g * h * inDim + g * h * h + 2 * g * h; // weight_ih, weight_hh, bias_ih, bias_hh
  t.add('rnn', layer(cfg.embedSize) + (cfg.layers - 1) * layer(h)); // layer 0 reads the embedding
  if (!cfg.tieEmbeddings) t.add('head', cfg.vocabSize * h);
}

/** Parameters of one Mamba mixer (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj). */
export function mambaMixerParams(cfg: MambaConfig): number {
  const d = cfg.hidden;
  const s = cfg.ssm;
  const inner = mambaInner(cfg);
  return (
    linear(d, 2 * inner, s.projBias) +
    inner * s.dConv + (s.convBias ? inner : 0) +
    linear(inner, s.dtRank + 2 * s.dState, false) +
    linear(s.dtRank, inner, true) +
    inner * s.dState + inner +
    linear(inner, d, s.projBias)
  );
}

function countMamba(t: Tally, cfg: MambaConfig): void {
  t.addLookup('embeddings', cfg.vocabSize * cfg.hidden);
  t.add('ssm', cfg.layers * mambaMixerParams(cfg));
  t.add('norms', (cfg.layers + 1) * normParams(cfg.norm, cfg.hidden));
  if (!cfg.tieEmbeddings) t.add('head', cfg.vocabSize * cfg.hidden);
}

/** Total and active parameter counts by component. */
export function countParams(cfg: ModelConfig): ParamCounts {
  const t = new Tally();
  switch (cfg.arch) {
    case 'decoder':
    case 'encoder':
    case 'encoder-decoder':
      countTransformer(t, cfg);
      break;
    case 'rnn':
      countRnn(t, cfg);
      break;
    case 'mamba':
      countMamba(t, cfg);
      break;
    default:
      cfg satisfies never;
  }
  return {
    params: sum(t.total),
    activeParams: sum(t.active),
    byComponent: ordered(t.total),
    activeByComponent: ordered(t.active),
    lookupParams: t.lookup,
  };
}

// ----------------------------------------------------------------------------------------------------
// FLOPs

/** Keys a query attends to at position `context` under a window. */
function keysAttended(w: AttentionWindow, context: number): number {
  switch (w.kind) {
    case 'full':
      return context;
    case 'sliding':
    case 'dilated':
      return Math.min(context, w.size);
    case 'longformer':
      return Math.min(context, w.size + w.globalTokens);
    case 'bigbird':
      return Math.min(context, w.blockSize * (w.windowBlocks + w.globalBlocks + w.randomBlocks));
    default:
      return w satisfies never;
  }
}

/** qk and v widths summed over query heads. */
function attentionWidths(a: AttentionConfig): { qk: number; v: number } {
  if (a.kind === 'mla') return { qk: a.heads * (a.qkNopeHeadDim + a.qkRopeHeadDim), v: a.heads * a.vHeadDim };
  return { qk: a.heads * a.headDim, v: a.heads * a.headDim };
}

function stackAttentionFlops(s: TransformerStack, context: number, cross: boolean): number {
  const { qk, v } = attentionWidths(s.block.attention);
  let keys = 0; // keys attended, summed over layers
  for (const g of windowGroups(s.block.attention.window, s.layers)) keys += g.count * keysAttended(g.window, context);
  if (cross) keys += s.layers * context; // cross-attention sees the whole `context`-long source
  return 2 * (qk + v) * keys; // QK^T and AV
}

function contextFlops(cfg: ModelConfig, context: number): number {
  if (cfg.arch === 'mamba') return cfg.layers * 6 * mambaInner(cfg) * cfg.ssm.dState;
  if (cfg.arch === 'rnn') return 0;
  return transformerStacks(cfg).reduce(
    (f, { name, stack }) => f + stackAttentionFlops(stack, context, cfg.arch === 'encoder-decoder' && name === 'decoder'), 0);
}

/** A tied LM head still multiplies (V x D); BERT without its masked-LM head (bare model, task heads) has no
 * LM output. */
function tiedHeadParams(cfg: ModelConfig): number {
  if (!cfg.tieEmbeddings) return 0;
  if (cfg.arch === 'encoder' && !encoderHasLmHead(cfg.head)) return 0;
  return cfg.vocabSize * cfg.hidden; // RNN ties need embedSize === hidden
}

export function flopsPerToken(cfg: ModelConfig, counts: ParamCounts, context: number): { inference: number; training: number } {
  const matmul = counts.activeParams - counts.lookupParams + tiedHeadParams(cfg);
  const inference = 2 * matmul + contextFlops(cfg, context);
  return { inference, training: 3 * inference };
}

// ----------------------------------------------------------------------------------------------------
// Inference cache

/** Cached key/value elements per token for one layer. */
export function kvElementsPerToken(a: AttentionConfig): number {
  return a.kind === 'mla' ? a.kvLoraRank + a.qkRopeHeadDim : 2 * a.kvHeads * a.headDim;
}

/** Keys a layer must keep to serve a window at `context`. */
function keysKept(w: AttentionWindow, context: number): number {
  switch (w.kind) {
    case 'sliding':
      return Math.min(context, w.size);
    case 'dilated':
      return Math.min(context, w.size * w.dilation);
    case 'longformer':
      return Math.min(context, w.size + w.globalTokens);
    case 'full':
    case 'bigbird': // random blocks may point anywhere
      return context;
    default:
      return w satisfies never;
  }
}

function cacheFigures(cfg: ModelConfig, context: number, bytes: number): { perToken: number; total: number } {
  switch (cfg.arch) {
    case 'encoder':
      return { perToken: 0, total: 0 };
    case 'rnn': {
      const states = cfg.cell === 'lstm' ? 2 : 1; // LSTM carries (h, c)
      return { perToken: 0, total: cfg.layers * cfg.hidden * states * bytes };
    }
    case 'mamba': {
      const s = cfg.ssm;
      return { perToken: 0, total: cfg.layers * mambaInner(cfg) * (s.dState + s.dConv) * bytes };
    }
    case 'decoder':
    case 'encoder-decoder': {
      const s = cfg.decoder;
      const per = kvElementsPerToken(s.block.attention);
      let total = 0;
      for (const g of windowGroups(s.block.attention.window, s.layers)) total += g.count * per * keysKept(g.window, context);
      if (cfg.arch === 'encoder-decoder') total += s.layers * per * context; // cross-attention K/V of the source
      return { perToken: s.layers * per * bytes, total: total * bytes };
    }
    default:
      return cfg satisfies never;
  }
}

/** Default context: the trained maximum, or 2048 for recurrent models. */
export function defaultContext(cfg: ModelConfig): number {
  return 'maxContext' in cfg ? cfg.maxContext : 2048;
}

/** Everything `lineage inspect` prints. */
export function inspectConfig(cfg: ModelConfig, opts: InspectOptions = {}): InspectReport {
  validateConfig(cfg);
  const context = opts.context ?? defaultContext(cfg);
  const dtype = opts.dtype ?? 'bfloat16';
  if (!Number.isInteger(context) || context <= 0) throw new Error(`inspect: context must be a positive integer, got ${context}`);
  if (!(dtype in DTYPE_BYTES)) throw new Error(`inspect: dtype must be one of ${CACHE_DTYPES.join(', ')}, got ${JSON.stringify(dtype)}`);
  const counts = countParams(cfg);
  const bytes = DTYPE_BYTES[dtype];
  const cache = cacheFigures(cfg, context, bytes);
  return {
    family: cfg.family,
    arch: cfg.arch,
    ...counts,
    context,
    dtype,
    flopsPerToken: flopsPerToken(cfg, counts, context),
    kvCacheBytesPerToken: cache.perToken,
    kvCacheBytes: cache.total,
    weightBytes: counts.params * bytes,
  };
}

// ----------------------------------------------------------------------------------------------------
// Human-readable output

/** 1234567 → "1.23M" */
export function humanCount(n: number): string {
  const units: [number, string][] = [[1e12, 'T'], [1e9, 'B'], [1e6, 'M'], [1e3, 'K']];
  for (const [scale, unit] of units) if (Math.abs(n) >= scale) return `${(n / scale).toFixed(2)}${unit}`;
  return String(n);
}

/** 1536 → "1.50 KiB" */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(2)} ${units[i]}`;
}

const withCommas = (n: number): string => n.toLocaleString('en-US');

/** A plain-text table of a report; `extra` rows (label, value) go at the end. */
export function formatInspect(r: InspectReport, title: string, extra: readonly [string, string][] = []): string {
  const rows: [string, string][] = [
    ['model', `${title} (${r.family}, ${r.arch})`],
    ['parameters', `${withCommas(r.params)} (${humanCount(r.params)})`],
    ['active / token', `${withCommas(r.activeParams)} (${humanCount(r.activeParams)})`],
    [`weights (${r.dtype})`, humanBytes(r.weightBytes)],
  ];
  const mtp = r.byComponent.mtp ?? 0;
  if (mtp) rows.splice(2, 0, ['  without mtp', `${withCommas(r.params - mtp)} (${humanCount(r.params - mtp)})`]);
  for (const [c, n] of Object.entries(r.byComponent) as [Component, number][]) {
    const active = r.activeByComponent[c] ?? 0;
    const note = active !== n ? `, active ${withCommas(active)}` : '';
    rows.push([`  ${c}`, `${withCommas(n)} (${((100 * n) / r.params).toFixed(1)}%${note})`]);
  }
  rows.push(
    [`FLOPs / token @ ${r.context}`, `${humanCount(r.flopsPerToken.inference)} forward, ${humanCount(r.flopsPerToken.training)} training`],
    [`cache / token (${r.dtype})`, humanBytes(r.kvCacheBytesPerToken)],
    [`cache @ ${r.context} tokens`, humanBytes(r.kvCacheBytes)],
    ...extra,
  );
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
