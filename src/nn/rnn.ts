// Recurrent layers with torch.nn.RNN / LSTM / GRU parameter layouts, names and gate orders, so a
// torch state_dict loads as is:
//   weight_ih_l{k} [G*H, in], weight_hh_l{k} [G*H, H], bias_ih_l{k} [G*H], bias_hh_l{k} [G*H]
//   G = 1 (rnn, tanh), 4 (lstm: i | f | g | o), 3 (gru: r | z | n).
// The input projection of a whole sequence is one matmul; only the hidden projection runs per step.
// State goes in and comes out, so truncated BPTT can carry it across batches (after `detachRnnState`)
// and decoding costs O(1) per token.
//
// Notation: B batch, T time, H hidden size, G gates.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { add, dropout, linear, mul, reshape, sigmoid, slice, split, stack, sub, tanh, zeros } from '../ops/index.js';
import { Module, initUniform } from './module.js';

export type RnnCellKind = 'rnn' | 'lstm' | 'gru';

/** gates per cell, in torch order */
export const RNN_GATES: { [K in RnnCellKind]: number } = { rnn: 1, lstm: 4, gru: 3 };

/** the state of one layer: h [B, H], plus the cell state c [B, H] for LSTM */
export interface RnnLayerState {
  h: Tensor;
  c: Tensor | null;
}

/** one state per layer, bottom first */
export type RnnState = RnnLayerState[];

/** one step of a cell. gi = x W_ihᵀ + b_ih [B, G*H]; returns the next state */
export function rnnCellStep(
  kind: RnnCellKind,
  gi: Tensor,
  s: RnnLayerState,
  whh: Tensor,
  bhh: Tensor | null,
): RnnLayerState {
  const gh = linear(s.h, whh, bhh); // (B, G*H)
  switch (kind) {
    case 'rnn':
      return { h: tanh(add(gi, gh)), c: null };
    case 'lstm': {
      const [i, f, g, o] = split(add(gi, gh), 4, -1) as [Tensor, Tensor, Tensor, Tensor];
      const c = add(mul(sigmoid(f), s.c!), mul(sigmoid(i), tanh(g)));
      return { h: mul(sigmoid(o), tanh(c)), c };
    }
    case 'gru': {
      const [ir, iz, inn] = split(gi, 3, -1) as [Tensor, Tensor, Tensor];
      const [hr, hz, hn] = split(gh, 3, -1) as [Tensor, Tensor, Tensor];
      const r = sigmoid(add(ir, hr));
      const z = sigmoid(add(iz, hz));
      const n = tanh(add(inn, mul(r, hn))); // b_hn stays inside r * (...), as torch does
      return { h: add(mul(sub(1, z), n), mul(z, s.h)), c: null };
    }
    default:
      return kind satisfies never;
  }
}

export interface RnnOptions {
  bias?: boolean;
  /** dropout on the outputs of every layer but the last (torch semantics) */
  dropout?: number;
  rng?: Rng;
}

/** A stack of `numLayers` recurrent layers over batch-first input [B, T, in] (torch batch_first=True). */
export class RNN extends Module {
  readonly gates: number;
  constructor(
    readonly kind: RnnCellKind,
    readonly inputSize: number,
    readonly hiddenSize: number,
    readonly numLayers = 1,
    readonly opts: RnnOptions = {},
  ) {
    super();
    this.gates = RNN_GATES[kind];
    const rng = opts.rng ?? new Rng(0);
    const k = 1 / Math.sqrt(hiddenSize); // torch init: U(-1/sqrt(H), 1/sqrt(H)) for every tensor
    const u = (shape: number[]) => initUniform(shape, -k, k, rng);
    const GH = this.gates * hiddenSize;
    for (let l = 0; l < numLayers; l++) {
      this.param(`weight_ih_l${l}`, u([GH, l === 0 ? inputSize : hiddenSize]));
      this.param(`weight_hh_l${l}`, u([GH, hiddenSize]));
      if (opts.bias ?? true) {
        this.param(`bias_ih_l${l}`, u([GH]));
        this.param(`bias_hh_l${l}`, u([GH]));
      } else {
        this.noParam(`bias_ih_l${l}`);
        this.noParam(`bias_hh_l${l}`);
      }
    }
  }

  /** zeros for every layer */
  initialState(batch: number): RnnState {
    const z = () => zeros([batch, this.hiddenSize]);
    return Array.from({ length: this.numLayers }, () => ({ h: z(), c: this.kind === 'lstm' ? z() : null }));
  }

  /** x [B, T, in] -> output [B, T, H] (top layer) and the state after the last step */
  forward(x: Tensor, state: RnnState | null = null): { output: Tensor; state: RnnState } {
    const [B] = x.shape as [number];
    const s0 = state ?? this.initialState(B);
    if (s0.length !== this.numLayers)
      throw new Error(`RNN.forward: state has ${s0.length} layers, expected ${this.numLayers}`);
    const out: RnnState = [];
    let h = x;
    for (let l = 0; l < this.numLayers; l++) {
      if (l > 0) h = dropout(h, this.opts.dropout ?? 0, this.training, this.opts.rng);
      const r = this.layer(l, h, s0[l]!);
      h = r.output;
      out.push(r.state);
    }
    return { output: h, state: out };
  }

  private layer(l: number, x: Tensor, s: RnnLayerState): { output: Tensor; state: RnnLayerState } {
    const [B, T] = x.shape as [number, number];
    const gi = linear(x, this.p(`weight_ih_l${l}`), this.pOpt(`bias_ih_l${l}`)); // (B, T, G*H)
    const whh = this.p(`weight_hh_l${l}`);
    const bhh = this.pOpt(`bias_hh_l${l}`);
    const hs: Tensor[] = [];
    let st = s;
    for (let t = 0; t < T; t++) {
      const git = reshape(slice(gi, 1, t, t + 1), [B, this.gates * this.hiddenSize]); // (B, G*H)
      st = rnnCellStep(this.kind, git, st, whh, bhh);
      hs.push(st.h);
    }
    return { output: stack(hs, 1), state: st }; // (B, T, H)
  }
}

/** the same state without autograd history (truncated BPTT: gradients stop at the batch boundary) */
export function detachRnnState(state: RnnState): RnnState {
  return state.map((s) => ({ h: s.h.detach(), c: s.c ? s.c.detach() : null }));
}
