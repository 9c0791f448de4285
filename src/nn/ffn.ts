// Position-wise feed-forward networks: MLP down(act(up(x))) and GLU down(act(gate(x)) * up(x))
// (SwiGLU / GeGLU). Checkpoint names are the caller's: Llama gate_proj/up_proj/down_proj, Mixtral experts
// w1/w3/w2, GPT c_fc/c_proj (Conv1D, weights [in, out]).
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { dropout, mul } from '../ops/index.js';
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
    const h = dropout(activate(this.up.forward(x), this.act), this.opts.actDropout ?? 0, this.training);
    return this.down.forward(h);
  }
}

export interface GluNames {
  gate: string;
  up: string;
  down: string;
}
export const LLAMA_GLU_NAMES: GluNames = { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' };
export const MIXTRAL_EXPERT_NAMES: GluNames = { gate: 'w1', up: 'w3', down: 'w2' };

export class Glu extends Module {
  private readonly gate: Linear;
  private readonly up: Linear;
  private readonly down: Linear;

  constructor(
    dim: number,
    hidden: number,
    readonly act: Activation,
    names: GluNames,
    readonly opts: FfnOptions,
  ) {
    super();
    const o = { bias: opts.bias, std: opts.std ?? 0.02, rng: opts.rng ?? new Rng(0) };
    this.gate = this.child(names.gate, new Linear(dim, hidden, o));
    this.up = this.child(names.up, new Linear(dim, hidden, o));
    this.down = this.child(names.down, new Linear(hidden, dim, o));
  }

  forward(x: Tensor): Tensor {
    const h = mul(activate(this.gate.forward(x), this.act), this.up.forward(x));
    return this.down.forward(dropout(h, this.opts.actDropout ?? 0, this.training));
  }
}

/** A dense FFN of either kind. */
export type DenseFfn = Mlp | Glu;
