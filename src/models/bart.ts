// BART (Lewis et al. 2020) and Marian (= the Vaswani et al. 2017 Transformer, "transformer-base") in
// transformers' modeling_bart / modeling_marian layout:
//   model.shared [V, D] (token embeddings of both stacks and the tied lm_head), final_logits_bias [1, V]
//   model.{encoder,decoder}.embed_positions.weight [maxContext + 2, D] (BART: position p reads row p + 2;
//     Marian: fixed sinusoids [sin | cos], not stored), model.{encoder,decoder}.layernorm_embedding (BART)
//   model.encoder.layers.{l}.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2, final_layer_norm}
//   model.decoder.layers.{l}: the same plus encoder_attn.* and encoder_attn_layer_norm
// Post-norm layers: x = LN(x + f(x)). Token embeddings are scaled by sqrt(D) when scale_embedding.
//
// Also the pieces every encoder-decoder family here shares (T5 imports them): `Seq2SeqCache`, which
// keeps the encoder output, the decoder self-attention K/V and each layer's cross-attention K/V
// (computed once), so a decoding step costs one token's worth of work; and `encoderStates`.
//
// Notation: B batch, S source tokens, T decoder tokens, D width, V vocabulary.
import type { Tensor } from '../tensor/tensor.js';
import { keep } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { add, arange, dropout, embedding, indexSelect, indexTensor, linear, mul, zeros } from '../ops/index.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { Attention, type AttentionContext } from '../nn/attention.js';
import { KVCache } from '../nn/cache.js';
import type { MaskSpec } from '../nn/masks.js';
import { sinusoidalTable } from '../nn/positions.js';
import { activate } from '../nn/activations.js';
import type { EncoderDecoderConfig, StandardAttention, TransformerStack } from './config.js';
import type { Cache, CacheOptions, CreateOptions, LanguageModel, ModelInputs, ModelOutputs } from './model.js';
import { PAGED_CROSS_MASK, PAGED_SELF_MASK, checkPagedRow, logitRowsOf, maxPosition, type PagedEncoderDecoder, type Seq2SeqPagedBatch } from './seq2seq-paged.js';

// ---------------------------------------------------------------------------------------------------
// Shared by the encoder-decoder families

export class Seq2SeqCache implements Cache {
  /** decoder self-attention K/V (grows by one step per generated token) */
  readonly self: KVCache;
  /** cross-attention K/V per decoder layer, computed from the encoder output on the first step */
  readonly cross: KVCache;
  /** [B, S, D] encoder output and its [B, S] padding mask, kept for every later step */
  encoderHiddenStates: Tensor | null = null;
  encoderMask: Tensor | null = null;

  constructor(decoderLayers: number, opts: CacheOptions = {}) {
    this.self = new KVCache(decoderLayers, opts);
    this.cross = new KVCache(decoderLayers);
  }

  /** decoder tokens processed so far */
  get length(): number {
    return this.self.length;
  }

  setEncoder(hidden: Tensor, mask: Tensor | null): void {
    this.encoderHiddenStates = keep(hidden.detach());
    this.encoderMask = mask ? keep(mask.detach()) : null;
  }

  dispose(): void {
    this.self.dispose();
    this.cross.dispose();
    this.encoderHiddenStates?.dispose();
    this.encoderMask?.dispose();
    this.encoderHiddenStates = this.encoderMask = null;
  }
}

/** encoder states for this call: the caller's, cached from an earlier step, or computed now by `encode`
 * (and cached); the padding mask travels with them */
export function encoderStates(inputs: ModelInputs, cache: Seq2SeqCache | null, encode: () => Tensor): { enc: Tensor; mask: Tensor | null } {
  if (inputs.encoderHiddenStates) return { enc: inputs.encoderHiddenStates, mask: inputs.attentionMask ?? null };
  if (cache?.encoderHiddenStates) return { enc: cache.encoderHiddenStates, mask: cache.encoderMask };
  const enc = encode();
  cache?.setEncoder(enc, inputs.attentionMask ?? null);
  return { enc, mask: inputs.attentionMask ?? null };
}

/** the decoder input ids, which every encoder-decoder forward needs */
export function decoderIds(inputs: ModelInputs, family: string): Tensor {
  if (!inputs.decoderInputIds) throw new Error(`${family}.forward: decoderInputIds is required (int32 [B, T]; e.g. the labels shifted right)`);
  return inputs.decoderInputIds;
}

/** a Seq2SeqCache passed in `inputs.cache`, checked */
export function seq2seqCache(inputs: ModelInputs, family: string): Seq2SeqCache | null {
  const c = inputs.cache ?? null;
  if (c && !(c instanceof Seq2SeqCache)) throw new Error(`${family}.forward: inputs.cache must come from model.newCache()`);
  return c;
}

// ---------------------------------------------------------------------------------------------------
// BART / Marian

const BART_NAMES = { q: 'q_proj', k: 'k_proj', v: 'v_proj', o: 'out_proj' };

function bartAttention(cfg: EncoderDecoderConfig, stack: TransformerStack, rng: Rng): Attention {
  const a = stack.block.attention as StandardAttention;
  return new Attention({
    dim: cfg.hidden, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, qkvBias: a.qkvBias, outBias: a.outBias,
    scale: a.scale, names: BART_NAMES, dropout: cfg.dropout.attention, std: cfg.initStd, rng,
  });
}

class BartLayer extends Module {
  readonly self_attn: Attention;
  readonly self_attn_layer_norm: LayerNorm;
  readonly encoder_attn: Attention | null;
  readonly encoder_attn_layer_norm: LayerNorm | null;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly final_layer_norm: LayerNorm;

  constructor(readonly cfg: EncoderDecoderConfig, readonly stack: TransformerStack, cross: boolean, rng: Rng) {
    super();
    const b = stack.block;
    if (b.residual !== 'post') throw new Error(`${cfg.family}: block.residual must be 'post' (got '${b.residual}')`);
    if (b.ffn.kind !== 'mlp') throw new Error(`${cfg.family}: block.ffn must be an mlp (got '${b.ffn.kind}')`);
    const ln = () => new LayerNorm(cfg.hidden, { eps: b.norm.eps });
    const o = { std: cfg.initStd, rng, bias: b.ffn.bias };
    this.self_attn = this.child('self_attn', bartAttention(cfg, stack, rng));
    this.self_attn_layer_norm = this.child('self_attn_layer_norm', ln());
    this.encoder_attn = cross ? this.child('encoder_attn', bartAttention(cfg, stack, rng)) : null;
    this.encoder_attn_layer_norm = cross ? this.child('encoder_attn_layer_norm', ln()) : null;
    this.fc1 = this.child('fc1', new Linear(cfg.hidden, b.ffn.hidden, o));
    this.fc2 = this.child('fc2', new Linear(b.ffn.hidden, cfg.hidden, o));
    this.final_layer_norm = this.child('final_layer_norm', ln());
  }

  /** x [B, T, D]; `cross` set for decoder layers */
  forward(x: Tensor, self: AttentionContext, cross: AttentionContext | null): Tensor {
    const p = this.cfg.dropout;
    const drop = (t: Tensor) => dropout(t, p.residual, this.training);
    let h = this.self_attn_layer_norm.forward(add(x, drop(this.self_attn.forward(x, self))));
    if (cross) h = this.encoder_attn_layer_norm!.forward(add(h, drop(this.encoder_attn!.forward(h, cross))));
    const f = dropout(activate(this.fc1.forward(h), this.stack.block.ffn.act), p.activation, this.training);
    return this.final_layer_norm.forward(add(h, drop(this.fc2.forward(f))));
  }
}

/** one side (encoder or decoder): positions, embedding norm, layers */
class BartStack extends Module {
  readonly embed_positions: Embedding | null;
  readonly layernorm_embedding: LayerNorm | null;
  readonly layers: ModuleList<BartLayer>;

  constructor(readonly cfg: EncoderDecoderConfig, readonly stack: TransformerStack, decoder: boolean, rng: Rng) {
    super();
    const pos = cfg.positions;
    if (pos.kind !== 'learned' && pos.kind !== 'sinusoidal') throw new Error(`${cfg.family}: positions must be learned or sinusoidal (got '${pos.kind}')`);
    this.embed_positions = pos.kind === 'learned' ? this.child('embed_positions', new Embedding(cfg.maxContext + pos.offset, cfg.hidden, { std: cfg.initStd, rng })) : null;
    this.layernorm_embedding = cfg.embedNorm ? this.child('layernorm_embedding', new LayerNorm(cfg.hidden, { eps: cfg.embedNorm.eps })) : null;
    this.layers = this.child('layers', new ModuleList(Array.from({ length: stack.layers }, () => new BartLayer(cfg, stack, decoder, rng))));
  }

  /** token embeddings [B, T, D] (already looked up) -> scaled + positions (+ LN), positions start.. */
  embed(tok: Tensor, start: number): Tensor {
    const [, T, D] = tok.shape as [number, number, number];
    if (start + T > this.cfg.maxContext) throw new Error(`${this.cfg.family}: ${start + T} positions exceed max_position_embeddings ${this.cfg.maxContext}`);
    const pos = this.embed_positions
      ? this.embed_positions.forward(add(arange(T), start + this.positionOffset())) // (T, D)
      : sinusoidalTable(T, D, 'halves', start); // (T, D)
    return dropout(this.withPositions(tok, pos), this.cfg.dropout.embedding, this.training);
  }

  /** embed() for the paged engine's ragged row: token embeddings [1, T, D] at per-token positions [T] */
  embedAt(tok: Tensor, positions: Int32Array): Tensor {
    const top = maxPosition(positions);
    if (top >= this.cfg.maxContext)
      throw new Error(`${this.cfg.family}: position ${top} exceeds max_position_embeddings ${this.cfg.maxContext}`);
    const pos = this.embed_positions
      ? embedding(this.embed_positions.weight, indexTensor(positions.map((p) => p + this.positionOffset()), this.embed_positions.weight.shape[0]!, { what: 'positions' })) // (T, D)
      : indexSelect(sinusoidalTable(top + 1, this.cfg.hidden, 'halves'), 0, indexTensor(positions, top + 1, { what: 'positions' })); // (T, D)
    return this.withPositions(tok, pos);
  }

  /** learned position rows start at this offset (BART: 2) */
  private positionOffset(): number {
    return (this.cfg.positions as { offset: number }).offset;
  }

  /** token embeddings scaled (sqrt(D) where the config says) plus position rows pos [T, D], then the
   * embedding LayerNorm if any */
  private withPositions(tok: Tensor, pos: Tensor): Tensor {
    const scaled = this.cfg.embedScale === 'sqrt-hidden' ? mul(tok, Math.sqrt(this.cfg.hidden)) : tok;
    const x = add(scaled, pos);
    return this.layernorm_embedding ? this.layernorm_embedding.forward(x) : x;
  }
}

class BartModel extends Module {
  readonly shared: Embedding;
  readonly encoder: BartStack;
  readonly decoder: BartStack;
  constructor(cfg: EncoderDecoderConfig, rng: Rng) {
    super();
    this.shared = this.child('shared', new Embedding(cfg.vocabSize, cfg.hidden, { std: cfg.initStd, rng }));
    this.encoder = this.child('encoder', new BartStack(cfg, cfg.encoder, false, rng));
    this.decoder = this.child('decoder', new BartStack(cfg, cfg.decoder, true, rng));
  }
}

const FULL = { kind: 'full' } as const;

/** BartForConditionalGeneration / MarianMTModel */
export class Bart extends Module implements LanguageModel, PagedEncoderDecoder {
  readonly model: BartModel;
  readonly lm_head: Linear | null;

  constructor(readonly config: EncoderDecoderConfig, opts: { rng?: Rng } = {}) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.model = this.child('model', new BartModel(config, rng));
    // a persistent buffer in transformers (stored in checkpoints, never trained)
    this.param('final_logits_bias', zeros([1, config.vocabSize])).requiresGrad = false;
    this.lm_head = config.tieEmbeddings ? null : this.child('lm_head', new Linear(config.hidden, config.vocabSize, { bias: false, std: config.initStd, rng }));
  }

  newCache(_batch: number, opts: CacheOptions = {}): Seq2SeqCache {
    return new Seq2SeqCache(this.config.decoder.layers, opts);
  }

  /** ids [B, S], mask [B, S] -> encoder output [B, S, D] */
  encode(ids: Tensor, mask: Tensor | null): Tensor {
    const enc = this.model.encoder;
    let x = enc.embed(this.model.shared.forward(ids), 0);
    const ctx: AttentionContext = { mask: { causal: false, window: FULL, padding: mask }, qStart: 0 };
    for (const layer of enc.layers.items) x = layer.forward(x, ctx, null);
    return x;
  }

  forward(inputs: ModelInputs): ModelOutputs {
    const family = this.config.family;
    if (inputs.pixelValues) throw new Error(`${family}.forward: pixelValues is not supported`);
    const cache = seq2seqCache(inputs, family);
    const { enc, mask } = encoderStates(inputs, cache, () => this.encode(inputs.inputIds, inputs.attentionMask ?? null));
    const ids = decoderIds(inputs, family);
    const start = cache ? cache.length : inputs.positionOffset ?? 0;
    const dec = this.model.decoder;
    let y = dec.embed(this.model.shared.forward(ids), start); // (B, T, D)
    const selfMask: MaskSpec = { causal: true, window: FULL, padding: inputs.decoderAttentionMask ?? null };
    const crossMask: MaskSpec = { causal: false, window: FULL, padding: mask };
    dec.layers.items.forEach((layer, l) => {
      const self: AttentionContext = { mask: selfMask, qStart: start, cache: cache?.self.layer(l) ?? null };
      const cross: AttentionContext = { mask: crossMask, qStart: start, kv: enc, cache: cache?.cross.layer(l) ?? null };
      y = layer.forward(y, self, cross);
    });
    cache?.self.advance(ids.shape[1]!);
    const logits = this.logitsOf(y); // (B, T, V)
    return { logits, lastHiddenState: y, encoderLastHiddenState: enc, ...(cache ? { cache } : {}) };
  }

  /** paged engine: the encoder once over a padded batch of sources -> each decoder layer's cross K/V [B, nkv, S, hs] */
  pagedEncode(ids: Tensor, mask: Tensor | null): { k: Tensor; v: Tensor }[] {
    const enc = this.encode(ids, mask); // (B, S, D)
    return this.model.decoder.layers.items.map((l) => l.encoder_attn!.projectKv(enc));
  }

  /** paged engine: one flattened ragged decoder row [1, T] (learned / sinusoidal positions per token) -> logits
   * [1, R, V] of batch.logitRows */
  pagedDecode(ids: Tensor, batch: Seq2SeqPagedBatch): Tensor {
    checkPagedRow(this.config.family, ids, batch);
    const dec = this.model.decoder;
    let y = dec.embedAt(this.model.shared.forward(ids), batch.positions); // (1, T, D)
    dec.layers.items.forEach((layer, l) => {
      y = layer.forward(y, { mask: PAGED_SELF_MASK, qStart: 0, paged: batch.self(l, null) }, { mask: PAGED_CROSS_MASK, qStart: 0, paged: batch.cross(l) });
    });
    return this.logitsOf(logitRowsOf(y, batch)); // (1, R, V)
  }

  /** final decoder states [B, T, D] -> logits [B, T, V] (tied or own head, plus final_logits_bias) */
  private logitsOf(y: Tensor): Tensor {
    const head = this.lm_head ? this.lm_head.forward(y) : linear(y, this.model.shared.weight);
    return add(head, this.p('final_logits_bias'));
  }

  /**
   * Maps a transformers BART / Marian state dict onto this model: adds the `model.` prefix of bare
   * BartModel checkpoints, drops tied copies (`{encoder,decoder}.embed_tokens`, a tied lm_head) and
   * Marian's stored sinusoid tables (recomputed here), and supplies a zero `final_logits_bias` when the
   * checkpoint has none.
   */
  sanitize(state: Map<string, Tensor>): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    const sinusoidal = this.config.positions.kind === 'sinusoidal';
    for (const [name, t] of state) {
      const n = /^(shared|encoder|decoder)\./.test(name) ? `model.${name}` : name;
      if (/^model\.(encoder|decoder)\.embed_tokens\.weight$/.test(n)) continue;
      if (sinusoidal && /^model\.(encoder|decoder)\.embed_positions\.weight$/.test(n)) continue;
      if (n === 'lm_head.weight' && this.config.tieEmbeddings) continue;
      out.set(n, t);
    }
    if (!out.has('final_logits_bias')) out.set('final_logits_bias', zeros([1, this.config.vocabSize]));
    return out;
  }
}

export function buildBart(config: EncoderDecoderConfig, opts: CreateOptions = {}): Bart {
  return new Bart(config, { rng: new Rng(opts.seed ?? 0) });
}
