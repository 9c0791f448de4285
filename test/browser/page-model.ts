// Browser-safe assembly of a model directory from fetched bytes (config.json, model.safetensors,
// tokenizer.json), made only of exported library pieces. It stands in for the library's own
// bytes-based loader until that lands; models/load-node.ts and infer/model-dir-node.ts do the same
// from files in Node.
import {
  createModel,
  fromHFConfig,
  noGrad,
  parseSafetensors,
  tensor,
  Tokenizer,
  type LanguageModel,
  type ModelConfig,
  type Tensor,
} from '../../src/index.js';
import type { HfJson } from '../../src/models/hf-config.js';
import { readAs } from '../../src/backend/dtype.js';
import type { RawTensor } from '../../src/io/safetensors.js';
import { applyTweaks } from '../../src/train/recipes.js';

export interface ModelFiles {
  config: HfJson;
  weights: Uint8Array;
  tokenizer: Record<string, unknown>;
  tokenizerConfig?: Record<string, unknown>;
}

/** config.json, with Lineage's `"bias": false` extension (see infer/model-dir-node.ts) */
function configFromJson(json: HfJson): ModelConfig {
  const { bias, ...rest } = json;
  const cfg = fromHFConfig(rest);
  if (bias === undefined) return cfg;
  if (typeof bias !== 'boolean') {
    throw new Error(`config.json: field "bias" must be true or false, got ${JSON.stringify(bias)}`);
  }
  return applyTweaks(cfg, { bias });
}

/** a file's tensor as a Tensor of the same dtype (16-bit floats arrive as raw bit patterns) */
function fromRaw(r: RawTensor): Tensor {
  if (r.dtype !== 'float16' && r.dtype !== 'bfloat16') {
    return tensor(r.data as Float32Array | Int32Array | Uint8Array, { shape: r.shape, dtype: r.dtype });
  }
  const f = new Float32Array(r.data.length);
  for (let i = 0; i < f.length; i++) f[i] = readAs(r.dtype, r.data, i);
  return tensor(f, { shape: r.shape, dtype: r.dtype });
}

export function modelFromFiles(files: ModelFiles): { model: LanguageModel; tokenizer: Tokenizer } {
  const config = configFromJson(files.config);
  const model = createModel(config, { seed: 0 });
  const raw = parseSafetensors(files.weights, { file: 'model.safetensors' }).tensors;
  const state = new Map(raw.map((r) => [r.name, fromRaw(r)] as const));
  try {
    const mapped = model.sanitize ? model.sanitize(state) : state;
    noGrad(() => model.loadStateDict(mapped));
  } finally {
    for (const t of state.values()) t.dispose();
  }
  const tokenizer = Tokenizer.fromJSON(files.tokenizer, files.tokenizerConfig ?? {});
  return { model, tokenizer };
}

/** fetches the files of a model directory served at `base` (e.g. '/models/shakespeare-char/') */
export async function fetchModelFiles(base: string): Promise<ModelFiles> {
  const get = async (name: string): Promise<Response> => {
    const r = await fetch(base + name);
    if (!r.ok) throw new Error(`fetch ${base}${name}: HTTP ${r.status}`);
    return r;
  };
  const [config, weights, tokenizer] = await Promise.all([
    get('config.json').then((r) => r.json() as Promise<HfJson>),
    get('model.safetensors')
      .then((r) => r.arrayBuffer())
      .then((b) => new Uint8Array(b)),
    get('tokenizer.json').then((r) => r.json() as Promise<Record<string, unknown>>),
  ]);
  const tc = await fetch(base + 'tokenizer_config.json');
  const tokenizerConfig = tc.ok ? ((await tc.json()) as Record<string, unknown>) : undefined;
  return { config, weights, tokenizer, tokenizerConfig };
}
