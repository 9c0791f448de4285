// Optimizers (SGD with momentum/Nesterov, Adam, AdamW), parameter groups, gradient clipping by global
// norm and resumable optimizer state. They follow torch.optim's update rules exactly (the tests check
// hand-computed values), read gradients from each parameter's `.grad` and update parameters in place, so
// the module keeps its tensors and nothing inside a memory scope has to survive.
//
// Ownership: moment buffers are created outside scopes (`keep`) and live until `dispose()`.
import { keep, noGrad, tidy } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { add, adamwUpdate, kernel, mul, square, stack, sum, tensor, zeros } from '../ops/index.js';
import { fmt } from '../tensor/shape.js';

// ---- parameter groups ----

/** A set of parameters sharing hyperparameters (torch.optim param_groups). */
export interface ParamGroup {
  params: Tensor[];
  /** checkpoint-compatible names, parallel to params (used as keys of the saved state) */
  names: string[];
  weightDecay: number;
  /** multiplies the scheduled learning rate (default 1) */
  lrScale: number;
}

export type ParamGroupSpec = Pick<ParamGroup, 'params' | 'names'> &
  Partial<Pick<ParamGroup, 'weightDecay' | 'lrScale'>>;

/**
 * Which parameters get weight decay.
 * - 'matrices': every parameter with ≥ 2 dims (nanoGPT's configure_optimizers: embeddings decay too).
 * - 'no-norm-bias-embed': ≥ 2-D weights except embeddings and ≥ 2-D biases (`final_logits_bias`) and
 *   Mamba's `A_log` (the common "no decay on norms, biases and embeddings" rule; the default).
 * - 'all' / 'none'.
 * - a predicate on (name, tensor).
 */
export type DecayRule = 'matrices' | 'no-norm-bias-embed' | 'all' | 'none' | ((name: string, p: Tensor) => boolean);

/**
 * embedding tables by their checkpoint names (GPT-2 wte/wpe, GPT-1 tokens_embed/positions_embed, Llama/BART
 * embed_*, BERT *_embeddings, Mamba `backbone.embeddings`, T5 shared + relative_attention_bias)
 */
const EMBEDDING_NAME =
  /(^|\.)(wte|wpe|tokens_embed|positions_embed|embed_tokens|embed_positions|word_embeddings|position_embeddings|token_type_embeddings|shared|embedding|embeddings|relative_attention_bias)(\.|$)/;
/**
 * ≥ 2-D parameters that are still biases or norms by role: BART/Marian's `final_logits_bias` (1, V), and
 * Mamba's `A_log` (the SSM decay rates, which the reference implementation excludes from weight decay)
 */
const NO_DECAY_NAME = /(^|\.|_)bias$|(^|\.)A_log$/;

export function decays(rule: DecayRule, name: string, p: Tensor): boolean {
  if (typeof rule === 'function') return rule(name, p);
  switch (rule) {
    case 'all':
      return true;
    case 'none':
      return false;
    case 'matrices':
      return p.ndim >= 2;
    case 'no-norm-bias-embed':
      return p.ndim >= 2 && !EMBEDDING_NAME.test(name) && !NO_DECAY_NAME.test(name);
  }
}

/**
 * Two groups: decayed parameters (weightDecay) and the rest (0). Parameters that do not require
 * gradients (frozen) are left out. Names keep module order so saved state is stable.
 */
export function paramGroups(
  named: readonly [string, Tensor][],
  weightDecay: number,
  rule: DecayRule = 'no-norm-bias-embed',
): ParamGroup[] {
  const decay: ParamGroup = { params: [], names: [], weightDecay, lrScale: 1 };
  const rest: ParamGroup = { params: [], names: [], weightDecay: 0, lrScale: 1 };
  for (const [name, p] of named) {
    if (!p.requiresGrad) continue;
    const g = weightDecay > 0 && decays(rule, name, p) ? decay : rest;
    g.params.push(p);
    g.names.push(name);
  }
  return [decay, rest].filter((g) => g.params.length > 0);
}

function resolveGroups(groups: readonly ParamGroupSpec[], defaultWd: number): ParamGroup[] {
  const seen = new Set<Tensor>();
  return groups.map((g, gi) => {
    if (g.names.length !== g.params.length)
      throw new Error(`optimizer: group ${gi} has ${g.params.length} params but ${g.names.length} names`);
    if (g.weightDecay !== undefined) checkOption(`optimizer: group ${gi}`, 'weightDecay', g.weightDecay, NON_NEGATIVE);
    if (g.lrScale !== undefined) checkOption(`optimizer: group ${gi}`, 'lrScale', g.lrScale, NON_NEGATIVE);
    for (const [i, p] of g.params.entries()) {
      if (seen.has(p)) throw new Error(`optimizer: parameter '${g.names[i]}' appears in more than one group`);
      seen.add(p);
    }
    return {
      params: [...g.params],
      names: [...g.names],
      weightDecay: g.weightDecay ?? defaultWd,
      lrScale: g.lrScale ?? 1,
    };
  });
}

// ---- option checks ----

interface Range {
  ok: (v: number) => boolean;
  want: string;
}
const NON_NEGATIVE: Range = { ok: (v) => Number.isFinite(v) && v >= 0, want: 'a finite number >= 0' };
const POSITIVE: Range = { ok: (v) => Number.isFinite(v) && v > 0, want: 'a finite number > 0' };
/** decay rates: 1 never forgets (beta2 = 1 leaves the second moment 0 and the step divides by eps) */
const RATE: Range = { ok: (v) => v >= 0 && v < 1, want: 'a number in [0, 1)' };
const FRACTION: Range = { ok: (v) => v >= 0 && v <= 1, want: 'a number in [0, 1]' };

/** Throws `${who}: ${name} must be <want>, got <v>` unless v is a number in range (the ranges validateTrainConfig uses). */
function checkOption(who: string, name: string, v: unknown, r: Range): void {
  if (!(typeof v === 'number' && r.ok(v))) {
    const got = typeof v === 'number' ? String(v) : (JSON.stringify(v) ?? String(v));
    throw new Error(`${who}: ${name} must be ${r.want}, got ${got}`);
  }
}

// ---- in-place helpers ----

/** dst <- src elementwise (same shape), converting dtype; not recorded by autograd */
export function assign(dst: Tensor, src: Tensor): void {
  if (src.size !== dst.size)
    throw new Error(`assign: source ${fmt(src.shape)} does not fit destination ${fmt(dst.shape)}`);
  const s = src.ndim === dst.ndim ? src : src.reshape(...dst.shape);
  kernel(dst, 'copy')(s.view(), dst.view());
  if (s !== src) s.dispose();
}

function persistentZeros(like: Tensor): Tensor {
  return keep(zeros(like.shape, 'float32'));
}

// ---- gradient clipping ----

/** Global L2 norm of the gradients of `params` (skips parameters without a gradient). */
export function gradNorm(params: readonly Tensor[]): number {
  const grads = params.map((p) => p.grad).filter((g): g is Tensor => !!g);
  if (grads.length === 0) return 0;
  return noGrad(() => tidy(() => Math.sqrt(sum(stack(grads.map((g) => sum(square(g.to('float32')))))).item())));
}

/**
 * torch.nn.utils.clip_grad_norm_: scales all gradients by min(1, maxNorm / (norm + 1e-6)) in place and
 * returns the norm before clipping (Infinity/NaN when a gradient overflowed; then nothing is scaled).
 */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  const coef = maxNorm / (norm + 1e-6);
  if (!Number.isFinite(norm) || coef >= 1) return norm;
  noGrad(() =>
    tidy(() => {
      for (const p of params) if (p.grad) assign(p.grad, mul(p.grad, coef));
    }),
  );
  return norm;
}

/** Multiplies every gradient by `s` in place (gradient accumulation averaging, loss-scale removal). */
export function scaleGrads(params: readonly Tensor[], s: number): void {
  if (s === 1) return;
  noGrad(() =>
    tidy(() => {
      for (const p of params) if (p.grad) assign(p.grad, mul(p.grad, s));
    }),
  );
}

// ---- optimizer state (for checkpoints) ----

export interface OptimizerState {
  kind: OptimizerKind;
  /** optimizer steps taken */
  step: number;
  hyper: Record<string, number | boolean>;
  /** per-parameter buffers keyed `${paramName}.${buffer}` (e.g. `transformer.wte.weight.exp_avg`) */
  buffers: Record<string, { shape: number[]; data: Float32Array }>;
}

export type OptimizerKind = 'sgd' | 'adam' | 'adamw';

export abstract class Optimizer {
  abstract readonly kind: OptimizerKind;
  readonly groups: ParamGroup[];
  /** base learning rate; the trainer sets it from the schedule before each step */
  lr: number;
  /** steps taken (1-based inside step(), as torch's `state['step']`) */
  stepCount = 0;
  protected readonly state = new Map<Tensor, Record<string, Tensor>>();
  private disposed = false;

  /** `who` names the optimizer in option errors (e.g. 'AdamW') */
  constructor(
    groups: readonly ParamGroupSpec[] | readonly [string, Tensor][],
    lr: number,
    defaultWd: number,
    protected readonly who: string,
  ) {
    checkOption(who, 'lr', lr, NON_NEGATIVE);
    checkOption(who, 'weightDecay', defaultWd, NON_NEGATIVE);
    const specs = isNamedList(groups) ? [{ params: groups.map(([, t]) => t), names: groups.map(([n]) => n) }] : groups;
    this.groups = resolveGroups(specs, defaultWd);
    this.lr = lr;
  }

  private assertAlive(op: string): void {
    if (this.disposed) throw new Error(`${this.who}: ${op}() after dispose()`);
  }

  get params(): Tensor[] {
    return this.groups.flatMap((g) => g.params);
  }

  /** the names of the buffers kept per parameter */
  protected abstract bufferNames(): string[];
  /** `fresh`: the buffers were just created (torch's "buffer is None" on a parameter's first step) */
  protected abstract update(
    p: Tensor,
    g: Tensor,
    group: ParamGroup,
    buffers: Record<string, Tensor>,
    fresh: boolean,
  ): void;

  /** One update of every parameter that has a gradient. Parameters without `.grad` are skipped. */
  step(): void {
    this.assertAlive('step');
    // `lr` is a public field (the trainer sets it from the schedule): a NaN here would reach every weight
    checkOption(this.who, 'lr', this.lr, NON_NEGATIVE);
    this.stepCount++;
    noGrad(() => {
      for (const group of this.groups) {
        for (const p of group.params) {
          if (!p.grad) continue;
          checkParam(p);
          const fresh = !this.state.has(p);
          const buffers = this.buffersOf(p);
          tidy(() =>
            this.update(p, p.grad!.dtype === 'float32' ? p.grad! : p.grad!.to('float32'), group, buffers, fresh),
          );
        }
      }
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  private buffersOf(p: Tensor): Record<string, Tensor> {
    let b = this.state.get(p);
    if (!b) {
      b = Object.fromEntries(this.bufferNames().map((n) => [n, persistentZeros(p)]));
      this.state.set(p, b);
    }
    return b;
  }

  protected abstract hyper(): Record<string, number | boolean>;

  stateDict(): OptimizerState {
    this.assertAlive('stateDict');
    const buffers: OptimizerState['buffers'] = {};
    for (const g of this.groups) {
      g.params.forEach((p, i) => {
        const b = this.state.get(p);
        if (!b) return;
        for (const [n, t] of Object.entries(b))
          buffers[`${g.names[i]}.${n}`] = { shape: [...t.shape], data: t.data() as Float32Array };
      });
    }
    return { kind: this.kind, step: this.stepCount, hyper: this.hyper(), buffers };
  }

  loadStateDict(s: OptimizerState): void {
    this.assertAlive('loadStateDict');
    if (s.kind !== this.kind)
      throw new Error(`loadStateDict: state is for optimizer '${s.kind}', this is '${this.kind}'`);
    this.stepCount = s.step;
    for (const g of this.groups) {
      g.params.forEach((p, i) => {
        const entries = this.bufferNames().map((n) => [n, s.buffers[`${g.names[i]}.${n}`]] as const);
        if (entries.every(([, e]) => !e)) return; // parameter had no gradient yet when saved
        const b = this.buffersOf(p);
        for (const [n, e] of entries) {
          if (!e || e.data.length !== p.size)
            throw new Error(
              `loadStateDict: buffer '${g.names[i]}.${n}' is ${e ? `${e.data.length} values` : 'missing'}, parameter has ${p.size}`,
            );
          tidy(() => assign(b[n]!, fromFloat32(e.data, p.shape)));
        }
      });
    }
  }

  /** Frees the moment buffers; the optimizer cannot step afterwards (it would restart from zero moments). */
  dispose(): void {
    for (const b of this.state.values()) for (const t of Object.values(b)) t.dispose();
    this.state.clear();
    this.disposed = true;
  }

  get isDisposed(): boolean {
    return this.disposed;
  }
}

function fromFloat32(data: Float32Array, shape: readonly number[]): Tensor {
  return tensor(data, { shape: [...shape], dtype: 'float32' });
}

function isNamedList(x: readonly ParamGroupSpec[] | readonly [string, Tensor][]): x is readonly [string, Tensor][] {
  return x.length > 0 && Array.isArray(x[0]);
}

function checkParam(p: Tensor): void {
  if (p.dtype !== 'float32' || !p.isContiguous) {
    throw new Error(
      `optimizer: parameter '${p.name ?? '?'}' ${fmt(p.shape)} is ${p.dtype}${p.isContiguous ? '' : ' non-contiguous'}; optimizers update float32 contiguous tensors (use MixedPrecision for low-precision models)`,
    );
  }
}

// ---- SGD ----

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

/** torch.optim.SGD: g += wd·p; b = μ·b + (1-τ)·g (b = g on the first step); p -= lr·(nesterov ? g + μ·b : b) */
export class SGD extends Optimizer {
  readonly kind = 'sgd';
  readonly momentum: number;
  readonly dampening: number;
  readonly nesterov: boolean;

  constructor(groups: readonly ParamGroupSpec[] | readonly [string, Tensor][], o: SGDOptions) {
    super(groups, o.lr, o.weightDecay ?? 0, 'SGD');
    this.momentum = o.momentum ?? 0;
    this.dampening = o.dampening ?? 0;
    this.nesterov = o.nesterov ?? false;
    checkOption('SGD', 'momentum', this.momentum, RATE);
    checkOption('SGD', 'dampening', this.dampening, FRACTION);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0))
      throw new Error('SGD: nesterov needs momentum > 0 and dampening 0');
  }

  protected bufferNames(): string[] {
    return this.momentum > 0 ? ['momentum_buffer'] : [];
  }

  protected hyper() {
    return { lr: this.lr, momentum: this.momentum, dampening: this.dampening, nesterov: this.nesterov };
  }

  protected update(p: Tensor, g0: Tensor, group: ParamGroup, b: Record<string, Tensor>, fresh: boolean): void {
    let g = group.weightDecay ? add(g0, mul(p, group.weightDecay)) : g0;
    if (this.momentum > 0) {
      const buf = b.momentum_buffer!;
      const next = fresh ? g : add(mul(buf, this.momentum), mul(g, 1 - this.dampening));
      assign(buf, next);
      g = this.nesterov ? add(g, mul(buf, this.momentum)) : buf;
    }
    assign(p, add(p, mul(g, -this.lr * group.lrScale)));
  }
}

// ---- Adam / AdamW ----

export interface AdamOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

abstract class AdamBase extends Optimizer {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(
    groups: readonly ParamGroupSpec[] | readonly [string, Tensor][],
    o: AdamOptions,
    defaultWd: number,
    who: string,
  ) {
    super(groups, o.lr, o.weightDecay ?? defaultWd, who);
    this.beta1 = o.beta1 ?? 0.9;
    this.beta2 = o.beta2 ?? 0.999;
    this.eps = o.eps ?? 1e-8;
    checkOption(who, 'beta1', this.beta1, RATE);
    checkOption(who, 'beta2', this.beta2, RATE);
    checkOption(who, 'eps', this.eps, POSITIVE);
  }

  protected bufferNames(): string[] {
    return ['exp_avg', 'exp_avg_sq'];
  }

  protected hyper() {
    return { lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps };
  }

  protected fused(p: Tensor, g: Tensor, b: Record<string, Tensor>, lr: number, weightDecay: number): void {
    const gc = g.isContiguous ? g : g.contiguous();
    adamwUpdate(p, gc, b.exp_avg!, b.exp_avg_sq!, {
      lr,
      beta1: this.beta1,
      beta2: this.beta2,
      eps: this.eps,
      weightDecay,
      step: this.stepCount,
    });
  }
}

/** torch.optim.AdamW: decoupled weight decay p *= 1 - lr·wd, then the Adam step (fused kernel). */
export class AdamW extends AdamBase {
  readonly kind = 'adamw';
  constructor(groups: readonly ParamGroupSpec[] | readonly [string, Tensor][], o: AdamOptions) {
    super(groups, o, 0.01, 'AdamW');
  }
  protected update(p: Tensor, g: Tensor, group: ParamGroup, b: Record<string, Tensor>): void {
    this.fused(p, g, b, this.lr * group.lrScale, group.weightDecay);
  }
}

/** torch.optim.Adam: L2 weight decay folded into the gradient (g += wd·p), then the Adam step. */
export class Adam extends AdamBase {
  readonly kind = 'adam';
  constructor(groups: readonly ParamGroupSpec[] | readonly [string, Tensor][], o: AdamOptions) {
    super(groups, o, 0, 'Adam');
  }
  protected update(p: Tensor, g: Tensor, group: ParamGroup, b: Record<string, Tensor>): void {
    const gd = group.weightDecay ? add(g, mul(p, group.weightDecay)) : g;
    this.fused(p, gd, b, this.lr * group.lrScale, 0);
  }
}

// ---- construction from config ----

export interface OptimizerConfig {
  kind: OptimizerKind;
  lr: number;
  weightDecay?: number;
  /** which parameters decay (default 'no-norm-bias-embed') */
  decay?: DecayRule;
  beta1?: number;
  beta2?: number;
  eps?: number;
  momentum?: number;
  nesterov?: boolean;
  dampening?: number;
}

/** Builds an optimizer over a module's named parameters with the decay/no-decay grouping. */
export function createOptimizer(named: readonly [string, Tensor][], c: OptimizerConfig): Optimizer {
  const wd = c.weightDecay ?? (c.kind === 'adamw' ? 0.01 : 0);
  checkOption(`createOptimizer(${c.kind})`, 'weightDecay', wd, NON_NEGATIVE); // before paramGroups drops a NaN
  const groups = paramGroups(named, wd, c.decay ?? 'no-norm-bias-embed');
  switch (c.kind) {
    case 'sgd':
      return new SGD(groups, { lr: c.lr, momentum: c.momentum, nesterov: c.nesterov, dampening: c.dampening });
    case 'adam':
      return new Adam(groups, { lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps });
    case 'adamw':
      return new AdamW(groups, { lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps });
    default:
      throw new Error(
        `createOptimizer: unknown optimizer kind ${JSON.stringify((c as { kind: unknown }).kind)} (sgd, adam, adamw)`,
      );
  }
}
