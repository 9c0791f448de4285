// Structured output and tools through the server: response_format json_object / json_schema and forced
// tool calls always parse and validate (constrained decoding in the engine), a full tool-call round trip
// works with the openai client, and a vocabulary that cannot spell JSON is a clear 400, not a dead end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { bytesTokenizer } from '../../src/tokenizers/index.js';
import { loadModelDir } from '../../src/infer/model-dir-node.js';
import { Engine } from '../../src/infer/engine/engine.js';
import { createServer } from '../../src/serve/app.js';
import { servedInProcess } from '../../src/serve/models.js';

let app: FastifyInstance;
let client: OpenAI;

before(async () => {
  const cfg = getPreset('tiny-llama');
  const model = createModel(cfg, { seed: 5 });
  const tokenizer = bytesTokenizer();
  const bytes = servedInProcess('bytes', model, tokenizer, {
    engine: new Engine(model, { tokenizer, kvMemoryBytes: 4 << 20 }),
  });
  const char = await loadModelDir('models/shakespeare-char');
  const chars = servedInProcess('chars', char.model, char.tokenizer!, {
    engine: new Engine(char.model, { tokenizer: char.tokenizer!, kvMemoryBytes: 4 << 20 }),
    contextLength: 256,
  });
  app = createServer({ models: [bytes, chars] });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(() => app.close());

const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 6 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 2 },
  },
  required: ['name', 'age', 'tags'],
  additionalProperties: false,
};

test('response_format json_schema: every sample parses and validates (n = 4, random weights)', async () => {
  const validate = new Ajv().compile(schema);
  const r = await client.chat.completions.create({
    model: 'bytes',
    messages: [{ role: 'user', content: 'a person' }],
    n: 4,
    max_tokens: 60,
    temperature: 1,
    seed: 1,
    response_format: { type: 'json_schema', json_schema: { name: 'person', schema, strict: true } },
  });
  assert.equal(r.choices.length, 4);
  for (const c of r.choices) {
    const v = JSON.parse(c.message.content!);
    assert.ok(validate(v), `${c.message.content} ${JSON.stringify(validate.errors)}`);
  }
});

test('response_format json_object, streamed: the concatenated deltas are one JSON object', async () => {
  const stream = await client.chat.completions.create({
    model: 'bytes',
    messages: [{ role: 'user', content: 'x' }],
    max_tokens: 40,
    temperature: 1,
    seed: 2,
    stream: true,
    response_format: { type: 'json_object' },
  });
  let text = '';
  for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
  const v = JSON.parse(text);
  assert.equal(typeof v, 'object');
  assert.ok(v !== null && !Array.isArray(v));
});

const tools: OpenAI.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'calculator',
      description: 'evaluate',
      parameters: {
        type: 'object',
        properties: { a: { type: 'integer' }, op: { enum: ['+', '-'] }, b: { type: 'integer' } },
        required: ['a', 'op', 'b'],
        additionalProperties: false,
      },
    },
  },
  {
    type: 'function',
    function: { name: 'noop', parameters: { type: 'object', properties: {}, additionalProperties: false } },
  },
];

test('tools: a forced call validates against the named function, and the round trip completes', async () => {
  const validate = new Ajv().compile((tools[0] as OpenAI.ChatCompletionFunctionTool).function.parameters!);
  const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'user', content: 'what is 2 + 3?' }];
  const r = await client.chat.completions.create({
    model: 'bytes',
    messages,
    tools,
    tool_choice: { type: 'function', function: { name: 'calculator' } },
    max_tokens: 60,
    temperature: 1,
    seed: 3,
  });
  const choice = r.choices[0]!;
  assert.equal(choice.finish_reason, 'tool_calls');
  assert.equal(choice.message.content, null);
  const call = choice.message.tool_calls![0]!;
  assert.equal(call.type, 'function');
  assert.equal(call.function.name, 'calculator');
  assert.match(call.id, /^call_/);
  const args = JSON.parse(call.function.arguments) as { a: number; op: string; b: number };
  assert.ok(validate(args), call.function.arguments);
  // tool result back to the model, which answers in text
  messages.push(choice.message, {
    role: 'tool',
    tool_call_id: call.id,
    content: String(args.op === '+' ? args.a + args.b : args.a - args.b),
  });
  const final = await client.chat.completions.create({
    model: 'bytes',
    messages,
    tools,
    tool_choice: 'none',
    max_tokens: 5,
    temperature: 1,
    seed: 4,
  });
  assert.equal(typeof final.choices[0]!.message.content, 'string');
  assert.notEqual(final.choices[0]!.finish_reason, 'tool_calls');
});

test('tools: required over several tools, streamed, yields a tool_calls delta', async () => {
  const stream = await client.chat.completions.create({
    model: 'bytes',
    messages: [{ role: 'user', content: 'go' }],
    tools,
    tool_choice: 'required',
    max_tokens: 60,
    temperature: 1,
    seed: 5,
    stream: true,
  });
  let finish: string | null = null;
  let name = '';
  for await (const c of stream) {
    for (const tc of c.choices[0]?.delta.tool_calls ?? []) name += tc.function?.name ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  assert.equal(finish, 'tool_calls');
  assert.ok(['calculator', 'noop'].includes(name), name);
});

test('constraint errors are 400s naming the field', async () => {
  await assert.rejects(
    client.chat.completions.create({
      model: 'chars',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 20,
      response_format: { type: 'json_object' },
    }),
    (e: InstanceType<typeof OpenAI.APIError>) =>
      e.status === 400 && e.param === 'response_format' && /cannot produce/.test(e.message),
  );
  await assert.rejects(
    client.chat.completions.create({
      model: 'bytes',
      messages: [{ role: 'user', content: 'x' }],
      tools,
      tool_choice: { type: 'function', function: { name: 'nope' } },
    }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && e.param === 'tool_choice',
  );
  await assert.rejects(
    client.chat.completions.create({
      model: 'bytes',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 2,
      response_format: { type: 'json_schema', json_schema: { name: 'p', schema } },
    }),
    (e: InstanceType<typeof OpenAI.APIError>) => e.status === 400 && /needs at least \d+ tokens/.test(e.message),
  );
});
