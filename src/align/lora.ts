// LoRA on a whole model: pick the projections to adapt by name, swap each for a LoraLinear wrapping it
// (`Module.replace`), freeze everything else, and move adapters in and out of PEFT's file layout:
//   adapter_config.json          {"peft_type": "LORA", "r", "lora_alpha", "target_modules", ...}
//   adapter_model.safetensors    base_model.model.<module path>.lora_A.weight / .lora_B.weight
// (browser-safe: bytes and JSON in, bytes and JSON out; src/align/lora-node.ts reads and writes the files).
import type { Module } from '../nn/module.js';
import { Linear } from '../nn/layers.js';
import { Conv1D } from '../nn/conv1d.js';
import { LoraLinear } from '../nn/lora.js';
import { QuantLinear } from '../nn/quant.js';
import { Rng } from '../tensor/random.js';
import { noGrad } from '../tensor/engine.js';
import type { Tensor } from '../tensor/tensor.js';
import { tensor } from '../ops/index.js';
import { parseSafetensors, serializeSafetensors, type RawTensor } from '../io/safetensors.js';
import { bf16ToF32, f16ToF32 } from '../backend/dtype.js';

export interface LoraConfig {
  r: number;
  alpha: number;
  dropout: number;
  /** module names or dotted suffixes (`q_proj`, `attn.c_attn`), as PEFT's target_modules */
  targets: string[];
}

/** PEFT's prefix for a causal LM's adapter tensors */
export const PEFT_PREFIX = 'base_model.model.';

/** a layer LoRA can wrap: a float Linear / Conv1D, or a QuantLinear (QLoRA: the base stays int8 / int4) */
const adaptable = (m: Module): m is Linear | Conv1D | QuantLinear =>
  m instanceof Linear || m instanceof Conv1D || m instanceof QuantLinear;

/** module paths whose last components match a target; only Linear / Conv1D / QuantLinear projections qualify */
export function findTargets(model: Module, targets: readonly string[]): string[] {
  const hit = (path: string) => targets.some((t) => path === t || path.endsWith(`.${t}`));
  return model
    .namedModules()
    .filter(([p, m]) => p && hit(p) && adaptable(m))
    .map(([p]) => p);
}

/** the int8 / int4 widths of the model's quantized projections (empty for a float model) */
export function quantizedBits(model: Module): number[] {
  const bits = model.namedModules().flatMap(([, m]) => (m instanceof QuantLinear ? [m.bits] : []));
  return [...new Set(bits)];
}

/**
 * Freezes every parameter of `model`, then wraps each targeted projection in a LoraLinear (trainable
 * A and B). Returns the adapted paths; throws when a target matches nothing (a typo must not train nothing).
 */
export function applyLora(model: Module, c: LoraConfig, seed = 0): string[] {
  const paths = findTargets(model, c.targets);
  for (const t of c.targets) {
    if (!paths.some((p) => p === t || p.endsWith(`.${t}`))) {
      const names = [
        ...new Set(
          model
            .namedModules()
            .filter(([, m]) => adaptable(m))
            .map(([p]) => p.split('.').pop()),
        ),
      ];
      throw new Error(`--lora-targets: '${t}' matches no linear layer (this model has: ${names.join(', ')})`);
    }
  }
  for (const p of model.parameters()) p.requiresGrad = false;
  const rng = new Rng(seed);
  for (const path of paths) {
    const base = model.getModule(path) as Linear | Conv1D | QuantLinear;
    model.replace(path, new LoraLinear(base, { r: c.r, alpha: c.alpha, dropout: c.dropout, rng }));
  }
  return paths;
}

export function loraLayers(model: Module): [string, LoraLinear][] {
  return model.namedModules().filter((e): e is [string, LoraLinear] => e[1] instanceof LoraLinear);
}

export function mergeLora(model: Module): void {
  for (const [, l] of loraLayers(model)) l.merge();
}

export function unmergeLora(model: Module): void {
  for (const [, l] of loraLayers(model)) l.unmerge();
}

/** the adapter tensors under PEFT's names */
export function adapterTensors(model: Module): [string, Tensor][] {
  return model
    .namedParameters()
    .filter(([n]) => /\.lora_[AB]\.weight$/.test(n))
    .map(([n, t]) => [PEFT_PREFIX + n, t]);
}

/**
 * The plain model's weights with the adapters folded in (`x.base_layer.weight` → `x.weight`, no lora_*),
 * for saving a full model directory. The model itself is left unmerged.
 */
export function mergedWeights(model: Module): [string, Tensor][] {
  mergeLora(model);
  try {
    return noGrad(() =>
      model
        .namedParameters()
        .filter(([n]) => !/\.lora_[AB]\.weight$/.test(n))
        .map(([n, t]) => [n.replace('.base_layer.', '.'), t.to('float32').contiguous()] as [string, Tensor]),
    );
  } finally {
    unmergeLora(model);
  }
}

/** adapter_config.json as PEFT writes it */
export function peftConfig(c: LoraConfig, model: Module, base: string): Record<string, unknown> {
  // a GPT-2 Conv1D base (float, or quantized from one): PEFT transposes the update when it merges
  const fanInFanOut = loraLayers(model).some(
    ([, l]) => l.base instanceof Conv1D || (l.base instanceof QuantLinear && l.base.fromConv1D),
  );
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: base,
    r: c.r,
    lora_alpha: c.alpha,
    lora_dropout: c.dropout,
    target_modules: c.targets,
    fan_in_fan_out: fanInFanOut,
    bias: 'none',
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    revision: null,
  };
}

export function serializeAdapter(model: Module): Uint8Array {
  const raw: RawTensor[] = adapterTensors(model).map(([name, t]) => ({
    name,
    dtype: 'float32',
    shape: [...t.shape],
    data: Float32Array.from(t.to('float32').data()),
  }));
  return serializeSafetensors(raw, { format: 'pt' });
}

/** reads adapter_config.json's fields Lineage needs, naming the bad one */
export function parsePeftConfig(json: unknown, file = 'adapter_config.json'): LoraConfig {
  const o = json as Record<string, unknown>;
  if (typeof o !== 'object' || o === null) throw new Error(`${file}: expected a JSON object`);
  if (o.peft_type !== 'LORA')
    throw new Error(`${file}: peft_type is ${JSON.stringify(o.peft_type)}, only "LORA" is supported`);
  const num = (k: string) => {
    if (typeof o[k] !== 'number') throw new Error(`${file}: field '${k}' must be a number`);
    return o[k] as number;
  };
  const targets = typeof o.target_modules === 'string' ? [o.target_modules] : o.target_modules;
  if (!Array.isArray(targets) || !targets.every((t) => typeof t === 'string'))
    throw new Error(`${file}: field 'target_modules' must be a list of names`);
  if (o.use_dora === true) throw new Error(`${file}: DoRA adapters are not supported`);
  // per-module ranks / alphas would need a scaling per layer; refused rather than applied with the global one
  for (const k of ['rank_pattern', 'alpha_pattern'])
    if (o[k] && typeof o[k] === 'object' && Object.keys(o[k] as object).length > 0)
      throw new Error(`${file}: field '${k}' (a rank or alpha per module) is not supported`);
  const r = num('r');
  // rsLoRA (use_rslora) scales by alpha / sqrt(r) instead of alpha / r: the same scaling as alpha * sqrt(r) / r
  const alpha = o.use_rslora === true ? num('lora_alpha') * Math.sqrt(r) : num('lora_alpha');
  return {
    r,
    alpha,
    dropout: typeof o.lora_dropout === 'number' ? o.lora_dropout : 0,
    targets: targets as string[],
  };
}

/** an adapter tensor's values as float32: PEFT saves float32, or the base model's float16 / bfloat16 */
function adapterValues(r: RawTensor, file: string): Float32Array {
  if (r.dtype === 'float32') return r.data as Float32Array;
  const bits = r.data as Uint16Array;
  if (r.dtype === 'float16') return Float32Array.from(bits, f16ToF32);
  if (r.dtype === 'bfloat16') return Float32Array.from(bits, bf16ToF32);
  throw new Error(`${file}: '${r.name}' is ${r.dtype}; adapters are float32, float16 or bfloat16`);
}

/** applies a PEFT adapter (config + safetensors bytes) to `model`: wraps the targets, loads A and B exactly */
export function loadAdapter(
  model: Module,
  config: LoraConfig,
  bytes: Uint8Array,
  file = 'adapter_model.safetensors',
): string[] {
  const paths = applyLora(model, config);
  const own = new Map(model.namedParameters());
  const parsed = parseSafetensors(bytes, { file, copy: true });
  const seen = new Set<string>();
  noGrad(() => {
    for (const r of parsed.tensors) {
      // PEFT may keep the adapter name ('.lora_A.default.weight') in memory; files drop it
      const name = r.name.replace(/^base_model\.model\./, '').replace('.default.weight', '.weight');
      const p = own.get(name);
      if (!p || !/\.lora_[AB]\.weight$/.test(name))
        throw new Error(`${file}: tensor '${r.name}' matches no LoRA parameter of this model`);
      if (r.shape.join() !== p.shape.join())
        throw new Error(`${file}: '${r.name}' has shape [${r.shape}], the model expects [${p.shape}]`);
      model.setParameter(name, tensor(adapterValues(r, file), { shape: r.shape }));
      seen.add(name);
    }
  });
  const missing = [...own.keys()].filter((n) => /\.lora_[AB]\.weight$/.test(n) && !seen.has(n));
  if (missing.length)
    throw new Error(
      `${file}: missing adapter tensor(s) ${missing
        .slice(0, 4)
        .map((n) => PEFT_PREFIX + n)
        .join(', ')}`,
    );
  return paths;
}
