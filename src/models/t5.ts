// T5 (Raffel et al. 2020; v1.0 and v1.1) in transformers' T5ForConditionalGeneration layout:
//   shared.weight [V, D] (token embeddings of both stacks; the lm_head too when tied)
//   {encoder,decoder}.block.{l}.layer.0.SelfAttention.{q,k,v,o} (no biases), layer.0.layer_norm
//   {encoder,decoder}.block.0.layer.0.SelfAttention.relative_attention_bias.weight [buckets, nh]
//   decoder.block.{l}.layer.1.EncDecAttention.{q,k,v,o}, layer.1.layer_norm
//   block.{l}.layer.{1|2}.DenseReluDense.{wi | wi_0, wi_1, wo}, layer_norm;  {encoder,decoder}.final_layer_norm
//   lm_head.weight [V, D] when untied (v1.1)
// Pre-norm sublayers with T5's LayerNorm (RMS, no mean, no bias = our rmsNorm); no 1/sqrt(hs) logit
// scaling; the relative position bias is owned by block 0 and added in every layer of its stack
// (bidirectional buckets in the encoder, causal in the decoder); cross-attention has no position bias.
// A tied head rescales the decoder output by D^-0.5.
//
// Notation: B batch, S source tokens, T decoder tokens, D width, nh heads, V vocabulary.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { add, dropout, linear, mul } from '../ops/index.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { Attention, type AttentionContext, type AttentionSpec } from '../nn/attention.js';
import type { MaskSpec } from '../nn/masks.js';
import { Glu, Mlp, type DenseFfn } from '../nn/ffn.js';
import { relativePositionBucket, t5PositionBias, type T5BucketSpec } from '../nn/t5-bias.js';
import type { EncoderDecoderConfig, StandardAttention, TransformerStack } from './config.js';
import type { CacheOptions, CreateOptions, LanguageModel, ModelInputs, ModelOutputs } from './model.js';
import { PAGED_CROSS_MASK, PAGED_SELF_MASK, checkPagedRow, logitRowsOf, maxPosition, type PagedEncoderDecoder, type Seq2SeqPagedBatch } from './seq2seq-paged.js';
import { Seq2SeqCache, decoderIds, encoderStates, seq2seqCache } from './bart.js';

/** T5Attention: the shared attention block plus, in block 0, the relative position bias table */
class T5Attention extends Attention {
  readonly relative_attention_bias: Embedding | null;
  constructor(spec: AttentionSpec, buckets: number | null, rng: Rng) {
    super(spec);
    this.relative_attention_bias = buckets === null ? null : this.child('relative_attention_bias', new Embedding(buckets, spec.heads, { std: spec.std, rng }));
  }
}

function t5Attention(cfg: EncoderDecoderConfig, stack: TransformerStack, buckets: number | null, rng: Rng): T5Attention {
  const a = stack.block.attention as StandardAttention;
  const spec: AttentionSpec = {
    dim: cfg.hidden, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim, qkvBias: a.qkvBias, outBias: a.outBias,
    scale: a.scale, names: { q: 'q', k: 'k', v: 'v', o: 'o' }, dropout: cfg.dropout.attention, std: cfg.initStd, rng,
  };
  return new T5Attention(spec, buckets, rng);
}

/** layer.N of a block: one pre-norm sublayer (self-attention, cross-attention or feed-forward) */
class T5AttentionSublayer extends Module {
  readonly attn: T5Attention;
  readonly layer_norm: RMSNorm;
  constructor(readonly cfg: EncoderDecoderConfig, stack: TransformerStack, name: 'SelfAttention' | 'EncDecAttention', attn: T5Attention) {
    super();
    this.attn = this.child(name, attn);
    this.layer_norm = this.child('layer_norm', new RMSNorm(cfg.hidden, stack.block.norm.eps));
  }
  forward(x: Tensor, ctx: AttentionContext): Tensor {
    return add(x, dropout(this.attn.forward(this.layer_norm.forward(x), ctx), this.cfg.dropout.residual, this.training));
  }
}

/** DenseReluDense: wo(act(wi x)) (v1.0) or wo(act(wi_0 x) * wi_1 x) (v1.1 gated), the shared FFN blocks */
function t5Ffn(cfg: EncoderDecoderConfig, stack: TransformerStack, rng: Rng): DenseFfn {
  const f = stack.block.ffn;
  const o = { bias: f.kind === 'moe' ? false : f.bias, std: cfg.initStd, rng, actDropout: cfg.dropout.activation };
  if (f.kind === 'mlp') return new Mlp(cfg.hidden, f.hidden, f.act, { up: 'wi', down: 'wo' }, o);
  if (f.kind === 'glu') return new Glu(cfg.hidden, f.hidden, f.act, { gate: 'wi_0', up: 'wi_1', down: 'wo' }, o);
  throw new Error('t5: block.ffn cannot be moe');
}

class T5FFSublayer extends Module {
  readonly DenseReluDense: DenseFfn;
  readonly layer_norm: RMSNorm;
  constructor(readonly cfg: EncoderDecoderConfig, stack: TransformerStack, rng: Rng) {
    super();
    this.DenseReluDense = this.child('DenseReluDense', t5Ffn(cfg, stack, rng));
    this.layer_norm = this.child('layer_norm', new RMSNorm(cfg.hidden, stack.block.norm.eps));
  }
  forward(x: Tensor): Tensor {
    return add(x, dropout(this.DenseReluDense.forward(this.layer_norm.forward(x)), this.cfg.dropout.residual, this.training));
  }
}

class T5Block extends Module {
  readonly self: T5AttentionSublayer;
  readonly cross: T5AttentionSublayer | null;
  readonly ff: T5FFSublayer;
  constructor(cfg: EncoderDecoderConfig, stack: TransformerStack, decoder: boolean, buckets: number | null, rng: Rng) {
    super();
    const self = new T5AttentionSublayer(cfg, stack, 'SelfAttention', t5Attention(cfg, stack, buckets, rng));
    const cross = decoder ? new T5AttentionSublayer(cfg, stack, 'EncDecAttention', t5Attention(cfg, stack, null, rng)) : null;
    const ff = new T5FFSublayer(cfg, stack, rng);
    this.child('layer', new ModuleList<Module>(cross ? [self, cross, ff] : [self, ff]));
    [this.self, this.cross, this.ff] = [self, cross, ff];
  }
  forward(x: Tensor, self: AttentionContext, cross: AttentionContext | null): Tensor {
    const h = this.self.forward(x, self);
    return this.ff.forward(cross ? this.cross!.forward(h, cross) : h);
  }
}

class T5Stack extends Module {
  readonly block: ModuleList<T5Block>;
  readonly final_layer_norm: RMSNorm;
  readonly buckets: T5BucketSpec;
  constructor(readonly cfg: EncoderDecoderConfig, stack: TransformerStack, readonly decoder: boolean, rng: Rng) {
    super();
    const pos = cfg.positions;
    if (pos.kind !== 't5-relative') throw new Error(`t5: positions must be t5-relative (got '${pos.kind}')`);
    if (stack.block.residual !== 'pre') throw new Error(`t5: block.residual must be 'pre' (got '${stack.block.residual}')`);
    this.buckets = { buckets: pos.buckets, maxDistance: pos.maxDistance, bidirectional: !decoder && pos.bidirectional };
    const blocks = Array.from({ length: stack.layers }, (_, l) => new T5Block(cfg, stack, decoder, l === 0 ? pos.buckets : null, rng));
    this.block = this.child('block', new ModuleList(blocks));
    this.final_layer_norm = this.child('final_layer_norm', new RMSNorm(cfg.hidden, (stack.finalNorm ?? stack.block.norm).eps));
  }

  /** block 0's bias table as a (memoized per call) AttentionContext.positionBias */
  positionBias(): NonNullable<AttentionContext['positionBias']> {
    const table = this.block.at(0).self.attn.relative_attention_bias!;
    const memo = new Map<string, Tensor>();
    return (qStart, Tq, kStart, Tk) => {
      const key = `${qStart},${Tq},${kStart},${Tk}`;
      let b = memo.get(key);
      if (!b) memo.set(key, (b = t5PositionBias(table.weight, this.buckets, qStart, Tq, kStart, Tk))); // (1, nh, Tq, Tk)
      return b;
    };
  }

  /** the bias table of the paged engine: [nh, top + 1], the logit bias of a key r positions before its query
   * at [h, r] (a causal stack sees no later key), read from block 0's table with transformers' buckets */
  pagedBiasTable(top: number): Float32Array {
    const w = this.block.at(0).self.attn.relative_attention_bias!.weight.data() as Float32Array; // (buckets, nh)
    const nh = w.length / this.buckets.buckets;
    const out = new Float32Array(nh * (top + 1));
    for (let r = 0; r <= top; r++) {
      const b = relativePositionBucket(-r, this.buckets);
      for (let h = 0; h < nh; h++) out[h * (top + 1) + r] = w[b * nh + h]!;
    }
    return out;
  }

  /** embedded x [B, T, D] through every block and the final norm */
  forward(x: Tensor, self: AttentionContext, cross: ((l: number) => AttentionContext) | null, selfCache: (l: number) => AttentionContext['cache']): Tensor {
    const p = this.cfg.dropout;
    let h = dropout(x, p.embedding, this.training);
    this.block.items.forEach((b, l) => {
      h = b.forward(h, { ...self, cache: selfCache(l) }, cross ? cross(l) : null);
    });
    return dropout(this.final_layer_norm.forward(h), p.residual, this.training);
  }
}

const FULL = { kind: 'full' } as const;

/** T5ForConditionalGeneration */
export class T5 extends Module implements LanguageModel, PagedEncoderDecoder {
  readonly shared: Embedding;
  readonly encoder: T5Stack;
  readonly decoder: T5Stack;
  readonly lm_head: Linear | null;

  constructor(readonly config: EncoderDecoderConfig, opts: { rng?: Rng } = {}) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.shared = this.child('shared', new Embedding(config.vocabSize, config.hidden, { std: config.initStd, rng }));
    this.encoder = this.child('encoder', new T5Stack(config, config.encoder, false, rng));
    this.decoder = this.child('decoder', new T5Stack(config, config.decoder, true, rng));
    this.lm_head = config.tieEmbeddings ? null : this.child('lm_head', new Linear(config.hidden, config.vocabSize, { bias: false, std: config.initStd, rng }));
  }

  newCache(_batch: number, opts: CacheOptions = {}): Seq2SeqCache {
    return new Seq2SeqCache(this.config.decoder.layers, opts);
  }

  /** ids [B, S], mask [B, S] -> encoder output [B, S, D] (after the final norm) */
  encode(ids: Tensor, mask: Tensor | null): Tensor {
    const ctx: AttentionContext = { mask: { causal: false, window: FULL, padding: mask }, qStart: 0, positionBias: this.encoder.positionBias() };
    return this.encoder.forward(this.shared.forward(ids), ctx, null, () => null);
  }

  forward(inputs: ModelInputs): ModelOutputs {
    if (inputs.pixelValues) throw new Error('t5.forward: pixelValues is not supported');
    const cache = seq2seqCache(inputs, 't5');
    const { enc, mask } = encoderStates(inputs, cache, () => this.encode(inputs.inputIds, inputs.attentionMask ?? null));
    const ids = decoderIds(inputs, 't5');
    const start = cache ? cache.length : inputs.positionOffset ?? 0;
    const selfMask: MaskSpec = { causal: true, window: FULL, padding: inputs.decoderAttentionMask ?? null };
    const crossMask: MaskSpec = { causal: false, window: FULL, padding: mask };
    const self: AttentionContext = { mask: selfMask, qStart: start, positionBias: this.decoder.positionBias() };
    const cross = (l: number): AttentionContext => ({ mask: crossMask, qStart: start, kv: enc, cache: cache?.cross.layer(l) ?? null });
    const y = this.decoder.forward(this.shared.forward(ids), self, cross, (l) => cache?.self.layer(l) ?? null); // (B, T, D)
    cache?.self.advance(ids.shape[1]!);
    const logits = this.logitsOf(y); // (B, T, V)
    return { logits, lastHiddenState: y, encoderLastHiddenState: enc, ...(cache ? { cache } : {}) };
  }

  /** paged engine: the encoder once over a padded batch of sources -> each decoder layer's cross K/V [B, nkv, S, hs] */
  pagedEncode(ids: Tensor, mask: Tensor | null): { k: Tensor; v: Tensor }[] {
    const enc = this.encode(ids, mask); // (B, S, D)
    return this.decoder.block.items.map((b) => b.cross!.attn.projectKv(enc));
  }

  /** paged engine: one flattened ragged decoder row [1, T] -> logits [1, R, V] of batch.logitRows. The self-attention
   * takes the relative position bias per token (its own position against its sequence's keys) */
  pagedDecode(ids: Tensor, batch: Seq2SeqPagedBatch): Tensor {
    checkPagedRow('t5', ids, batch);
    const bias = this.decoder.pagedBiasTable(maxPosition(batch.positions));
    let h = this.shared.forward(ids); // (1, T, D)
    this.decoder.block.items.forEach((b, l) => {
      h = b.forward(h, { mask: PAGED_SELF_MASK, qStart: 0, paged: batch.self(l, bias) }, { mask: PAGED_CROSS_MASK, qStart: 0, paged: batch.cross(l) });
    });
    const y = this.decoder.final_layer_norm.forward(logitRowsOf(h, batch)); // (1, R, D): the norm is per row
    return this.logitsOf(y); // (1, R, V)
  }

  /** final decoder states [B, T, D] -> logits [B, T, V] (a tied head scales by 1/sqrt(D) where the config says) */
  private logitsOf(y: Tensor): Tensor {
    if (this.lm_head) return this.lm_head.forward(y);
    return linear(this.config.headScale === 'rsqrt-hidden' ? mul(y, this.config.hidden ** -0.5) : y, this.shared.weight);
  }

  /** drops the tied copies some T5 checkpoints store (`{encoder,decoder}.embed_tokens`, a tied lm_head) */
  sanitize(state: Map<string, Tensor>): Map<string, Tensor> {
    const out = new Map(state);
    for (const n of ['encoder.embed_tokens.weight', 'decoder.embed_tokens.weight']) out.delete(n);
    if (this.config.tieEmbeddings) out.delete('lm_head.weight');
    return out;
  }
}

export function buildT5(config: EncoderDecoderConfig, opts: CreateOptions = {}): T5 {
  return new T5(config, { rng: new Rng(opts.seed ?? 0) });
}
