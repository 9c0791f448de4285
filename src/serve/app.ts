// The OpenAI-compatible HTTP server. fastify was chosen over hand-parsing or a minimal router because it
// validates request bodies against JSON Schemas (ajv) before a handler runs, enforces a body-size limit,
// parses JSON safely and has first-class hooks for auth and error shaping — the parts where a
// hand-written server goes wrong. Request handling is split three ways: schemas.ts (shape), openai.ts
// (OpenAI ⇄ engine), and this file (routes, streaming, auth, limits).
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { randomUUID } from 'node:crypto';
import type { EngineRequest, RequestHandle } from '../infer/engine/engine.js';
import { toolCallSchema, type ConstraintSpec, type ToolChoice, type ToolDefinition } from '../infer/constrain/index.js';
import type { ChatMessage, Tokenizer } from '../tokenizers/tokenizer.js';
import { ApiError, badRequest, fromEngineError } from './errors.js';
import { Metrics } from './metrics.js';
import { DEFAULT_CHAT_TEMPLATE, type ServedModel } from './models.js';
import {
  applyEvent,
  chatLogprobs,
  completionLogprobs,
  newChoice,
  samplingFields,
  usage,
  type ChoiceState,
  type SamplingBody,
  type TrackedToken,
} from './openai.js';
import { chatSchema, completionSchema, detokenizeSchema, embeddingSchema, tokenizeSchema } from './schemas.js';

export interface ServerOptions {
  models: ServedModel[];
  /** accepted bearer keys; empty = no authentication */
  apiKeys?: readonly string[];
  /** requests waiting in an engine beyond which new ones get 429 (default 256) */
  maxQueue?: number;
  /** request body limit in bytes (default 4 MiB) */
  bodyLimit?: number;
  /** require a key for /metrics too (default false) */
  metricsAuth?: boolean;
  /** max_tokens when a request gives none (default 256) */
  defaultMaxTokens?: number;
  logger?: boolean;
}

type Body = Record<string, unknown>;

export function createServer(o: ServerOptions): FastifyInstance {
  if (o.models.length === 0) throw new Error('serve: no model to serve');
  const models = new Map(o.models.map((m) => [m.name, m]));
  const keys = new Set(o.apiKeys ?? []);
  const metrics = new Metrics();
  const maxQueue = o.maxQueue ?? 256;
  const app = Fastify({
    logger: o.logger ?? false,
    bodyLimit: o.bodyLimit ?? 4 * 1024 * 1024,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });

  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0];
    if (keys.size === 0 || path === '/health' || (path === '/metrics' && !o.metricsAuth)) return;
    const header = req.headers.authorization;
    if (header === undefined)
      throw new ApiError(401, 'missing API key: send "Authorization: Bearer <key>"', null, 'missing_api_key');
    // the auth scheme is case-insensitive (RFC 7235 section 2.1)
    const m = /^bearer +(\S+) *$/i.exec(header);
    if (!m) throw new ApiError(401, 'invalid Authorization header: send "Bearer <key>"', null, 'invalid_api_key');
    if (!keys.has(m[1]!)) throw new ApiError(401, 'incorrect API key', null, 'invalid_api_key');
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string; validation?: unknown[] }, req, reply) => {
    const e = toApiError(err);
    if (e.status >= 500) req.log.error(err);
    if (e.status === 429) reply.header('Retry-After', '1');
    if (!reply.sent) void reply.status(e.status).send(e.body());
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(new ApiError(404, `no route ${req.method} ${req.url}`, null, 'unknown_url').body());
  });

  const served = (name: unknown): ServedModel => {
    const m = models.get(String(name));
    if (!m)
      throw new ApiError(
        404,
        `the model '${String(name)}' does not exist (served: ${[...models.keys()].join(', ')})`,
        'model',
        'model_not_found',
      );
    return m;
  };
  const generator = (name: unknown): ServedModel => {
    const m = served(name);
    if (!m.generates)
      throw new ApiError(
        400,
        `the model '${m.name}' is a ${m.config.family} encoder: it serves /v1/embeddings, not generation`,
        'model',
        'model_not_supported',
      );
    return m;
  };
  /**
   * Back-pressure: `sequences` (prompts x n) join the queue only while it has room. A request bigger than
   * the whole queue still runs when nothing waits, so that no valid request is refused forever.
   * (A worker engine's `waiting` includes the requests posted but not yet acknowledged: see EngineWorker.)
   */
  const admit = (m: ServedModel, sequences: number) => {
    const waiting = m.engine.stats().waiting;
    if (waiting >= maxQueue || (waiting > 0 && waiting + sequences > maxQueue))
      throw new ApiError(
        429,
        `the server's queue for '${m.name}' is full (${waiting} of ${maxQueue} sequences waiting); retry shortly`,
        null,
        'queue_full',
      );
  };

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_req, reply) => reply.type('text/plain; version=0.0.4').send(metrics.render(o.models)));
  app.get('/v1/models', async () => ({ object: 'list', data: o.models.map(modelCard) }));
  app.get('/v1/models/:id', async (req) => modelCard(served((req.params as { id: string }).id)));

  app.post('/v1/completions', { schema: { body: completionSchema } }, async (req, reply) => {
    const b = req.body as Body & SamplingBody;
    const m = generator(b.model);
    if (b.best_of != null && b.best_of !== (b.n ?? 1))
      throw badRequest('best_of', 'best_of other than n is not supported');
    if (b.echo) throw badRequest('echo', 'echo is not supported');
    if (b.suffix) throw badRequest('suffix', 'suffix (fill-in-the-middle) is not supported');
    const prompts = completionPrompts(m, b.prompt);
    const fields = samplingFields(b, (b.logprobs as number | null) ?? undefined, o.defaultMaxTokens ?? 256);
    await generate(req, reply, m, prompts, fields, 'text_completion', b);
  });

  app.post('/v1/chat/completions', { schema: { body: chatSchema } }, async (req, reply) => {
    const b = req.body as Body & SamplingBody;
    const m = generator(b.model);
    const { constraint, tools } = chatConstraint(b);
    const ids = renderChat(m, b.messages as ChatMessage[], tools?.list ?? null);
    const top = b.logprobs ? ((b.top_logprobs as number | null) ?? 0) : undefined;
    if (!b.logprobs && b.top_logprobs != null) throw badRequest('top_logprobs', 'top_logprobs needs logprobs: true');
    const fields = { ...samplingFields(b, top, o.defaultMaxTokens ?? 256), constraint };
    await generate(req, reply, m, [ids], fields, 'chat.completion', b, tools);
  });

  app.post('/v1/embeddings', { schema: { body: embeddingSchema } }, async (req) => {
    const b = req.body as { model: string; input: unknown; encoding_format?: 'float' | 'base64'; dimensions?: number };
    const m = served(b.model);
    const inputs = completionPrompts(m, b.input, 'input', false);
    const vectors = await m.engine.embed(inputs, m.pooling).catch((e: Error) => {
      throw new ApiError(400, `embeddings: ${e.message}`, 'input', 'invalid_request_error');
    });
    const tokens = inputs.reduce((s, x) => s + x.length, 0);
    if (b.dimensions !== undefined && b.dimensions !== vectors[0]!.length) {
      throw badRequest(
        'dimensions',
        `this model's embeddings have ${vectors[0]!.length} dimensions, got dimensions=${b.dimensions}`,
      );
    }
    const data = vectors.map((v, index) => ({
      object: 'embedding',
      index,
      embedding: b.encoding_format === 'base64' ? base64(v) : Array.from(v),
    }));
    return { object: 'list', data, model: m.name, usage: { prompt_tokens: tokens, total_tokens: tokens } };
  });

  app.post('/tokenize', { schema: { body: tokenizeSchema } }, async (req) => {
    const b = req.body as { model: string; prompt?: string; messages?: ChatMessage[]; add_special_tokens?: boolean };
    const m = served(b.model);
    if ((b.prompt === undefined) === (b.messages === undefined))
      throw badRequest('prompt', 'give exactly one of prompt or messages');
    const tokens = b.messages
      ? renderChat(m, b.messages, null)
      : encodeText(m, b.prompt!, 'prompt', b.add_special_tokens ?? true);
    return { tokens, count: tokens.length, max_model_len: m.contextLength };
  });

  app.post('/detokenize', { schema: { body: detokenizeSchema } }, async (req) => {
    const b = req.body as { model: string; tokens: number[] };
    const m = served(b.model);
    checkIds(m, b.tokens, 'tokens');
    return { prompt: m.tokenizer.decode(b.tokens) };
  });

  /** runs one request's prompts (n samples each) and answers in one JSON body or as an SSE stream */
  async function generate(
    req: FastifyRequest,
    reply: FastifyReply,
    m: ServedModel,
    prompts: number[][],
    fields: Omit<EngineRequest, 'prompt'>,
    object: 'text_completion' | 'chat.completion',
    b: SamplingBody,
    tools: ToolUse | null = null,
  ): Promise<void> {
    const n = fields.n ?? 1;
    admit(m, prompts.length * n);
    const id = `${object === 'chat.completion' ? 'chatcmpl' : 'cmpl'}-${randomUUID().replace(/-/g, '')}`;
    const created = Math.floor(Date.now() / 1000);
    const handles: RequestHandle[] = [];
    const chat = object === 'chat.completion';
    const names = {
      prompt: chat ? 'messages' : prompts.length > 1 ? 'prompt[0]' : 'prompt',
      maxTokens: b.max_completion_tokens != null ? 'max_completion_tokens' : b.max_tokens != null ? 'max_tokens' : null,
    };
    const engineError = (e: unknown) => {
      const err = e instanceof ApiError ? e : fromEngineError(e as Error, names);
      if (err.status >= 500) req.log.error(e);
      return err;
    };
    try {
      for (const [p, prompt] of prompts.entries()) handles.push(m.engine.add({ ...fields, prompt, id: `${id}-${p}` }));
    } catch (e) {
      for (const h of handles) m.engine.abort(h.id);
      throw engineError(e);
    }
    const eos = m.config.tokens.eos;
    const stopIds = new Set<number>(eos === null ? [] : [eos]);
    const choices = prompts.flatMap(() =>
      Array.from({ length: n }, () => newChoice(m.tokenizer, stopIds, fields.logprobs !== undefined)),
    );
    const promptTokens = prompts.reduce((s, p) => s + p.length, 0) * 1;
    let finished = false;
    reply.raw.on('close', () => {
      if (!finished) for (const h of handles) m.engine.abort(h.id); // client went away: free its KV blocks now
    });
    const t0 = performance.now();
    const timing = new Map<number, number>();
    const observe = (idx: number) => {
      const now = performance.now();
      const last = timing.get(idx);
      if (last === undefined) metrics.firstToken(m.name, (now - t0) / 1000);
      else metrics.interToken(m.name, (now - last) / 1000);
      timing.set(idx, now);
    };
    const stream = !!b.stream;
    // the SSE response starts with the first event, so that a request the engine refuses (a worker
    // engine validates asynchronously) still gets a plain 4xx JSON answer
    const live: { sse: ReturnType<typeof startStream> | null } = { sse: null };
    const open = () => (live.sse ??= startStream(reply));
    const send = stream ? Object.assign((obj: unknown) => open()(obj), { done: () => open().done() }) : null;
    const logprobsOf = (toks: readonly TrackedToken[]) =>
      fields.logprobs === undefined
        ? null
        : chat
          ? chatLogprobs(m.tokenizer, toks)
          : completionLogprobs(m.tokenizer, toks);
    // a chunk's logprobs are those of the tokens whose text is now shown (held-back tokens come later)
    const chunk = (choiceIdx: number, delta: string, released: readonly TrackedToken[], first: boolean) => {
      const c = choices[choiceIdx]!;
      const logprobs = logprobsOf(released);
      const choice = chat
        ? {
            index: choiceIdx,
            delta: first ? { role: 'assistant', content: delta } : { content: delta },
            logprobs,
            finish_reason: c.finish,
          }
        : { index: choiceIdx, text: delta, logprobs, finish_reason: c.finish };
      send!({
        id,
        object: chat ? 'chat.completion.chunk' : 'text_completion',
        created,
        model: m.name,
        choices: [choice],
        ...(b.stream_options?.include_usage ? { usage: null } : {}),
      });
    };
    const toolChunks = (ci: number) => {
      const c = choices[ci]!;
      const calls = parseToolCalls(c.text, tools!);
      const delta = calls
        ? { role: 'assistant', content: null, tool_calls: calls.map((call, index) => ({ index, ...call })) }
        : { role: 'assistant', content: c.text };
      const finish = calls ? 'tool_calls' : c.finish;
      send!({
        id,
        object: 'chat.completion.chunk',
        created,
        model: m.name,
        choices: [{ index: ci, delta, logprobs: logprobsOf(c.track?.kept ?? []), finish_reason: finish }],
        ...(b.stream_options?.include_usage ? { usage: null } : {}),
      });
    };
    try {
      await Promise.all(
        handles.map(async (h, p) => {
          const seen = new Set<number>();
          for await (const e of h) {
            const ci = p * n + e.index;
            observe(ci);
            const { delta, released } = applyEvent(choices[ci]!, e);
            // with tools the reply may turn out to be a call: it is sent whole when the sequence ends
            if (send && !tools) chunk(ci, delta, released, !seen.has(ci));
            else if (send && e.finishReason !== null) toolChunks(ci);
            seen.add(ci);
          }
        }),
      );
    } catch (e) {
      const err = engineError(e);
      for (const h of handles) m.engine.abort(h.id);
      if (live.sse) return void live.sse.fail(err);
      throw err;
    } finally {
      finished = true;
    }
    const completion = choices.reduce((s, c) => s + c.tokens, 0);
    metrics.tokens(m.name, promptTokens, completion);
    metrics.request(m.name, reply.raw.destroyed ? 'aborted' : 'ok');
    const u = usage(promptTokens, completion);
    if (send) {
      if (b.stream_options?.include_usage)
        send({
          id,
          object: chat ? 'chat.completion.chunk' : 'text_completion',
          created,
          model: m.name,
          choices: [],
          usage: u,
        });
      return void send.done();
    }
    void reply.send({
      id,
      object,
      created,
      model: m.name,
      choices: choices.map((c, i) => finalChoice(m, c, i, chat, fields.logprobs !== undefined, tools)),
      usage: u,
    });
  }

  /** token ids of each prompt (or embeddings input); `generates`: room must be left for one new token */
  function completionPrompts(m: ServedModel, p: unknown, param = 'prompt', generates = true): number[][] {
    const list: unknown[] =
      typeof p === 'string'
        ? [p]
        : Array.isArray(p) && p.length > 0 && typeof p[0] === 'number'
          ? [p]
          : (p as unknown[]);
    return list.map((x, i) => {
      const where = list.length > 1 ? `${param}[${i}]` : param;
      const ids = typeof x === 'string' ? encodeText(m, x, where, false) : (x as number[]);
      if (ids.length === 0) throw badRequest(where, `${where}: the prompt is empty (it encodes to no tokens)`);
      checkIds(m, ids, where);
      // a generated token needs a position after the prompt; an embedding only needs the input's
      if (ids.length > m.contextLength - (generates ? 1 : 0)) {
        throw new ApiError(
          400,
          `${where}: ${ids.length} tokens, but the model's context length is ${m.contextLength}` +
            (generates ? ' (and one position is needed for the first generated token)' : ''),
          where,
          'context_length_exceeded',
        );
      }
      return ids;
    });
  }

  function renderChat(m: ServedModel, messages: ChatMessage[], tools: unknown[] | null): number[] {
    const msgs = messages.map((msg, i) => ({
      ...msg,
      role: msg.role === 'developer' ? 'system' : msg.role,
      content: messageText(msg.content, i),
    }));
    checkTextFits(m, msgs.map((x) => x.content).join(''), 'messages');
    const tok = m.tokenizer.chatTemplate ? m.tokenizer : m.tokenizer.withChatTemplate(DEFAULT_CHAT_TEMPLATE);
    let ids: number[];
    try {
      ids = tok.encodeChat(msgs, { addGenerationPrompt: true, ...(tools ? { tools } : {}) });
    } catch (e) {
      throw badRequest('messages', `messages: ${(e as Error).message}`);
    }
    if (ids.length >= m.contextLength) {
      throw new ApiError(
        400,
        `messages: ${ids.length} tokens after the chat template, but the model's context length is ${m.contextLength}`,
        'messages',
        'context_length_exceeded',
      );
    }
    return ids;
  }

  return app;
}

/**
 * Text that is too long to fit the context whatever its tokens is refused before it is tokenized: encoding
 * megabytes on the server's thread stalls every stream. The bound is cheap and only ever refuses text that
 * cannot fit: each token spells at most `maxTokenChars` characters, characters that a normaliser or
 * pre-tokenizer may drop (spaces, controls, combining marks) are not counted, a factor 2 covers normalisers
 * that fuse characters, and a vocabulary with an unknown token (one token for a whole unknown word) is
 * allowed 128 characters a token.
 */
function checkTextFits(m: ServedModel, text: string, where: string): void {
  const limit = 2 * m.contextLength * charsPerTokenBound(m.tokenizer);
  if (text.length <= limit) return;
  const counted = text.replace(/[^\p{L}\p{N}\p{P}\p{S}]/gu, '').length;
  if (counted > limit)
    throw new ApiError(
      400,
      `${where}: ${text.length} characters cannot fit the model's context length of ${m.contextLength} tokens`,
      where,
      'context_length_exceeded',
    );
}

const charsPerToken = new WeakMap<Tokenizer, number>();

/** the most characters one token can stand for in this tokenizer's input (cached per tokenizer) */
function charsPerTokenBound(tok: Tokenizer): number {
  let most = charsPerToken.get(tok);
  if (most !== undefined) return most;
  most = 1;
  for (let id = 0; id < tok.vocabSize; id++) most = Math.max(most, tok.idToToken(id)?.length ?? 0);
  if (tok.model.unkToken !== null) most = Math.max(most, 128);
  charsPerToken.set(tok, most);
  return most;
}

/** a text's token ids; text the tokenizer cannot encode (characters outside its vocabulary) is a 400 */
function encodeText(m: ServedModel, text: string, where: string, special: boolean): number[] {
  checkTextFits(m, text, where);
  try {
    return m.tokenizer.encode(text, { addSpecialTokens: special });
  } catch (e) {
    throw badRequest(where, `${where}: cannot be tokenized for '${m.name}': ${(e as Error).message}`, 'invalid_value');
  }
}

/** the tools a chat request offers, and whether the reply is forced to be a call */
interface ToolUse {
  list: ToolDefinition[];
  forced: boolean;
}

/**
 * The constraint a chat request asks for: response_format json_object / json_schema, or a tool call when
 * tool_choice is "required" or names a function (its arguments must validate against the tool's schema).
 * With tool_choice "auto" the reply is free, and parsed as a call when it is one.
 */
function chatConstraint(b: Body): { constraint: ConstraintSpec | null; tools: ToolUse | null } {
  const rf = b.response_format as
    { type: string; json_schema?: { name?: string; schema?: unknown; strict?: boolean } } | null | undefined;
  const list = (b.tools as ToolDefinition[] | null | undefined) ?? [];
  const choice = (b.tool_choice as ToolChoice | 'none' | 'auto' | null | undefined) ?? (list.length ? 'auto' : 'none');
  if (choice !== 'none' && choice !== 'auto' && list.length === 0)
    throw badRequest('tool_choice', 'tool_choice needs tools');
  const forced = choice !== 'none' && choice !== 'auto';
  if (forced && rf && rf.type !== 'text')
    throw badRequest('response_format', 'response_format cannot be combined with a forced tool call');
  const tools = list.length && choice !== 'none' ? { list, forced } : null;
  if (forced) {
    try {
      return {
        constraint: {
          kind: 'json-schema',
          schema: toolCallSchema(list, choice, { parallel: b.parallel_tool_calls === true }),
        },
        tools,
      };
    } catch (e) {
      throw badRequest('tool_choice', (e as Error).message.replace(/^toolCallSchema: /, ''));
    }
  }
  if (!rf || rf.type === 'text') return { constraint: null, tools };
  if (rf.type === 'json_object') return { constraint: { kind: 'json-object' }, tools };
  const schema = rf.json_schema?.schema;
  if (!rf.json_schema || typeof schema !== 'object' || schema === null) {
    throw badRequest('response_format.json_schema', 'response_format json_schema needs json_schema: {name, schema}');
  }
  return { constraint: { kind: 'json-schema', schema }, tools };
}

/** a reply that is a tool call ({"name", "arguments"} or a list of them, naming offered tools), else null */
function parseToolCalls(
  text: string,
  tools: ToolUse,
): { id: string; type: 'function'; function: { name: string; arguments: string } }[] | null {
  let v: unknown;
  try {
    v = JSON.parse(text.trim());
  } catch {
    return null;
  }
  const calls = Array.isArray(v) ? v : [v];
  const names = new Set(tools.list.map((t) => t.function.name));
  const ok =
    calls.length > 0 &&
    calls.every((c) => isObject(c) && names.has((c as { name: string }).name) && isObject(c.arguments));
  if (!ok) return null;
  return (calls as { name: string; arguments: unknown }[]).map((c) => ({
    id: `call_${randomUUID().replace(/-/g, '').slice(0, 24)}`,
    type: 'function',
    function: { name: c.name, arguments: JSON.stringify(c.arguments) },
  }));
}

/** a JSON object (tool-call arguments are one): not null, not an array */
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function messageText(content: unknown, i: number): string {
  if (content == null) return '';
  if (typeof content === 'string') return content;
  return (content as { type: string; text?: string }[])
    .map((part, j) => {
      const where = `messages[${i}].content[${j}]`;
      if (part.type !== 'text')
        throw badRequest(where, `${where}: only text parts are supported (got type "${part.type}")`);
      if (typeof part.text !== 'string')
        throw badRequest(`${where}.text`, `${where}: a text part needs a string "text"`);
      return part.text;
    })
    .join('');
}

function checkIds(m: ServedModel, ids: readonly number[], param: string): void {
  const V = m.config.vocabSize;
  const bad = ids.findIndex((t) => t >= V);
  if (bad >= 0) throw badRequest(param, `${param}: token ${ids[bad]} (at ${bad}) is outside the vocabulary [0, ${V})`);
}

function finalChoice(
  m: ServedModel,
  c: ChoiceState,
  index: number,
  chat: boolean,
  withLogprobs: boolean,
  tools: ToolUse | null,
) {
  if (chat) {
    const logprobs = withLogprobs ? chatLogprobs(m.tokenizer, c.track?.kept ?? []) : null;
    const calls = tools ? parseToolCalls(c.text, tools) : null;
    if (calls)
      return {
        index,
        message: { role: 'assistant', content: null, tool_calls: calls, refusal: null },
        logprobs,
        finish_reason: 'tool_calls',
      };
    return {
      index,
      message: { role: 'assistant', content: c.text, refusal: null },
      logprobs,
      finish_reason: c.finish ?? 'stop',
    };
  }
  const logprobs = withLogprobs ? completionLogprobs(m.tokenizer, c.track?.kept ?? []) : null;
  return { index, text: c.text, logprobs, finish_reason: c.finish ?? 'stop' };
}

const modelCard = (m: ServedModel) => ({
  id: m.name,
  object: 'model',
  created: m.created,
  owned_by: 'lineage',
  max_model_len: m.contextLength,
});

function base64(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

/** an SSE stream on the raw response: `data: {json}` events, closed by `data: [DONE]` */
function startStream(reply: FastifyReply) {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache', Connection: 'keep-alive' });
  const write = (s: string) => {
    if (!res.destroyed && !res.writableEnded) res.write(s);
  };
  const send = (obj: unknown) => write(`data: ${JSON.stringify(obj)}\n\n`);
  return Object.assign(send, {
    done: () => {
      write('data: [DONE]\n\n');
      if (!res.writableEnded) res.end();
    },
    /** an error after the stream began: one error event, then the end of the stream */
    fail: (e: ApiError) => {
      send(e.body());
      write('data: [DONE]\n\n');
      if (!res.writableEnded) res.end();
    },
  });
}

function toApiError(err: Error & { statusCode?: number; code?: string; validation?: unknown[] }): ApiError {
  if (err instanceof ApiError) return err;
  if (err.validation) {
    const v = err.validation[0] as { instancePath?: string; params?: { missingProperty?: string }; message?: string };
    const path = (v.instancePath ?? '')
      .replace(/^\//, '')
      .replace(/\/(\d+)/g, '[$1]')
      .replace(/\//g, '.');
    const param = v.params?.missingProperty
      ? path
        ? `${path}.${v.params.missingProperty}`
        : v.params.missingProperty
      : path || null;
    return new ApiError(400, `${param ?? 'body'}: ${v.message ?? 'invalid'}`, param, 'invalid_type');
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
    return new ApiError(413, 'request body too large', null, 'body_too_large');
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
    return new ApiError(415, `unsupported content type: send application/json`, null, 'unsupported_media_type');
  if (err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY')
    return new ApiError(400, 'the request body is empty: send a JSON object', null, 'invalid_json');
  if (err.statusCode === 400 || err instanceof SyntaxError)
    return new ApiError(400, `malformed JSON body: ${err.message}`, null, 'invalid_json');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500)
    return new ApiError(err.statusCode, err.message, null, err.code ?? null);
  return new ApiError(500, `internal error: ${err.message}`, null, 'internal_error');
}
