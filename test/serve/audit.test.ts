// Regression tests for the audit of the OpenAI-compatible server (/tmp/audit-serve/REPORT.md): input the
// engine cannot take is refused up front with a 400 naming the field, back-pressure counts every
// sequence, logprobs describe exactly the returned text, and errors name OpenAI's fields only.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { FastifyInstance } from 'fastify';
import { loadModelDir } from '../../src/infer/model-dir-node.js';
import { Engine } from '../../src/infer/engine/engine.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { bytesTokenizer } from '../../src/tokenizers/index.js';
import { createServer, type ServerOptions } from '../../src/serve/app.js';
import { servedInProcess, type ServedModel } from '../../src/serve/models.js';

let chars: ServedModel;
let bytes: ServedModel;
let app: FastifyInstance;
let base: string;
let client: OpenAI;

async function start(models: ServedModel[], o: Partial<ServerOptions> = {}) {
  const a = createServer({ models, ...o });
  return { app: a, url: await a.listen({ host: '127.0.0.1', port: 0 }) };
}

before(async () => {
  const c = await loadModelDir('models/shakespeare-char');
  chars = servedInProcess('chars', c.model, c.tokenizer!, {
    engine: new Engine(c.model, { tokenizer: c.tokenizer!, kvMemoryBytes: 8 << 20 }),
  });
  const model = createModel(getPreset('tiny-llama'), { seed: 5 });
  const tokenizer = bytesTokenizer();
  bytes = servedInProcess('bytes', model, tokenizer, {
    engine: new Engine(model, { tokenizer, kvMemoryBytes: 4 << 20 }),
  });
  ({ app, url: base } = await start([chars, bytes]));
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'x', maxRetries: 0 });
});
after(() => app.close());

const post = (path: string, body: unknown, url = base, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });

type ErrorBody = { error: { message: string; type: string; param: string | null; code: string | null } };

async function expect400(r: Response, param: string, code?: string): Promise<ErrorBody['error']> {
  const body = (await r.json()) as ErrorBody;
  assert.equal(r.status, 400, JSON.stringify(body));
  assert.equal(body.error.param, param, JSON.stringify(body));
  assert.equal(body.error.type, 'invalid_request_error');
  if (code) assert.equal(body.error.code, code);
  return body.error;
}

test('#1 #6 penalties that would overflow float32 are refused, naming the field', async () => {
  for (const v of [1e308, 1e-308, 101, 0])
    await expect400(
      await post('/v1/completions', { model: 'chars', prompt: 'ab', repetition_penalty: v }),
      'repetition_penalty',
    );
  await expect400(
    await post('/v1/completions', { model: 'chars', prompt: 'ab', logit_bias: { 3: 1e38 } }),
    'logit_bias[3]',
  );
  const ok = await post('/v1/completions', {
    model: 'chars',
    prompt: 'ROMEO:',
    max_tokens: 10,
    repetition_penalty: 100,
    logprobs: 1,
  });
  assert.equal(ok.status, 200);
  const body = (await ok.json()) as { choices: { logprobs: { token_logprobs: unknown[] } }[] };
  for (const lp of body.choices[0]!.logprobs.token_logprobs) assert.equal(typeof lp, 'number');
});

test('#2 text the vocabulary cannot spell is a 400 naming prompt / input, not a 500', async () => {
  await expect400(await post('/v1/completions', { model: 'chars', prompt: 'héllo 你好' }), 'prompt', 'invalid_value');
  await expect400(await post('/v1/completions', { model: 'chars', prompt: ['ab', 'hé'] }), 'prompt[1]');
  await expect400(await post('/v1/embeddings', { model: 'chars', input: 'héllo' }), 'input');
  await expect400(await post('/v1/embeddings', { model: 'chars', input: ['a', 'b', 'é'] }), 'input[2]');
  await expect400(await post('/tokenize', { model: 'chars', prompt: 'héllo' }), 'prompt');
});

test('#3 the queue counts prompts x n, and prompt lists have maxItems', async () => {
  const c = await loadModelDir('models/shakespeare-char');
  const engine = new Engine(c.model, { tokenizer: c.tokenizer!, kvMemoryBytes: 8 << 20, autoRun: false });
  const m = servedInProcess('q', c.model, c.tokenizer!, { engine });
  const s = await start([m], { maxQueue: 4 });
  try {
    const big = post('/v1/completions', { model: 'q', prompt: ['ab', 'cd', 'ef'], n: 2, max_tokens: 2 }, s.url);
    while (engine.stats().waiting === 0) await new Promise((r) => setTimeout(r, 5));
    assert.equal(engine.stats().waiting, 6, '3 prompts x n = 2 wait');
    const refused = await post('/v1/completions', { model: 'q', prompt: 'ab', max_tokens: 2 }, s.url);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '1');
    engine.runToCompletion();
    assert.equal((await big).status, 200, 'a request bigger than the queue still runs when nothing waits');
  } finally {
    await s.app.close();
  }
  await expect400(
    await post('/v1/completions', { model: 'chars', prompt: Array(257).fill('ab'), max_tokens: 1 }),
    'prompt',
  );
});

/** the two logprobs views must describe exactly `text` */
function checkCompletionLogprobs(text: string, lp: { tokens: string[]; text_offset: number[] }) {
  assert.equal(lp.tokens.join(''), text);
  for (const o of lp.text_offset) assert.ok(o < text.length, `offset ${o} past the text (${text.length})`);
}

test('#4 #12 logprobs describe exactly the returned text when a stop string matches, streamed or not', async () => {
  for (const stop of ['the', 'uld q', 'e']) {
    const body = { model: 'chars', prompt: 'ROMEO:', max_tokens: 20, temperature: 0, stop, logprobs: 0 };
    const r = await client.completions.create(body);
    const c = r.choices[0]!;
    checkCompletionLogprobs(c.text, c.logprobs as never);
    assert.equal(r.usage!.completion_tokens >= c.logprobs!.tokens!.length, true);
    let text = '';
    const tokens: string[] = [];
    const offsets: number[] = [];
    for await (const ch of await client.completions.create({ ...body, stream: true })) {
      text += ch.choices[0]!.text;
      tokens.push(...(ch.choices[0]!.logprobs?.tokens ?? []));
      offsets.push(...(ch.choices[0]!.logprobs?.text_offset ?? []));
    }
    assert.equal(text, c.text);
    assert.deepEqual(tokens, c.logprobs!.tokens);
    assert.deepEqual(offsets, c.logprobs!.text_offset, 'streamed offsets equal the non-streamed ones');
  }
  const chat = await client.chat.completions.create({
    model: 'chars',
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 20,
    temperature: 0,
    logprobs: true,
    stop: 'the',
  });
  const ch = chat.choices[0]!;
  assert.equal(ch.logprobs!.content!.map((t) => t.token).join(''), ch.message.content);
});

test('#5 bytes are the token bytes; partial UTF-8 tokens get distinct names', async () => {
  const r = await client.chat.completions.create({
    model: 'bytes',
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 10,
    temperature: 0,
    logprobs: true,
    top_logprobs: 1,
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { const: 'é' } } },
  });
  const c = r.choices[0]!;
  assert.equal(c.message.content, '"é"');
  const content = c.logprobs!.content!;
  assert.deepEqual(
    content.map((t) => t.bytes),
    [[34], [195], [169], [34]],
  );
  assert.equal(Buffer.from(content.flatMap((t) => t.bytes!)).toString('utf8'), c.message.content);
  assert.deepEqual(
    content.map((t) => t.token),
    ['"', 'bytes:\\xc3', 'bytes:\\xa9', '"'],
  );
  const comp = await client.completions.create({ model: 'bytes', prompt: 'ab', max_tokens: 4, logprobs: 5, seed: 3 });
  for (const top of comp.choices[0]!.logprobs!.top_logprobs!)
    assert.equal(Object.keys(top).length, 5, 'no key collides');
});

test('#7 a prompt that cannot fit is refused before it is tokenized; a huge schema is refused', async () => {
  const encode = chars.tokenizer.encode.bind(chars.tokenizer);
  let longest = 0;
  chars.tokenizer.encode = (text, o) => ((longest = Math.max(longest, text.length)), encode(text, o));
  try {
    const e = await expect400(
      await post('/v1/completions', { model: 'chars', prompt: 'a'.repeat(3_000_000), max_tokens: 1 }),
      'prompt',
      'context_length_exceeded',
    );
    assert.match(e.message, /cannot fit/);
    await expect400(
      await post('/v1/chat/completions', { model: 'chars', messages: [{ role: 'user', content: 'a'.repeat(1e6) }] }),
      'messages',
      'context_length_exceeded',
    );
  } finally {
    chars.tokenizer.encode = encode;
  }
  assert.ok(longest < 100_000, `the tokenizer saw ${longest} characters`);
  const t0 = performance.now();
  const e = await expect400(
    await post('/v1/chat/completions', {
      model: 'bytes',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 20,
      response_format: {
        type: 'json_schema',
        json_schema: {
          name: 'a',
          schema: { type: 'array', items: { type: 'string', maxLength: 200 }, maxItems: 5000 },
        },
      },
    }),
    'response_format',
  );
  assert.match(e.message, /exceeds \d+ states/);
  assert.ok(performance.now() - t0 < 5000);
});

test('#9 seeds: seeds equal modulo 2^32 differ; seeds beyond 2^53 are refused', async () => {
  const text = async (seed: number) =>
    (await client.completions.create({ model: 'chars', prompt: 'ROMEO:', max_tokens: 15, seed })).choices[0]!.text;
  const outs = new Set([await text(0), await text(4294967296), await text(-4294967296)]);
  assert.equal(outs.size, 3);
  await expect400(await post('/v1/completions', { model: 'chars', prompt: 'ab', seed: 1e30 }), 'seed');
});

test('#10 errors name the field and OpenAI terms only', async () => {
  const e = await expect400(await post('/v1/completions', { model: 'chars', prompt: 'ab', stop: [''] }), 'stop');
  assert.match(e.message, /^stop:/);
  await expect400(
    await post('/v1/chat/completions', { model: 'chars', messages: [{ role: 'user', content: [{ type: 'text' }] }] }),
    'messages[0].content[0].text',
  );
  // a KV cache smaller than one context: a capacity limit, said without the engine's option names
  const c = await loadModelDir('models/shakespeare-char');
  const engine = new Engine(c.model, { tokenizer: c.tokenizer!, kvMemoryBytes: 3 * 65536 });
  const s = await start([servedInProcess('small', c.model, c.tokenizer!, { engine })]);
  try {
    for (const [body, param] of [
      [{ model: 'small', prompt: 'ROMEO:' }, 'prompt'],
      [{ model: 'small', prompt: 'ROMEO:', max_tokens: 60 }, 'max_tokens'],
    ] as const) {
      const err = await expect400(await post('/v1/completions', body, s.url), param, 'context_length_exceeded');
      assert.doesNotMatch(err.message, /kvMemoryBytes|maxTokens|KV blocks/);
    }
  } finally {
    await s.app.close();
  }
});

const calculator = {
  type: 'function' as const,
  function: { name: 'calculator', parameters: { type: 'object', properties: { expression: { type: 'string' } } } },
};

test('#11 #13 tool calls need object arguments; streaming with tools keeps logprobs', async () => {
  for (const args of [null, [1, 2], 'x']) {
    const r = await client.chat.completions.create({
      model: 'bytes',
      messages: [{ role: 'user', content: 'x' }],
      max_tokens: 60,
      tools: [calculator],
      response_format: {
        type: 'json_schema',
        json_schema: { name: 'c', schema: { const: { name: 'calculator', arguments: args } } },
      },
    });
    assert.notEqual(r.choices[0]!.finish_reason, 'tool_calls', JSON.stringify(args));
    assert.equal(r.choices[0]!.message.tool_calls, undefined);
  }
  const stream = await client.chat.completions.create({
    model: 'bytes',
    messages: [{ role: 'user', content: 'x' }],
    max_tokens: 5,
    temperature: 0,
    stream: true,
    logprobs: true,
    tools: [calculator],
  });
  let listed = 0;
  for await (const ch of stream) listed += ch.choices[0]?.logprobs?.content?.length ?? 0;
  assert.equal(listed, 5);
});

test('#14 embeddings take an input of exactly the context length', async () => {
  const r = await post('/v1/embeddings', { model: 'chars', input: 'a'.repeat(chars.contextLength) });
  assert.equal(r.status, 200);
  await expect400(
    await post('/v1/embeddings', { model: 'chars', input: 'a'.repeat(chars.contextLength + 1) }),
    'input',
    'context_length_exceeded',
  );
});

test('#15 the auth scheme is case-insensitive; a malformed header is invalid, not missing', async () => {
  const s = await start([chars], { apiKeys: ['sekret'] });
  try {
    const get = (h?: string) => fetch(`${s.url}/v1/models`, { headers: h === undefined ? {} : { authorization: h } });
    assert.equal((await get('bearer sekret')).status, 200);
    assert.equal((await get('BEARER sekret')).status, 200);
    const code = async (h?: string) => ((await (await get(h)).json()) as ErrorBody).error.code;
    assert.equal(await code('Basic c2Vrcg=='), 'invalid_api_key');
    assert.equal(await code('Bearer wrong'), 'invalid_api_key');
    assert.equal(await code(), 'missing_api_key');
  } finally {
    await s.app.close();
  }
});
