// Glue between a model family and its pretraining objective: which batches to draw and how to turn a
// forward pass into a loss. The objectives themselves (masking, span corruption, ...) live in
// src/train/objectives as plain-array functions; this file only picks one per family and feeds tensors.
//
//   decoders (gpt2, llama, ...), mamba   causal LM over random windows (nanoGPT get_batch)
//   bert                                 masked LM (+ next-sentence prediction with the pretraining head)
//   t5                                   span corruption (sentinels, teacher forcing)
//   bart                                 text infilling (denoising autoencoder)
//   marian (Vaswani 2017)                seq2seq on a synthetic task (string reversal), teacher forcing
//   lineage-rnn                          truncated BPTT, hidden state carried across chunks
import { keep } from '../tensor/engine.js';
import { Tensor } from '../tensor/tensor.js';
import { add, crossEntropy, tensor } from '../ops/index.js';
import type { ModelConfig } from '../models/config.js';
import type { Cache, LanguageModel, ModelInputs } from '../models/model.js';
import { RandomBatcher, readTokens, type TokenSource } from './data/index.js';
import { Rng } from './rng.js';
import {
  BpttBatcher,
  IGNORE_INDEX,
  bartDenoising,
  maskTokens,
  nspPair,
  padRows,
  seq2seqBatch,
  spanCorruption,
  spanCorruptionLengths,
  syntheticSeq2Seq,
  type SyntheticDataset,
} from './objectives/index.js';

export type ObjectiveName = 'causal-lm' | 'mlm' | 'mlm-nsp' | 'span-corruption' | 'denoising' | 'seq2seq' | 'tbptt';
export const OBJECTIVES: readonly ObjectiveName[] = [
  'causal-lm',
  'mlm',
  'mlm-nsp',
  'span-corruption',
  'denoising',
  'seq2seq',
  'tbptt',
];

/** The objective a family is pretrained with. */
export function defaultObjective(cfg: ModelConfig): ObjectiveName {
  switch (cfg.arch) {
    case 'decoder':
      return 'causal-lm';
    case 'mamba':
      return 'causal-lm';
    case 'rnn':
      return 'tbptt';
    case 'encoder':
      return cfg.head === 'pretraining' ? 'mlm-nsp' : 'mlm';
    case 'encoder-decoder':
      return cfg.family === 't5' ? 'span-corruption' : cfg.family === 'bart' ? 'denoising' : 'seq2seq';
  }
}

/** Host-side batch: named int32 arrays with their shapes (what becomes ModelInputs + labels). */
export interface HostBatch {
  arrays: Record<string, { data: Int32Array; shape: [number, number] }>;
  /** targets that count in the loss */
  tokens: number;
  /** 1-D extras (e.g. NSP labels) */
  vectors?: Record<string, Int32Array>;
  /** TBPTT: start fresh hidden state */
  reset?: boolean;
  /** TBPTT: an evaluation window, run from a zero state without touching the carried training state */
  standalone?: boolean;
}

export interface TaskData {
  train: TokenSource;
  val: TokenSource;
  /** raw text of the splits (sentence-level objectives: BERT's NSP uses lines as sentences) */
  trainText?: string;
  valText?: string;
  encode?: (text: string) => number[];
}

export interface TaskOptions {
  batchSize: number;
  blockSize: number;
  seed: number;
}

export interface LossResult {
  loss: Tensor;
  /** target tokens the loss averaged over */
  tokens: number;
}

/** A training objective bound to its data: deterministic for a seed, resumable by position. */
export interface TrainTask {
  /** an ObjectiveName for pretraining tasks; post-training tasks (src/align) name their method */
  readonly objective: string;
  /** batches drawn so far (saved in checkpoints) */
  readonly position: number;
  next(): HostBatch;
  /** jump to a saved position (replays the draws deterministically) */
  seek(position: number): void;
  /** the loss of one batch (call inside a scope) */
  loss(model: LanguageModel, b: HostBatch): LossResult;
  /**
   * the loss is a mean over the batch's `tokens` target tokens, which vary from batch to batch (MLM,
   * seq2seq): gradient accumulation then weights each micro-batch by its token count, not 1/gradAccum,
   * and draws the step's micro-batches before the first backward
   */
  readonly tokenMeanLoss?: boolean;
  /** fixed evaluation batches for the eval with index `k` (nanoGPT draws fresh random windows each time) */
  evalBatches(split: 'train' | 'val', k: number, count: number): HostBatch[];
  /** tensors carried from step to step (TBPTT hidden state) by path, for checkpoints */
  carriedState?(): Map<string, Tensor>;
  /** puts saved carried tensors back (after `seek`); the task takes ownership */
  restoreCarried?(model: LanguageModel, state: ReadonlyMap<string, Tensor>): void;
  /** tensors kept between steps (TBPTT state); freed by the trainer at the end */
  dispose?(): void;
}

const i32 = (a: { data: Int32Array; shape: [number, number] }) => tensor(a.data, { shape: a.shape, dtype: 'int32' });
const mixSeed = (seed: number, k: number) => (Math.imul(seed ^ 0x5bd1e995, 31) + k * 0x9e3779b1) >>> 0;

/**
 * logits vs labels (ignore -100), plus the model's auxiliary loss (MoE balancing) while it trains: an
 * evaluation (eval mode) reports the cross-entropy alone, so a validation loss or perplexity is comparable
 * across dense and MoE models. A batch with no target (`targets` 0: MLM masked nothing) has loss 0 and zero
 * gradients, not the 0/0 = NaN of a mean over nothing (which Hugging Face returns, and which would read as
 * an overflow).
 */
function lmLoss(
  model: LanguageModel,
  out: { logits: Tensor; auxLoss?: Tensor },
  labels: Tensor,
  targets?: number,
): Tensor {
  const reduction = targets === 0 ? 'sum' : 'mean';
  const ce = crossEntropy(out.logits, labels, { ignoreIndex: IGNORE_INDEX, reduction });
  return out.auxLoss && model.training ? add(ce, out.auxLoss) : ce;
}

function countTargets(labels: Int32Array): number {
  let n = 0;
  for (const v of labels) if (v !== IGNORE_INDEX) n++;
  return n;
}

// ---- a generic "draw by position" task: batch i is a pure function of (seed, i) ----

abstract class IndexedTask implements TrainTask {
  abstract readonly objective: ObjectiveName;
  position = 0;
  constructor(protected readonly o: TaskOptions) {}
  protected abstract draw(split: 'train' | 'val', rng: Rng): HostBatch;
  abstract loss(model: LanguageModel, b: HostBatch): LossResult;
  next(): HostBatch {
    return this.draw('train', new Rng(mixSeed(this.o.seed, this.position++)));
  }
  seek(position: number): void {
    this.position = position;
  }
  evalBatches(split: 'train' | 'val', k: number, count: number): HostBatch[] {
    return Array.from({ length: count }, (_, i) =>
      this.draw(split, new Rng(mixSeed(this.o.seed + 7919 * (k + 1), i + (split === 'val' ? 1 << 20 : 0)))),
    );
  }
}

// ---- causal LM ----

/** nanoGPT: B random windows of T+1 tokens per batch; eval draws fresh windows per evaluation */
export class CausalLMTask implements TrainTask {
  readonly objective = 'causal-lm';
  private batcher: RandomBatcher;
  private drawn = 0;

  constructor(
    private readonly data: TaskData,
    private readonly o: TaskOptions,
  ) {
    this.batcher = new RandomBatcher(data.train, o.batchSize, o.blockSize, o.seed);
  }
  get position(): number {
    return this.drawn;
  }
  next(): HostBatch {
    this.drawn++;
    const b = this.batcher.next();
    const shape: [number, number] = [b.rows, b.blockSize];
    return { arrays: { inputIds: { data: b.x, shape }, labels: { data: b.y, shape } }, tokens: b.x.length };
  }
  seek(position: number): void {
    // replay the start offsets only (no token reads): RandomBatcher draws batchSize ints per batch
    this.batcher = new RandomBatcher(this.data.train, this.o.batchSize, this.o.blockSize, this.o.seed);
    const hi = this.data.train.length - this.o.blockSize;
    for (let i = 0; i < position * this.o.batchSize; i++) this.batcher.rng.int(hi);
    this.drawn = position;
  }
  loss(model: LanguageModel, b: HostBatch): LossResult {
    const out = model.forward({ inputIds: i32(b.arrays.inputIds!) });
    return { loss: lmLoss(model, out, i32(b.arrays.labels!)), tokens: b.tokens };
  }
  evalBatches(split: 'train' | 'val', k: number, count: number): HostBatch[] {
    const src = split === 'train' ? this.data.train : this.data.val;
    const bat = new RandomBatcher(
      src,
      this.o.batchSize,
      this.o.blockSize,
      mixSeed(this.o.seed + (split === 'val' ? 1 : 2), k),
    );
    return Array.from({ length: count }, () => {
      const b = bat.next();
      const shape: [number, number] = [b.rows, b.blockSize];
      return { arrays: { inputIds: { data: b.x, shape }, labels: { data: b.y, shape } }, tokens: b.x.length };
    });
  }
}

// ---- truncated BPTT (RNN) ----

interface CarriedCache extends Cache {
  detach?(): void;
}

/** contiguous rows, chunks of blockSize; the hidden state flows from chunk to chunk, gradients do not */
export class BpttTask implements TrainTask {
  readonly objective = 'tbptt';
  private batcher: BpttBatcher;
  private drawn = 0;
  private cache: CarriedCache | null = null;
  private kept: Tensor[] = [];

  constructor(
    private readonly data: TaskData,
    private readonly o: TaskOptions,
  ) {
    this.batcher = new BpttBatcher(data.train, o.batchSize, o.blockSize);
  }
  get position(): number {
    return this.drawn;
  }
  next(): HostBatch {
    this.drawn++;
    const c = this.batcher.next();
    const shape: [number, number] = [c.batchSize, c.seqLen];
    return {
      arrays: { inputIds: { data: c.x, shape }, labels: { data: c.y, shape } },
      tokens: c.x.length,
      reset: c.reset.some((r) => r),
    };
  }
  seek(position: number): void {
    // the carried hidden state comes back separately (restoreCarried)
    this.batcher = new BpttBatcher(this.data.train, this.o.batchSize, this.o.blockSize);
    for (let i = 0; i < position; i++) this.batcher.next();
    this.drawn = position;
  }
  loss(model: LanguageModel, b: HostBatch): LossResult {
    if (b.standalone) {
      const cache = model.newCache?.(b.arrays.inputIds!.shape[0]) ?? null;
      const out = model.forward({ inputIds: i32(b.arrays.inputIds!), cache });
      return { loss: lmLoss(model, out, i32(b.arrays.labels!)), tokens: b.tokens };
    }
    if (b.reset || !this.cache) this.resetState(model);
    const out = model.forward({ inputIds: i32(b.arrays.inputIds!), cache: this.cache });
    const loss = lmLoss(model, out, i32(b.arrays.labels!));
    this.carry();
    return { loss, tokens: b.tokens };
  }
  /** detach the new state from the graph and keep it past the step's scope */
  private carry(): void {
    this.cache?.detach?.();
    const fresh = [...collectTensors(this.cache).values()];
    for (const t of fresh) keep(t);
    for (const t of this.kept) if (!fresh.includes(t)) t.dispose();
    this.kept = fresh;
  }
  private resetState(model: LanguageModel): void {
    this.dispose();
    if (!model.newCache)
      throw new Error(`tbptt: model family ${model.config.family} has no newCache() to carry hidden state`);
    this.cache = model.newCache(this.o.batchSize);
  }
  carriedState(): Map<string, Tensor> {
    return collectTensors(this.cache);
  }
  restoreCarried(model: LanguageModel, state: ReadonlyMap<string, Tensor>): void {
    this.resetState(model);
    if (state.size === 0) return;
    for (const [path, t] of state) setPath(this.cache!, path.split('.'), keep(t));
    this.kept = [...state.values()];
  }
  evalBatches(split: 'train' | 'val', _k: number, count: number): HostBatch[] {
    const src = split === 'train' ? this.data.train : this.data.val;
    const bat = new RandomBatcher(
      src,
      this.o.batchSize,
      this.o.blockSize,
      mixSeed(this.o.seed, split === 'val' ? 1 : 2),
    );
    return Array.from({ length: count }, () => {
      const b = bat.next();
      const shape: [number, number] = [b.rows, b.blockSize];
      return {
        arrays: { inputIds: { data: b.x, shape }, labels: { data: b.y, shape } },
        tokens: b.x.length,
        standalone: true,
      };
    });
  }
  dispose(): void {
    for (const t of this.kept) t.dispose();
    this.kept = [];
    this.cache = null;
  }
}

/** the tensors inside a cache object by dotted path (`state.0.h`) */
function collectTensors(x: unknown, out = new Map<string, Tensor>(), path: string[] = []): Map<string, Tensor> {
  if (path.length > 5 || x === null || typeof x !== 'object') return out;
  if (x instanceof Tensor) {
    out.set(path.join('.'), x);
    return out;
  }
  for (const [k, v] of Object.entries(x)) collectTensors(v, out, [...path, k]);
  return out;
}

/** sets obj[a][b]... = value, creating arrays for numeric keys and objects otherwise */
function setPath(obj: object, path: string[], value: Tensor): void {
  let cur = obj as Record<string, unknown>;
  path.slice(0, -1).forEach((k, i) => {
    if (cur[k] === null || cur[k] === undefined) cur[k] = /^\d+$/.test(path[i + 1]!) ? [] : {};
    cur = cur[k] as Record<string, unknown>;
  });
  cur[path.at(-1)!] = value;
}

// ---- BERT: masked LM (+ NSP) ----

/** what specialIds reads from a Tokenizer */
export interface SpecialSource {
  specialTokens: Partial<Record<string, { id: number }>>;
  /** lets createTask tell a free control-byte id from a real text character */
  decode?(ids: number[]): string;
}

export interface SpecialIds {
  pad: number;
  cls: number;
  sep: number;
  mask: number;
  eos: number;
  bos: number;
}

/**
 * Special ids for objectives that need them: config tokens first, then the tokenizer's specials, else
 * low control-byte ids (a toy convention for the bytes tokenizer, whose ids 0..3 never occur in text).
 */
export function specialIds(cfg: ModelConfig, tok?: SpecialSource): SpecialIds {
  const t = cfg.tokens;
  const get = (role: string, cfgId: number | null, fallback: number) =>
    cfgId ?? tok?.specialTokens[role]?.id ?? fallback;
  return {
    pad: get('pad', t.pad, 0),
    cls: get('cls', t.bos, 1),
    sep: get('sep', t.eos, 2),
    mask: get('mask', null, 3),
    eos: get('eos', t.eos, 2),
    bos: get('bos', t.bos, 1),
  };
}

/** documents = paragraphs (blank-line separated), sentences = lines, each encoded */
function documents(text: string, encode: (s: string) => number[]): number[][][] {
  return text
    .split(/\n\s*\n/)
    .map((p) =>
      p
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => encode(l)),
    )
    .filter((d) => d.length >= 2);
}

export class MlmTask extends IndexedTask {
  readonly objective: ObjectiveName;
  readonly tokenMeanLoss = true;
  private docs: Record<'train' | 'val', number[][][]>;

  constructor(
    private readonly data: TaskData,
    o: TaskOptions,
    private readonly cfg: ModelConfig,
    private readonly ids: SpecialIds,
    nsp: boolean,
  ) {
    super(o);
    this.objective = nsp ? 'mlm-nsp' : 'mlm';
    if (!data.trainText || !data.valText || !data.encode)
      throw new Error(`${this.objective}: needs the raw text and a tokenizer (sentence pairs are built from lines)`);
    this.docs = { train: documents(data.trainText, data.encode), val: documents(data.valText, data.encode) };
    for (const s of ['train', 'val'] as const)
      if (this.docs[s].length === 0)
        throw new Error(`${this.objective}: the ${s} text has no paragraph with two lines`);
  }

  protected draw(split: 'train' | 'val', rng: Rng): HostBatch {
    const docs = this.docs[split];
    const ex = Array.from({ length: this.o.batchSize }, () => {
      const d = rng.int(docs.length);
      const pair = nspPair(docs, d, rng.int(docs[d]!.length - 1), rng, {
        clsId: this.ids.cls,
        sepId: this.ids.sep,
        maxLength: this.o.blockSize,
      });
      const m = maskTokens(pair.inputIds, rng, {
        vocabSize: this.cfg.vocabSize,
        maskId: this.ids.mask,
        specialIds: Object.values(this.ids),
      });
      return { ...pair, ...m };
    });
    const L = Math.max(...ex.map((e) => e.inputIds.length));
    const pad = (rows: ArrayLike<number>[], v: number) => ({
      data: padRows(rows, v, L).data,
      shape: [ex.length, L] as [number, number],
    });
    const labels = pad(
      ex.map((e) => e.labels),
      IGNORE_INDEX,
    );
    return {
      arrays: {
        inputIds: pad(
          ex.map((e) => e.inputIds),
          this.ids.pad,
        ),
        tokenTypeIds: pad(
          ex.map((e) => e.tokenTypeIds),
          0,
        ),
        attentionMask: pad(
          ex.map((e) => new Int32Array(e.inputIds.length).fill(1)),
          0,
        ),
        labels,
      },
      vectors: { nextSentenceLabel: Int32Array.from(ex.map((e) => e.nextSentenceLabel)) },
      tokens: countTargets(labels.data),
    };
  }

  loss(model: LanguageModel, b: HostBatch): LossResult {
    const a = b.arrays;
    const out = model.forward({
      inputIds: i32(a.inputIds!),
      tokenTypeIds: i32(a.tokenTypeIds!),
      attentionMask: i32(a.attentionMask!),
    });
    let loss = lmLoss(model, out, i32(a.labels!), b.tokens);
    if (this.objective === 'mlm-nsp') {
      if (!out.nspLogits)
        throw new Error(
          `mlm-nsp: the model returned no nspLogits (use a BERT config with head 'pretraining', or --objective mlm)`,
        );
      loss = add(loss, crossEntropy(out.nspLogits, tensor(b.vectors!.nextSentenceLabel!, { dtype: 'int32' })));
    }
    return { loss, tokens: b.tokens };
  }
}

/**
 * RoBERTa's MLM (Liu et al. 2019): no next-sentence pairs and no segment ids; each example is a contiguous
 * window of the corpus ("FULL-SENTENCES") between <s> and </s>, masked dynamically: the mask is drawn when
 * the batch is drawn, so a window seen twice gets two different masks (BERT's original data was masked once,
 * statically, at preprocessing). Used by the families without NSP (roberta, longformer, big_bird).
 */
export class WindowMlmTask extends IndexedTask {
  readonly objective = 'mlm';
  readonly tokenMeanLoss = true;
  constructor(
    private readonly data: TaskData,
    o: TaskOptions,
    private readonly cfg: ModelConfig,
    private readonly ids: SpecialIds,
  ) {
    super(o);
    if (o.blockSize < 3) throw new Error(`mlm: blockSize must be >= 3 (<s>, a token, </s>), got ${o.blockSize}`);
  }

  protected draw(split: 'train' | 'val', rng: Rng): HostBatch {
    const src = split === 'train' ? this.data.train : this.data.val;
    const T = Math.min(this.o.blockSize - 2, src.length);
    const ex = Array.from({ length: this.o.batchSize }, () => {
      const w = [this.ids.cls, ...readTokens(src, rng.int(src.length - T + 1), T), this.ids.sep];
      return maskTokens(w, rng, {
        vocabSize: this.cfg.vocabSize,
        maskId: this.ids.mask,
        specialIds: Object.values(this.ids),
      });
    });
    const shape: [number, number] = [ex.length, T + 2];
    const cat = (rows: Int32Array[]) => ({ data: Int32Array.from(rows.flatMap((r) => [...r])), shape });
    const labels = cat(ex.map((e) => e.labels));
    return { arrays: { inputIds: cat(ex.map((e) => e.inputIds)), labels }, tokens: countTargets(labels.data) };
  }

  loss(model: LanguageModel, b: HostBatch): LossResult {
    const out = model.forward({ inputIds: i32(b.arrays.inputIds!) });
    return { loss: lmLoss(model, out, i32(b.arrays.labels!), b.tokens), tokens: b.tokens };
  }
}

// ---- encoder-decoder objectives ----

/** teacher-forced seq2seq loss from padded (encoder ids, decoder ids, labels) */
function seq2seqLoss(model: LanguageModel, b: HostBatch): LossResult {
  const a = b.arrays;
  const inputs: ModelInputs = { inputIds: i32(a.inputIds!), decoderInputIds: i32(a.decoderInputIds!) };
  if (a.attentionMask) inputs.attentionMask = i32(a.attentionMask);
  if (a.decoderAttentionMask) inputs.decoderAttentionMask = i32(a.decoderAttentionMask);
  return { loss: lmLoss(model, model.forward(inputs), i32(a.labels!), b.tokens), tokens: b.tokens };
}

function seq2seqHost(
  pairs: { source: ArrayLike<number>; target: ArrayLike<number> }[],
  ids: SpecialIds,
  eos: boolean,
): HostBatch {
  const s = seq2seqBatch(pairs, { bosId: ids.bos, padId: ids.pad, ...(eos ? { eosId: ids.eos } : {}) });
  const src: [number, number] = [s.rows, s.srcLength];
  const tgt: [number, number] = [s.rows, s.tgtLength];
  return {
    arrays: {
      inputIds: { data: s.inputIds, shape: src },
      attentionMask: { data: Int32Array.from(s.attentionMask), shape: src },
      decoderInputIds: { data: s.decoderInputIds, shape: tgt },
      decoderAttentionMask: { data: Int32Array.from(s.decoderAttentionMask), shape: tgt },
      labels: { data: s.labels, shape: tgt },
    },
    tokens: countTargets(s.labels),
  };
}

/** T5 span corruption over random windows sized so encoder inputs fit blockSize */
export class SpanCorruptionTask extends IndexedTask {
  readonly objective = 'span-corruption';
  readonly tokenMeanLoss = true;
  private readonly raw: number;
  constructor(
    private readonly data: TaskData,
    o: TaskOptions,
    private readonly cfg: ModelConfig,
    private readonly ids: SpecialIds,
  ) {
    super(o);
    this.raw = spanCorruptionLengths(o.blockSize).tokensLength;
  }
  protected draw(split: 'train' | 'val', rng: Rng): HostBatch {
    const src = split === 'train' ? this.data.train : this.data.val;
    const pairs = Array.from({ length: this.o.batchSize }, () => {
      const w = readTokens(src, rng.int(src.length - this.raw), this.raw);
      const ex = spanCorruption(w, rng, { vocabSize: this.cfg.vocabSize, eosId: this.ids.eos });
      return { source: ex.inputs, target: ex.targets };
    });
    return seq2seqHost(pairs, { ...this.ids, bos: this.cfg.tokens.decoderStart ?? this.ids.pad }, false);
  }
  loss(model: LanguageModel, b: HostBatch): LossResult {
    return seq2seqLoss(model, b);
  }
}

/** BART text infilling: the decoder reconstructs the original window */
export class DenoisingTask extends IndexedTask {
  readonly objective = 'denoising';
  readonly tokenMeanLoss = true;
  constructor(
    private readonly data: TaskData,
    o: TaskOptions,
    private readonly cfg: ModelConfig,
    private readonly ids: SpecialIds,
  ) {
    super(o);
  }
  protected draw(split: 'train' | 'val', rng: Rng): HostBatch {
    const src = split === 'train' ? this.data.train : this.data.val;
    const T = this.o.blockSize - 2;
    const pairs = Array.from({ length: this.o.batchSize }, () => {
      const w = [this.ids.bos, ...readTokens(src, rng.int(src.length - T), T), this.ids.eos];
      const ex = bartDenoising(w, rng, {
        maskId: this.ids.mask,
        maskRatio: 0.3,
        specialIds: [this.ids.bos, this.ids.eos],
      });
      return { source: ex.inputs, target: ex.targets };
    });
    return seq2seqHost(pairs, { ...this.ids, bos: this.cfg.tokens.decoderStart ?? this.ids.eos }, false);
  }
  loss(model: LanguageModel, b: HostBatch): LossResult {
    return seq2seqLoss(model, b);
  }
}

/** Vaswani 2017 / Marian on a synthetic translation task (string reversal): data needs no corpus */
export class SyntheticSeq2SeqTask extends IndexedTask {
  readonly objective = 'seq2seq';
  readonly tokenMeanLoss = true;
  readonly dataset: SyntheticDataset;
  constructor(
    o: TaskOptions,
    private readonly cfg: ModelConfig,
  ) {
    super(o);
    this.dataset = syntheticSeq2Seq({
      task: 'reverse',
      count: 20000,
      seed: o.seed,
      maxLength: Math.max(3, Math.min(20, o.blockSize - 2)),
    });
    if (this.dataset.vocabSize > cfg.vocabSize)
      throw new Error(
        `seq2seq: the synthetic task needs ${this.dataset.vocabSize} ids, the model has vocabSize ${cfg.vocabSize}`,
      );
  }
  protected draw(split: 'train' | 'val', rng: Rng): HostBatch {
    const pool = split === 'train' ? this.dataset.train : this.dataset.val;
    const pairs = Array.from({ length: this.o.batchSize }, () => pool[rng.int(pool.length)]!);
    return seq2seqHost(pairs, { pad: 0, bos: 1, eos: 2, cls: 1, sep: 2, mask: 0 }, true);
  }
  loss(model: LanguageModel, b: HostBatch): LossResult {
    return seq2seqLoss(model, b);
  }
}

/** the model architectures each objective can train (the others fail deep in a kernel) */
const OBJECTIVE_ARCHS: Partial<Record<ObjectiveName, { archs: string[]; what: string }>> = {
  'causal-lm': { archs: ['decoder', 'mamba', 'rnn'], what: 'a causal model (decoder, Mamba or RNN)' },
  mlm: { archs: ['encoder'], what: 'an encoder model (BERT, RoBERTa, ...)' },
  'mlm-nsp': { archs: ['encoder'], what: 'an encoder model (BERT)' },
  'span-corruption': { archs: ['encoder-decoder'], what: 'an encoder-decoder model (T5, BART, ...)' },
  denoising: { archs: ['encoder-decoder'], what: 'an encoder-decoder model (T5, BART, ...)' },
  seq2seq: { archs: ['encoder-decoder'], what: 'an encoder-decoder model (T5, BART, ...)' },
};

/** the special roles an objective puts into its inputs (each needs an id no text character has) */
export const OBJECTIVE_SPECIALS: Partial<Record<ObjectiveName, (keyof SpecialIds)[]>> = {
  mlm: ['pad', 'cls', 'sep', 'mask'],
  'mlm-nsp': ['pad', 'cls', 'sep', 'mask'],
  denoising: ['pad', 'bos', 'eos', 'mask'],
  'span-corruption': ['pad', 'eos'],
};

const ROLE_TOKEN: Record<keyof SpecialIds, string> = {
  pad: '[PAD]',
  cls: '[CLS]',
  sep: '[SEP]',
  mask: '[MASK]',
  bos: '<s>',
  eos: '</s>',
};

/** the special tokens a character-level tokenizer needs added for `objective` (real ids, not stolen characters) */
export function specialTokensFor(objective: ObjectiveName): string[] {
  return (OBJECTIVE_SPECIALS[objective] ?? []).map((r) => ROLE_TOKEN[r]);
}

/**
 * Refuses an objective the model cannot run, and special ids that fell back to a real text character
 * (a char vocabulary's id 3 is "'": it would be masked as [MASK] and never predicted). The bytes
 * tokenizer's fallback ids 0..3 are control bytes, free in text: that convention stays.
 */
export function checkObjective(objective: ObjectiveName, cfg: ModelConfig, tok?: SpecialSource): void {
  const need = OBJECTIVE_ARCHS[objective];
  if (need && !need.archs.includes(cfg.arch))
    throw new Error(`objective '${objective}' needs ${need.what}; ${cfg.family} is a ${cfg.arch} model`);
  if (!tok?.decode) return;
  const ids = specialIds(cfg, tok);
  const cfgIds: Partial<Record<keyof SpecialIds, number | null>> = {
    pad: cfg.tokens.pad,
    cls: cfg.tokens.bos,
    sep: cfg.tokens.eos,
    eos: cfg.tokens.eos,
    bos: cfg.tokens.bos,
  };
  for (const role of OBJECTIVE_SPECIALS[objective] ?? []) {
    if ((cfgIds[role] ?? null) !== null || tok.specialTokens[role]) continue;
    const text = tok.decode([ids[role]]);
    if (/^[\x00-\x08\x0e-\x1f]$/.test(text)) continue; // a control byte: no text uses it
    throw new Error(
      `objective '${objective}': the tokenizer has no ${ROLE_TOKEN[role]} token (role ${role}), and the fallback ` +
        `id ${ids[role]} is the text character ${JSON.stringify(text)}; use a tokenizer with the special tokens ` +
        `${specialTokensFor(objective).join(' ')} ('--tokenizer char' adds them for this objective)`,
    );
  }
}

/** Builds the task for an objective (default: the family's). */
export function createTask(
  objective: ObjectiveName,
  cfg: ModelConfig,
  data: TaskData,
  o: TaskOptions,
  tok?: SpecialSource,
): TrainTask {
  checkObjective(objective, cfg, tok);
  const ids = specialIds(cfg, tok);
  switch (objective) {
    case 'causal-lm':
      return new CausalLMTask(data, o);
    case 'tbptt':
      return new BpttTask(data, o);
    case 'mlm':
      if (cfg.arch === 'encoder' && cfg.family !== 'bert') return new WindowMlmTask(data, o, cfg, ids);
      return new MlmTask(data, o, cfg, ids, false);
    case 'mlm-nsp':
      return new MlmTask(data, o, cfg, ids, true);
    case 'span-corruption':
      return new SpanCorruptionTask(data, o, cfg, ids);
    case 'denoising':
      return new DenoisingTask(data, o, cfg, ids);
    case 'seq2seq':
      return new SyntheticSeq2SeqTask(o, cfg);
    default:
      throw new Error(`createTask: unknown objective ${JSON.stringify(objective)} (known: ${OBJECTIVES.join(', ')})`);
  }
}
