// The models a server holds: each loaded once, with one inference engine serving every request for it.
import type { LanguageModel } from '../models/model.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { EngineRequest, EngineStats, RequestHandle } from '../infer/engine/engine.js';

/** what the server needs of an engine: the in-process Engine or a proxy to one on a worker thread */
export interface EngineLike {
  add(req: EngineRequest): RequestHandle;
  abort(id: string): boolean;
  stats(): EngineStats;
}

export interface ServedModel {
  /** the name clients pass as `model` */
  name: string;
  model: LanguageModel;
  tokenizer: Tokenizer;
  engine: EngineLike;
  /** the model's context length in tokens */
  contextLength: number;
  /** seconds since the epoch when the model was loaded (`created` in /v1/models) */
  created: number;
}

/** Jinja chat template used when a model's tokenizer_config.json has none (plain text, any vocabulary
 * with lowercase letters, ':' and newlines — the bundled character models included). */
export const DEFAULT_CHAT_TEMPLATE =
  '{% for m in messages %}{{ m.role }}: {{ m.content }}\n\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}';
