// Learning-rate schedules as pure functions of the optimizer step (0-based, like nanoGPT's `iter_num`).

/** Constant lr, with optional linear warmup. */
export interface ConstantSchedule {
  kind: 'constant';
  lr: number;
  warmup?: number;
}
/** nanoGPT's get_lr: linear warmup, cosine decay from lr to minLr until decaySteps, minLr after. */
export interface CosineSchedule {
  kind: 'cosine';
  lr: number;
  minLr: number;
  warmup: number;
  decaySteps: number;
}
/** Linear warmup, then linear decay from lr to minLr (default 0) at decaySteps. */
export interface LinearSchedule {
  kind: 'linear';
  lr: number;
  minLr?: number;
  warmup: number;
  decaySteps: number;
}
/**
 * Warmup-stable-decay: warmup, hold lr until decayStart, then decay to minLr over decaySteps steps.
 * decayShape 'sqrt' is the 1-sqrt cooldown of Hägele et al. (2024); 'linear' is the MiniCPM default.
 */
export interface WsdSchedule {
  kind: 'wsd';
  lr: number;
  minLr: number;
  warmup: number;
  decayStart: number;
  decaySteps: number;
  decayShape?: 'linear' | 'cosine' | 'sqrt';
}
/** "Attention is all you need" (2017): factor · d_model^-0.5 · min(s^-0.5, s · warmup^-1.5), s = step+1. */
export interface NoamSchedule {
  kind: 'noam';
  dModel: number;
  warmup: number;
  factor?: number;
}

export type Schedule = ConstantSchedule | CosineSchedule | LinearSchedule | WsdSchedule | NoamSchedule;

/** nanoGPT's warmup ramp: it=0 already gets a small nonzero lr, (it+1)/(warmup+1). */
function warmupLr(lr: number, step: number, warmup: number): number {
  return (lr * (step + 1)) / (warmup + 1);
}

/** Exactly nanoGPT's get_lr(it) (train.py), including the `it > lr_decay_iters` boundary. */
export function nanoGptLr(it: number, lr: number, minLr: number, warmup: number, decaySteps: number): number {
  if (it < warmup) return warmupLr(lr, it, warmup);
  if (it > decaySteps) return minLr;
  const span = decaySteps - warmup;
  const ratio = span > 0 ? (it - warmup) / span : 1;
  const coeff = 0.5 * (1.0 + Math.cos(Math.PI * ratio));
  return minLr + coeff * (lr - minLr);
}

function linearLr(s: LinearSchedule, step: number): number {
  const minLr = s.minLr ?? 0;
  if (step < s.warmup) return warmupLr(s.lr, step, s.warmup);
  if (step >= s.decaySteps) return minLr;
  const ratio = (step - s.warmup) / (s.decaySteps - s.warmup);
  return s.lr + ratio * (minLr - s.lr);
}

function wsdLr(s: WsdSchedule, step: number): number {
  if (step < s.warmup) return warmupLr(s.lr, step, s.warmup);
  if (step < s.decayStart) return s.lr;
  if (s.decaySteps <= 0 || step >= s.decayStart + s.decaySteps) return s.minLr;
  const r = (step - s.decayStart) / s.decaySteps; // 0 → 1 over the cooldown
  let coeff: number; // 1 → 0
  switch (s.decayShape ?? 'linear') {
    case 'linear':
      coeff = 1 - r;
      break;
    case 'cosine':
      coeff = 0.5 * (1 + Math.cos(Math.PI * r));
      break;
    case 'sqrt':
      coeff = 1 - Math.sqrt(r);
      break;
  }
  return s.minLr + coeff * (s.lr - s.minLr);
}

function noamLr(s: NoamSchedule, step: number): number {
  const n = step + 1; // the paper counts steps from 1
  return (s.factor ?? 1) * s.dModel ** -0.5 * Math.min(n ** -0.5, n * s.warmup ** -1.5);
}

/** Learning rate at a 0-based optimizer step. */
export function lrAt(schedule: Schedule, step: number): number {
  if (!(step >= 0)) throw new Error(`lrAt: step must be >= 0, got ${step}`);
  switch (schedule.kind) {
    case 'constant': {
      const w = schedule.warmup ?? 0;
      return step < w ? warmupLr(schedule.lr, step, w) : schedule.lr;
    }
    case 'cosine':
      return nanoGptLr(step, schedule.lr, schedule.minLr, schedule.warmup, schedule.decaySteps);
    case 'linear':
      return linearLr(schedule, step);
    case 'wsd':
      return wsdLr(schedule, step);
    case 'noam':
      return noamLr(schedule, step);
  }
}

/** Checks a schedule's fields and throws an error naming the bad field. */
export function validateSchedule(s: Schedule): void {
  const bad = (field: string, v: unknown) => {
    throw new Error(`schedule '${s.kind}': invalid ${field} = ${String(v)}`);
  };
  const nonneg = (field: string, v: number | undefined) => {
    if (v !== undefined && !(Number.isFinite(v) && v >= 0)) bad(field, v);
  };
  if (s.kind === 'noam') {
    if (!(s.dModel > 0)) bad('dModel', s.dModel);
    if (!(s.warmup > 0)) bad('warmup', s.warmup);
    return;
  }
  nonneg('lr', s.lr);
  nonneg('warmup', s.warmup);
  if (s.kind === 'constant') return;
  nonneg('minLr', s.minLr);
  nonneg('decaySteps', s.decaySteps);
  if (s.kind === 'wsd') {
    if (s.decayStart < s.warmup) bad('decayStart (< warmup)', s.decayStart);
  } else if (s.decaySteps < s.warmup) bad('decaySteps (< warmup)', s.decaySteps);
}

/** The whole curve for steps 0..steps-1 (for plots and sanity checks). */
export function lrCurve(schedule: Schedule, steps: number): Float64Array {
  const out = new Float64Array(steps);
  for (let i = 0; i < steps; i++) out[i] = lrAt(schedule, i);
  return out;
}
