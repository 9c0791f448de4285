// Mixed-precision training: the model's parameters (and so its activations: ops round results back to
// the storage dtype when all float operands are low precision) are bfloat16 or float16, while the
// optimizer updates float32 master copies (Apex "O2" / Micikevicius et al. 2018).
//
// One step:  loss = forward(lowPrecisionModel)            (activations bf16/fp16)
//            backward(loss · scale)                         (grads land on the low-precision params)
//            finite = unscaleToMasters()                    (grad / scale → master.grad, fp32)
//            if finite: optimizer.step() on masters; copyMastersToModel()
//            scaler.update(finite)                          (fp16 only: skip + halve on overflow)
//
// float16 has 5 exponent bits: small gradients underflow to 0 unless the loss is multiplied by a large
// scale first (dynamic loss scaling, torch.cuda.amp.GradScaler's rule). bfloat16 keeps float32's range,
// so it needs no scaling.
import '../autograd/index.js';
import type { DType } from '../backend/backend.js';
import { bytesPerElement } from '../backend/backend.js';
import type { Module } from '../nn/module.js';
import { getBackend, keep, noGrad, tidy } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { abs, clone, mul, stack, sum } from '../ops/index.js';
import { assign } from './optim.js';

export type Precision = 'fp32' | 'bf16' | 'fp16';

export const PRECISION_DTYPE: Record<Precision, DType> = { fp32: 'float32', bf16: 'bfloat16', fp16: 'float16' };

export function parsePrecision(s: string): Precision {
  const t = s.toLowerCase();
  const alias: Record<string, Precision> = {
    fp32: 'fp32',
    float32: 'fp32',
    f32: 'fp32',
    bf16: 'bf16',
    bfloat16: 'bf16',
    fp16: 'fp16',
    float16: 'fp16',
    f16: 'fp16',
    half: 'fp16',
  };
  const p = alias[t];
  if (!p) throw new Error(`precision: unknown value ${JSON.stringify(s)} (expected fp32, bf16 or fp16)`);
  return p;
}

// ---- dynamic loss scaling ----

export interface LossScalerOptions {
  /** initial scale (GradScaler: 2^16) */
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  /** consecutive finite steps before the scale grows */
  growthInterval?: number;
}

export interface LossScalerState {
  scale: number;
  goodSteps: number;
  skipped: number;
}

/** torch.cuda.amp.GradScaler's update rule: overflow → scale·backoff and skip; N good steps → scale·growth. */
export class LossScaler {
  scale: number;
  goodSteps = 0;
  /** optimizer steps skipped because of inf/nan gradients */
  skipped = 0;
  readonly growthFactor: number;
  readonly backoffFactor: number;
  readonly growthInterval: number;

  constructor(o: LossScalerOptions = {}) {
    this.scale = o.initScale ?? 65536;
    this.growthFactor = o.growthFactor ?? 2;
    this.backoffFactor = o.backoffFactor ?? 0.5;
    this.growthInterval = o.growthInterval ?? 2000;
  }

  update(finite: boolean): void {
    if (!finite) {
      this.scale *= this.backoffFactor;
      this.goodSteps = 0;
      this.skipped++;
      return;
    }
    if (++this.goodSteps >= this.growthInterval) {
      this.scale *= this.growthFactor;
      this.goodSteps = 0;
    }
  }

  getState(): LossScalerState {
    return { scale: this.scale, goodSteps: this.goodSteps, skipped: this.skipped };
  }
  setState(s: LossScalerState): void {
    Object.assign(this, { scale: s.scale, goodSteps: s.goodSteps, skipped: s.skipped });
  }
}

// ---- master weights ----

export interface MixedPrecisionOptions {
  /** dynamic loss scaling for fp16 (default on for fp16; off for bf16/fp32) */
  scaler?: LossScalerOptions | false;
}

/**
 * Owns the float32 master weights of a model trained in bf16/fp16. For fp32 it is a pass-through
 * (masters are the model's own parameters), so the trainer has one code path.
 */
export class MixedPrecision {
  readonly dtype: DType;
  /** [name, float32 tensor] the optimizer updates */
  readonly masters: [string, Tensor][];
  readonly scaler: LossScaler | null;

  constructor(
    readonly model: Module,
    readonly precision: Precision,
    o: MixedPrecisionOptions = {},
  ) {
    this.dtype = PRECISION_DTYPE[precision];
    // frozen parameters (a LoRA run's base) are never updated: no master copy, no optimizer state
    const trainable = model.namedParameters().filter(([, p]) => p.requiresGrad);
    if (precision === 'fp32') {
      this.masters = trainable;
    } else {
      this.masters = noGrad(() => trainable.map(([n, p]) => [n, masterCopy(p)] as [string, Tensor]));
      model.toDType(this.dtype);
    }
    this.scaler = precision === 'fp16' && o.scaler !== false ? new LossScaler(o.scaler || {}) : null;
  }

  get lowPrecision(): boolean {
    return this.precision !== 'fp32';
  }

  /** the loss to call backward on: loss · scale under fp16 loss scaling */
  scaleLoss(loss: Tensor): Tensor {
    return this.scaler ? mul(loss, this.scaler.scale) : loss;
  }

  /**
   * Moves the gradients of the model's low-precision parameters to the masters (float32, divided by the
   * loss scale) and clears the model's. Returns false when any gradient is inf/nan (the step must be skipped).
   */
  unscaleToMasters(): boolean {
    if (!this.lowPrecision) return this.scaler ? allFinite(this.masters.map(([, p]) => p.grad)) : true;
    const byName = new Map(this.model.namedParameters());
    const inv = 1 / (this.scaler?.scale ?? 1);
    noGrad(() => {
      for (const [name, master] of this.masters) {
        const g = byName.get(name)?.grad;
        if (!g) continue;
        const g32 = tidy(() => keep(inv === 1 ? g.to('float32').contiguous() : mul(g.to('float32'), inv)));
        const next = master.grad ? tidy(() => keep(master.grad!.add(g32))) : g32;
        if (next !== g32) g32.dispose();
        master.grad?.dispose();
        master.grad = next;
      }
      for (const [, p] of byName) p.zeroGrad();
    });
    return allFinite(this.masters.map(([, p]) => p.grad));
  }

  /** writes the updated masters into the model's low-precision parameters (rounding) */
  copyMastersToModel(): void {
    if (!this.lowPrecision) return;
    const byName = new Map(this.model.namedParameters());
    for (const [name, master] of this.masters) {
      const p = byName.get(name);
      if (p) assign(p, master);
    }
  }

  /** clears master gradients (the trainer calls it after every optimizer step or skip) */
  zeroGrad(): void {
    for (const [, p] of this.masters) p.zeroGrad();
    if (this.lowPrecision) for (const [, p] of this.model.namedParameters()) p.zeroGrad();
  }

  /** bytes of model parameters + master copies */
  parameterBytes(): { model: number; masters: number } {
    const bytes = (ts: Tensor[]) => ts.reduce((s, t) => s + t.size * bytesPerElement(t.dtype), 0);
    const model = bytes(this.model.parameters());
    return { model, masters: this.lowPrecision ? bytes(this.masters.map(([, t]) => t)) : 0 };
  }

  /** Frees the master copies (and their gradients) of a bf16/fp16 run; fp32 masters are the model's own. */
  dispose(): void {
    if (!this.lowPrecision) return;
    for (const [, t] of this.masters) {
      t.zeroGrad();
      t.dispose();
    }
  }
}

function masterCopy(p: Tensor): Tensor {
  const copy = tidy(() => keep(clone(p.to('float32')))); // a fresh buffer even when p is float32
  copy.requiresGrad = p.requiresGrad;
  copy.name = p.name;
  return copy;
}

/** true when every gradient is finite (one host read for all of them) */
export function allFinite(grads: readonly (Tensor | null)[]): boolean {
  const gs = grads.filter((g): g is Tensor => !!g);
  if (gs.length === 0) return true;
  return noGrad(() => tidy(() => Number.isFinite(sum(stack(gs.map((g) => sum(abs(g.to('float32')))))).item())));
}

// ---- memory measurement ----

export interface MemoryReport {
  precision: Precision;
  /** bytes of the model's parameters (in their storage dtype) */
  parameterBytes: number;
  /** float32 master copies (0 under fp32) */
  masterBytes: number;
  /** bytes alive after the forward pass beyond what was alive before it: the activations kept for backward */
  activationBytes: number;
  /** backend high-water mark during forward + backward (bytesInUse after backward when the backend has no peak counter) */
  peakBytes: number;
}

/**
 * Runs one forward + backward pass (inside a scope, freed afterwards; gradients cleared) and measures
 * with the backend's `bytesInUse()` how much memory the activations take. `forward` returns the loss.
 */
export function measureMemory(mp: MixedPrecision, forward: () => Tensor): MemoryReport {
  const backend = getBackend();
  const { model, masters } = mp.parameterBytes();
  let activationBytes = 0;
  let peakBytes = 0;
  backend.resetPeak?.();
  tidy(() => {
    const before = backend.bytesInUse();
    const loss = forward();
    activationBytes = backend.bytesInUse() - before;
    mp.scaleLoss(loss).backward();
    peakBytes =
      backend.peakBytesInUse?.() ?? (backend as { peakBytes?(): number }).peakBytes?.() ?? backend.bytesInUse();
  });
  mp.zeroGrad();
  return { precision: mp.precision, parameterBytes: model, masterBytes: masters, activationBytes, peakBytes };
}
