// THE checkpoint loader (runs in browsers: no file access here; load-node.ts reads directories).
//
//   config.json  -> configFromJson (fromHFConfig + Lineage's "bias" extension)
//                -> createModel(config, { init: 'none' }): sizes checked first, parameters zero-filled,
//                   no random numbers drawn (the checkpoint overwrites them)
//   weights      -> every tensor checked against the parameter it fills (dtype kind, finite values), the
//                   family's `sanitize` name mapping, then loadStateDict (strict: a missing or unexpected
//                   tensor is an error naming it; non-strict loads initialise what is missing by the
//                   family's plan, as transformers does)
//   tokenizer    -> checked against the model: no id given to two tokens, no id beyond vocab_size.
//
// `loadModelFromFiles` is the whole path from the three files' contents (fetched bytes in a page).
//
// config.json extension written by Lineage:
//   "bias": false   every linear layer and LayerNorm of the transformer stacks has no bias (nanoGPT's
//                   GPTConfig.bias). transformers' GPT2Config cannot express it, so the field is written
//                   only when the model_type's own fields cannot, and read back here.
import { takeQuantizedWeights } from './quantized.js';
import type { Tensor } from '../tensor/tensor.js';
import { noGrad } from '../tensor/engine.js';
import { readAs } from '../backend/dtype.js';
import type { DType } from '../backend/backend.js';
import { tensor } from '../ops/index.js';
import { type RawTensor, parseSafetensors } from '../io/safetensors.js';
import { Tokenizer } from '../tokenizers/tokenizer.js';
import { fromHFConfig, toHFConfig, type HfJson } from './hf-config.js';
import type { ModelConfig } from './config.js';
import type { LanguageModel } from './model.js';
import { createModel } from './registry.js';
import { initModel } from './init.js';

// ----------------------------------------------------------------------------------------------------
// config.json

/** every linear layer and LayerNorm of the transformer stacks with (true) or without (false) bias */
export function withBias(cfg: ModelConfig, bias: boolean): ModelConfig {
  const c = structuredClone(cfg);
  const stacks = [...('decoder' in c ? [c.decoder] : []), ...('encoder' in c ? [c.encoder] : [])];
  for (const s of stacks) {
    const b = s.block;
    if (b.attention.kind !== 'mla') Object.assign(b.attention, { qkvBias: bias, outBias: bias });
    if (b.ffn.kind !== 'moe') b.ffn.bias = bias;
    if (b.norm.kind === 'layernorm') b.norm.bias = bias;
    if (s.finalNorm?.kind === 'layernorm') s.finalNorm.bias = bias;
  }
  if ('embedNorm' in c && c.embedNorm?.kind === 'layernorm') c.embedNorm.bias = bias;
  return c;
}

/** config.json (+ the `bias` extension) → ModelConfig */
export function configFromJson(json: HfJson): ModelConfig {
  const { bias, ...rest } = json;
  const cfg = fromHFConfig(rest);
  if (bias === undefined) return cfg;
  if (typeof bias !== 'boolean') {
    throw new Error(`config.json: field "bias" must be true or false, got ${JSON.stringify(bias)}`);
  }
  return withBias(cfg, bias);
}

/** ModelConfig → config.json, adding `"bias": false` when only that makes the config expressible */
export function configToJson(cfg: ModelConfig): HfJson {
  try {
    return toHFConfig(cfg);
  } catch (e) {
    let json: HfJson;
    try {
      json = toHFConfig(withBias(cfg, true));
    } catch {
      throw e;
    }
    if (JSON.stringify(withBias(fromHFConfig(json), false)) !== JSON.stringify(cfg)) throw e;
    return { ...json, bias: false };
  }
}

// ----------------------------------------------------------------------------------------------------
// Tensors

/** a RawTensor from a file as a Tensor of the same dtype */
export function fromRaw(r: RawTensor): Tensor {
  if (r.dtype !== 'float16' && r.dtype !== 'bfloat16') {
    return tensor(r.data as Float32Array | Int32Array | Uint8Array, { shape: r.shape, dtype: r.dtype });
  }
  const f = new Float32Array(r.data.length);
  // exact: decoded halves re-encode to the same bits
  for (let i = 0; i < f.length; i++) f[i] = readAs(r.dtype, r.data, i);
  return tensor(f, { shape: r.shape, dtype: r.dtype });
}

/** a Tensor as a RawTensor for safetensors (float16/bfloat16 as raw 16-bit patterns) */
export function toRaw(name: string, t: Tensor): RawTensor {
  const data = t.data();
  if (t.dtype !== 'float16' && t.dtype !== 'bfloat16') return { name, dtype: t.dtype, shape: [...t.shape], data };
  const raw = t.isContiguous ? t.backend.read(t.storage.buf, t.offset, t.size) : null;
  if (!raw) throw new Error(`saveModel: ${name} is a non-contiguous ${t.dtype} tensor`);
  return { name, dtype: t.dtype, shape: [...t.shape], data: raw as Uint16Array };
}

const FLOAT: ReadonlySet<DType> = new Set(['float32', 'float16', 'bfloat16']);

/** Refuses a stored dtype that cannot be the parameter's: integer or bool data into a float parameter
 * (or float data into an integer one) is a mislabelled or foreign file, never silently converted. */
function checkDType(stored: DType, param: DType, where: string): void {
  if (FLOAT.has(stored) === FLOAT.has(param) && (FLOAT.has(param) || stored === param)) return;
  const kind = FLOAT.has(param) ? 'a float type (F32, F16, BF16 or F64)' : `${param}`;
  throw new Error(`${where} is stored as ${stored} data, but the parameter it fills is ${param}: expected ${kind}`);
}

/** index of the first NaN / ±Inf in a float tensor's values, or -1 */
function firstNonFinite(r: RawTensor): number {
  if (r.dtype === 'float32') {
    const d = r.data as Float32Array;
    for (let i = 0; i < d.length; i++) if (d[i]! - d[i]! !== 0) return i; // NaN and ±Inf give NaN
    return -1;
  }
  if (r.dtype !== 'float16' && r.dtype !== 'bfloat16') return -1;
  const bits = r.data as Uint16Array;
  const exp = r.dtype === 'float16' ? 0x7c00 : 0x7f80; // all-ones exponent: Inf or NaN
  for (let i = 0; i < bits.length; i++) if ((bits[i]! & exp) === exp) return i;
  return -1;
}

function checkFinite(r: RawTensor, where: string): void {
  const i = firstNonFinite(r);
  if (i < 0) return;
  const v = r.dtype === 'float32' ? (r.data as Float32Array)[i] : readAs(r.dtype, r.data, i);
  throw new Error(`${where} holds a non-finite value (${v} at index ${i} of shape [${r.shape.join(', ')}]); `
    + 'the checkpoint is corrupt or came from a diverged run');
}

export interface LoadWeightsOptions {
  /** allow missing / unexpected tensors (reported, not thrown); missing ones get the family's init */
  strict?: boolean;
  /** tensor name -> file holding it, for messages */
  fileOf?: ReadonlyMap<string, string>;
  /** seed of the initialiser for tensors a non-strict load leaves missing */
  seed?: number;
}

/**
 * Copies checkpoint tensors into `model` through its family's `sanitize` name mapping, checking each
 * against the parameter it fills (dtype kind, finite values). Strict by default: a missing or unexpected
 * tensor is an error naming it. Returns what was missing / unexpected.
 */
export function loadWeights(
  model: LanguageModel, tensors: readonly RawTensor[], opts: LoadWeightsOptions = {},
): { missing: string[]; unexpected: string[] } {
  const where = (name: string) => `tensor "${name}"${opts.fileOf?.get(name) ? ` in ${opts.fileOf.get(name)}` : ''}`;
  const state = new Map<string, Tensor>();
  const rawOf = new Map<Tensor, RawTensor>();
  try {
    for (const r of tensors) {
      const t = fromRaw(r);
      state.set(r.name, t);
      rawOf.set(t, r);
    }
    const mapped = model.sanitize ? model.sanitize(state) : state;
    const params = new Map(model.namedParameters());
    for (const [name, t] of mapped) {
      const p = params.get(name);
      const r = rawOf.get(t);
      if (!p || !r) continue; // unexpected names are loadStateDict's to report
      const w = where(r.name) + (r.name === name ? '' : ` (parameter ${name})`);
      checkDType(r.dtype, p.dtype, w);
      checkFinite(r, w);
    }
    const result = noGrad(() => model.loadStateDict(mapped, { strict: opts.strict ?? true }));
    const missing = new Set(result.missing);
    if (missing.size) initModel(model as Parameters<typeof initModel>[0], opts.seed ?? 0, missing);
    return result;
  } finally {
    for (const t of state.values()) t.dispose();
  }
}

// ----------------------------------------------------------------------------------------------------
// Tokenizer against model

/** Refuses a tokenizer whose vocabulary gives one id to two tokens, or uses ids beyond the model's rows. */
export function checkTokenizer(tok: Tokenizer, cfg: ModelConfig, where = 'tokenizer.json'): void {
  const json = tok.toJSON() as { model?: { vocab?: unknown }; added_tokens?: { id: number; content: string }[] };
  const byId = new Map<number, string>();
  const claim = (id: number, token: string, from: string) => {
    const prev = byId.get(id);
    if (prev !== undefined && prev !== token) {
      const both = `${JSON.stringify(prev)} and ${JSON.stringify(token)}`;
      throw new Error(`${where}: id ${id} is given to two tokens, ${both} (${from}); `
        + 'every id must name one token');
    }
    byId.set(id, token);
  };
  const vocab = json.model?.vocab;
  if (vocab && typeof vocab === 'object' && !Array.isArray(vocab)) {
    for (const [token, id] of Object.entries(vocab as Record<string, number>)) claim(id, token, 'model.vocab');
  }
  for (const a of json.added_tokens ?? []) claim(a.id, a.content, 'added_tokens');
  if (tok.vocabSize > cfg.vocabSize) {
    const top = tok.vocabSize - 1;
    const rows = `${cfg.vocabSize} (embedding rows 0..${cfg.vocabSize - 1})`;
    throw new Error(`${where}: the tokenizer uses ids up to ${top} (${JSON.stringify(tok.idToToken(top))}), `
      + `beyond the model's vocab_size ${rows}; use the tokenizer the model was trained with, `
      + 'or a config whose vocab_size covers it');
  }
}

// ----------------------------------------------------------------------------------------------------
// Whole models

export interface LoadModelOptions extends Omit<LoadWeightsOptions, 'fileOf'> {
  /** config.json -> ModelConfig (default configFromJson) */
  readConfig?: (json: HfJson) => ModelConfig;
  /** refuse configs whose float32 parameters exceed this many bytes (createModel's maxBytes) */
  maxBytes?: number;
}

export interface LoadedModel {
  model: LanguageModel;
  config: ModelConfig;
  /** the tokenizer, when one was given */
  tokenizer: Tokenizer | null;
}

/** What a checkpoint holds once its files are read (by load-node.ts, or from fetched bytes). */
export interface CheckpointContents {
  config: HfJson;
  tensors: readonly RawTensor[];
  fileOf?: ReadonlyMap<string, string>;
  tokenizer?: Tokenizer | null;
  /** where the tokenizer came from, for messages (default tokenizer.json) */
  tokenizerFile?: string;
}

/** Builds the model of a checkpoint: config, allocation without random init, checked weights, tokenizer. */
export function modelFromCheckpoint(ckpt: CheckpointContents, opts: LoadModelOptions = {}): LoadedModel {
  const config = (opts.readConfig ?? configFromJson)(ckpt.config);
  const model = createModel(config, { init: 'none', maxBytes: opts.maxBytes, seed: opts.seed });
  try {
    // a quantized checkpoint's listed Linears become QuantLinears holding their blocks first
    const tensors = takeQuantizedWeights(model, ckpt.config, ckpt.tensors, 'config.json');
    loadWeights(model, tensors, { strict: opts.strict, seed: opts.seed, fileOf: ckpt.fileOf });
    if (ckpt.tokenizer) checkTokenizer(ckpt.tokenizer, config, ckpt.tokenizerFile);
  } catch (e) {
    model.dispose();
    throw e;
  }
  return { model, config, tokenizer: ckpt.tokenizer ?? null };
}

/** The contents of a model directory's files, as a page gets them from fetch(). */
export interface ModelFiles {
  /** config.json: its text or the parsed object */
  config: string | HfJson;
  /** model.safetensors bytes, or { file name: bytes } for shards (model-00001-of-00002.safetensors, ...) */
  weights: Uint8Array | ArrayBuffer | Record<string, Uint8Array | ArrayBuffer>;
  /** tokenizer.json: its text or the parsed object */
  tokenizer?: string | Record<string, unknown> | null;
  /** tokenizer_config.json: its text or the parsed object (special-token roles, chat template) */
  tokenizerConfig?: string | Record<string, unknown> | null;
}

function parseJson(text: string | Record<string, unknown>, file: string): Record<string, unknown> {
  if (typeof text !== 'string') return text;
  try {
    const v: unknown = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('expected a JSON object');
    return v as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: not valid JSON: ${(e as Error).message}`);
  }
}

/** every tensor of one file or of named shards, with the file each came from (a name twice is an error) */
function parseWeights(weights: ModelFiles['weights']): { tensors: RawTensor[]; fileOf: Map<string, string> } {
  const single = weights instanceof Uint8Array || weights instanceof ArrayBuffer;
  const byFile = single ? { 'model.safetensors': weights } : weights;
  const tensors: RawTensor[] = [];
  const fileOf = new Map<string, string>();
  for (const [file, bytes] of Object.entries(byFile)) {
    for (const t of parseSafetensors(bytes, { file, copy: true }).tensors) {
      if (fileOf.has(t.name)) throw new Error(`${file}: tensor "${t.name}" is also in ${fileOf.get(t.name)}`);
      fileOf.set(t.name, file);
      tensors.push(t);
    }
  }
  return { tensors, fileOf };
}

/**
 * Loads a model from the contents of config.json, model.safetensors and (optionally) tokenizer.json —
 * e.g. bytes fetched by a browser page. Same checks as loading a directory.
 */
export function loadModelFromFiles(files: ModelFiles, opts: LoadModelOptions = {}): LoadedModel {
  const config = parseJson(files.config, 'config.json');
  if (typeof config.model_type !== 'string') throw new Error('config.json: field "model_type" is missing');
  const { tensors, fileOf } = parseWeights(files.weights);
  let tokenizer: Tokenizer | null = null;
  if (files.tokenizer) {
    const tokCfg = files.tokenizerConfig ? parseJson(files.tokenizerConfig, 'tokenizer_config.json') : {};
    try {
      tokenizer = Tokenizer.fromJSON(parseJson(files.tokenizer, 'tokenizer.json'), tokCfg);
    } catch (e) {
      throw new Error(`tokenizer.json: ${(e as Error).message.replace(/^tokenizer\.json: /, '')}`);
    }
  }
  return modelFromCheckpoint({ config, tensors, fileOf, tokenizer }, opts);
}
