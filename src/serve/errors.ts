// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. Every failure the server
// can foresee becomes an ApiError with the HTTP status, the field at fault and a stable code; anything
// else is a bug, answered as 500 in the same shape (and logged), never a dropped connection.
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

/** an engine validation error ("request: topP must be ...") as a 400 naming the OpenAI field */
export function fromEngineError(e: Error): ApiError {
  const msg = e.message.replace(/^(request|engine|sampling): /, '');
  if (/context is \d+/.test(msg)) return new ApiError(400, msg, 'messages', 'context_length_exceeded');
  const field = /^(\w+)/.exec(msg)?.[1] ?? '';
  const param = ENGINE_PARAMS[field] ?? null;
  return new ApiError(400, param ? msg.replace(field, param) : msg, param, 'invalid_value');
}
