// Decoder-only language models (GPT-1, GPT-2, Llama, Mistral, Qwen2, Mixtral, DeepSeek-V2): ONE class
// driven by the config. What differs per family is only (a) the checkpoint names, a small table below,
// and (b) how a family's own code reads two config fields (`familyRules`). The module tree uses transformers'
// attribute names, so `namedParameters()` yields exactly the keys of the family's model.safetensors.
//
// Notation: B batch, T new tokens, D width, V vocabulary, L layers.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { noGrad } from '../tensor/engine.js';
import { add, concat, dropout, embedding, indexSelect, indexTensor, linear, mul, stack } from '../ops/index.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding, Linear } from '../nn/layers.js';
import { makeNorm, type Norm } from '../nn/norm.js';
import { Attention, GPT_ATTENTION_NAMES, LLAMA_ATTENTION_NAMES, type AttentionContext, type AttentionNames } from '../nn/attention.js';
import { MultiHeadLatentAttention } from '../nn/mla.js';
import { GPT_MLP_NAMES, Glu, LLAMA_GLU_NAMES, Mlp, type DenseFfn, type MlpNames } from '../nn/ffn.js';
import { DEEPSEEK_MOE_NAMES, MIXTRAL_MOE_NAMES, MoE, loadBalancingLoss, routerZLoss, sequenceBalanceLoss, type MoeNames } from '../nn/moe.js';
import { TransformerLayer, type AttentionLike, type BlockNames } from '../nn/block.js';
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

const NAMING: { [F in DecoderFamily]: DecoderNaming } = {
  gpt2: GPT2,
  'openai-gpt': { ...GPT2, embed: 'tokens_embed', positions: 'positions_embed' },
  llama: LLAMA,
  mistral: LLAMA,
  qwen2: LLAMA,
  qwen3: LLAMA,
  qwen3_moe: LLAMA, // mlp.gate + mlp.experts.{e}.gate_proj / up_proj / down_proj, as DeepSeek
  gemma: LLAMA,
  mixtral: { ...LLAMA, ffn: 'block_sparse_moe', moe: MIXTRAL_MOE_NAMES },
  deepseek_v2: LLAMA,
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
  if (cfg.family !== 'deepseek_v2') return GENERIC;
  const s = cfg.positions.kind === 'rope' ? cfg.positions.scaling : null;
  const m = s?.kind === 'yarn' && s.mscaleAllDim ? yarnMscale(s.factor, s.mscaleAllDim) : 1;
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
    qkNorm: a.qkNorm ? cfg.decoder.block.norm : null,
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
      return new Glu(cfg.hidden, f.hidden, f.act, LLAMA_GLU_NAMES, o);
    case 'moe':
      return new MoE(cfg.hidden, rules.moe(f), names.moe, o);
    default:
      return f satisfies never;
  }
}

function buildLayer(cfg: DecoderConfig, names: DecoderNaming, layer: number, rng: Rng): TransformerLayer {
  const b = cfg.decoder.block;
  const parts = { norm1: makeNorm(cfg.hidden, b.norm), attn: buildAttention(cfg, names, rng), norm2: makeNorm(cfg.hidden, b.norm), ffn: buildFfn(cfg, names, layer, rng) };
  return new TransformerLayer(b.residual, names, parts, cfg.dropout.residual);
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
    this.layers = this.child(names.layers, new ModuleList(Array.from({ length: cfg.decoder.layers }, (_, i) => buildLayer(cfg, names, i, rng))));
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
    let x = this.stack.embed.forward(ids); // (B, Tt, D)
    if (c.embedScale === 'sqrt-hidden') x = mul(x, Math.sqrt(c.hidden));
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
    this.stack.layers.items.forEach((layer, i) => {
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
    const logits = this.lmHead ? this.lmHead.forward(x) : linear(c.headScale === 'rsqrt-hidden' ? mul(x, c.hidden ** -0.5) : x, this.stack.embed.weight);
    const outputs: ModelOutputs = { logits, lastHiddenState: x };
    if (cache) outputs.cache = cache;
    if (routers.length) Object.assign(outputs, this.moeOutputs(routers, ids.shape[0]!));
    return outputs;
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
    this.stack.layers.items.forEach((layer, i) => {
      const mask = { causal: true, window: layerWindow(c.decoder.block.attention.window, i), padding: null };
      x = layer.forward(x, { mask, qStart: 0, rope, paged: paged.layer(i) }).x;
    });
    if (paged.logitRows) x = indexSelect(x, 1, indexTensor(paged.logitRows, x.shape[1]!, { what: 'paged.logitRows' })); // (1, R, D)
    if (this.stack.finalNorm) x = this.stack.finalNorm.forward(x);
    const logits = this.lmHead ? this.lmHead.forward(x) : linear(c.headScale === 'rsqrt-hidden' ? mul(x, c.hidden ** -0.5) : x, this.stack.embed.weight);
    return { logits, lastHiddenState: x };
  }

  /** token embeddings plus position embeddings of arbitrary positions: [1, T, D] */
  private embedAt(ids: Tensor, positions: Int32Array): Tensor {
    const c = this.config;
    let x = this.stack.embed.forward(ids); // (1, T, D)
    if (c.embedScale === 'sqrt-hidden') x = mul(x, Math.sqrt(c.hidden));
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
      ? routers.map((r) => sequenceBalanceLoss(r, batch, f.topK)).reduce((a, b) => add(a, b))
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
    for (const [name, t] of state) {
      if (/\.attn\.(masked_)?bias$/.test(name) && isGpt && t.ndim !== 1) continue;
      if (/rotary_emb\.inv_freq$/.test(name)) continue;
      if (name === 'lm_head.weight' && this.config.tieEmbeddings) continue;
      const fixed = isGpt && !name.startsWith(`${root}.`) && name !== 'lm_head.weight' ? `${root}.${name}` : name;
      out.set(fixed, t);
    }
    return out;
  }
}

export function buildDecoder(config: DecoderConfig, opts: CreateOptions = {}): DecoderLM {
  return new DecoderLM(config, opts);
}
