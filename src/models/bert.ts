// BERT (Devlin et al. 2019) in transformers' modeling_bert layout, with every head transformers ships:
//   bert.embeddings.{word,position,token_type}_embeddings + LayerNorm
//   bert.encoder.layer.{l}.attention.self.{query,key,value}, .attention.output.{dense,LayerNorm},
//     .intermediate.dense, .output.{dense,LayerNorm}          (post-norm: LN(x + f(x)))
//   bert.pooler.dense (tanh of the first token's state)
//   heads: cls.predictions (transform.dense -> act -> transform.LayerNorm -> decoder tied to the word
//   embeddings + cls.predictions.bias), cls.seq_relationship (NSP), classifier (sequence / token
//   classification), qa_outputs (extractive QA start / end logits).
// Padding: `attentionMask` [B, T] hides padded keys; padded queries still produce (unused) outputs.
//
// Notation: B batch, T tokens, D width, V vocabulary, L labels.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { add, arange, crossEntropy, dropout, linear, reshape, slice, split, squeeze, tanh, zeros } from '../ops/index.js';
import { Module, ModuleList, initZeros } from '../nn/module.js';
import { Embedding, LayerNorm, Linear } from '../nn/layers.js';
import { Attention, type AttentionContext } from '../nn/attention.js';
import type { Container } from '../nn/tree.js';
import { activate } from '../nn/activations.js';
import { type EncoderConfig, type EncoderHeadKind, type NormConfig, type StandardAttention, encoderBuildsPooler, encoderHeadKind, encoderTaskOutputs } from './config.js';
import { bigbirdBias } from '../nn/bigbird.js';
import type { CreateOptions, LanguageModel, ModelInputs, ModelOutputs } from './model.js';

/** The transformers BERT class a config builds (its `head`, by name). */
export type BertTask = EncoderHeadKind;

export interface BertOptions {
  rng?: Rng;
}

const layerNorm = (n: NormConfig, D: number) => new LayerNorm(D, { eps: n.eps });

class BertEmbeddings extends Module {
  readonly word_embeddings: Embedding;
  readonly position_embeddings: Embedding;
  readonly token_type_embeddings: Embedding;
  readonly LayerNorm: LayerNorm;
  constructor(readonly cfg: EncoderConfig, rng: Rng) {
    super();
    const o = { std: cfg.initStd, rng };
    this.word_embeddings = this.child('word_embeddings', new Embedding(cfg.vocabSize, cfg.hidden, o));
    this.position_embeddings = this.child('position_embeddings', new Embedding(cfg.maxContext, cfg.hidden, o));
    this.token_type_embeddings = this.child('token_type_embeddings', new Embedding(cfg.typeVocabSize, cfg.hidden, o));
    this.LayerNorm = this.child('LayerNorm', layerNorm(cfg.embedNorm ?? cfg.encoder.block.norm, cfg.hidden));
  }
  /** ids, types [B, T] -> [B, T, D] */
  forward(ids: Tensor, types: Tensor | null, start: number): Tensor {
    const [B, T] = ids.shape as [number, number];
    if (start + T > this.cfg.maxContext) throw new Error(`BERT: ${start + T} positions exceed max_position_embeddings ${this.cfg.maxContext}`);
    const pos = this.position_embeddings.forward(add(arange(T), start)); // (T, D), broadcast over B
    const tt = this.token_type_embeddings.forward(types ?? zeros([B, T], 'int32'));
    const x = add(add(this.word_embeddings.forward(ids), tt), pos);
    return dropout(this.LayerNorm.forward(x), this.cfg.dropout.embedding, this.training);
  }
}

/** a `dense` Linear, optionally followed by a post-norm `LayerNorm` (intermediate / output) */
class DenseNorm extends Module {
  readonly dense: Linear;
  readonly LayerNorm: LayerNorm | null;
  constructor(inF: number, outF: number, norm: NormConfig | null, rng: Rng, std: number) {
    super();
    this.dense = this.child('dense', new Linear(inF, outF, { std, rng }));
    this.LayerNorm = norm ? this.child('LayerNorm', layerNorm(norm, outF)) : null;
  }
}

class BertLayer extends Module {
  readonly attention: Attention;
  readonly attnNorm: LayerNorm;
  readonly intermediate: DenseNorm;
  readonly output: DenseNorm;
  constructor(readonly cfg: EncoderConfig, rng: Rng) {
    super();
    const b = cfg.encoder.block;
    const att = b.attention as StandardAttention;
    if (b.ffn.kind !== 'mlp') throw new Error(`BERT: encoder.block.ffn must be an mlp, got ${b.ffn.kind}`);
    this.attention = this.child('attention', new Attention({
      dim: cfg.hidden, heads: att.heads, kvHeads: att.kvHeads, headDim: att.headDim, qkvBias: att.qkvBias, outBias: att.outBias,
      scale: att.scale, names: { q: 'self.query', k: 'self.key', v: 'self.value', o: 'output.dense' }, dropout: cfg.dropout.attention, std: cfg.initStd, rng,
    }));
    // attention.output.LayerNorm lives beside attention.output.dense in the checkpoint
    const out = this.attention.namedModules().find(([n]) => n === 'output')![1] as Container;
    this.attnNorm = out.add('LayerNorm', layerNorm(b.norm, cfg.hidden));
    this.intermediate = this.child('intermediate', new DenseNorm(cfg.hidden, b.ffn.hidden, null, rng, cfg.initStd));
    this.output = this.child('output', new DenseNorm(b.ffn.hidden, cfg.hidden, b.norm, rng, cfg.initStd));
  }
  forward(x: Tensor, ctx: AttentionContext): Tensor {
    const p = this.cfg.dropout.residual;
    const a = dropout(this.attention.forward(x, ctx), p, this.training);
    const h1 = this.attnNorm.forward(add(x, a));
    const f = activate(this.intermediate.dense.forward(h1), this.cfg.encoder.block.ffn.act); // (B, T, F)
    const o = dropout(this.output.dense.forward(f), p, this.training);
    return this.output.LayerNorm!.forward(add(h1, o));
  }
}

class BertEncoder extends Module {
  readonly layer: ModuleList<BertLayer>;
  constructor(cfg: EncoderConfig, rng: Rng) {
    super();
    this.layer = this.child('layer', new ModuleList(Array.from({ length: cfg.encoder.layers }, () => new BertLayer(cfg, rng))));
  }
}

/** BertModel: embeddings -> encoder (-> pooler) */
export class BertModel extends Module {
  readonly embeddings: BertEmbeddings;
  readonly encoder: BertEncoder;
  readonly pooler: DenseNorm | null;
  constructor(readonly cfg: EncoderConfig, pooler: boolean, rng: Rng) {
    super();
    this.embeddings = this.child('embeddings', new BertEmbeddings(cfg, rng));
    this.encoder = this.child('encoder', new BertEncoder(cfg, rng));
    this.pooler = pooler ? this.child('pooler', new DenseNorm(cfg.hidden, cfg.hidden, null, rng, cfg.initStd)) : null;
  }
  forward(inputs: ModelInputs): { hidden: Tensor; pooled: Tensor | null } {
    const start = inputs.positionOffset ?? 0;
    let x = this.embeddings.forward(inputs.inputIds, inputs.tokenTypeIds ?? null, start); // (B, T, D)
    const ctx: AttentionContext = { mask: { causal: false, window: { kind: 'full' }, padding: inputs.attentionMask ?? null }, qStart: start };
    const w = this.cfg.encoder.block.attention.window;
    if (w.kind === 'bigbird') {
      // BigBird's block-sparse pattern (full attention for short sequences, as transformers does)
      const bias = bigbirdBias(w, x.shape[1]!);
      if (start !== 0 && bias) throw new Error('BigBird: block-sparse attention needs positionOffset 0');
      ctx.positionBias = () => bias;
    } else if (w.kind !== 'full') throw new Error(`${this.cfg.family}: encoder.block.attention.window kind '${w.kind}' is not built by the BERT layout`);
    for (const layer of this.encoder.layer.items) x = layer.forward(x, ctx);
    const [B, , D] = x.shape as [number, number, number];
    const first = reshape(slice(x, 1, 0, 1), [B, D]); // (B, D): the [CLS] token
    return { hidden: x, pooled: this.pooler ? tanh(this.pooler.dense.forward(first)) : null };
  }
}

/** cls.predictions: transform (dense, act, LayerNorm), then the decoder (tied to the word embeddings) + bias */
class BertLMHead extends Module {
  readonly transform: DenseNorm;
  readonly decoder: Linear | null;
  constructor(readonly cfg: EncoderConfig, rng: Rng) {
    super();
    this.transform = this.child('transform', new DenseNorm(cfg.hidden, cfg.hidden, cfg.encoder.block.norm, rng, cfg.initStd));
    this.param('bias', initZeros([cfg.vocabSize]));
    this.decoder = cfg.tieEmbeddings ? null : this.child('decoder', new Linear(cfg.hidden, cfg.vocabSize, { bias: false, std: cfg.initStd, rng }));
  }
  forward(h: Tensor, wordEmbeddings: Tensor): Tensor {
    const act = this.cfg.encoder.block.ffn.act; // transformers' transform uses hidden_act too
    const t = this.transform.LayerNorm!.forward(activate(this.transform.dense.forward(h), act));
    return this.decoder ? add(this.decoder.forward(t), this.p('bias')) : linear(t, wordEmbeddings, this.p('bias')); // (B, T, V)
  }
}

class BertCls extends Module {
  readonly predictions: BertLMHead;
  readonly seq_relationship: Linear | null;
  constructor(cfg: EncoderConfig, nsp: boolean, rng: Rng) {
    super();
    this.predictions = this.child('predictions', new BertLMHead(cfg, rng));
    this.seq_relationship = nsp ? this.child('seq_relationship', new Linear(cfg.hidden, 2, { std: cfg.initStd, rng })) : null;
  }
}

/**
 * Any transformers BERT class, chosen by the config's `head`. `logits` is what that class calls logits: MLM logits
 * [B, T, V] (masked-lm, pretraining), class logits [B, L] (sequence), [B, T, L] (token), [B, T, 2]
 * start|end (QA, also split into startLogits / endLogits); for the bare model it is the last hidden state.
 */
export class Bert extends Module implements LanguageModel {
  readonly task: BertTask;
  readonly bert: BertModel;
  readonly cls: BertCls | null;
  readonly classifier: Linear | null;
  readonly qa_outputs: Linear | null;

  constructor(readonly config: EncoderConfig, opts: BertOptions = {}) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const task = (this.task = encoderHeadKind(config.head));
    const D = config.hidden;
    const L = encoderTaskOutputs(config.head); // classifier / qa_outputs width
    this.bert = this.child('bert', new BertModel(config, encoderBuildsPooler(config), rng));
    const lm = task === 'masked-lm' || task === 'pretraining';
    this.cls = lm ? this.child('cls', new BertCls(config, task === 'pretraining', rng)) : null;
    const cl = task === 'sequence-classification' || task === 'token-classification';
    this.classifier = cl ? this.child('classifier', new Linear(D, L, { std: config.initStd, rng })) : null;
    this.qa_outputs = task === 'question-answering' ? this.child('qa_outputs', new Linear(D, L, { std: config.initStd, rng })) : null;
  }

  /** transformers' `classifier_dropout`, falling back to `hidden_dropout_prob` */
  private get classifierDropout(): number {
    const h = this.config.head;
    const own = typeof h === 'object' && h.kind !== 'question-answering' ? h.dropout : null;
    return own ?? this.config.dropout.residual;
  }

  forward(inputs: ModelInputs): ModelOutputs {
    for (const k of ['decoderInputIds', 'pixelValues', 'cache', 'globalAttentionMask'] as const) if (inputs[k]) throw new Error(`Bert.forward: ${k} is not supported by BERT (an encoder)`);
    const { hidden, pooled } = this.bert.forward(inputs);
    const base: ModelOutputs = { logits: hidden, lastHiddenState: hidden, ...(pooled ? { poolerOutput: pooled } : {}) };
    const drop = (t: Tensor) => dropout(t, this.classifierDropout, this.training);
    switch (this.task) {
      case 'model':
        return base;
      case 'masked-lm':
      case 'pretraining': {
        const logits = this.cls!.predictions.forward(hidden, this.bert.embeddings.word_embeddings.weight);
        const nsp = this.cls!.seq_relationship?.forward(pooled!);
        return { ...base, logits, ...(nsp ? { nspLogits: nsp } : {}) };
      }
      case 'sequence-classification':
        return { ...base, logits: this.classifier!.forward(drop(pooled!)) }; // (B, L)
      case 'token-classification':
        return { ...base, logits: this.classifier!.forward(drop(hidden)) }; // (B, T, L)
      case 'question-answering': {
        const logits = this.qa_outputs!.forward(hidden); // (B, T, 2)
        const [s, e] = split(logits, [1, 1], -1) as [Tensor, Tensor];
        return { ...base, logits, startLogits: squeeze(s, -1), endLogits: squeeze(e, -1) };
      }
      default:
        return this.task satisfies never;
    }
  }

  /**
   * Maps a transformers BERT state dict onto this model: adds the `bert.` prefix of BertModel
   * checkpoints, renames TF-era `LayerNorm.gamma/beta`, drops buffers (`position_ids`), the tied decoder
   * copies (`cls.predictions.decoder.*`) and head / pooler weights this task has no use for (as
   * transformers does when loading a base model from a pretraining checkpoint).
   */
  sanitize(state: Map<string, Tensor>): Map<string, Tensor> {
    const own = new Set(this.namedParameters().map(([n]) => n));
    const out = new Map<string, Tensor>();
    for (const [name, t] of state) {
      let n = /^(embeddings|encoder|pooler)\./.test(name) ? `bert.${name}` : name;
      n = n.replace(/LayerNorm\.gamma$/, 'LayerNorm.weight').replace(/LayerNorm\.beta$/, 'LayerNorm.bias');
      if (n.endsWith('.position_ids') || n.endsWith('.token_type_ids')) continue;
      if (n === 'cls.predictions.decoder.bias' || (n === 'cls.predictions.decoder.weight' && this.config.tieEmbeddings)) continue;
      if (!own.has(n) && /^(cls\.|bert\.pooler\.|classifier\.|qa_outputs\.)/.test(n)) continue;
      out.set(n, t);
    }
    return out;
  }
}

/** BertForPreTraining's loss: MLM cross-entropy (labels -100 ignored) + next-sentence cross-entropy */
export function bertPretrainingLoss(out: ModelOutputs, labels: Tensor, nextSentenceLabels: Tensor): { loss: Tensor; mlmLoss: Tensor; nspLoss: Tensor } {
  const V = out.logits.shape[2]!;
  const mlmLoss = crossEntropy(reshape(out.logits, [-1, V]), reshape(labels, [-1]), { ignoreIndex: -100 });
  if (!out.nspLogits) throw new Error('bertPretrainingLoss: outputs have no nspLogits (task must be "pretraining")');
  const nspLoss = crossEntropy(out.nspLogits, nextSentenceLabels);
  return { loss: add(mlmLoss, nspLoss), mlmLoss, nspLoss };
}

export function buildBert(config: EncoderConfig, opts: CreateOptions = {}): Bert {
  return new Bert(config, { rng: new Rng(opts.seed ?? 0) });
}
