// Position-wise feed-forward networks: MLP down(act(up(x))) and GLU down(act(gate(x)) * up(x))
// (SwiGLU / GeGLU). Checkpoint names are the caller's: Llama gate_proj/up_proj/down_proj, Mixtral experts
// w1/w3/w2, GPT c_fc/c_proj (Conv1D, weights [in, out]).
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { biasActivation, dropout, gluActivation, mul, split } from '../ops/index.js';
import type { Activation } from './config.js';
import { Linear } from './layers.js';
import { Module } from './module.js';
import { Conv1D, type Projection } from './conv1d.js';
import { activate } from './activations.js';

export interface FfnOptions {
  bias: boolean;
  std?: number;
  rng?: Rng;
  /** dropout after the activation (training only) */
  actDropout?: number;
}

export interface MlpNames {
  up: string;
  down: string;
  /** GPT's Conv1D layout */
  conv1d?: boolean;
}
export const GPT_MLP_NAMES: MlpNames = { up: 'c_fc', down: 'c_proj', conv1d: true };
export const MLP_NAMES: MlpNames = { up: 'fc1', down: 'fc2' };

export class Mlp extends Module {
  private readonly up: Projection;
  private readonly down: Projection;

  constructor(
    dim: number,
    hidden: number,
    readonly act: Activation,
    names: MlpNames,
    readonly opts: FfnOptions,
  ) {
    super();
    const o = { bias: opts.bias, std: opts.std ?? 0.02, rng: opts.rng ?? new Rng(0) };
    const Proj = names.conv1d ? Conv1D : Linear;
    this.up = this.child(names.up, new Proj(dim, hidden, o));
    this.down = this.child(names.down, new Proj(hidden, dim, o));
  }

  forward(x: Tensor): Tensor {
    const h = dropout(this.upActivated(x), this.opts.actDropout ?? 0, this.training);
    return this.down.forward(h);
  }

  /** act(up(x)); the up bias and the activation in one fused pass when up exposes its bias (Linear, Conv1D) */
  private upActivated(x: Tensor): Tensor {
    const up = this.up as Projection & Partial<Unbiased>;
    if (this.act === 'relu' || !up.unbiased) return activate(this.up.forward(x), this.act);
    const [h, bias] = up.unbiased(x); // (B, T, F) before the bias
    return biasActivation(h, bias, this.act);
  }
}

export interface GluNames {
  gate: string;
  up: string;
  down: string;
  /** one Linear [2F, D] whose rows are gate | up (Phi-3 `gate_up_proj`); gate / up names then unused */
  fused?: string;
}
export const LLAMA_GLU_NAMES: GluNames = { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
export const PHI3_GLU_NAMES: GluNames = { gate: '', up: '', down: 'down_proj', fused: 'gate_up_proj' };
export const MIXTRAL_EXPERT_NAMES: GluNames = { gate: 'w1', up: 'w3', down: 'w2' };

export class Glu extends Module {
  private readonly gate: Linear | null = null;
  private readonly up: Linear | null = null;
  private readonly gateUp: Linear | null = null;
  private readonly down: Linear;

  constructor(
    dim: number,
    readonly hidden: number,
    readonly act: Activation,
    names: GluNames,
    readonly opts: FfnOptions,
  ) {
    super();
    const o = { bias: opts.bias, std: opts.std ?? 0.02, rng: opts.rng ?? new Rng(0) };
    if (names.fused) this.gateUp = this.child(names.fused, new Linear(dim, 2 * hidden, o));
    else {
      this.gate = this.child(names.gate, new Linear(dim, hidden, o));
      this.up = this.child(names.up, new Linear(dim, hidden, o));
    }
    this.down = this.child(names.down, new Linear(hidden, dim, o));
  }

  /** gate and up projections of x: (B, T, F) each */
  private gateAndUp(x: Tensor): [Tensor, Tensor] {
    if (!this.gateUp) return [this.gate!.forward(x), this.up!.forward(x)];
    const [g, u] = split(this.gateUp.forward(x), [this.hidden, this.hidden], -1); // (B, T, 2F) -> 2 x (B, T, F)
    return [g!, u!];
  }

  forward(x: Tensor): Tensor {
    const [g, u] = this.gateAndUp(x);
    const h = this.act === 'relu' ? mul(activate(g, this.act), u) : gluActivation(g, u, this.act); // one fused pass
    return this.down.forward(dropout(h, this.opts.actDropout ?? 0, this.training));
  }
}

/** a projection that can hand out its bias separately (Linear, Conv1D; not a LoRA wrapper) */
interface Unbiased {
  unbiased(x: Tensor): [Tensor, Tensor | null];
}

/** A dense FFN of either kind. */
export type DenseFfn = Mlp | Glu;
