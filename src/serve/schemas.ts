// JSON Schemas of the request bodies, checked by fastify (ajv) before a handler runs: wrong types,
// missing fields and out-of-range numbers become 400s naming the field. Value checks that need the
// model (token ids in the vocabulary, context length) happen in the handlers and the engine.
import { LOGIT_BIAS_MAX, REPETITION_PENALTY_MAX, REPETITION_PENALTY_MIN } from '../infer/engine/sampler.js';

const int = { type: ['integer', 'null'] };
/** prompts in one completions request, and inputs in one embeddings request */
export const MAX_PROMPTS = 256;
const stringOrList = {
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 16 }, { type: 'null' }],
};
const tokenIds = { type: 'array', items: { type: 'integer', minimum: 0 } };

const sampling = {
  model: { type: 'string', minLength: 1 },
  max_tokens: { type: ['integer', 'null'], minimum: 1 },
  max_completion_tokens: { type: ['integer', 'null'], minimum: 1 },
  temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
  top_p: { type: ['number', 'null'], exclusiveMinimum: 0, maximum: 1 },
  top_k: { type: ['integer', 'null'], minimum: 0 },
  min_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
  n: { type: ['integer', 'null'], minimum: 1, maximum: 16 },
  stop: stringOrList,
  // every seed in the range gives its own stream (sequenceRng uses all 53 bits and the sign)
  seed: { type: ['integer', 'null'], minimum: -Number.MAX_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
  presence_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  frequency_penalty: { type: ['number', 'null'], minimum: -2, maximum: 2 },
  repetition_penalty: { type: ['number', 'null'], minimum: REPETITION_PENALTY_MIN, maximum: REPETITION_PENALTY_MAX },
  logit_bias: {
    type: ['object', 'null'],
    additionalProperties: { type: 'number', minimum: -LOGIT_BIAS_MAX, maximum: LOGIT_BIAS_MAX },
  },
  stream: { type: ['boolean', 'null'] },
  stream_options: { type: ['object', 'null'], properties: { include_usage: { type: 'boolean' } } },
  user: { type: 'string' },
};

export const completionSchema = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...sampling,
    prompt: {
      anyOf: [
        { type: 'string' },
        { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: MAX_PROMPTS },
        { ...tokenIds, minItems: 1 },
        { type: 'array', items: { ...tokenIds, minItems: 1 }, minItems: 1, maxItems: MAX_PROMPTS },
      ],
    },
    logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    echo: { type: ['boolean', 'null'] },
    suffix: { type: ['string', 'null'] },
    best_of: int,
  },
};

const contentPart = {
  type: 'object',
  required: ['type'],
  properties: { type: { type: 'string' }, text: { type: 'string' } },
};
const message = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
    content: { anyOf: [{ type: 'string' }, { type: 'array', items: contentPart }, { type: 'null' }] },
    name: { type: 'string' },
    tool_call_id: { type: 'string' },
    tool_calls: { type: 'array', items: { type: 'object' } },
  },
};

export const chatSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...sampling,
    messages: { type: 'array', items: message, minItems: 1 },
    logprobs: { type: ['boolean', 'null'] },
    top_logprobs: { type: ['integer', 'null'], minimum: 0, maximum: 20 },
    response_format: {
      type: ['object', 'null'],
      required: ['type'],
      properties: { type: { enum: ['text', 'json_object', 'json_schema'] } },
    },
    tools: {
      type: ['array', 'null'],
      items: {
        type: 'object',
        required: ['type', 'function'],
        properties: {
          type: { const: 'function' },
          function: {
            type: 'object',
            required: ['name'],
            properties: {
              name: { type: 'string', minLength: 1 },
              description: { type: 'string' },
              parameters: { type: 'object' },
            },
          },
        },
      },
    },
    tool_choice: {
      anyOf: [
        { enum: ['none', 'auto', 'required'] },
        {
          type: 'object',
          required: ['type', 'function'],
          properties: { function: { type: 'object', required: ['name'] } },
        },
        { type: 'null' },
      ],
    },
    parallel_tool_calls: { type: ['boolean', 'null'] },
  },
};

export const embeddingSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1 },
    input: {
      anyOf: [
        { type: 'string' },
        { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: MAX_PROMPTS },
        { ...tokenIds, minItems: 1 },
        { type: 'array', items: { ...tokenIds, minItems: 1 }, minItems: 1, maxItems: MAX_PROMPTS },
      ],
    },
    encoding_format: { enum: ['float', 'base64'] },
    dimensions: { type: 'integer', minimum: 1 },
    user: { type: 'string' },
  },
};

export const tokenizeSchema = {
  type: 'object',
  required: ['model'],
  properties: {
    model: { type: 'string', minLength: 1 },
    prompt: { type: 'string' },
    messages: { type: 'array', items: message, minItems: 1 },
    add_special_tokens: { type: 'boolean' },
  },
};

export const detokenizeSchema = {
  type: 'object',
  required: ['model', 'tokens'],
  properties: { model: { type: 'string', minLength: 1 }, tokens: tokenIds },
};
