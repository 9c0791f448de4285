// LoRA (Hu et al. 2021), PEFT's layout (peft/tuners/lora/layer.py): a LoraLinear wraps the projection it
// adapts as `base_layer` and adds a low-rank update
//   y = base(x) + scaling · B(A(dropout(x))),   A: [r, in], B: [out, r], scaling = alpha / r
// A starts as PEFT's kaiming-uniform(a=√5) (uniform ±1/√in), B as zeros, so a fresh adapter changes nothing.
// Parameter names follow PEFT (`q_proj.base_layer.weight`, `q_proj.lora_A.weight`, `q_proj.lora_B.weight`),
// so an adapter saves under PEFT's tensor names with only a prefix added. Merging folds scaling·B·A into
// the base weight (GPT's Conv1D stores [in, out], PEFT's fan_in_fan_out: the update is transposed).
// QLoRA (Dettmers et al. 2023): the base may be a QuantLinear (int8 / int4 blocks, src/nn/quant.ts); it stays
// quantized and frozen, gradients reach x through its dequantizing matmul, and only A and B train. A
// quantized base cannot be merged into (the sum would have to be re-quantized, losing the adapter's
// precision): merge into the float base instead, which the saved adapter loads onto as well.
import type { Tensor } from '../tensor/tensor.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { Rng } from '../tensor/random.js';
import { add, dropout, matmul, mul, rand, sub, transpose, zeros } from '../ops/index.js';
import { Module } from './module.js';
import { Linear } from './layers.js';
import { Conv1D, type Projection } from './conv1d.js';
import { QuantLinear } from './quant.js';

export interface LoraOptions {
  r: number;
  alpha: number;
  dropout?: number;
  rng?: Rng;
}

/**
 * a projection LoRA can adapt: [..., in] → [..., out] with a weight [out, in] (Linear), [in, out] (Conv1D),
 * or int8 / int4 blocks of [out, in] (QuantLinear, QLoRA)
 */
export type AdaptableProjection = Linear | Conv1D | QuantLinear;

export class LoraLinear extends Module implements Projection {
  readonly base: AdaptableProjection;
  readonly loraA: Linear;
  readonly loraB: Linear;
  readonly scaling: number;
  readonly dropoutP: number;
  /** true while scaling·B·A is folded into the base weight */
  merged = false;

  constructor(
    base: AdaptableProjection,
    readonly o: LoraOptions,
  ) {
    super();
    if (!(Number.isInteger(o.r) && o.r > 0)) throw new Error(`LoraLinear: r must be a positive integer, got ${o.r}`);
    if (!(o.alpha > 0)) throw new Error(`LoraLinear: alpha must be positive, got ${o.alpha}`);
    const rng = o.rng ?? new Rng(0);
    this.base = this.child('base_layer', base);
    const { inFeatures: inF, outFeatures: outF } = base;
    this.loraA = this.child('lora_A', new Linear(inF, o.r, { bias: false, rng }));
    this.loraB = this.child('lora_B', new Linear(o.r, outF, { bias: false, rng }));
    const bound = 1 / Math.sqrt(inF);
    noGrad(() => {
      this.loraA.setParameter('weight', rand([o.r, inF], { low: -bound, high: bound, rng }));
      this.loraB.setParameter('weight', zeros([outF, o.r]));
    });
    this.scaling = o.alpha / o.r;
    this.dropoutP = o.dropout ?? 0;
  }

  get inFeatures(): number {
    return this.base.inFeatures;
  }
  get outFeatures(): number {
    return this.base.outFeatures;
  }

  /** x [..., in] → [..., out] */
  forward(x: Tensor): Tensor {
    const y = this.base.forward(x);
    if (this.merged) return y;
    const h = this.dropoutP > 0 && this.training ? dropout(x, this.dropoutP) : x;
    return add(y, mul(this.loraB.forward(this.loraA.forward(h)), this.scaling));
  }

  /** scaling · B A in the base weight's layout ([out, in], or [in, out] for Conv1D) */
  deltaWeight(): Tensor {
    const d = mul(matmul(this.loraB.weight, this.loraA.weight), this.scaling); // (out, in)
    return this.base instanceof Conv1D ? transpose(d) : d;
  }

  merge(): void {
    if (this.merged) return;
    if (this.base instanceof QuantLinear)
      throw new Error(
        `LoraLinear: cannot merge into a quantized (int${this.base.bits}) base; ` +
          'load the adapter on the float base to merge',
      );
    this.shiftBase(1);
    this.merged = true;
  }

  unmerge(): void {
    if (!this.merged) return;
    this.shiftBase(-1);
    this.merged = false;
  }

  private shiftBase(sign: 1 | -1): void {
    const w = this.base.namedParameters().find(([n]) => n === 'weight')![1];
    const next = noGrad(() =>
      tidy(() => {
        const d = this.deltaWeight().to(w.dtype);
        return (sign > 0 ? add(w, d) : sub(w, d)).contiguous();
      }),
    );
    this.base.setParameter('weight', next);
  }
}
