// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. Every failure the server
// can foresee becomes an ApiError with the HTTP status, the field at fault and a stable code; anything
// else is a bug, answered as 500 in the same shape (and logged), never a dropped connection. No input may
// reach a 500: what the engine would fail on is refused up front.
export type ErrorType =
  'invalid_request_error' | 'authentication_error' | 'not_found_error' | 'rate_limit_error' | 'server_error';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type: ErrorType = status === 401
      ? 'authentication_error'
      : status === 404
        ? 'not_found_error'
        : status === 429
          ? 'rate_limit_error'
          : status >= 500
            ? 'server_error'
            : 'invalid_request_error',
  ) {
    super(message);
  }

  body(): { error: { message: string; type: ErrorType; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const badRequest = (param: string, message: string, code: string | null = null) =>
  new ApiError(400, message, param, code);

/** engine field names (camelCase) as the OpenAI request names them */
const ENGINE_PARAMS: Record<string, string> = {
  maxTokens: 'max_tokens',
  minTokens: 'min_tokens',
  topP: 'top_p',
  topK: 'top_k',
  minP: 'min_p',
  temperature: 'temperature',
  repetitionPenalty: 'repetition_penalty',
  presencePenalty: 'presence_penalty',
  frequencyPenalty: 'frequency_penalty',
  logitBias: 'logit_bias',
  logprobs: 'top_logprobs',
  seed: 'seed',
  n: 'n',
  stop: 'stop',
  prompt: 'prompt',
  constraint: 'response_format',
};

/** how the request at hand names the fields an engine error may be about */
export interface EngineErrorNames {
  /** the prompt's field: 'prompt', 'prompt[0]' or 'messages' */
  prompt: string;
  /** the field that set the output budget, or null when the server's default was used */
  maxTokens: string | null;
}

/**
 * An engine error as an OpenAI error. Validation errors ("request: ...", "sampling: ...": the request's own
 * values) are 400s naming the OpenAI field, with the engine's field names translated. A request that fits
 * the model but not this server's KV cache is a 400 in OpenAI's terms (no internal option names). A failure
 * during generation ("generation: ...") is the server's fault, never the client's: requests are validated
 * when they are added, so no input reaches it, and it is reported as such (a server_error, logged).
 */
export function fromEngineError(e: Error, names: EngineErrorNames = { prompt: 'prompt', maxTokens: null }): ApiError {
  if (/^generation: /.test(e.message))
    return new ApiError(500, `the server failed while generating: ${e.message.slice(12)}`, null, 'generation_failed');
  if (!/^(request|sampling): /.test(e.message))
    return new ApiError(500, `internal error: ${e.message}`, null, 'internal_error');
  const msg = e.message.replace(/^(request|sampling): /, '');
  const kv = /need (\d+) KV blocks; the pool has (\d+)/.exec(msg);
  if (kv) {
    const what = names.maxTokens
      ? `the prompt plus ${names.maxTokens}`
      : "the prompt plus the server's default max_tokens";
    return new ApiError(
      400,
      `${what} need ${kv[1]} blocks of the server's KV cache, which holds ${kv[2]}: ` +
        `lower ${names.maxTokens ?? 'max_tokens'} or shorten the prompt`,
      names.maxTokens ?? names.prompt,
      'context_length_exceeded',
    );
  }
  if (/context is \d+/.test(msg)) return new ApiError(400, msg, names.prompt, 'context_length_exceeded');
  if (/^every stop string/.test(msg))
    return new ApiError(400, msg.replace(/^every stop/, 'stop: every'), 'stop', 'invalid_value');
  const field = /^(\w+)/.exec(msg)?.[1] ?? '';
  const param = field === 'prompt' ? names.prompt : (ENGINE_PARAMS[field] ?? null);
  return new ApiError(400, translate(msg), param, 'invalid_value');
}

/** engine field names in a message as the OpenAI request names them */
function translate(msg: string): string {
  return msg.replace(/\b[a-z]+[A-Z]\w*\b/g, (w) => ENGINE_PARAMS[w] ?? w);
}
