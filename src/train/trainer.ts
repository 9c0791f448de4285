// The training loop (browser-safe: files, progress bars and checkpoints directories are the caller's,
// passed in as hooks; src/cli/commands/train.ts is the Node front end).
//
// One optimizer step (nanoGPT's loop):
//   lr = schedule(step)
//   for each of gradAccum micro-batches: loss·w (· loss scale) → backward → fp32 masters (grads accumulate)
//     w = 1/gradAccum, or the micro-batch's share of the step's target tokens (token-mean objectives)
//   skip the step if any gradient is inf/nan (fp16)
//   clip by global norm; optimizer step on the masters; masters → model (bf16/fp16 rounding)
// Each micro-step runs inside `tidy`, so memory is flat across steps: only parameters, masters, grads
// (between backward and step) and optimizer moments live outside scopes.
//
// Reproducibility: the data order is a pure function of (seed, batches drawn); the trainer state (step,
// batches drawn, optimizer moments, loss scale, the tensor RNG used by dropout) is saved with the fp32
// weights, so a killed run resumed from its last checkpoint continues with identical losses.
import '../autograd/index.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { defaultRng } from '../tensor/random.js';
import type { Tensor } from '../tensor/tensor.js';
import { mul, tensor } from '../ops/index.js';
import type { LanguageModel } from '../models/model.js';
import {
  assign,
  clipGradNorm,
  createOptimizer,
  gradNorm,
  type Optimizer,
  type OptimizerConfig,
  type OptimizerState,
} from './optim.js';
import { MixedPrecision, type LossScalerOptions, type LossScalerState, type Precision } from './precision.js';
import { lrAt, validateSchedule, type Schedule } from './schedule.js';
import type { HostBatch, TrainTask } from './family-objectives.js';

export interface TrainerOptions {
  /** optimizer steps to take in total */
  steps: number;
  /** micro-batches per optimizer step (gradient accumulation) */
  gradAccum?: number;
  schedule: Schedule;
  optimizer: OptimizerConfig;
  /** clip the global gradient norm to this value (0 = off) */
  gradClip?: number;
  precision?: Precision;
  /** dynamic loss scaling options (fp16) */
  lossScale?: LossScalerOptions;
  /** recompute each block's activations in backward (the model must honour `gradientCheckpointing`) */
  gradientCheckpointing?: boolean;
  /** evaluate every N steps (and at the end); 0 = only at the end */
  evalInterval?: number;
  /** batches per split per evaluation (nanoGPT eval_iters) */
  evalBatches?: number;
  /** fp16: steps skipped in a row (inf/nan gradients) before training stops with an error (default 50) */
  maxSkippedSteps?: number;
}

export interface StepResult {
  /** 0-based index of the step just taken (nanoGPT iter_num) */
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  /** target tokens processed in the step */
  tokens: number;
  /** the step was skipped (fp16 overflow) */
  skipped: boolean;
  lossScale?: number;
  ms: number;
}

export interface EvalResult {
  /** optimizer steps completed when evaluated */
  step: number;
  train: number;
  val: number;
  /** batches behind each figure; 0 when the task has nothing to evaluate on a split (online RL
   * methods), and the figure is then NaN by definition rather than a sign of overflow */
  batches: { train: number; val: number };
}

/** JSON part of a trainer checkpoint (tensors — weights and optimizer moments — are stored separately) */
export interface TrainerState {
  version: 1;
  step: number;
  /** the run's planned optimizer steps and schedule (absent in checkpoints written before they were saved) */
  steps?: number;
  schedule?: Schedule;
  /** seconds of training before this checkpoint, over all sessions of the run */
  elapsed?: number;
  taskPosition: number;
  objective: string;
  rng: number[];
  scaler: LossScalerState | null;
  precision: Precision;
  optimizer: Omit<OptimizerState, 'buffers'>;
}

/**
 * A non-finite loss or gradient outside fp16's dynamic loss scaling (which skips such steps): the
 * weights would turn to NaN, so training stops before the optimizer step; the last checkpoint stays good.
 */
export class NonFiniteLossError extends Error {
  constructor(
    readonly step: number,
    readonly what: string,
    readonly value: number,
    readonly lr: number,
    hint: string,
  ) {
    super(`training stopped at step ${step}: ${what} is ${value} (not finite) at learning rate ${lr}; ${hint}`);
    this.name = 'NonFiniteLossError';
  }
}

/** fp16 steps skipped in a row before the trainer gives up: the loss scale has then fallen by 2^-50 */
export const MAX_SKIPPED_STEPS = 50;

/** models opt in to gradient checkpointing through this flag (see docs/TRAINING.md) */
export interface CheckpointableModel {
  gradientCheckpointing?: boolean;
}

export class Trainer {
  /** optimizer steps completed */
  step = 0;
  readonly mp: MixedPrecision;
  readonly optimizer: Optimizer;
  readonly o: Required<TrainerOptions>;
  /** seconds trained in earlier sessions of this run (restored by loadState) */
  elapsedBefore = 0;
  private readonly started = performance.now();
  /** fp16 steps skipped in a row (inf/nan gradients) */
  private skippedInARow = 0;
  private disposed = false;

  constructor(
    readonly model: LanguageModel,
    readonly task: TrainTask,
    opts: TrainerOptions,
  ) {
    this.o = {
      gradAccum: 1,
      gradClip: 0,
      precision: 'fp32',
      gradientCheckpointing: false,
      evalInterval: 0,
      evalBatches: 20,
      lossScale: {},
      maxSkippedSteps: MAX_SKIPPED_STEPS,
      ...opts,
    };
    if (!(Number.isInteger(this.o.steps) && this.o.steps >= 0))
      throw new Error(`trainer: steps must be a non-negative integer, got ${this.o.steps}`);
    if (!(Number.isInteger(this.o.gradAccum) && this.o.gradAccum >= 1))
      throw new Error(`trainer: gradAccum must be a positive integer, got ${this.o.gradAccum}`);
    validateSchedule(this.o.schedule);
    if (this.o.gradientCheckpointing) enableGradientCheckpointing(model);
    this.mp = new MixedPrecision(model, this.o.precision, { scaler: this.o.lossScale });
    this.optimizer = createOptimizer(this.mp.masters, this.o.optimizer);
    model.train();
  }

  /** One optimizer step over gradAccum micro-batches drawn from the task. */
  trainStep(): StepResult {
    this.assertAlive('trainStep');
    const t0 = performance.now();
    const lr = lrAt(this.o.schedule, this.step);
    this.optimizer.lr = lr;
    let loss = 0;
    let tokens = 0;
    let badLoss: number | null = null;
    const K = this.o.gradAccum;
    // token-mean objectives with ragged targets (MLM, seq2seq): each micro-batch's mean loss is weighted by
    // its share of the step's target tokens, so the gradient is that of one K-times larger batch (a plain
    // 1/K would weight a token of a sparsely masked micro-batch more than one of a dense micro-batch)
    const drawn = K > 1 && this.task.tokenMeanLoss ? Array.from({ length: K }, () => this.task.next()) : null;
    const total = drawn?.reduce((s, b) => s + b.tokens, 0) ?? 0;
    let gradsFinite = true;
    for (let i = 0; i < K; i++) {
      const batch = drawn ? drawn[i]! : this.task.next();
      const r = this.microStep(batch, drawn && total > 0 ? batch.tokens / total : 1 / K);
      loss = r.loss; // nanoGPT logs the last micro-batch's loss
      if (!Number.isFinite(r.loss)) badLoss = r.loss;
      tokens += r.tokens;
      // bf16/fp16: sum the micro-batches' gradients in the float32 masters, not in the low-precision
      // parameters' gradients (where every addition would round to 8 or 11 mantissa bits)
      if (i < K - 1 && this.mp.lowPrecision) gradsFinite = this.mp.unscaleToMasters() && gradsFinite;
    }
    gradsFinite = this.mp.unscaleToMasters() && gradsFinite;
    const params = this.optimizer.params;
    const norm = this.o.gradClip > 0 ? clipGradNorm(params, this.o.gradClip) : gradNorm(params);
    const finite = gradsFinite && Number.isFinite(norm) && badLoss === null;
    if (!finite) this.checkNonFinite(badLoss, norm, lr);
    if (finite) {
      this.optimizer.step();
      this.mp.copyMastersToModel();
      this.model.afterOptimizerStep?.();
    }
    const lossScale = this.mp.scaler?.scale;
    if (finite) this.skippedInARow = 0;
    this.mp.scaler?.update(finite);
    this.mp.zeroGrad();
    return {
      step: this.step++,
      loss,
      lr,
      gradNorm: norm,
      tokens,
      skipped: !finite,
      ms: performance.now() - t0,
      ...(lossScale !== undefined ? { lossScale } : {}),
    };
  }

  /**
   * Without a loss scaler a non-finite loss or gradient is an error (stepping would put NaN in every
   * weight); with one (fp16) the step is skipped and the scale lowered, unless that keeps failing.
   */
  private checkNonFinite(badLoss: number | null, norm: number, lr: number): void {
    const what = badLoss !== null ? 'the loss' : 'the gradient norm';
    const value = badLoss ?? norm;
    if (this.mp.scaler && ++this.skippedInARow < this.o.maxSkippedSteps) return;
    this.mp.zeroGrad();
    const hint = this.mp.scaler
      ? `${this.o.maxSkippedSteps} fp16 steps in a row were skipped (loss scale now ${this.mp.scaler.scale}); ` +
        'the model overflows float16: train with --precision bf16 or fp32, or a lower --lr'
      : 'the learning rate is likely too high (lower --lr, or set --grad-clip 1), or the data or weights hold extreme values';
    throw new NonFiniteLossError(this.step, what, value, lr, hint);
  }

  /** seconds this run has trained, over all its sessions */
  elapsedSeconds(): number {
    return this.elapsedBefore + (performance.now() - this.started) / 1000;
  }

  /**
   * forward + backward of one micro-batch; gradients accumulate on the (model) parameters. `weight`
   * multiplies the loss before backward (default 1/gradAccum; trainStep passes the micro-batch's share of
   * the step's target tokens for token-mean objectives).
   */
  microStep(batch: HostBatch, weight = 1 / this.o.gradAccum): { loss: number; tokens: number } {
    this.assertAlive('microStep');
    return tidy(() => {
      const { loss, tokens } = this.task.loss(this.model, batch);
      const scaled = this.mp.scaleLoss(weight === 1 ? loss : mul(loss, weight));
      scaled.backward();
      return { loss: loss.item(), tokens };
    });
  }

  /** mean loss over `evalBatches` batches of each split (nanoGPT estimate_loss), in eval mode */
  evaluate(): EvalResult {
    this.assertAlive('evaluate');
    const k = this.o.evalInterval > 0 ? Math.floor(this.step / this.o.evalInterval) : this.step;
    this.model.eval();
    try {
      const batches = { train: 0, val: 0 };
      const mean = (split: 'train' | 'val') => {
        const all = this.task.evalBatches(split, k, this.o.evalBatches);
        batches[split] = all.length;
        // a batch without targets (MLM masked no token) has no loss to average
        const bs = all.filter((b) => b.tokens > 0);
        if (all.length > 0 && bs.length === 0)
          throw new Error(
            `eval: none of the ${all.length} ${split}-split eval batches has a target token (objective ` +
              `${this.task.objective}: nothing was masked or predicted); raise --eval-batches, --batch-size or --block-size`,
          );
        const losses = bs.map((b) => noGrad(() => tidy(() => this.task.loss(this.model, b).loss.item())));
        // token-mean objectives with ragged targets (MLM, seq2seq): the mean over the split's target tokens, as
        // one batch of all of them would give; equal-sized causal windows keep nanoGPT's mean of batch means
        if (!this.task.tokenMeanLoss) return losses.reduce((s, l) => s + l, 0) / bs.length;
        const total = bs.reduce((s, b) => s + b.tokens, 0);
        return losses.reduce((s, l, i) => s + (l * bs[i]!.tokens) / total, 0);
      };
      return { step: this.step, train: mean('train'), val: mean('val'), batches };
    } finally {
      this.model.train();
    }
  }

  /** the weights to save: float32 masters of trainable parameters, frozen ones as the model holds them */
  weights(): [string, Tensor][] {
    this.assertAlive('weights');
    const masters = new Map(this.mp.masters);
    return this.model.namedParameters().map(([n, p]) => [n, masters.get(n) ?? p]);
  }

  /** loads full-precision weights (e.g. a checkpoint's) into the masters and the model copy */
  loadWeights(weights: ReadonlyMap<string, Tensor>): void {
    this.assertAlive('loadWeights');
    const missing = this.mp.masters.filter(([n]) => !weights.has(n)).map(([n]) => n);
    if (missing.length)
      throw new Error(`trainer: checkpoint lacks ${missing.length} weight(s): ${missing.slice(0, 5).join(', ')}`);
    // a weight the model has no place for means the checkpoint is of another architecture (e.g. more layers)
    const known = new Set(this.model.namedParameters().map(([n]) => n));
    const unused = [...weights.keys()].filter((n) => !known.has(n));
    if (unused.length)
      throw new Error(
        `trainer: checkpoint has ${unused.length} weight(s) the model does not: ${unused.slice(0, 5).join(', ')}` +
          `${unused.length > 5 ? ', ...' : ''} (it was saved from a different model config)`,
      );
    const shape = (t: Tensor) => `[${t.shape.join(', ')}]`;
    for (const [name, m] of this.mp.masters) {
      const w = weights.get(name)!;
      // equal sizes are not enough: a transposed [in, out] weight has the size of [out, in]
      if (shape(w) !== shape(m))
        throw new Error(`trainer: checkpoint weight '${name}' has shape ${shape(w)}, the model ${shape(m)}`);
    }
    noGrad(() => {
      for (const [name, m] of this.mp.masters) assign(m, weights.get(name)!);
    });
    this.mp.copyMastersToModel();
  }

  /** the step state; `buffers` holds optimizer moments and, under `task.*`, the task's carried tensors */
  state(): { json: TrainerState; buffers: OptimizerState['buffers'] } {
    this.assertAlive('state');
    const { buffers, ...opt } = this.optimizer.stateDict();
    for (const [path, t] of this.task.carriedState?.() ?? [])
      buffers[`task.${path}`] = { shape: [...t.shape], data: Float32Array.from(t.data()) };
    const json: TrainerState = {
      version: 1,
      step: this.step,
      steps: this.o.steps,
      schedule: this.o.schedule,
      elapsed: this.elapsedSeconds(),
      taskPosition: this.task.position,
      objective: this.task.objective,
      rng: defaultRng().getState(),
      scaler: this.mp.scaler?.getState() ?? null,
      precision: this.o.precision,
      optimizer: opt,
    };
    return { json, buffers };
  }

  /** restores a checkpoint written by state(); the weights must already be loaded into the model */
  loadState(json: TrainerState, buffers: OptimizerState['buffers']): void {
    this.assertAlive('loadState');
    if (json.version !== 1) throw new Error(`trainer: checkpoint state version ${json.version} is not supported`);
    if (json.objective !== this.task.objective)
      throw new Error(
        `trainer: checkpoint was trained with objective '${json.objective}', this run uses '${this.task.objective}'`,
      );
    if (json.precision !== this.o.precision)
      throw new Error(`trainer: checkpoint precision is ${json.precision}, this run uses ${this.o.precision}`);
    this.step = json.step;
    this.elapsedBefore = json.elapsed ?? 0;
    this.task.seek(json.taskPosition);
    defaultRng().setState(json.rng);
    if (json.scaler && this.mp.scaler) this.mp.scaler.setState(json.scaler);
    const carried = Object.entries(buffers).filter(([k]) => k.startsWith('task.'));
    this.optimizer.loadStateDict({
      ...json.optimizer,
      buffers: Object.fromEntries(Object.entries(buffers).filter(([k]) => !k.startsWith('task.'))),
    });
    if (carried.length && this.task.restoreCarried) {
      const state = new Map(
        carried.map(
          ([k, b]) =>
            [k.slice('task.'.length), tensor(b.data, { shape: b.shape, dtype: this.mp.dtype })] as [string, Tensor],
        ),
      );
      this.task.restoreCarried(this.model, state);
    }
  }

  /**
   * Frees what the trainer allocated: optimizer moments, the float32 master weights of a bf16/fp16 run,
   * gradients left on the parameters, and the task's carried state. The model itself stays usable (in
   * the training precision); the trainer does not: its methods throw afterwards. Idempotent.
   */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.optimizer.dispose();
    this.task.dispose?.();
    this.mp.zeroGrad();
    this.mp.dispose();
  }

  get isDisposed(): boolean {
    return this.disposed;
  }

  private assertAlive(op: string): void {
    if (this.disposed) throw new Error(`trainer: ${op}() after dispose()`);
  }
}

/** Sets the model's gradient-checkpointing flag; throws when the family does not declare it. */
export function enableGradientCheckpointing(model: LanguageModel): void {
  if (!('gradientCheckpointing' in model)) {
    throw new Error(
      `trainer: the ${model.config.family} model does not support gradient checkpointing (it has no 'gradientCheckpointing' flag; see docs/TRAINING.md)`,
    );
  }
  (model as LanguageModel & CheckpointableModel).gradientCheckpointing = true;
}

// ---- the loop ----

export interface TrainHooks {
  onStep?(r: StepResult): void;
  onEval?(r: EvalResult): void;
  /** called with the completed step count every checkpointInterval steps and at the end */
  checkpoint?(step: number): void | Promise<void>;
  checkpointInterval?: number;
  /** stop early (e.g. a signal; checked between steps): no final eval, but a final checkpoint is written */
  shouldStop?(): boolean;
}

/**
 * Lets the event loop run (signal handlers, timers) between synchronous training steps; without it
 * a Ctrl-C would only be seen when the loop next awaits, at a checkpoint.
 */
function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (f: () => void) => unknown };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}

export interface RunResult {
  steps: number;
  trainLoss: number;
  valLoss: number;
  lastEval: EvalResult | null;
  tokens: number;
  seconds: number;
  /** shouldStop ended the run before options.steps */
  interrupted: boolean;
}

/**
 * Runs from trainer.step to options.steps: eval when step % evalInterval === 0 (before that step, as
 * nanoGPT), one optimizer step, checkpoint every checkpointInterval completed steps; a final eval and
 * checkpoint at the end.
 */
export async function runTraining(trainer: Trainer, hooks: TrainHooks = {}): Promise<RunResult> {
  const t0 = performance.now();
  const { steps, evalInterval } = trainer.o;
  let last: EvalResult | null = null;
  let trainLoss = NaN;
  let tokens = 0;
  const evaluate = () => {
    const e = trainer.evaluate();
    for (const [what, v, n] of [
      ['the train-split eval loss', e.train, e.batches.train],
      ['the validation loss', e.val, e.batches.val],
    ] as const) {
      if (n > 0 && !Number.isFinite(v))
        throw new NonFiniteLossError(e.step, what, v, trainer.optimizer.lr, 'the weights or activations overflow');
    }
    last = e;
    hooks.onEval?.(e);
  };
  let interrupted = false;
  while (trainer.step < steps) {
    await yieldToEventLoop();
    if (hooks.shouldStop?.()) {
      interrupted = true;
      break;
    }
    if (evalInterval > 0 && trainer.step % evalInterval === 0) evaluate();
    const r = trainer.trainStep();
    trainLoss = r.loss;
    tokens += r.tokens;
    hooks.onStep?.(r);
    const every = hooks.checkpointInterval ?? 0;
    if (every > 0 && trainer.step % every === 0 && trainer.step < steps) await hooks.checkpoint?.(trainer.step);
  }
  const lastEval = last as EvalResult | null;
  if (!interrupted && (!lastEval || lastEval.step !== trainer.step)) evaluate();
  await hooks.checkpoint?.(trainer.step);
  const fin = last as EvalResult | null;
  const seconds = (performance.now() - t0) / 1000;
  return { steps: trainer.step, trainLoss, valLoss: fin?.val ?? NaN, lastEval: fin, tokens, seconds, interrupted };
}
