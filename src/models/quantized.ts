// Quantized checkpoints (lineage-gguf: GGUF q8_0 / q4_0 blocks stored as U8 tensors, see
// docs/QUANTIZATION.md): config.json's quantization_config, and the loader step that turns each listed
// Linear into a QuantLinear holding its blocks. Browser-safe: the one loader (load.ts) runs it.
import type { HfJson } from './hf-config.js';
import type { Module } from '../nn/module.js';
import { Conv1D, Linear, QuantLinear } from '../nn/index.js';
import { checkQuantBits, packedWeight, type QuantBits } from '../ops/quant.js';
import { quantRowBytes } from '../backend/reference/quant.js';
import type { RawTensor } from '../io/safetensors.js';

export const QUANT_METHOD = 'lineage-gguf';

export interface QuantizationConfig {
  quant_method: typeof QUANT_METHOD;
  format: 'q8_0' | 'q4_0';
  bits: QuantBits;
  group_size: 32;
  /** module paths stored as blocks */
  modules: string[];
  /** the subset whose float weight was a GPT Conv1D ([in, out]); the blocks hold its transpose */
  conv1d: string[];
}

/** config.json's quantization_config, validated (null when the model is not quantized) */
export function readQuantizationConfig(json: HfJson, where = 'config.json'): QuantizationConfig | null {
  const q = json.quantization_config as Record<string, unknown> | undefined | null;
  if (q === undefined || q === null) return null;
  const bad = (what: string) => new Error(`${where}: quantization_config.${what}`);
  if (typeof q !== 'object') throw bad(`must be an object, got ${JSON.stringify(q)}`);
  if (q.quant_method !== QUANT_METHOD) throw bad(`quant_method must be "${QUANT_METHOD}", got ${JSON.stringify(q.quant_method)}`);
  const bits = checkQuantBits(q.bits, `${where}: quantization_config.bits`);
  const format = bits === 8 ? 'q8_0' : 'q4_0';
  if (q.format !== format) throw bad(`format must be "${format}" for ${bits} bits, got ${JSON.stringify(q.format)}`);
  if (q.group_size !== 32) throw bad(`group_size must be 32, got ${JSON.stringify(q.group_size)}`);
  const list = (k: string) => {
    const v = q[k] ?? [];
    if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw bad(`${k} must be a list of module paths`);
    return v as string[];
  };
  return { quant_method: QUANT_METHOD, format, bits, group_size: 32, modules: list('modules'), conv1d: list('conv1d') };
}

/**
 * Loader hook: for a quantized config, replaces each listed module of `model` by a QuantLinear built from
 * its stored blocks (and bias) and returns the other tensors; for a float config, returns `tensors` as is.
 */
export function takeQuantizedWeights(model: Module, json: HfJson, tensors: readonly RawTensor[], where = 'checkpoint'): readonly RawTensor[] {
  const qc = readQuantizationConfig(json, where);
  if (!qc) return tensors;
  const byName = new Map(tensors.map((t) => [t.name, t] as const));
  const used = new Set<string>();
  for (const path of qc.modules) {
    let m: Module;
    try {
      m = model.getModule(path);
    } catch (e) {
      throw new Error(`${where}: quantization_config lists module '${path}': ${(e as Error).message}`);
    }
    if (!(m instanceof Linear || m instanceof Conv1D)) throw new Error(`${where}: quantized module '${path}' is a ${m.constructor.name}, not a Linear`);
    if ((m instanceof Conv1D) !== qc.conv1d.includes(path)) {
      throw new Error(`${where}: module '${path}' is ${m instanceof Conv1D ? '' : 'not '}a Conv1D but quantization_config.conv1d says otherwise`);
    }
    const raw = byName.get(`${path}.weight`);
    if (!raw) throw new Error(`${where}: quantized weight '${path}.weight' is missing from the safetensors`);
    const rowBytes = quantRowBytes(m.inFeatures, qc.bits);
    if (raw.shape.length !== 2 || raw.shape[0] !== m.outFeatures || raw.shape[1] !== rowBytes) {
      throw new Error(`${where}: '${path}.weight' has shape [${raw.shape.join(', ')}], q${qc.bits} blocks of a ${m.outFeatures}x${m.inFeatures} layer need U8 [${m.outFeatures}, ${rowBytes}]`);
    }
    const q = packedWeight(Uint8Array.from(raw.data), m.outFeatures, m.inFeatures, qc.bits);
    const biasRaw = byName.get(`${path}.bias`);
    const hasBias = m.namedParameters().some(([n]) => n === 'bias');
    if (hasBias && !biasRaw) throw new Error(`${where}: '${path}.bias' is missing from the safetensors`);
    const bias = hasBias ? m.namedParameters().find(([n]) => n === 'bias')![1] : null;
    m.namedParameters().find(([n]) => n === 'weight')![1].dispose();
    const ql = new QuantLinear(q, bias);
    ql.fromConv1D = m instanceof Conv1D;
    model.replace(path, ql); // the bias is then loaded by the float path, by name
    used.add(`${path}.weight`);
  }
  return tensors.filter((t) => !used.has(t.name));
}

