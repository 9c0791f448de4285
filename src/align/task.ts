// Post-training methods as TrainTasks, so src/train's Trainer runs them unchanged (precision, gradient
// accumulation, clipping, checkpoints, resume). A task owns the encoded examples, the reference
// log-probabilities (computed once, before the first step), and for online methods the rollouts; its
// batches carry example indices only, so a batch is a pure function of (seed, position).
//
// Each method is a loss over log-probabilities (src/align/losses.ts) plus the rows it packs:
//   sft             completion (or assistant-turn) tokens of one row per example
//   dpo/ipo/orpo/simpo/reward   2B rows: chosen then rejected (reward: scored at the last token)
//   kto             B rows + B mismatched rows (prompt i, completion i+1) for the KL estimate
//   grpo            G sampled completions per prompt, group-normalised (or RLOO) advantages
import type { Tensor } from '../tensor/tensor.js';
import { keep, noGrad, tidy } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { add, gt, mean, sub, tensor } from '../ops/index.js';
import type { LanguageModel } from '../models/model.js';
import type { HostBatch, LossResult, TrainTask } from '../train/family-objectives.js';
import { packBatch, packFull, referenceLogps, tokenLogps, type Sequence } from './logprobs.js';
import {
  dpoLoss,
  grpoLoss,
  hingeLoss,
  ipoLoss,
  klK3,
  ktoLoss,
  maskedMean,
  orpoLoss,
  rewardLoss,
  sequenceLogps,
  sftLoss,
  simpoLoss,
  groupAdvantages,
  rlooAdvantages,
  type PreferenceResult,
} from './losses.js';
import type { AlignRecord, Encoder, PromptRecord } from './data.js';
import type { ScalarHeadModel } from './heads.js';
import { sampleGroup } from './rollout.js';
import { ppoLoss, ppoRollout, rewardModelScores, type PpoOptions, type PpoRollout } from './ppo.js';
import type { RewardFn } from './rewards.js';
import { updateKlCoef, type KlControl } from './kl-controller.js';

export type AlignMethod = 'sft' | 'reward' | 'dpo' | 'ipo' | 'kto' | 'orpo' | 'simpo' | 'ppo' | 'grpo';
export const ALIGN_METHODS: readonly AlignMethod[] = [
  'sft',
  'reward',
  'dpo',
  'ipo',
  'kto',
  'orpo',
  'simpo',
  'ppo',
  'grpo',
];

export const DATA_KIND = {
  sft: 'sft',
  reward: 'preference',
  dpo: 'preference',
  ipo: 'preference',
  orpo: 'preference',
  simpo: 'preference',
  kto: 'unpaired',
  ppo: 'prompt',
  grpo: 'prompt',
} as const satisfies { [M in AlignMethod]: AlignRecord['kind'] };

/** TRL's defaults per method: β and whether log-probs are averaged over the completion's tokens */
export const METHOD_DEFAULTS: { [M in AlignMethod]: { beta: number; averaged: boolean; reference: boolean } } = {
  sft: { beta: 0, averaged: false, reference: false },
  reward: { beta: 0, averaged: false, reference: false },
  dpo: { beta: 0.1, averaged: false, reference: true },
  ipo: { beta: 0.1, averaged: true, reference: true },
  kto: { beta: 0.1, averaged: false, reference: true },
  orpo: { beta: 0.1, averaged: true, reference: false },
  simpo: { beta: 2.0, averaged: true, reference: false },
  ppo: { beta: 0.05, averaged: false, reference: true },
  grpo: { beta: 0, averaged: false, reference: false },
};

export interface AlignTaskOptions {
  method: AlignMethod;
  beta: number;
  batchSize: number;
  seed: number;
  /** model context (rows are cut to fit) */
  limit: number;
  labelSmoothing?: number;
  /** DPO variant: 'sigmoid' (default) or 'hinge' */
  lossType?: 'sigmoid' | 'hinge';
  /** SimPO γ/β */
  simpoGamma?: number;
  /** online: samples per prompt, new tokens, temperature, reward, RLOO advantages */
  groupSize?: number;
  maxNewTokens?: number;
  temperature?: number;
  reward?: RewardFn;
  rloo?: boolean;
  /** PPO: optimisation steps per rollout */
  ppoEpochs?: number;
  /** PPO: the KL coefficient's controller (default: fixed at `beta`) */
  klControl?: KlControl;
  stopIds?: readonly number[];
  /** the tokenizer's vocabulary size (rollouts never sample ids it cannot decode) */
  vocabSize?: number;
}

/** one example, encoded: a = the row (chosen / completion / prompt), b = rejected, kl = mismatched row (KTO) */
export interface Example {
  a: Sequence;
  b?: Sequence;
  kl?: Sequence;
  label?: boolean;
  record: AlignRecord;
}

export function encodeExamples(records: readonly AlignRecord[], enc: Encoder, file = '<data>'): Example[] {
  const out = records.map((r): Example => {
    try {
      return encodeOne(r, enc);
    } catch (e) {
      throw new Error(`${file}:${r.line}: ${failingField(r, enc)}${(e as Error).message}`);
    }
  });
  // KTO's KL rows pair each prompt with the next example's completion (TRL shifts completions in the batch)
  out.forEach(
    (e, i) =>
      e.record.kind === 'unpaired' &&
      (e.kl = { prompt: e.a.prompt, completion: out[(i + 1) % out.length]!.a.completion }),
  );
  return out;
}

/** "field 'completion': " when that text alone fails to encode (the usual cause: a character outside the vocabulary) */
function failingField(r: AlignRecord, enc: Encoder): string {
  const texts: [string, unknown][] = Object.entries(r).flatMap(([k, v]): [string, unknown][] =>
    Array.isArray(v) ? v.map((m, i) => [`${k}[${i}].content`, (m as { content?: unknown }).content]) : [[k, v]],
  );
  for (const [field, v] of texts) {
    if (typeof v !== 'string' || field === 'kind') continue;
    try {
      enc.ids(v);
    } catch {
      return `field '${field}': `;
    }
  }
  return '';
}

function encodeOne(r: AlignRecord, enc: Encoder): Example {
  switch (r.kind) {
    case 'sft':
      return { a: enc.sft(r), record: r };
    case 'preference':
      return { a: enc.pair(r.prompt, r.chosen), b: enc.pair(r.prompt, r.rejected), record: r };
    case 'unpaired':
      return { a: enc.pair(r.prompt, r.completion), label: r.label, record: r };
    case 'prompt':
      return { a: { prompt: enc.ids(enc.promptText(r.prompt)), completion: [] }, record: r };
  }
}

/** every 10th example is held out (at least one when there are two or more) */
export function splitExamples(n: number): { train: number[]; val: number[] } {
  const val =
    n >= 2 ? Array.from({ length: n }, (_, i) => i).filter((i) => i % 10 === 9 || (n < 10 && i === n - 1)) : [];
  const held = new Set(val);
  return { train: Array.from({ length: n }, (_, i) => i).filter((i) => !held.has(i)), val };
}

export type Metrics = Record<string, number>;

interface Refs {
  a: Float32Array;
  b?: Float32Array;
  kl?: Float32Array;
}

export class AlignTask implements TrainTask {
  readonly objective: string;
  position = 0;
  readonly split: { train: number[]; val: number[] };
  refs: Refs | null = null;
  /** metrics of the last training batch (the command logs them beside the loss) */
  last: Metrics = {};
  private rollouts = new Map<number, Rollout>();
  private ppoRollouts = new Map<number, PpoRollout>();
  /** PPO: the policy with its value head (what the trainer trains), and an optional reward model */
  valueModel: ScalarHeadModel | null = null;
  rewardModel: ScalarHeadModel | null = null;
  /** PPO's KL coefficient: `value` for rollout `k` (the last one started), `next` for rollout k + 1 */
  private klCoef: { k: number; value: number; next: number };
  private klCoefState: Tensor | null = null;

  constructor(
    readonly examples: Example[],
    readonly o: AlignTaskOptions,
    readonly policy: LanguageModel,
    public ref: LanguageModel | null = null,
  ) {
    this.objective = `align-${o.method}`;
    this.klCoef = { k: -1, value: o.beta, next: o.beta };
    this.split = splitExamples(examples.length);
    if (this.split.train.length === 0) throw new Error('align: no training examples (the data set needs at least one)');
  }

  /** reference log-probs of every example under `ref` (the initial policy when no --ref-model), once */
  computeReferences(ref: LanguageModel): void {
    const avg = METHOD_DEFAULTS[this.o.method].averaged;
    const lp = (rows: Sequence[]) =>
      avg ? referenceLogps(ref, rows, this.o.limit).avg : referenceLogps(ref, rows, this.o.limit).sum;
    const ex = this.examples;
    this.refs = { a: lp(ex.map((e) => e.a)) };
    if (ex[0]!.b) this.refs.b = lp(ex.map((e) => e.b!));
    if (ex[0]!.kl) this.refs.kl = lp(ex.map((e) => e.kl!));
  }

  // ---- batches ----

  /** training batch `p`: B indices of an epoch-wise seeded permutation */
  private indices(p: number): number[] {
    const n = this.split.train.length;
    const B = this.o.batchSize;
    const out: number[] = [];
    for (let j = 0; j < B; j++) {
      const k = p * B + j;
      out.push(this.split.train[permutation(n, this.o.seed + Math.floor(k / n))[k % n]!]!);
    }
    return out;
  }

  next(): HostBatch {
    if (this.o.method === 'ppo') return this.nextPpo();
    const idx = this.indices(this.position);
    const b = batchOf(idx, 0, this.position);
    if (this.online) this.rollouts.set(this.position, this.rollout(idx, this.position));
    this.position++;
    return b;
  }

  /** PPO: one rollout every `ppoEpochs` batches, optimised on each of them */
  private nextPpo(): HostBatch {
    const k = Math.floor(this.position / (this.o.ppoEpochs ?? 2));
    const idx = this.indices(k);
    if (!this.ppoRollouts.has(k)) {
      this.ppoRollouts.clear();
      // a rollout replayed after --resume keeps its β; a new one takes the β the controller set last time
      const fresh = k > this.klCoef.k;
      if (fresh) this.klCoef = { k, value: this.klCoef.next, next: this.klCoef.next };
      const ro = this.rollout(idx, k);
      const scores = this.rewardModel ? rewardModelScores(this.rewardModel, ro.rows, this.o.limit) : ro.rewards;
      if (!this.valueModel || !this.ref)
        throw new Error('align ppo: the value-head model and the reference are not set');
      const ppo = ppoRollout(this.valueModel, this.ref, ro.rows, scores, this.ppoOptions());
      this.ppoRollouts.set(k, ppo);
      const ctl = this.o.klControl ?? { kind: 'fixed', coef: this.o.beta };
      if (fresh) this.klCoef.next = updateKlCoef(ctl, this.klCoef.value, ppo.kl, ro.rows.length);
    }
    this.position++;
    return batchOf(idx, 0, k);
  }

  private ppoOptions(): PpoOptions {
    return { beta: this.klCoef.value, limit: this.o.limit };
  }

  /** PPO's adaptive β travels in checkpoints as carried state: [β of the last rollout, β of the next] */
  carriedState(): Map<string, Tensor> {
    if (this.o.method !== 'ppo') return new Map();
    this.klCoefState?.dispose();
    this.klCoefState = keep(tensor(Float32Array.of(this.klCoef.value, this.klCoef.next), { shape: [2] }));
    return new Map([['kl_coef', this.klCoefState]]);
  }

  restoreCarried(_model: LanguageModel, state: ReadonlyMap<string, Tensor>): void {
    const t = state.get('kl_coef');
    if (!t) return;
    const [value, next] = tidy(() => Array.from(t.to('float32').data() as Float32Array));
    this.klCoef = { ...this.klCoef, value: value!, next: next! };
    t.dispose();
  }

  dispose(): void {
    this.klCoefState?.dispose();
    this.klCoefState = null;
  }

  seek(position: number): void {
    this.position = position;
    // the rollout of the last batch drawn (replayed with its own β), see nextPpo
    const k = position > 0 ? Math.floor((position - 1) / (this.o.ppoEpochs ?? 2)) : -1;
    this.klCoef = { k, value: this.o.beta, next: this.o.beta };
    this.rollouts.clear();
    this.ppoRollouts.clear();
  }

  evalBatches(split: 'train' | 'val', _k: number, count: number): HostBatch[] {
    if (this.online) return [];
    const pool = split === 'val' && this.split.val.length ? this.split.val : this.split.train;
    const B = this.o.batchSize;
    const out: HostBatch[] = [];
    for (let i = 0; i < Math.min(count, Math.ceil(pool.length / B)); i++)
      out.push(batchOf(pool.slice(i * B, (i + 1) * B), 1, -1));
    return out;
  }

  get online(): boolean {
    return this.o.method === 'grpo' || this.o.method === 'ppo';
  }

  // ---- losses ----

  loss(model: LanguageModel, hb: HostBatch): LossResult {
    const idx = [...hb.arrays.idx!.data];
    const r = this.lossOf(model, idx, hb.vectors?.position?.[0] ?? -1);
    if (model.training) this.last = r.metrics;
    return { loss: r.loss, tokens: r.tokens };
  }

  /** loss and metrics of one batch without gradients (held-out evaluation) */
  evaluateBatch(model: LanguageModel, hb: HostBatch): { loss: number; metrics: Metrics } {
    const idx = [...hb.arrays.idx!.data];
    return noGrad(() =>
      tidy(() => {
        const r = this.lossOf(model, idx, -1);
        return { loss: r.loss.item(), metrics: r.metrics };
      }),
    );
  }

  private lossOf(
    model: LanguageModel,
    idx: number[],
    position: number,
  ): { loss: Tensor; tokens: number; metrics: Metrics } {
    switch (this.o.method) {
      case 'sft':
        return this.sft(model, idx);
      case 'reward':
        return this.reward(model as ScalarHeadModel, idx);
      case 'dpo':
      case 'ipo':
      case 'orpo':
      case 'simpo':
        return this.preference(model, idx);
      case 'kto':
        return this.kto(model, idx);
      case 'grpo':
        return this.grpo(model, position);
      case 'ppo': {
        const ro = this.ppoRollouts.get(position);
        if (!ro) throw new Error(`align ppo: no rollout ${position}`);
        return ppoLoss(model as ScalarHeadModel, ro, this.ppoOptions());
      }
    }
  }

  private sft(model: LanguageModel, idx: number[]) {
    const b = packBatch(
      idx.map((i) => this.examples[i]!.a),
      this.o.limit,
    );
    const { logps, aux } = tokenLogps(model, b);
    const nll = sftLoss(logps, b.mask);
    const tokens = sumHost(b.mask);
    return { loss: aux ? add(nll, aux) : nll, tokens, metrics: {} };
  }

  /** (2B) sequence log-probs of chosen rows then rejected rows, and the chosen rows' SFT loss */
  private pairLogps(model: LanguageModel, idx: number[], averaged: boolean) {
    const rows = [...idx.map((i) => this.examples[i]!.a), ...idx.map((i) => this.examples[i]!.b!)];
    const b = packBatch(rows, this.o.limit);
    const { logps } = tokenLogps(model, b);
    const seq = sequenceLogps(logps, b.mask, averaged); // (2B)
    const B = idx.length;
    const nll = sftLoss(logps.slice(0, 0, B), b.mask.slice(0, 0, B));
    return { chosen: seq.slice(0, 0, B), rejected: seq.slice(0, B, 2 * B), nll, tokens: sumHost(b.mask) };
  }

  private refPair(idx: number[]) {
    if (!this.refs?.b) throw new Error('align: reference log-probabilities were not computed');
    const pick = (a: Float32Array) =>
      tensor(
        Float32Array.from(idx, (i) => a[i]!),
        { shape: [idx.length] },
      );
    return { refChosen: pick(this.refs.a), refRejected: pick(this.refs.b) };
  }

  private preference(model: LanguageModel, idx: number[]) {
    const m = this.o.method;
    const beta = this.o.beta;
    const p = this.pairLogps(model, idx, METHOD_DEFAULTS[m].averaged);
    let r: PreferenceResult;
    if (m === 'orpo') r = orpoLoss(p, p.nll, beta);
    else if (m === 'simpo') r = simpoLoss(p, beta, this.o.simpoGamma ?? 0.5, this.o.labelSmoothing ?? 0);
    else if (m === 'ipo') r = ipoLoss({ ...p, ...this.refPair(idx) }, beta);
    else if (this.o.lossType === 'hinge') r = hingeLoss({ ...p, ...this.refPair(idx) }, beta);
    else r = dpoLoss({ ...p, ...this.refPair(idx) }, beta, this.o.labelSmoothing ?? 0);
    return { loss: r.loss, tokens: p.tokens, metrics: rewardMetrics(r.chosenRewards, r.rejectedRewards) };
  }

  private kto(model: LanguageModel, idx: number[]) {
    if (!this.refs?.kl) throw new Error('align kto: reference log-probabilities were not computed');
    const ex = idx.map((i) => this.examples[i]!);
    const b = packBatch(
      ex.map((e) => e.a),
      this.o.limit,
    );
    const logps = sequenceLogps(tokenLogps(model, b).logps, b.mask);
    const klRows = packBatch(
      ex.map((e) => e.kl!),
      this.o.limit,
    );
    const policyKl = noGrad(() => sequenceLogps(tokenLogps(model, klRows).logps, klRows.mask).data());
    const kl = idx.reduce((s, i, j) => s + policyKl[j]! - this.refs!.kl![i]!, 0) / idx.length;
    const refLogps = tensor(
      Float32Array.from(idx, (i) => this.refs!.a[i]!),
      { shape: [idx.length] },
    );
    const r = ktoLoss({ logps, refLogps, labels: ex.map((e) => e.label!), kl }, this.o.beta);
    return { loss: r.loss, tokens: sumHost(b.mask), metrics: { kl: Math.max(0, kl) } };
  }

  private reward(model: ScalarHeadModel, idx: number[]) {
    const rows = [...idx.map((i) => this.examples[i]!.a), ...idx.map((i) => this.examples[i]!.b!)];
    const s = this.scoreRows(model, rows);
    const B = idx.length;
    const [c, r] = [s.slice(0, 0, B), s.slice(0, B, 2 * B)];
    return { loss: rewardLoss(c, r), tokens: rows.length, metrics: rewardMetrics(c, r) };
  }

  /** reward-model scores at each row's last token: (rows) */
  scoreRows(model: ScalarHeadModel, rows: readonly Sequence[]): Tensor {
    const b = packFull(rows, this.o.limit);
    const hidden = model.forward({ inputIds: b.inputIds }).lastHiddenState;
    if (!hidden) throw new Error(`reward: the ${model.config.family} model does not return hidden states`);
    return model.scoreAt(hidden, b.lastIndex);
  }

  // ---- GRPO ----

  private rollout(idx: number[], position: number): Rollout {
    const G = this.o.groupSize ?? 4;
    const rng = new Rng((this.o.seed * 7919 + position * 104729) >>> 0);
    const rows: Sequence[] = [];
    const rewards: number[] = [];
    for (const i of idx) {
      const ex = this.examples[i]!;
      const samples = sampleGroup(
        this.policy,
        ex.a.prompt,
        G,
        {
          maxTokens: this.o.maxNewTokens ?? 16,
          temperature: this.o.temperature ?? 1,
          stopIds: this.o.stopIds,
          vocabSize: this.o.vocabSize,
        },
        rng,
      );
      for (const s of samples) {
        rows.push({ prompt: ex.a.prompt, completion: s.length ? s : [ex.a.prompt.at(-1)!] });
        rewards.push(this.o.reward ? this.o.reward(this.decode(s), ex.record as PromptRecord) : 0);
      }
    }
    const r = Float32Array.from(rewards);
    const adv = this.o.method === 'ppo' ? r : this.o.rloo ? rlooAdvantages(r, G) : groupAdvantages(r, G);
    return { rows, rewards: r, advantages: adv };
  }

  /** set by the command: ids → text for reward functions */
  decode: (ids: number[]) => string = () => {
    throw new Error('align: no decoder set for rewards');
  };

  private grpo(model: LanguageModel, position: number) {
    const ro = this.rollouts.get(position);
    if (!ro) throw new Error(`align grpo: no rollout for batch ${position}`);
    this.rollouts.delete(position);
    const b = packBatch(ro.rows, this.o.limit);
    const { logps } = tokenLogps(model, b);
    // one policy update per rollout (TRL num_iterations = 1): the old policy is the current one, detached
    const oldLogps = logps.detach();
    const refLogps = this.o.beta > 0 && this.ref ? noGrad(() => tokenLogps(this.ref!, b).logps) : undefined;
    const advantages = tensor(ro.advantages, { shape: [ro.advantages.length] });
    const { loss } = grpoLoss({ logps, oldLogps, refLogps, advantages, mask: b.mask }, this.o.beta);
    const metrics: Metrics = { reward: mean1(ro.rewards), reward_std: std1(ro.rewards) };
    if (refLogps) metrics.kl = noGrad(() => maskedMean(klK3(logps, refLogps), b.mask).item());
    return { loss, tokens: sumHost(b.mask), metrics };
  }
}

interface Rollout {
  rows: Sequence[];
  rewards: Float32Array;
  advantages: Float32Array;
}

function batchOf(idx: number[], isVal: number, position: number): HostBatch {
  return {
    arrays: { idx: { data: Int32Array.from(idx), shape: [1, idx.length] } },
    tokens: idx.length,
    vectors: { val: Int32Array.of(isVal), position: Int32Array.of(position) },
  };
}

/** seeded Fisher–Yates permutation of 0..n-1 */
function permutation(n: number, seed: number): number[] {
  const rng = new Rng(seed >>> 0);
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

const sumHost = (t: Tensor) => (t.data() as Float32Array).reduce((a, b) => a + b, 0);
const mean1 = (a: Float32Array) => a.reduce((s, x) => s + x, 0) / Math.max(1, a.length);
const std1 = (a: Float32Array) => Math.sqrt(a.reduce((s, x) => s + (x - mean1(a)) ** 2, 0) / Math.max(1, a.length));

/** TRL's logged reward metrics: chosen/rejected rewards, accuracy (margin > 0), margin */
function rewardMetrics(c: Tensor, r: Tensor): Metrics {
  return noGrad(() =>
    tidy(() => ({
      rewards_chosen: mean(c).item(),
      rewards_rejected: mean(r).item(),
      accuracy: mean(gt(c, r).to('float32')).item(),
      margin: mean(sub(c, r)).item(),
    })),
  );
}
