// Decoder-only language models (GPT-1, GPT-2, Llama, Mistral, Qwen2, Gemma 2, Phi-3, MiniCPM, Mixtral,
// DeepSeek-V2): ONE class
// driven by the config. What differs per family is only (a) the checkpoint names, a small table below,
// and (b) how a family's own code reads two config fields (`familyRules`). The module tree uses transformers'
// attribute names, so `namedParameters()` yields exactly the keys of the family's model.safetensors.
//
// Notation: B batch, T new tokens, D width, V vocabulary, L layers.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { noGrad } from '../tensor/engine.js';
import { add, arange, concat, crossEntropy, dropout, embedding, indexSelect, indexTensor, linear, mul, slice, stack, tanh, tensor } from '../ops/index.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding, Linear } from '../nn/layers.js';
import { makeNorm, type Norm } from '../nn/norm.js';
import { Attention, GPT_ATTENTION_NAMES, LLAMA_ATTENTION_NAMES, PHI3_ATTENTION_NAMES, type AttentionContext, type AttentionNames } from '../nn/attention.js';
import { MultiHeadLatentAttention } from '../nn/mla.js';
import { GPT_MLP_NAMES, Glu, LLAMA_GLU_NAMES, PHI3_GLU_NAMES, Mlp, type DenseFfn, type GluNames, type MlpNames } from '../nn/ffn.js';
import { DEEPSEEK_MOE_NAMES, MIXTRAL_MOE_NAMES, MoE, loadBalancingLoss, routerZLoss, sequenceBalanceLoss, type MoeNames } from '../nn/moe.js';
import { TransformerLayer, type AttentionLike, type BlockNames } from '../nn/block.js';
import { MtpLayer } from '../nn/mtp.js';
import { KVCache } from '../nn/cache.js';
import { PatchEmbedding, prependImageTokens } from '../nn/vision.js';
import { checkpoint } from '../autograd/checkpoint.js';
import { alibiBias, ropeTables, ropeTablesAt, sinusoidalTable, yarnMscale, type RopeSpec, type RopeTables } from '../nn/positions.js';
import { type Activation, type DecoderConfig, type DecoderFamily, type FfnConfig, type MoeFfn, layerFfn, layerWindow } from './config.js';
import type { Cache, CacheOptions, CreateOptions, LanguageModel, ModelInputs, ModelOutputs, PagedBatch } from './model.js';

// ---- per-family checkpoint names ----

interface DecoderNaming extends BlockNames {
  /** the backbone module: `transformer` (GPT) or `model` (Llama and descendants) */
  root: string;
  embed: string;
  positions: string;
  layers: string;
  finalNorm: string;
  attnNames: AttentionNames;
  mlp: MlpNames;
  moe: MoeNames;
  /** GLU names (default Llama's gate_proj / up_proj / down_proj) */
  glu?: GluNames;
}

const GPT2: DecoderNaming = {
  root: 'transformer', embed: 'wte', positions: 'wpe', layers: 'h', finalNorm: 'ln_f',
  norm1: 'ln_1', attn: 'attn', norm2: 'ln_2', ffn: 'mlp', attnNames: GPT_ATTENTION_NAMES, mlp: GPT_MLP_NAMES, moe: MIXTRAL_MOE_NAMES,
};
const LLAMA: DecoderNaming = {
  root: 'model', embed: 'embed_tokens', positions: 'embed_positions', layers: 'layers', finalNorm: 'norm',
  norm1: 'input_layernorm', attn: 'self_attn', norm2: 'post_attention_layernorm', ffn: 'mlp',
  attnNames: LLAMA_ATTENTION_NAMES, mlp: { up: 'up_proj', down: 'down_proj' }, moe: DEEPSEEK_MOE_NAMES,
};

/** Gemma 2: a norm before and after each sublayer; `post_attention_layernorm` is the norm AFTER attention */
const GEMMA2: DecoderNaming = {
  ...LLAMA, norm2: 'pre_feedforward_layernorm', postNorm1: 'post_attention_layernorm', postNorm2: 'post_feedforward_layernorm',
};
/** Phi-3 keeps transformers' fused projections as single parameters (`qkv_proj`, `gate_up_proj`), so the module
 * tree is the checkpoint's and loading / saving need no re-packing */
const PHI3: DecoderNaming = { ...LLAMA, attnNames: PHI3_ATTENTION_NAMES, glu: PHI3_GLU_NAMES };

const NAMING: { [F in DecoderFamily]: DecoderNaming } = {
  gpt2: GPT2,
  gpt3: GPT2, // GPT-3 is GPT-2's layout (alternating banded layers change only the mask)
  'openai-gpt': { ...GPT2, embed: 'tokens_embed', positions: 'positions_embed' },
  llama: LLAMA,
  mistral: LLAMA,
  qwen2: LLAMA,
  qwen3: LLAMA,
  qwen3_moe: LLAMA, // mlp.gate + mlp.experts.{e}.gate_proj / up_proj / down_proj, as DeepSeek
  gemma: LLAMA,
  gemma2: GEMMA2,
  phi3: PHI3,
  minicpm: LLAMA,
  mixtral: { ...LLAMA, ffn: 'block_sparse_moe', moe: MIXTRAL_MOE_NAMES },
  deepseek_v2: LLAMA,
  deepseek_v3: LLAMA, // + model.layers.{L+k}.{enorm, hnorm, eh_proj, shared_head.norm} for MTP depth k
};

/**
 * OpenAI GPT reads its `afn` through its own ACT_FNS table, where "gelu" means the tanh approximation
 * (gelu_new); other families' "gelu" is the exact erf form.
 *
 * DeepSeek-V2's reference code (what its checkpoints were trained with) differs from the generic rules:
 * with norm_topk_prob and k > 1 the renormalised weights are NOT multiplied by routed_scaling_factor, and
 * the softmax scale is multiplied by mscale(factor, mscale_all_dim)²; its balance loss is per sequence
 * and layer (seq_aux). (Its interleaved rotary pairs are
 * MLA's own layout.)
 */
interface FamilyRules {
  act: (a: Activation) => Activation;
  moe: (f: MoeFfn) => MoeFfn;
  softmaxMscale: number;
  /** balance loss per sequence and layer (DeepSeek seq_aux) instead of Switch's over all tokens */
  sequenceAux: boolean;
}
const GENERIC: FamilyRules = { act: (a) => a, moe: (f) => f, softmaxMscale: 1, sequenceAux: false };

function familyRules(cfg: DecoderConfig): FamilyRules {
  if (cfg.family === 'openai-gpt') return { ...GENERIC, act: (a) => (a === 'gelu' ? 'gelu_tanh' : a) };
  if (cfg.family !== 'deepseek_v2' && cfg.family !== 'deepseek_v3') return GENERIC;
  const s = cfg.positions.kind === 'rope' ? cfg.positions.scaling : null;
  const m = s?.kind === 'yarn' && s.mscaleAllDim ? yarnMscale(s.factor, s.mscaleAllDim) : 1;
  // transformers' DeepSeek-V3 port keeps the reference's mscale² but always applies routed_scaling_factor
  if (cfg.family === 'deepseek_v3') return { ...GENERIC, softmaxMscale: m * m, sequenceAux: true };
  return { ...GENERIC, moe: (f) => (f.normTopK && f.topK > 1 ? { ...f, routedScale: 1 } : f), softmaxMscale: m * m, sequenceAux: true };
}

// ---- building blocks from the config ----

function buildAttention(cfg: DecoderConfig, names: DecoderNaming, rng: Rng): AttentionLike {
  const a = cfg.decoder.block.attention;
  const rules = familyRules(cfg);
  if (a.kind === 'mla') {
    const scale = (a.qkNopeHeadDim + a.qkRopeHeadDim) ** -0.5 * rules.softmaxMscale;
    const latentNorm = cfg.decoder.block.norm.kind === 'rmsnorm' ? { kind: 'rmsnorm' as const, eps: 1e-6 } : cfg.decoder.block.norm;
    return new MultiHeadLatentAttention({ dim: cfg.hidden, att: a, latentNorm, scale, dropout: cfg.dropout.attention, std: cfg.initStd, rng });
  }
  return new Attention({
    dim: cfg.hidden, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, qkvBias: a.qkvBias, outBias: a.outBias,
    scale: a.scale, names: names.attnNames, dropout: cfg.dropout.attention, std: cfg.initStd, rng,
    qkNorm: a.qkNorm ? cfg.decoder.block.norm : null, softcap: a.softcap ?? null,
  });
}

function buildFfn(cfg: DecoderConfig, names: DecoderNaming, layer: number, rng: Rng): DenseFfn | MoE {
  const f: FfnConfig = layerFfn(cfg.decoder.block.ffn, layer);
  const rules = familyRules(cfg);
  const o = { bias: f.bias, std: cfg.initStd, rng, actDropout: cfg.dropout.activation };
  switch (f.kind) {
    case 'mlp':
      return new Mlp(cfg.hidden, f.hidden, rules.act(f.act), names.mlp, o);
    case 'glu':
      return new Glu(cfg.hidden, f.hidden, f.act, names.glu ?? LLAMA_GLU_NAMES, o);
    case 'moe':
      return new MoE(cfg.hidden, rules.moe(f), names.moe, o);
    default:
      return f satisfies never;
  }
}

function buildLayer(cfg: DecoderConfig, names: DecoderNaming, layer: number, rng: Rng): TransformerLayer {
  const b = cfg.decoder.block;
  const parts = { norm1: makeNorm(cfg.hidden, b.norm), attn: buildAttention(cfg, names, rng), norm2: makeNorm(cfg.hidden, b.norm), ffn: buildFfn(cfg, names, layer, rng) };
  if (layer >= cfg.decoder.layers) {
    return new MtpLayer(b.residual, names, parts, { dim: cfg.hidden, norm: b.norm, std: cfg.initStd, rng, residualDropout: cfg.dropout.residual });
  }
  const sandwich = b.residual === 'sandwich' ? { postNorm1: makeNorm(cfg.hidden, b.norm), postNorm2: makeNorm(cfg.hidden, b.norm) } : {};
  // MiniCPM: every residual branch times scale_depth / sqrt(num_hidden_layers)
  const branchScale = cfg.mup ? cfg.mup.scaleDepth / Math.sqrt(cfg.decoder.layers) : 1;
  return new TransformerLayer(b.residual, names, { ...parts, ...sandwich }, cfg.dropout.residual, { branchScale });
}

/** final hidden state [B, T, D] -> logits [B, T, V]: MiniCPM's width scaling before the head, T5's 1/sqrt(D)
 * before a tied head, Gemma 2's final soft-cap cap * tanh(z / cap) after it */
function headLogits(c: DecoderConfig, x: Tensor, lmHead: Linear | null, embed: Tensor): Tensor {
  if (c.mup) x = mul(x, c.mup.dimModelBase / c.hidden);
  const logits = lmHead ? lmHead.forward(x) : linear(c.headScale === 'rsqrt-hidden' ? mul(x, c.hidden ** -0.5) : x, embed);
  return c.logitSoftcap ? mul(tanh(mul(logits, 1 / c.logitSoftcap)), c.logitSoftcap) : logits;
}

/** token embeddings [B, T] -> [B, T, D] times the family's embedding scale (sqrt(D), MiniCPM's scale_emb) */
function scaledEmbedding(c: DecoderConfig, embed: Embedding, ids: Tensor): Tensor {
  const x = embed.forward(ids); // (B, T, D)
  if (c.embedScale === 'sqrt-hidden') return mul(x, Math.sqrt(c.hidden));
  return c.mup ? mul(x, c.mup.scaleEmb) : x;
}

/** The backbone (`transformer` / `model`): embeddings, layers, final norm. */
class DecoderStack extends Module {
  readonly embed: Embedding;
  readonly positions: Embedding | null;
  /** ViT patch embedding of a tiny vision-language decoder (`<root>.vision_embeddings.*`) */
  readonly vision: PatchEmbedding | null;
  readonly layers: ModuleList<TransformerLayer>;
  readonly finalNorm: Norm | null;

  constructor(cfg: DecoderConfig, names: DecoderNaming, rng: Rng) {
    super();
    this.embed = this.child(names.embed, new Embedding(cfg.vocabSize, cfg.hidden, { std: cfg.initStd, rng }));
    const v = cfg.vision;
    this.vision = v ? this.child('vision_embeddings', new PatchEmbedding({ imageSize: v.imageSize, patchSize: v.patchSize, channels: v.channels, hidden: cfg.hidden, std: cfg.initStd, rng })) : null;
    const p = cfg.positions;
    this.positions = p.kind === 'learned' ? this.child(names.positions, new Embedding(cfg.maxContext + p.offset, cfg.hidden, { std: cfg.initStd, rng })) : null;
    // MTP depths follow the main layers in the same list, as the V3 checkpoint numbers them (layers.{L+k-1})
    const count = cfg.decoder.layers + (cfg.mtp?.depth ?? 0);
    this.layers = this.child(names.layers, new ModuleList(Array.from({ length: count }, (_, i) => buildLayer(cfg, names, i, rng))));
    this.finalNorm = cfg.decoder.finalNorm ? this.child(names.finalNorm, makeNorm(cfg.hidden, cfg.decoder.finalNorm)) : null;
  }
}

// ---- the model ----

export class DecoderLM extends Module implements LanguageModel {
  readonly stack: DecoderStack;
  readonly lmHead: Linear | null;
  readonly naming: DecoderNaming;
  /** recompute each dense layer's activations in backward instead of keeping them (training memory) */
  gradientCheckpointing = false;
  private readonly embedNorm: Norm | null;

  constructor(readonly config: DecoderConfig, opts: CreateOptions = {}) {
    super();
    if (config.positions.kind === 't5-relative') throw new Error('DecoderLM: positions.kind "t5-relative" is only built by the encoder-decoder families');
    const rng = new Rng(opts.seed ?? 0);
    this.naming = NAMING[config.family];
    this.stack = this.child(this.naming.root, new DecoderStack(config, this.naming, rng));
    this.embedNorm = config.embedNorm ? this.child('embed_norm', makeNorm(config.hidden, config.embedNorm)) : null;
    this.lmHead = config.tieEmbeddings ? null : this.child('lm_head', new Linear(config.hidden, config.vocabSize, { bias: false, std: config.initStd, rng }));
  }

  newCache(_batch: number, opts: CacheOptions = {}): KVCache {
    const c = this.config;
    // keys a causal query can still see: the cache rolls past them (global-token and random patterns keep all)
    const windows = Array.from({ length: c.decoder.layers }, (_, i) => {
      const w = layerWindow(c.decoder.block.attention.window, i);
      return w.kind === 'sliding' ? w.size : w.kind === 'dilated' ? (w.size - 1) * w.dilation + 1 : null;
    });
    return new KVCache(c.decoder.layers, { windows, maxLength: opts.maxLength, dtype: opts.dtype });
  }

  /**
   * Embeddings of the new positions start..start+T-1: [B, T, D]. With images, their patch tokens come
   * first ([image | text], T = patches + text tokens), so they take the first positions.
   */
  private embed(ids: Tensor, start: number, pixels: Tensor | null): Tensor {
    const c = this.config;
    let x = scaledEmbedding(c, this.stack.embed, ids); // (B, Tt, D)
    if (pixels) {
      if (!this.stack.vision) throw new Error(`DecoderLM(${c.family}).forward: pixelValues given, but this model has no vision encoder (config.vision is null)`);
      x = prependImageTokens(this.stack.vision.forward(pixels), x); // (B, N + Tt, D)
    }
    const T = x.shape[1]!;
    const p = c.positions;
    if (p.kind === 'learned') {
      if (start + T > c.maxContext) throw new Error(`DecoderLM(${c.family}): positions ${start}..${start + T - 1} exceed the learned table (maxContext ${c.maxContext})`);
      const pos = Int32Array.from({ length: T }, (_, i) => start + p.offset + i); // positions built on the host: no read-back check
      x = add(x, embedding(this.stack.positions!.weight, indexTensor(pos, this.stack.positions!.weight.shape[0]!, { what: 'positions' }))); // (B, T, D) + (T, D)
    } else if (p.kind === 'sinusoidal') {
      x = add(x, sinusoidalTable(T, c.hidden, 'interleaved', start));
    }
    if (this.embedNorm) x = this.embedNorm.forward(x);
    return dropout(x, c.dropout.embedding, this.training);
  }

  private rope(start: number, T: number): RopeTables | null {
    const c = this.config;
    const p = c.positions;
    if (p.kind !== 'rope') return null;
    const a = c.decoder.block.attention;
    const dim = a.kind === 'mla' ? a.qkRopeHeadDim : p.dim ?? a.headDim;
    const spec: RopeSpec = { theta: p.theta, dim, scaling: p.scaling, maxContext: c.maxContext };
    return ropeTables(spec, start, T);
  }

  /**
   * inputIds [B, T] (+ pixelValues [B, C, H, W] for vision configs: logits then cover [image | text]
   * positions, and an attentionMask must cover them too) -> logits [B, T(+N), V]. With a cache, the new
   * tokens continue at position cache.length and the cache grows.
   */
  forward(inputs: ModelInputs): ModelOutputs {
    const c = this.config;
    const ids = inputs.inputIds;
    if (ids.ndim !== 2 || ids.dtype !== 'int32') throw new Error(`DecoderLM(${c.family}).forward: inputIds must be int32 [B, T], got ${ids.dtype} [${ids.shape.join(', ')}]`);
    if (inputs.paged) return this.forwardPaged(ids, inputs.paged);
    const cache = this.checkCache(inputs.cache ?? null);
    const start = cache ? cache.length : inputs.positionOffset ?? 0;
    let x = this.embed(ids, start, inputs.pixelValues ?? null);
    const T = x.shape[1]!;
    const ctxBase = { qStart: start, rope: this.rope(start, T), positionBias: this.positionBias() };
    const routers: Tensor[] = [];
    this.mainLayers().forEach((layer, i) => {
      const mask = { causal: true, window: layerWindow(c.decoder.block.attention.window, i), padding: inputs.attentionMask ?? null };
      const ctx: AttentionContext = { ...ctxBase, mask, cache: cache?.layer(i) ?? null };
      if (this.gradientCheckpointing && this.training && !cache && !(layer.ffn instanceof MoE)) {
        x = checkpoint((h) => layer.forward(h, ctx).x, [x], layer.parameters());
        return;
      }
      const out = layer.forward(x, ctx);
      x = out.x;
      if (out.routerLogits) routers.push(out.routerLogits);
    });
    cache?.advance(T);
    if (this.stack.finalNorm) x = this.stack.finalNorm.forward(x);
    const logits = headLogits(c, x, this.lmHead, this.stack.embed.weight);
    const outputs: ModelOutputs = { logits, lastHiddenState: x };
    if (cache) outputs.cache = cache;
    if (routers.length) Object.assign(outputs, this.moeOutputs(routers, ids.shape[0]!));
    if (this.training && !cache && c.mtp && c.mtp.lossWeight > 0 && ids.shape[1]! > 2) this.addMtpLoss(outputs, ids, x, start, inputs.attentionMask ?? null);
    return outputs;
  }

  /** the main stack's layers (the MTP depths follow them in `stack.layers`) */
  private mainLayers(): TransformerLayer[] {
    return this.stack.layers.items.slice(0, this.config.decoder.layers);
  }

  /** the MTP depths, in order */
  get mtpLayers(): MtpLayer[] {
    return this.stack.layers.items.slice(this.config.decoder.layers) as MtpLayer[];
  }

  /**
   * Multi-token prediction over a full sequence: ids [B, T] and the main model's final states [B, T, D]
   * (`lastHiddenState`) -> per depth k (1-based) logits [B, T-k, V], where row i predicts token i+k+1.
   */
  mtpForward(ids: Tensor, hidden: Tensor, start = 0): Tensor[] {
    const c = this.config;
    const T = ids.shape[1]!;
    const out: Tensor[] = [];
    let h = hidden;
    this.mtpLayers.forEach((layer, j) => {
      const k = j + 1;
      if (T - k < 1) return;
      const emb = this.stack.embed.forward(slice(ids, 1, k)); // (B, T-k, D) embeddings of tokens i+k
      const x = layer.combine(slice(h, 1, 0, T - k), emb); // (B, T-k, D)
      const mask = { causal: true, window: layerWindow(c.decoder.block.attention.window, c.decoder.layers - 1), padding: null };
      h = layer.forward(x, { qStart: start, rope: this.rope(start, T - k), positionBias: null, mask, cache: null }).x;
      const normed = layer.shared_head.norm.forward(h);
      out.push(this.lmHead ? this.lmHead.forward(normed) : linear(normed, this.stack.embed.weight)); // (B, T-k, V)
    });
    return out;
  }

  /** training: λ · mean over depths of the next-(k+1) token loss, added to auxLoss (and `extra.mtpLoss`) */
  private addMtpLoss(outputs: ModelOutputs, ids: Tensor, hidden: Tensor, start: number, mask: Tensor | null): void {
    const T = ids.shape[1]!;
    const all = this.mtpForward(ids, hidden, start);
    const losses = all.flatMap((logits, j) => {
      const k = j + 1;
      if (T - k - 1 < 1) return [];
      const targets = mtpTargets(ids, mask, k + 1); // (B, T-k-1)
      return [crossEntropy(slice(logits, 1, 0, T - k - 1), targets, { ignoreIndex: -100 })];
    });
    if (!losses.length) return;
    const mtp = mul(losses.reduce((a, b) => add(a, b)), 1 / losses.length);
    const weighted = mul(mtp, this.config.mtp!.lossWeight);
    outputs.auxLoss = outputs.auxLoss ? add(outputs.auxLoss, weighted) : weighted;
    outputs.extra = { ...outputs.extra, mtpLoss: mtp };
  }

  /**
   * Called by the trainer after each optimizer step: DeepSeek-V3's auxiliary-loss-free balancing moves each
   * MoE layer's correction bias toward balanced load (see MoE.updateCorrectionBias). No-op otherwise.
   */
  afterOptimizerStep(): void {
    for (const layer of this.stack.layers.items) if (layer.ffn instanceof MoE) layer.ffn.updateCorrectionBias();
  }

  /**
   * A ragged batch flattened into ids [1, T]: per-token positions (learned / sinusoidal rows and RoPE
   * tables gathered per token), attention through the paged cache, logits only for `logitRows`.
   */
  private forwardPaged(ids: Tensor, paged: PagedBatch): ModelOutputs {
    const c = this.config;
    const T = ids.shape[1]!;
    if (ids.shape[0] !== 1 || paged.positions.length !== T) {
      throw new Error(`DecoderLM(${c.family}).forward: a paged batch needs inputIds [1, T] and T positions, got [${ids.shape.join(', ')}] and ${paged.positions.length}`);
    }
    if (c.positions.kind === 'alibi' || c.vision) throw new Error(`DecoderLM(${c.family}): the paged engine does not support ALiBi or vision inputs`);
    let x = this.embedAt(ids, paged.positions);
    const rope = this.ropeAt(paged);
    this.mainLayers().forEach((layer, i) => {
      const mask = { causal: true, window: layerWindow(c.decoder.block.attention.window, i), padding: null };
      x = layer.forward(x, { mask, qStart: 0, rope, paged: paged.layer(i) }).x;
    });
    if (paged.allHidden) {
      // the norm is per row, so norming every row and then selecting equals selecting then norming
      const all = this.stack.finalNorm ? this.stack.finalNorm.forward(x) : x; // (1, T, D)
      const rows = paged.logitRows ? indexSelect(all, 1, indexTensor(paged.logitRows, T, { what: 'paged.logitRows' })) : all;
      return { logits: headLogits(c, rows, this.lmHead, this.stack.embed.weight), lastHiddenState: all };
    }
    if (paged.logitRows) x = indexSelect(x, 1, indexTensor(paged.logitRows, x.shape[1]!, { what: 'paged.logitRows' })); // (1, R, D)
    if (this.stack.finalNorm) x = this.stack.finalNorm.forward(x);
    const logits = headLogits(c, x, this.lmHead, this.stack.embed.weight);
    return { logits, lastHiddenState: x };
  }

  /**
   * MTP depth j (0-based) over a paged ragged batch, as mtpForward runs it over a full sequence: prev [1, T, D]
   * the previous depth's states (the main model's final states for j = 0), ids [1, T] the tokens j + 1 ahead
   * -> the depth's states [1, T, D] (the next depth's / a chained step's `prev`) and the logits of
   * `paged.logitRows` [1, R, V]. Attention goes through `paged.layer(j)` (the drafter's own pool).
   */
  mtpPaged(j: number, prev: Tensor, ids: Tensor, paged: PagedBatch): { hidden: Tensor; logits: Tensor } {
    const c = this.config;
    const layer = this.mtpLayers[j];
    if (!layer) throw new Error(`DecoderLM(${c.family}).mtpPaged: no MTP depth ${j + 1} (config.mtp.depth ${c.mtp?.depth ?? 0})`);
    const T = ids.shape[1]!;
    const x = layer.combine(prev, this.stack.embed.forward(ids)); // (1, T, D)
    const mask = { causal: true, window: layerWindow(c.decoder.block.attention.window, c.decoder.layers - 1), padding: null };
    const h = layer.forward(x, { mask, qStart: 0, rope: this.ropeAt(paged), paged: paged.layer(j) }).x; // (1, T, D)
    const rows = paged.logitRows ? indexSelect(h, 1, indexTensor(paged.logitRows, T, { what: 'paged.logitRows' })) : h;
    const normed = layer.shared_head.norm.forward(rows); // (1, R, D)
    return { hidden: h, logits: this.lmHead ? this.lmHead.forward(normed) : linear(normed, this.stack.embed.weight) };
  }

  /** token embeddings plus position embeddings of arbitrary positions: [1, T, D] */
  private embedAt(ids: Tensor, positions: Int32Array): Tensor {
    const c = this.config;
    let x = scaledEmbedding(c, this.stack.embed, ids); // (1, T, D)
    const p = c.positions;
    let top = 0;
    for (const q of positions) top = Math.max(top, q);
    if (p.kind === 'learned') {
      if (top >= c.maxContext) throw new Error(`DecoderLM(${c.family}): position ${top} exceeds the learned table (maxContext ${c.maxContext})`);
      x = add(x, embedding(this.stack.positions!.weight, indexTensor(positions.map((q) => q + p.offset), this.stack.positions!.weight.shape[0]!, { what: 'positions' }))); // (T, D)
    } else if (p.kind === 'sinusoidal') {
      x = add(x, indexSelect(sinusoidalTable(top + 1, c.hidden, 'interleaved'), 0, indexTensor(positions, top + 1, { what: 'positions' })));
    }
    if (this.embedNorm) x = this.embedNorm.forward(x);
    return x;
  }

  private ropeAt(paged: PagedBatch): RopeTables | null {
    const c = this.config;
    const p = c.positions;
    if (p.kind !== 'rope') return null;
    const a = c.decoder.block.attention;
    const dim = a.kind === 'mla' ? a.qkRopeHeadDim : p.dim ?? a.headDim;
    const spec: RopeSpec = { theta: p.theta, dim, scaling: p.scaling, maxContext: c.maxContext };
    return ropeTablesAt(spec, paged.positions, (t) => paged.seqLens[t]!);
  }

  /** ALiBi bias for (queries, keys), memoized across the layers of one forward */
  private positionBias(): AttentionContext['positionBias'] {
    if (this.config.positions.kind !== 'alibi') return null;
    const heads = this.config.decoder.block.attention.heads;
    const memo = new Map<string, Tensor>();
    return (qs, tq, ks, tk) => {
      const key = `${qs},${tq},${ks},${tk}`;
      if (!memo.has(key)) memo.set(key, alibiBias(heads, qs, tq, ks, tk));
      return memo.get(key)!;
    };
  }

  private checkCache(cache: Cache | null): KVCache | null {
    if (cache === null) return null;
    if (!(cache instanceof KVCache) || cache.layers.length !== this.config.decoder.layers) {
      throw new Error(`DecoderLM(${this.config.family}).forward: cache must come from this model's newCache()`);
    }
    return cache;
  }

  /**
   * Router logits of every MoE layer [L_moe, N, E] and the weighted auxiliary loss: transformers'
   * load_balancing_loss_func over all layers' logits concatenated, or for DeepSeek the sum over layers
   * of its sequence-level balance loss (`aux_loss_alpha` per layer, as its MoEGate adds them).
   */
  private moeOutputs(routers: Tensor[], batch: number): Pick<ModelOutputs, 'routerLogits' | 'auxLoss'> {
    const f = this.config.decoder.block.ffn as MoeFfn;
    const all = concat(routers, 0); // (L_moe * N, E), transformers concatenates layers
    const balance = familyRules(this.config).sequenceAux
      ? routers.map((r) => sequenceBalanceLoss(r, batch, f.topK, f.gating)).reduce((a, b) => add(a, b))
      : loadBalancingLoss(all, f.topK);
    let aux = mul(balance, f.auxLossCoef);
    if (f.zLossCoef > 0) aux = add(aux, mul(routerZLoss(all), f.zLossCoef));
    return { routerLogits: stack(routers, 0), auxLoss: aux };
  }

  /**
   * Maps a transformers state dict of this family onto this model's names: drops non-parameter buffers
   * (GPT's `attn.bias`/`attn.masked_bias` causal masks, `rotary_emb.inv_freq`), adds the `transformer.`
   * prefix old GPT-2 checkpoints lack, and drops a stored head when the embeddings are tied.
   */
  sanitize(state: Map<string, Tensor>): Map<string, Tensor> {
    const root = this.naming.root;
    const out = new Map<string, Tensor>();
    const isGpt = root === 'transformer';
    const mtpCopy = new RegExp(`^${root}\\.layers\\.(\\d+)\\.(embed_tokens|shared_head\\.head)\\.weight$`);
    for (const [name, t] of state) {
      // V3 stores the MTP depths' copies of the shared embedding and head; Lineage shares the main ones
      const copy = mtpCopy.exec(name);
      if (copy && Number(copy[1]) >= this.config.decoder.layers) continue;
      if (/\.attn\.(masked_)?bias$/.test(name) && isGpt && t.ndim !== 1) continue;
      if (/rotary_emb\.inv_freq$/.test(name)) continue;
      if (name === 'lm_head.weight' && this.config.tieEmbeddings) continue;
      const fixed = isGpt && !name.startsWith(`${root}.`) && name !== 'lm_head.weight' ? `${root}.${name}` : name;
      out.set(fixed, t);
    }
    return out;
  }
}

/** MTP targets: ids shifted left by `shift` [B, T-shift], -100 where the attention mask hides the target */
function mtpTargets(ids: Tensor, mask: Tensor | null, shift: number): Tensor {
  const [B, T] = ids.shape as [number, number];
  const src = ids.data() as Int32Array;
  const m = mask ? Float32Array.from(mask.data() as ArrayLike<number>) : null;
  const Tm = mask ? mask.shape[1]! : T;
  const out = new Int32Array(B * (T - shift));
  for (let b = 0; b < B; b++) {
    for (let i = 0; i < T - shift; i++) {
      const keep = !m || m[b * Tm + Tm - T + i + shift] !== 0;
      out[b * (T - shift) + i] = keep ? src[b * T + i + shift]! : -100;
    }
  }
  return tensor(out, { shape: [B, T - shift], dtype: 'int32' });
}

export function buildDecoder(config: DecoderConfig, opts: CreateOptions = {}): DecoderLM {
  return new DecoderLM(config, opts);
}
