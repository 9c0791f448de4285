// How big a model a config asks for, checked before anything is allocated. Sizes come from strangers'
// config.json files and `--set` flags; `hidden_size=1e12` must fail at once with a message saying how much
// was asked and which fields drive it, not as "Invalid typed array length" deep in an allocation, and
// `n_layer=1e6` must not run for a minute building layers until memory runs out.
// The count is inspect.ts's (config arithmetic only, no weights allocated).
import { type FfnConfig, type ModelConfig, mambaInner, transformerStacks } from './config.js';
import { type Component, countParams, humanBytes, humanCount } from './inspect.js';

/** Default ceiling on parameter memory: 32 GiB of float32 (8.6B parameters). Raise it with `maxBytes`. */
export const DEFAULT_MAX_PARAM_BYTES = 2 ** 35;

/** Elements one tensor may hold: a typed array's limit in every engine Lineage runs on (V8 allows 2^32,
 * 32-bit browsers less), kept at 2^31 - 1 so an index fits an int32. */
export const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

export interface SizeLimits {
  /** ceiling on the parameters' float32 bytes (default DEFAULT_MAX_PARAM_BYTES) */
  maxBytes?: number;
}

/** The config fields that set each component's size, in Lineage's names (transformers' in parentheses). */
const DRIVERS: { [C in Component]: string } = {
  embeddings: 'vocabSize (vocab_size) × hidden (hidden_size / n_embd / d_model)',
  positions: 'maxContext (max_position_embeddings / n_positions) × hidden',
  vision: 'vision.patchSize, vision.channels × hidden',
  attention: 'layers (num_hidden_layers / n_layer / num_layers) × heads × headDim × hidden',
  ffn: 'layers × ffn hidden (intermediate_size / n_inner / d_ff) × hidden',
  router: 'layers × experts × hidden',
  experts: 'layers × experts (num_local_experts / n_routed_experts) × expert hidden × hidden',
  sharedExperts: 'layers × shared expert hidden × hidden',
  ssm: 'layers × inner (intermediate_size = expand × hidden) × (hidden + state_size + ...)',
  rnn: 'layers × hidden²',
  norms: 'layers × hidden',
  pooler: 'hidden²',
  head: 'vocabSize × hidden',
  mtp: 'mtp.depth (num_nextn_predict_layers) × one layer',
};

/** The largest components of a count, as "ffn 7.1T (layers × ...)" lines. */
function drivers(byComponent: Partial<Record<Component, number>>): string {
  return (Object.entries(byComponent) as [Component, number][])
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([c, n]) => `${c} ${humanCount(n)} (${DRIVERS[c]})`)
    .join('; ');
}

/** The config's key sizes, for the message. */
function sizes(cfg: ModelConfig): string {
  const stacks = [('encoder' in cfg ? cfg.encoder.layers : 0), ('decoder' in cfg ? cfg.decoder.layers : 0)];
  const layers = 'layers' in cfg ? cfg.layers : stacks.filter((n) => n > 0).join('+');
  return `hidden=${cfg.hidden}, layers=${layers}, vocabSize=${cfg.vocabSize}`;
}

const ffnWidth = (f: FfnConfig): number =>
  f.kind === 'moe' ? Math.max(f.expertHidden, f.denseHidden, f.sharedHidden) : f.hidden;

/** The config's largest weight matrices, as [description, elements]. */
function bigTensors(cfg: ModelConfig): [string, number][] {
  const D = cfg.hidden;
  const out: [string, number][] = [
    [`token embedding vocabSize × hidden = ${cfg.vocabSize} × ${D}`, cfg.vocabSize * D],
  ];
  for (const { name, stack } of transformerStacks(cfg)) {
    const w = ffnWidth(stack.block.ffn);
    out.push([`${name} feed-forward weight hidden × ffn hidden = ${D} × ${w}`, D * w]);
  }
  const I = cfg.arch === 'mamba' ? mambaInner(cfg) : 0;
  if (I) out.push([`in_proj 2·inner × hidden = ${2 * I} × ${D}`, 2 * I * D]);
  if (cfg.arch === 'rnn') out.push([`recurrent weight 4·hidden × hidden = ${4 * D} × ${D}`, 4 * D * D]);
  return out;
}

/**
 * Throws when the config's parameters cannot be allocated: a count that is not a finite safe integer, or
 * float32 bytes above `limits.maxBytes`. Call before building any module.
 */
export function checkModelSize(cfg: ModelConfig, limits: SizeLimits = {}): void {
  const max = limits.maxBytes ?? DEFAULT_MAX_PARAM_BYTES;
  const counts = countParams(cfg);
  const bytes = counts.params * 4;
  if (Number.isSafeInteger(counts.params) && bytes <= max) {
    const big = bigTensors(cfg).find(([, n]) => n > MAX_TENSOR_ELEMENTS);
    if (!big) return;
    throw new Error(`model too large: one tensor, the ${big[0]} (${humanCount(big[1])} elements), exceeds the `
      + `${humanCount(MAX_TENSOR_ELEMENTS)}-element limit of a single typed array; reduce those fields`);
  }
  throw new Error(
    `model too large: the config (${cfg.family}: ${sizes(cfg)}) asks for ${humanCount(counts.params)} parameters ` +
      `(${humanBytes(bytes)} as float32), over the limit of ${humanBytes(max)} (${humanCount(max / 4)} parameters); ` +
      `largest parts: ${drivers(counts.byComponent)}. ` +
      'Reduce those fields, or raise the limit with the maxBytes option.',
  );
}
