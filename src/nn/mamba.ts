// The Mamba (S6) mixer, with transformers' MambaMixer parameter names and layouts:
//   in_proj [2I, D] -> x | gate;  conv1d.weight [I, 1, K] (depthwise, causal) + conv1d.bias [I];
//   x_proj [R + 2N, I] -> dt | B | C;  dt_proj [I, R] + bias;  A_log [I, N];  D [I];  out_proj [D, I].
// y = out_proj( (scan(silu(conv(x)), softplus(dt_proj(dt)), -exp(A_log), B, C) + D*u) * silu(gate) ).
//
// Training runs the fused selective scan over the whole sequence. Decoding carries O(1) state per
// sequence and layer: the last K-1 conv inputs and the SSM state h; a call with T = 1 is the
// recurrent step, and any chunking gives the same outputs as one full pass.
//
// Notation: B batch, T time, D model width, I inner width (expand * D), N state size, R dt rank,
// K conv kernel.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import {
  add,
  clamp,
  concat,
  conv1dCausal,
  exp,
  full,
  log,
  mul,
  neg,
  rand,
  reshape,
  selectiveScan,
  silu,
  slice,
  softplus,
  split,
  tensor,
  transpose,
  zeros,
} from '../ops/index.js';
import { Module, initSkipped, initUniform } from './module.js';
import { Linear } from './layers.js';

export interface MambaMixerOptions {
  hidden: number;
  inner: number;
  dState: number;
  dConv: number;
  dtRank: number;
  convBias: boolean;
  projBias: boolean;
  dtMin?: number;
  dtMax?: number;
  dtInitFloor?: number;
  dtScale?: number;
  initStd?: number;
  rng?: Rng;
}

/** per-layer decoding state: conv [B, I, K-1] (last conv inputs), ssm [B, I, N] */
export interface MambaLayerState {
  conv: Tensor;
  ssm: Tensor;
}

export class MambaMixer extends Module {
  readonly in_proj: Linear;
  readonly x_proj: Linear;
  readonly dt_proj: Linear;
  readonly out_proj: Linear;
  readonly conv1d: Conv1dDepthwise;

  constructor(readonly o: MambaMixerOptions) {
    super();
    const rng = o.rng ?? new Rng(0);
    const { hidden: D, inner: I, dState: N, dtRank: R } = o;
    this.in_proj = this.child('in_proj', new Linear(D, 2 * I, { bias: o.projBias, std: o.initStd, rng }));
    this.conv1d = this.child('conv1d', new Conv1dDepthwise(I, o.dConv, o.convBias, rng));
    this.x_proj = this.child('x_proj', new Linear(I, R + 2 * N, { bias: false, std: o.initStd, rng }));
    this.dt_proj = this.child('dt_proj', new Linear(R, I, { bias: true, rng }));
    if (!initSkipped()) this.initDt(rng);
    // S4D-real init: A = -(1..N) for every channel
    const a = () => Float32Array.from({ length: I * N }, (_, i) => Math.log((i % N) + 1));
    this.param('A_log', initSkipped() ? zeros([I, N]) : tensor(a(), { shape: [I, N] }));
    this.param('D', full([I], 1));
    this.out_proj = this.child('out_proj', new Linear(I, D, { bias: o.projBias, std: o.initStd, rng }));
  }

  /** dt_proj as MambaPreTrainedModel._init_weights: U(±R^-0.5 * scale) weights, inverse-softplus bias */
  private initDt(rng: Rng): void {
    const { inner: I, dtRank: R } = this.o;
    const std = R ** -0.5 * (this.o.dtScale ?? 1);
    this.dt_proj.setParameter('weight', rand([I, R], { low: -std, high: std, rng }));
    const [lo, hi] = [Math.log(this.o.dtMin ?? 1e-3), Math.log(this.o.dtMax ?? 0.1)];
    const dt = clamp(exp(add(mul(rand([I], { rng }), hi - lo), lo)), this.o.dtInitFloor ?? 1e-4, null);
    this.dt_proj.setParameter('bias', add(dt, log(neg(expm1(neg(dt)))))); // softplus⁻¹(dt)
  }

  /** zero state for `batch` sequences */
  initialState(batch: number): MambaLayerState {
    return { conv: zeros([batch, this.o.inner, this.o.dConv - 1]), ssm: zeros([batch, this.o.inner, this.o.dState]) };
  }

  /** x [B, T, D] -> [B, T, D]; continues from `state` (null: zeros) and returns the state after T */
  forward(x: Tensor, state: MambaLayerState | null = null): { y: Tensor; state: MambaLayerState } {
    const { inner: I, dState: N, dtRank: R, dConv: K } = this.o;
    const [B, T] = x.shape as [number, number];
    const [xs, gate] = split(this.in_proj.forward(x), [I, I], -1) as [Tensor, Tensor]; // (B, T, I) each
    const s0 = state ?? this.initialState(B);
    const xin = concat([s0.conv, transpose(xs, 1, 2)], 2); // (B, I, K-1+T): conv history, then new inputs
    const conv = slice(this.conv1d.forward(xin), 2, K - 1); // (B, I, T)
    const u = transpose(silu(conv), 1, 2); // (B, T, I)
    const [dt, Bm, Cm] = split(this.x_proj.forward(u), [R, N, N], -1) as [Tensor, Tensor, Tensor];
    const delta = softplus(this.dt_proj.forward(dt)); // (B, T, I)
    const A = neg(exp(this.p('A_log'))); // (I, N)
    const { y, hT } = selectiveScan(u, delta, A, Bm, Cm, this.p('D'), state ? s0.ssm : null); // (B, T, I)
    const out = this.out_proj.forward(mul(y, silu(gate))); // (B, T, D)
    const nextConv = slice(xin, 2, T); // (B, I, K-1): the last K-1 inputs
    return { y: out, state: { conv: nextConv, ssm: hT } };
  }
}

/** depthwise causal conv1d in torch's layout: weight [C, 1, K], bias [C] */
export class Conv1dDepthwise extends Module {
  constructor(
    readonly channels: number,
    readonly kernel: number,
    bias: boolean,
    rng: Rng,
  ) {
    super();
    const k = 1 / Math.sqrt(kernel); // torch Conv1d init bound for groups == channels
    this.param('weight', initUniform([channels, 1, kernel], -k, k, rng));
    if (bias) this.param('bias', initUniform([channels], -k, k, rng));
    else this.noParam('bias');
  }
  /** x [B, C, T] -> [B, C, T], output t sees inputs t-K+1..t (zeros before the start) */
  forward(x: Tensor): Tensor {
    const w = reshape(this.p('weight'), [this.channels, this.kernel]); // (C, 1, K) -> (C, K)
    return conv1dCausal(x, w, this.pOpt('bias'));
  }
}

const expm1 = (x: Tensor) => add(exp(x), -1);
