// Weight-only quantized linear layers. `QuantLinear` holds a [out, in] weight as GGUF q8_0 / q4_0 blocks
// (src/ops/quant.ts) and is swapped in for a Linear or GPT Conv1D with `Module.replace`; `quantizeModel` does
// that for every eligible projection of a model. The float weight is dropped: the kernel dequantizes blocks
// on the fly. The packed weight is not a parameter (optimizers, dtype casts and state dicts leave it alone);
// the bias stays a float parameter.
import { keep, noGrad } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  checkQuantBits,
  contiguous,
  quantizeWeight,
  quantizedLinear,
  transpose,
  type QuantBits,
  type QuantizedWeight,
} from '../ops/index.js';
import { Conv1D } from './conv1d.js';
import { Linear } from './layers.js';
import { Module } from './module.js';

export class QuantLinear extends Module {
  readonly q: QuantizedWeight;
  /** the float layer was a GPT Conv1D ([in, out]); the blocks hold its transpose (PEFT's fan_in_fan_out) */
  fromConv1D = false;
  constructor(q: QuantizedWeight, bias: Tensor | null = null) {
    super();
    this.q = { ...q, packed: keep(q.packed) };
    if (bias) {
      if (bias.ndim !== 1 || bias.shape[0] !== q.outFeatures) {
        throw new Error(
          `QuantLinear: bias of shape [${bias.shape.join(', ')}] does not match ${q.outFeatures} outputs`,
        );
      }
      this.param('bias', bias);
    } else this.noParam('bias');
  }

  get inFeatures(): number {
    return this.q.inFeatures;
  }
  get outFeatures(): number {
    return this.q.outFeatures;
  }
  get bits(): QuantBits {
    return this.q.bits;
  }

  /** x [..., in] -> [..., out] */
  forward(x: Tensor): Tensor {
    return quantizedLinear(x, this.q, this.pOpt('bias'));
  }

  /** code that reads a Linear's float weight directly cannot run on a quantized layer: say so */
  get weight(): Tensor {
    throw new Error('QuantLinear: the float weight does not exist (quantized); exclude this module from quantizeModel');
  }

  /** quantizes a Linear ([out, in] weight) or a GPT Conv1D ([in, out] weight); the bias is shared, not copied */
  static from(m: Linear | Conv1D, bits: QuantBits): QuantLinear {
    const w = m.namedParameters().find(([n]) => n === 'weight')![1];
    const bias = m.namedParameters().find(([n]) => n === 'bias')?.[1] ?? null;
    const q = noGrad(() => {
      if (m instanceof Linear) return quantizeWeight(w, bits);
      const wt = contiguous(transpose(w)); // (out, in)
      try {
        return quantizeWeight(wt, bits);
      } finally {
        if (wt !== w) wt.dispose();
      }
    });
    const ql = new QuantLinear(q, bias);
    ql.fromConv1D = m instanceof Conv1D;
    return ql;
  }

  override dispose(): void {
    super.dispose();
    this.q.packed.dispose();
  }
}

export interface QuantizeOptions {
  bits: QuantBits;
  /** GGUF's block size; only 32 exists for q8_0 / q4_0 */
  groupSize?: number;
  /** module paths (exact, or a RegExp) left in float, on top of the default exclusions */
  exclude?: (string | RegExp)[];
  /** also quantize the output head `lm_head` (default false: the head is kept in float) */
  includeHead?: boolean;
}

export interface QuantizeReport {
  /** module paths now QuantLinear */
  quantized: string[];
  /** Linear / Conv1D layers left in float, with the reason */
  skipped: { path: string; reason: string }[];
  /** paths whose float weight was a GPT Conv1D ([in, out]); their blocks hold the transpose */
  conv1d: string[];
}

/**
 * Always in float: `lm_head` (unless includeHead), MoE routers (`...gate`, tiny and sensitive), MLA's
 * `kv_b_proj` (its weight is read directly to absorb it into attention), and layers whose input size is
 * not a multiple of 32 (no whole blocks).
 */
function defaultSkip(path: string, m: Linear | Conv1D, opts: QuantizeOptions): string | null {
  if (!opts.includeHead && /(^|\.)lm_head$/.test(path)) return 'output head kept in float (includeHead: false)';
  if (/(^|\.)gate$/.test(path)) return 'MoE router kept in float';
  if (/(^|\.)kv_b_proj$/.test(path)) return 'MLA kv_b_proj: its weight is read directly';
  if (m.inFeatures % 32 !== 0) return `in_features ${m.inFeatures} is not a multiple of 32`;
  for (const e of opts.exclude ?? []) if (typeof e === 'string' ? e === path : e.test(path)) return 'excluded';
  return null;
}

/** an exclude entry that matches no layer is a typo: the layer meant to stay in float would be quantized */
function checkExcludes(exclude: readonly (string | RegExp)[], paths: readonly string[]): void {
  const unused = exclude.filter((e) => !paths.some((p) => (typeof e === 'string' ? e === p : e.test(p))));
  if (!unused.length) return;
  const example = paths.find((p) => !/(^|\.)lm_head$/.test(p)) ?? paths[0] ?? 'none';
  throw new Error(
    `quantizeModel: exclude ${unused.map((e) => JSON.stringify(String(e))).join(', ')} matches no Linear / Conv1D ` +
      `layer (paths look like ${example})`,
  );
}

/** Replaces every eligible Linear / Conv1D of `model` by a QuantLinear (in place) and reports what it did. */
export function quantizeModel(model: Module, opts: QuantizeOptions): QuantizeReport {
  const bits = checkQuantBits(opts.bits, 'bits');
  const groupSize = opts.groupSize ?? 32;
  if (groupSize !== 32) {
    throw new Error(
      `quantizeModel: groupSize must be 32 (GGUF's q8_0 / q4_0 block), got ${JSON.stringify(opts.groupSize)}`,
    );
  }
  const report: QuantizeReport = { quantized: [], skipped: [], conv1d: [] };
  const targets = model.namedModules().filter(([, m]) => m instanceof Linear || m instanceof Conv1D) as [
    string,
    Linear | Conv1D,
  ][];
  checkExcludes(
    opts.exclude ?? [],
    targets.map(([p]) => p),
  );
  for (const [path, m] of targets) {
    const why = defaultSkip(path, m, opts);
    if (why) {
      report.skipped.push({ path, reason: why });
      continue;
    }
    const ql = QuantLinear.from(m, bits);
    model.replace(path, ql);
    const w = m.namedParameters().find(([n]) => n === 'weight')![1];
    w.dispose(); // the bias lives on in the QuantLinear
    report.quantized.push(path);
    if (m instanceof Conv1D) report.conv1d.push(path);
  }
  return report;
}
