// The models a server holds: each loaded once, with one inference engine serving every request for it.
import type { LanguageModel } from '../models/model.js';
import type { ModelConfig } from '../models/config.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { Engine, EngineRequest, EngineStats, RequestHandle } from '../infer/engine/engine.js';
import { defaultPooling, embedTokens, type Pooling } from '../infer/embed.js';

/** what the server needs of an engine: the in-process Engine or a proxy to one on a worker thread
 * (EngineWorker, where generation and embeddings both run off the event loop) */
export interface EngineLike {
  add(req: EngineRequest): RequestHandle;
  abort(id: string): boolean;
  stats(): EngineStats;
  /** pooled, L2-normalised embeddings of token-id inputs */
  embed(inputs: readonly (readonly number[])[], pooling: Pooling): Promise<Float32Array[]>;
}

export interface ServedModel {
  /** the name clients pass as `model` */
  name: string;
  config: ModelConfig;
  tokenizer: Tokenizer;
  engine: EngineLike;
  /** false for encoders: completions and chat answer 400, embeddings work */
  generates: boolean;
  /** how /v1/embeddings pools the final hidden states */
  pooling: Pooling;
  /** the model's context length in tokens */
  contextLength: number;
  /** seconds since the epoch when the model was loaded (`created` in /v1/models) */
  created: number;
}

/** Jinja chat template used when a model's tokenizer_config.json has none (plain text, any vocabulary
 * with lowercase letters, ':' and newlines — the bundled character models included). */
export const DEFAULT_CHAT_TEMPLATE =
  '{% for m in messages %}{{ m.role }}: {{ m.content }}\n\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}';

const NO_STATS: EngineStats = {
  running: 0,
  waiting: 0,
  kvBlocksUsed: 0,
  kvBlocksTotal: 0,
  prefixCacheHits: 0,
  acceptanceRate: 0,
  preemptions: 0,
};

/** an in-process EngineLike (tests, embedding libraries): the engine generates when given; embeddings run on
 * the calling thread */
export function inProcess(model: LanguageModel, engine: Engine | null): EngineLike {
  return {
    add: (req) => {
      if (!engine) throw new Error(`${model.config.family} serves embeddings only`);
      return engine.add(req);
    },
    abort: (id) => engine?.abort(id) ?? false,
    stats: () => engine?.stats() ?? { ...NO_STATS },
    embed: async (inputs, pooling) => embedTokens(model, inputs, { pooling }),
  };
}

/** a ServedModel over an in-process model (tests, embedding a server in an application): decoders generate
 * through a new Engine unless one is given; encoders serve embeddings only */
export function servedInProcess(
  name: string,
  model: LanguageModel,
  tokenizer: Tokenizer,
  o: { engine?: Engine | null; contextLength?: number; pooling?: Pooling } = {},
): ServedModel {
  const cfg = model.config;
  const generates = cfg.arch !== 'encoder';
  if (generates && !o.engine) throw new Error(`servedInProcess(${name}): a generating model needs its Engine`);
  return {
    name,
    config: cfg,
    tokenizer,
    engine: inProcess(model, generates ? o.engine! : null),
    generates,
    pooling: o.pooling ?? defaultPooling(cfg),
    contextLength: o.contextLength ?? ('maxContext' in cfg ? cfg.maxContext : 2048),
    created: Math.floor(Date.now() / 1000),
  };
}
