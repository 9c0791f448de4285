// The server as users meet it: the official `openai` npm client against a real HTTP server on loopback,
// serving the bundled Shakespeare model through the inference engine.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import type { FastifyInstance } from 'fastify';
import { loadModelDir } from '../../src/infer/model-dir-node.js';
import { Engine } from '../../src/infer/engine/engine.js';
import { createServer, type ServerOptions } from '../../src/serve/app.js';
import { servedInProcess, type ServedModel } from '../../src/serve/models.js';
import { Rng } from '../../src/tensor/random.js';

const MODEL = 'shakespeare';
let served: ServedModel;
let app: FastifyInstance;
let base: string;
let client: OpenAI;

async function start(o: Partial<ServerOptions> = {}): Promise<{ app: FastifyInstance; url: string }> {
  const a = createServer({ models: [served], ...o });
  const url = await a.listen({ host: '127.0.0.1', port: 0 });
  return { app: a, url };
}

before(async () => {
  const { model, tokenizer, config } = await loadModelDir('models/shakespeare-char');
  const engine = new Engine(model, { tokenizer: tokenizer!, kvMemoryBytes: 8 << 20, maxRunningSeqs: 16 });
  served = servedInProcess(MODEL, model, tokenizer!, {
    engine,
    contextLength: (config as { maxContext: number }).maxContext,
  });
  ({ app, url: base } = await start());
  client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
});
after(async () => {
  await app.close();
});

const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

test('models: list and retrieve', async () => {
  const list = await client.models.list();
  assert.deepEqual(
    list.data.map((m) => m.id),
    [MODEL],
  );
  assert.equal((await client.models.retrieve(MODEL)).object, 'model');
});

test('completions: text, usage, finish_reason length, seed reproducibility', async () => {
  const r = await client.completions.create({
    model: MODEL,
    prompt: 'ROMEO:',
    max_tokens: 12,
    temperature: 0.8,
    seed: 7,
  });
  assert.equal(r.object, 'text_completion');
  assert.match(r.id, /^cmpl-/);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0]!.finish_reason, 'length');
  assert.equal(r.usage!.completion_tokens, 12);
  assert.equal(r.usage!.prompt_tokens, 6);
  const again = await client.completions.create({
    model: MODEL,
    prompt: 'ROMEO:',
    max_tokens: 12,
    temperature: 0.8,
    seed: 7,
  });
  assert.equal(again.choices[0]!.text, r.choices[0]!.text, 'same seed, same text');
  const other = await client.completions.create({
    model: MODEL,
    prompt: 'ROMEO:',
    max_tokens: 12,
    temperature: 0.8,
    seed: 8,
  });
  assert.notEqual(other.choices[0]!.text, r.choices[0]!.text);
});

test('completions: n > 1, several prompts, stop strings, logprobs', async () => {
  const r = await client.completions.create({
    model: MODEL,
    prompt: ['KING:', 'QUEEN:'],
    n: 2,
    max_tokens: 8,
    temperature: 1,
    seed: 3,
  });
  assert.deepEqual(
    r.choices.map((c) => c.index),
    [0, 1, 2, 3],
  );
  const greedy = await client.completions.create({ model: MODEL, prompt: 'ROMEO:', max_tokens: 30, temperature: 0 });
  const text = greedy.choices[0]!.text;
  const cut = text.slice(5, 7);
  const stopped = await client.completions.create({
    model: MODEL,
    prompt: 'ROMEO:',
    max_tokens: 30,
    temperature: 0,
    stop: [cut],
  });
  assert.equal(stopped.choices[0]!.finish_reason, 'stop');
  assert.equal(stopped.choices[0]!.text, text.slice(0, text.indexOf(cut)), 'text ends before the stop string');
  const lp = await client.completions.create({
    model: MODEL,
    prompt: 'ROMEO:',
    max_tokens: 4,
    temperature: 0,
    logprobs: 3,
  });
  const l = lp.choices[0]!.logprobs!;
  assert.equal(l.tokens!.length, 4);
  assert.equal(l.tokens!.join(''), lp.choices[0]!.text);
  for (const [i, top] of l.top_logprobs!.entries()) {
    assert.equal(Object.keys(top).length, 3);
    assert.ok(l.token_logprobs![i]! <= 0);
    assert.equal(Math.max(...Object.values(top)), l.token_logprobs![i], 'greedy picks the top alternative');
  }
});

test('completions: streaming yields deltas that add up to the full text', async () => {
  const full = await client.completions.create({ model: MODEL, prompt: 'ROMEO:', max_tokens: 16, temperature: 0 });
  const stream = await client.completions.create({
    model: MODEL,
    prompt: 'ROMEO:',
    max_tokens: 16,
    temperature: 0,
    stream: true,
  });
  let text = '';
  let finish: string | null = null;
  for await (const c of stream) {
    text += c.choices[0]!.text;
    finish = c.choices[0]!.finish_reason ?? finish;
  }
  assert.equal(text, full.choices[0]!.text);
  assert.equal(finish, 'length');
});

test('chat: non-streaming and streaming with usage, default chat template', async () => {
  const messages = [
    { role: 'system' as const, content: 'speak as a king' },
    { role: 'user' as const, content: [{ type: 'text' as const, text: 'who goes there?' }] },
  ];
  const r = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 10, temperature: 0 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0]!.message.role, 'assistant');
  assert.equal(typeof r.choices[0]!.message.content, 'string');
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages,
    max_tokens: 10,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let role: string | undefined;
  let u: OpenAI.CompletionUsage | null | undefined;
  for await (const c of stream) {
    if (c.choices.length) {
      role ??= c.choices[0]!.delta.role;
      text += c.choices[0]!.delta.content ?? '';
    } else u = c.usage;
  }
  assert.equal(role, 'assistant');
  assert.equal(text, r.choices[0]!.message.content);
  assert.deepEqual(u, r.usage);
  const tok = (await (await post('/tokenize', { model: MODEL, messages })).json()) as { count: number };
  assert.equal(tok.count, r.usage!.prompt_tokens);
});

test('chat: logprobs with top alternatives', async () => {
  const r = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: 'hail' }],
    max_tokens: 3,
    temperature: 0,
    logprobs: true,
    top_logprobs: 2,
  });
  const content = r.choices[0]!.logprobs!.content!;
  assert.equal(content.length, 3);
  assert.equal(content.map((c) => c.token).join(''), r.choices[0]!.message.content);
  for (const c of content) assert.equal(c.top_logprobs.length, 2);
});

test('embeddings: float and base64, normalised, batched', async () => {
  const r = await client.embeddings.create({ model: MODEL, input: ['to be', 'or not to be'] });
  assert.equal(r.data.length, 2);
  const v = r.data[0]!.embedding;
  assert.ok(Math.abs(Math.hypot(...v) - 1) < 1e-4);
  const b = await client.embeddings.create({ model: MODEL, input: 'to be', encoding_format: 'base64' });
  const raw = Buffer.from(b.data[0]!.embedding as unknown as string, 'base64');
  const f = new Float32Array(raw.buffer, raw.byteOffset, raw.byteLength / 4);
  assert.deepEqual(
    Array.from(f).map((x) => x.toFixed(5)),
    v.map((x) => x.toFixed(5)),
  );
});

test('tokenize and detokenize round trip', async () => {
  const t = (await (await post('/tokenize', { model: MODEL, prompt: 'Hello there' })).json()) as {
    tokens: number[];
    max_model_len: number;
  };
  assert.equal(t.tokens.length, 11);
  const d = (await (await post('/detokenize', { model: MODEL, tokens: t.tokens })).json()) as { prompt: string };
  assert.equal(d.prompt, 'Hello there');
});

test('errors: OpenAI shape, status and the field at fault', async () => {
  const expectError = async (p: Promise<unknown>, status: number, param: string | null, code?: string) => {
    await assert.rejects(p, (e: InstanceType<typeof OpenAI.APIError>) => {
      assert.equal(e.status, status, e.message);
      assert.equal(e.param ?? null, param, e.message);
      if (code) assert.equal(e.code, code);
      return true;
    });
  };
  await expectError(client.completions.create({ model: 'nope', prompt: 'x' }), 404, 'model', 'model_not_found');
  await expectError(
    client.completions.create({ model: MODEL, prompt: 'x', temperature: 'hot' as unknown as number }),
    400,
    'temperature',
  );
  await expectError(client.completions.create({ model: MODEL, prompt: 'x', top_p: 1.5 }), 400, 'top_p');
  await expectError(client.completions.create({ model: MODEL, prompt: 'x', max_tokens: -1 }), 400, 'max_tokens');
  await expectError(
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'wizard' as 'user', content: 'x' }] }),
    400,
    'messages[0].role',
  );
  await expectError(
    client.completions.create({ model: MODEL, prompt: 'x'.repeat(400) }),
    400,
    'prompt',
    'context_length_exceeded',
  );
  await expectError(client.completions.create({ model: MODEL, prompt: [1, 2, 9999] }), 400, 'prompt');
  const bad = await post('/v1/completions', '{"model": ');
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: { code: string } }).error.code, 'invalid_json');
  const big = await post('/v1/completions', { model: MODEL, prompt: 'x'.repeat(5 * 1024 * 1024) });
  assert.equal(big.status, 413);
  assert.ok(((await big.json()) as { error: { message: string } }).error.message);
});

test('auth: 401 without or with a wrong key, /health stays open', async () => {
  const s = await start({ apiKeys: ['sekret'] });
  try {
    const ok = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'sekret', maxRetries: 0 });
    assert.equal((await ok.models.list()).data.length, 1);
    const wrong = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'guess', maxRetries: 0 });
    await assert.rejects(
      wrong.models.list(),
      (e: InstanceType<typeof OpenAI.APIError>) => e.status === 401 && e.code === 'invalid_api_key',
    );
    const none = await fetch(`${s.url}/v1/models`);
    assert.equal(none.status, 401);
    assert.equal((await fetch(`${s.url}/health`)).status, 200);
  } finally {
    await s.app.close();
  }
});

test('queue full: 429 with Retry-After', async () => {
  const s = await start({ maxQueue: 0 });
  try {
    const r = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: MODEL, prompt: 'x' }),
    });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    assert.equal(((await r.json()) as { error: { type: string } }).error.type, 'rate_limit_error');
  } finally {
    await s.app.close();
  }
});

test('a cancelled stream aborts its request and its KV blocks come back (seen in /metrics)', async () => {
  const used = async () =>
    Number(
      /lineage_kv_blocks_used\{model="shakespeare"\} (\d+)/.exec(await (await fetch(`${base}/metrics`)).text())![1],
    );
  const ctrl = new AbortController();
  const stream = await client.completions.create(
    { model: MODEL, prompt: 'ROMEO:', max_tokens: 200, temperature: 1, stream: true },
    { signal: ctrl.signal },
  );
  let n = 0;
  let midStream = 0;
  try {
    for await (const _c of stream) {
      if (++n === 3) {
        midStream = await used();
        ctrl.abort(); // the client hangs up mid-stream (the iterator ends or throws, depending on timing)
      }
    }
  } catch (e) {
    assert.match(String(e), /abort/i);
  }
  assert.ok(midStream > 0, 'blocks were in use mid-stream');
  assert.ok(n < 200, 'the stream stopped early');
  for (let i = 0; i < 50 && (await used()) > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(await used(), 0);
  const text = await (await fetch(`${base}/metrics`)).text();
  for (const name of [
    'lineage_requests_running',
    'lineage_requests_waiting',
    'lineage_kv_blocks_total',
    'lineage_prompt_tokens_total',
    'lineage_generation_tokens_total',
    'lineage_time_to_first_token_seconds_bucket',
    'lineage_inter_token_latency_seconds_count',
    'lineage_prefix_cache_hits_total',
  ]) {
    assert.match(text, new RegExp(`^${name}\\{`, 'm'), name);
  }
});

test('fuzzed request bodies never produce a 5xx', async () => {
  const rng = new Rng(11);
  const values = [null, true, -1, 0, 1.5, 1e9, 'x', '', [], [1], ['a'], {}, { type: 'text' }, [[1, 2]], 'ROMEO'];
  const fields = [
    'model',
    'prompt',
    'messages',
    'max_tokens',
    'temperature',
    'top_p',
    'n',
    'stop',
    'seed',
    'logprobs',
    'top_logprobs',
    'logit_bias',
    'stream',
    'response_format',
    'tools',
    'input',
    'tokens',
    'top_k',
    'min_p',
  ];
  const paths = ['/v1/completions', '/v1/chat/completions', '/v1/embeddings', '/tokenize', '/detokenize'];
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(rng.uniform() * xs.length)]!;
  for (let i = 0; i < 120; i++) {
    const body: Record<string, unknown> = { model: rng.uniform() < 0.8 ? MODEL : pick(values) };
    for (let j = 0; j < 1 + Math.floor(rng.uniform() * 4); j++) body[pick(fields)] = pick(values);
    if (body.max_tokens === undefined) body.max_tokens = 2;
    const r = await post(pick(paths), body);
    const text = await r.text();
    assert.ok(r.status < 500, `${r.status} for ${JSON.stringify(body)}: ${text}`);
    if (r.status >= 400) assert.ok((JSON.parse(text) as { error: { message: string } }).error.message, text);
  }
});
