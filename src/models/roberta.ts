// RoBERTa (Liu et al. 2019) and Longformer (Beltagy et al. 2020) in transformers' layouts
// (modeling_roberta.py, modeling_longformer.py):
//   {roberta|longformer}.embeddings.{word,position,token_type}_embeddings + LayerNorm
//   .encoder.layer.{l}.attention.self.{query,key,value}        (Longformer adds query_global, key_global,
//     value_global), .attention.output.{dense,LayerNorm}, .intermediate.dense, .output.{dense,LayerNorm}
//   .pooler.dense (bare model only)
//   lm_head.{dense, layer_norm, bias} + lm_head.decoder (tied to the word embeddings: not stored)
// Both are BERT post-norm layers; what differs:
//   - positions: RoBERTa numbers real tokens from padding_idx + 1 (position id = pad + running count of
//     non-pad tokens, pad tokens get pad), so the table has max_position_embeddings = context + pad + 1 rows;
//   - the masked-LM head is dense -> exact GELU -> layer_norm -> decoder + bias (whatever hidden_act says);
//   - no next-sentence head; segment embeddings exist (type_vocab_size 1) but are all zero ids;
//   - Longformer: every query attends to the keys within attention_window / 2 on each side; tokens marked
//     in `globalAttentionMask` are seen by every query (through the ordinary key/value projections) and
//     themselves attend to every key through their own query_global / key_global / value_global; padded
//     queries output zeros before `attention.output.dense`, as transformers' masked_fill does.
//
// Notation: B batch, T tokens, D width, nh heads, hs head size, V vocabulary.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { add, dropout, gelu, linear, mul, reshape, slice, tanh, tensor, transpose, zeros } from '../ops/index.js';
import { Module, ModuleList, initZeros } from '../nn/module.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { attend } from '../nn/attention.js';
import { attentionOptions } from '../nn/masks.js';
import { activate } from '../nn/activations.js';
import { type EncoderConfig, encoderHasLmHead, encoderHeadKind, encoderHasPooler } from './config.js';
import type { CreateOptions, LanguageModel, ModelInputs, ModelOutputs } from './model.js';

type Family = 'roberta' | 'longformer';

/** RoBERTa position ids of one batch on the host: pad + running count of real tokens; pad tokens get pad */
export function robertaPositionIds(ids: Tensor, pad: number, past = 0): Int32Array {
  const [B, T] = ids.shape as [number, number];
  const v = ids.data();
  const out = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let n = past;
    for (let t = 0; t < T; t++) {
      const real = v[b * T + t] !== pad;
      if (real) n++;
      out[b * T + t] = real ? n + pad : pad;
    }
  }
  return out;
}

class RobertaEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  constructor(readonly cfg: EncoderConfig, rng: Rng) {
    super();
    const o = { std: cfg.initStd, rng };
    const offset = cfg.positions.kind === 'learned' ? cfg.positions.offset : 0;
    this.word_embeddings = this.child('word_embeddings', new Embedding(cfg.vocabSize, cfg.hidden, o));
    this.position_embeddings = this.child('position_embeddings', new Embedding(cfg.maxContext + offset, cfg.hidden, o));
    this.token_type_embeddings = this.child('token_type_embeddings', new Embedding(cfg.typeVocabSize, cfg.hidden, o));
    this.LayerNorm = this.child('LayerNorm', new LayerNorm(cfg.hidden, { eps: (cfg.embedNorm ?? cfg.encoder.block.norm).eps }));
  }
  /** ids, types [B, T] -> [B, T, D] */
  forward(ids: Tensor, types: Tensor | null, past: number): Tensor {
    const [B, T] = ids.shape as [number, number];
    const pad = this.cfg.tokens.pad ?? 1;
    const pos = robertaPositionIds(ids, pad, past);
    const rows = this.position_embeddings.num;
    const top = pos.reduce((m, p) => Math.max(m, p), 0);
    if (top >= rows) throw new Error(`${this.cfg.family}: position id ${top} exceeds max_position_embeddings ${rows} (${T} tokens after ${past})`);
    const p = this.position_embeddings.forward(tensor(pos, { shape: [B, T], dtype: 'int32' })); // (B, T, D)
    const tt = this.token_type_embeddings.forward(types ?? zeros([B, T], 'int32'));
    const x = add(add(this.word_embeddings.forward(ids), tt), p);
    return dropout(this.LayerNorm.forward(x), this.cfg.dropout.embedding, this.training);
  }
}

/** `attention.self`: query / key / value, plus Longformer's global projections */
class SelfAttention extends Module {
  readonly query: Linear;
  readonly key: Linear;
  readonly value: Linear;
  readonly global: { query: Linear; key: Linear; value: Linear } | null = null;
  constructor(cfg: EncoderConfig, rng: Rng) {
    super();
    const D = cfg.hidden;
    const lin = (name: string) => this.child(name, new Linear(D, D, { std: cfg.initStd, rng }));
    [this.query, this.key, this.value] = [lin('query'), lin('key'), lin('value')];
    if (cfg.family === 'longformer') this.global = { query: lin('query_global'), key: lin('key_global'), value: lin('value_global') };
  }
}

/** a `dense` Linear, optionally followed by a post-norm `LayerNorm` */
class DenseNorm extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm | null;
  constructor(inF: number, outF: number, eps: number | null, rng: Rng, std: number) {
    super();
    this.dense = this.child('dense', new Linear(inF, outF, { std, rng }));
    this.LayerNorm = eps === null ? null : this.child('LayerNorm', new LayerNorm(outF, { eps }));
  }
}

class AttentionBlock extends Module {
  readonly self_: SelfAttention;
  readonly output: DenseNorm;
  constructor(cfg: EncoderConfig, rng: Rng) {
    super();
    this.self_ = this.child('self', new SelfAttention(cfg, rng));
    this.output = this.child('output', new DenseNorm(cfg.hidden, cfg.hidden, cfg.encoder.block.norm.eps, rng, cfg.initStd));
  }
}

/** What every layer of one forward shares: padding and, for Longformer, its masks on the host. */
interface LayerContext {
  padding: Tensor | null;
  /** Longformer: [B, 1, T, T] local + global-column bias, and the row selectors [B, 1, T, 1] */
  longformer: { localBias: Tensor; localRows: Tensor; globalRows: Tensor | null } | null;
}

class RobertaLayer extends Module {
  readonly attention: AttentionBlock;
  readonly intermediate: DenseNorm;
  readonly output: DenseNorm;
  constructor(readonly cfg: EncoderConfig, rng: Rng) {
    super();
    const f = cfg.encoder.block.ffn;
    if (f.kind !== 'mlp') throw new Error(`${cfg.family}: encoder.block.ffn must be an mlp, got ${f.kind}`);
    this.attention = this.child('attention', new AttentionBlock(cfg, rng));
    this.intermediate = this.child('intermediate', new DenseNorm(cfg.hidden, f.hidden, null, rng, cfg.initStd));
    this.output = this.child('output', new DenseNorm(f.hidden, cfg.hidden, cfg.encoder.block.norm.eps, rng, cfg.initStd));
  }

  /** [B, T, D] -> [B, nh, T, hs] */
  private heads(x: Tensor): Tensor {
    const [B, T, D] = x.shape as [number, number, number];
    const nh = this.cfg.encoder.block.attention.heads;
    return transpose(reshape(x, [B, T, nh, D / nh]), 1, 2); // (B, nh, T, hs)
  }

  private attend(q: Linear, k: Linear, v: Linear, x: Tensor, padding: Tensor | null, bias: Tensor | null): Tensor {
    const T = x.shape[1]!;
    const opts = attentionOptions({ causal: false, window: { kind: 'full' }, padding }, 0, T, 0, T, bias);
    const p = this.training ? this.cfg.dropout.attention : 0;
    return attend(this.heads(q.forward(x)), this.heads(k.forward(x)), this.heads(v.forward(x)), opts, p); // (B, nh, T, hs)
  }

  private selfAttention(x: Tensor, ctx: LayerContext): Tensor {
    const s = this.attention.self_;
    const lf = ctx.longformer;
    let o = this.attend(s.query, s.key, s.value, x, ctx.padding, lf?.localBias ?? null); // (B, nh, T, hs)
    if (lf) {
      o = mul(o, lf.localRows); // padded (and global) rows: zero
      if (lf.globalRows && s.global) o = add(o, mul(this.attend(s.global.query, s.global.key, s.global.value, x, ctx.padding, null), lf.globalRows));
    }
    const [B, , T] = o.shape as [number, number, number];
    return reshape(transpose(o, 1, 2), [B, T, this.cfg.hidden]); // (B, T, D)
  }

  forward(x: Tensor, ctx: LayerContext): Tensor {
    const p = this.cfg.dropout.residual;
    const a = dropout(this.attention.output.dense.forward(this.selfAttention(x, ctx)), p, this.training);
    const h1 = this.attention.output.LayerNorm!.forward(add(x, a));
    const f = activate(this.intermediate.dense.forward(h1), this.cfg.encoder.block.ffn.act); // (B, T, F)
    const o = dropout(this.output.dense.forward(f), p, this.training);
    return this.output.LayerNorm!.forward(add(h1, o));
  }
}

class RobertaEncoder extends Module {
  readonly layer: ModuleList<RobertaLayer>;
  constructor(cfg: EncoderConfig, rng: Rng) {
    super();
    this.layer = this.child('layer', new ModuleList(Array.from({ length: cfg.encoder.layers }, () => new RobertaLayer(cfg, rng))));
  }
}

/** 0/1 host rows of a [B, T] mask (null = all `fill`) */
function hostRows(m: Tensor | null | undefined, B: number, T: number, fill: number, what: string): Float32Array {
  if (!m) return new Float32Array(B * T).fill(fill);
  if (m.ndim !== 2 || m.shape[0] !== B || m.shape[1] !== T) throw new Error(`longformer: ${what} must be [B, T] = [${B}, ${T}], got [${m.shape.join(', ')}]`);
  return Float32Array.from(m.data(), (v) => (Number(v) !== 0 ? 1 : 0));
}

/**
 * Longformer's masks for one batch: query i sees key j when |i - j| <= attention_window / 2 and j is not
 * global, or when j is global (a global key is removed from the window and seen once, as a global column).
 * Padded keys are hidden by the padding path. Rows: local rows are real non-global tokens, global rows real
 * global tokens.
 */
export function longformerMasks(size: number, padding: Tensor | null, global: Tensor | null | undefined, B: number, T: number): LayerContext['longformer'] {
  const real = hostRows(padding, B, T, 1, 'attentionMask');
  const g = hostRows(global, B, T, 0, 'globalAttentionMask').map((v, i) => v * real[i]!);
  const half = size / 2;
  const bias = new Float32Array(B * T * T);
  for (let b = 0; b < B; b++)
    for (let i = 0; i < T; i++)
      for (let j = 0; j < T; j++) {
        const isGlobal = g[b * T + j] === 1;
        bias[(b * T + i) * T + j] = isGlobal || Math.abs(i - j) <= half ? 0 : -Infinity;
      }
  const rows = (f: (i: number) => number) => tensor(Float32Array.from({ length: B * T }, (_, i) => f(i)), { shape: [B, 1, T, 1] });
  const anyGlobal = g.some((v) => v === 1);
  return {
    localBias: tensor(bias, { shape: [B, 1, T, T] }),
    localRows: rows((i) => real[i]! * (1 - g[i]!)),
    globalRows: anyGlobal ? rows((i) => g[i]!) : null,
  };
}

/** RobertaModel / LongformerModel: embeddings -> encoder (-> pooler) */
export class RobertaModel extends Module {
  readonly embeddings: RobertaEmbeddings;
  readonly encoder: RobertaEncoder;
  readonly pooler: DenseNorm | null;
  constructor(readonly cfg: EncoderConfig, pooler: boolean, rng: Rng) {
    super();
    this.embeddings = this.child('embeddings', new RobertaEmbeddings(cfg, rng));
    this.encoder = this.child('encoder', new RobertaEncoder(cfg, rng));
    this.pooler = pooler ? this.child('pooler', new DenseNorm(cfg.hidden, cfg.hidden, null, rng, cfg.initStd)) : null;
  }
  forward(inputs: ModelInputs): { hidden: Tensor; pooled: Tensor | null } {
    const ids = inputs.inputIds;
    if (ids.ndim !== 2 || ids.dtype !== 'int32') throw new Error(`${this.cfg.family}.forward: inputIds must be int32 [B, T], got ${ids.dtype} [${ids.shape.join(', ')}]`);
    const [B, T] = ids.shape as [number, number];
    let x = this.embeddings.forward(ids, inputs.tokenTypeIds ?? null, inputs.positionOffset ?? 0); // (B, T, D)
    const padding = inputs.attentionMask ?? null;
    const w = this.cfg.encoder.block.attention.window;
    if (w.kind !== 'full' && w.kind !== 'longformer') throw new Error(`${this.cfg.family}: encoder.block.attention.window kind '${w.kind}' is not built by this family`);
    if (inputs.globalAttentionMask && w.kind !== 'longformer') throw new Error(`${this.cfg.family}.forward: globalAttentionMask is only read by Longformer`);
    const ctx: LayerContext = { padding, longformer: w.kind === 'longformer' ? longformerMasks(w.size, padding, inputs.globalAttentionMask, B, T) : null };
    for (const layer of this.encoder.layer.items) x = layer.forward(x, ctx);
    const first = reshape(slice(x, 1, 0, 1), [B, this.cfg.hidden]); // (B, D): the <s> token
    return { hidden: x, pooled: this.pooler ? tanh(this.pooler.dense.forward(first)) : null };
  }
}

/** lm_head: dense -> GELU -> layer_norm -> decoder (tied to the word embeddings) + bias */
class RobertaLMHead extends Module {
  readonly dense: Linear;
  readonly layer_norm: LayerNorm;
  readonly decoder: Linear | null;
  constructor(readonly cfg: EncoderConfig, rng: Rng) {
    super();
    this.dense = this.child('dense', new Linear(cfg.hidden, cfg.hidden, { std: cfg.initStd, rng }));
    this.layer_norm = this.child('layer_norm', new LayerNorm(cfg.hidden, { eps: cfg.encoder.block.norm.eps }));
    this.param('bias', initZeros([cfg.vocabSize]));
    this.decoder = cfg.tieEmbeddings ? null : this.child('decoder', new Linear(cfg.hidden, cfg.vocabSize, { bias: false, std: cfg.initStd, rng }));
  }
  forward(h: Tensor, wordEmbeddings: Tensor): Tensor {
    const t = this.layer_norm.forward(gelu(this.dense.forward(h))); // transformers' RobertaLMHead: exact gelu always
    return this.decoder ? add(this.decoder.forward(t), this.p('bias')) : linear(t, wordEmbeddings, this.p('bias')); // (B, T, V)
  }
}

/** RobertaModel / RobertaForMaskedLM and the Longformer equivalents, chosen by the config's head. */
export class Roberta extends Module implements LanguageModel {
  readonly backbone: RobertaModel;
  readonly lm_head: RobertaLMHead | null;

  constructor(readonly config: EncoderConfig, opts: { rng?: Rng } = {}) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const kind = encoderHeadKind(config.head);
    if (kind !== 'model' && kind !== 'masked-lm') throw new Error(`${config.family}: head '${kind}' is not built (model and masked-lm are)`);
    this.backbone = this.child(config.family as Family, new RobertaModel(config, encoderHasPooler(config.head), rng));
    this.lm_head = encoderHasLmHead(config.head) ? this.child('lm_head', new RobertaLMHead(config, rng)) : null;
  }

  forward(inputs: ModelInputs): ModelOutputs {
    for (const k of ['decoderInputIds', 'pixelValues', 'cache'] as const) if (inputs[k]) throw new Error(`${this.config.family}.forward: ${k} is not supported by an encoder`);
    const { hidden, pooled } = this.backbone.forward(inputs);
    const base: ModelOutputs = { logits: hidden, lastHiddenState: hidden, ...(pooled ? { poolerOutput: pooled } : {}) };
    if (!this.lm_head) return base;
    return { ...base, logits: this.lm_head.forward(hidden, this.backbone.embeddings.word_embeddings.weight) };
  }

  /** transformers state dicts: adds the backbone prefix to bare-model checkpoints, drops buffers (position_ids,
   * token_type_ids), the tied decoder copies and heads this model has no use for (a pooler, lm_head). */
  sanitize(state: Map<string, Tensor>): Map<string, Tensor> {
    const own = new Set(this.namedParameters().map(([n]) => n));
    const prefix = this.config.family;
    const out = new Map<string, Tensor>();
    for (const [name, t] of state) {
      const n = /^(embeddings|encoder|pooler)\./.test(name) ? `${prefix}.${name}` : name;
      if (n.endsWith('.position_ids') || n.endsWith('.token_type_ids')) continue;
      if (n === 'lm_head.decoder.bias' || (n === 'lm_head.decoder.weight' && this.config.tieEmbeddings)) continue;
      if (!own.has(n) && (n.startsWith('lm_head.') || n.startsWith(`${prefix}.pooler.`))) continue;
      out.set(n, t);
    }
    return out;
  }
}

export function buildRoberta(config: EncoderConfig, opts: CreateOptions = {}): Roberta {
  return new Roberta(config, { rng: new Rng(opts.seed ?? 0) });
}
