// `lineage bench decode`: serving throughput of the inference engine on one model directory.
// N concurrent requests of P random prompt tokens and T new tokens each (greedy, EOS ignored) run through
// one Engine; the same requests then run one at a time in the same process, so the ratio of the two is
// measured under the same machine load. Reports aggregate and single-stream tokens/s, time to first
// token and inter-token latency medians, the KV blocks in use at the peak and the unfilled share of them.
import { Rng } from '../src/tensor/random.js';
import type { LanguageModel } from '../src/models/model.js';
import type { DecoderConfig } from '../src/models/config.js';
import { Engine, type EngineOptions } from '../src/infer/engine/engine.js';
import type { KvDtype } from '../src/infer/engine/kv-dtype.js';

export interface DecodeBenchOptions {
  concurrency: number;
  promptTokens: number;
  maxTokens: number;
  draftModel?: LanguageModel | null;
  /** speculative decoding with the model's own MTP depths (DeepSeek-V3) instead of a draft model */
  mtpDraft?: boolean;
  /** draft tokens per step (default: the engine's, 4) */
  speculativeTokens?: number;
  /** element type of the KV cache (default float32) */
  kvDtype?: KvDtype;
  /** requests of the single-stream pass (default: all `concurrency` of them) */
  singleRequests?: number;
  seed?: number;
  /** token ids of a text to cut the prompts from (seeded offsets); random token ids when absent. Real
   * text matters for speculative decoding: on random ids a draft and its target never agree */
  corpus?: readonly number[] | null;
}

export interface DecodeBenchResult {
  concurrency: number;
  promptTokens: number;
  maxTokens: number;
  tokensPerSecond: number;
  singleStreamTokensPerSecond: number;
  speedup: number;
  ttftMsP50: number;
  itlMsP50: number;
  kvBlocksPeak: number;
  kvBlocksTotal: number;
  kvWastePercent: number;
  acceptanceRate: number;
  speculative: boolean;
  kvDtype: KvDtype;
  /** KV bytes per token (all layers, K and V, int8 scales included) */
  kvBytesPerToken: number;
  /** with a draft model or MTP drafts: single-stream tokens/s without them, and the ratio */
  plainSingleStreamTokensPerSecond?: number;
  speculativeSpeedup?: number;
}

const median = (xs: number[]) => {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface PassResult {
  tokens: number;
  seconds: number;
  ttft: number[];
  itl: number[];
}

/** runs the prompts through the engine, `parallel` at a time; token timestamps taken as events arrive */
async function pass(engine: Engine, prompts: number[][], maxTokens: number, parallel: boolean): Promise<PassResult> {
  const r: PassResult = { tokens: 0, seconds: 0, ttft: [], itl: [] };
  const one = async (prompt: number[]) => {
    const t0 = performance.now();
    let last = t0;
    for await (const e of engine.add({ prompt, maxTokens, temperature: 0, ignoreEos: true })) {
      if (e.token < 0) continue;
      const now = performance.now();
      (last === t0 ? r.ttft : r.itl).push(now - last);
      last = now;
      r.tokens++;
    }
  };
  const start = performance.now();
  if (parallel) await Promise.all(prompts.map(one));
  else for (const p of prompts) await one(p);
  r.seconds = (performance.now() - start) / 1000;
  return r;
}

export async function benchDecode(model: LanguageModel, o: DecodeBenchOptions): Promise<DecodeBenchResult> {
  const V = model.config.vocabSize;
  const ctx = (model.config as DecoderConfig).maxContext;
  if (model.config.arch === 'encoder-decoder') {
    // the prompt is the encoder's source; source and decoder each have the whole context
    if (Math.max(o.promptTokens, o.maxTokens) > ctx)
      throw new Error(`bench decode: --prompt-tokens and --max-tokens must each be at most the model's context ${ctx}`);
  } else if (o.promptTokens + o.maxTokens > ctx) {
    throw new Error(
      `bench decode: --prompt-tokens + --max-tokens = ${o.promptTokens + o.maxTokens} exceeds the model's context ${ctx}`,
    );
  }
  const rng = new Rng(o.seed ?? 0);
  const corpus = o.corpus && o.corpus.length > o.promptTokens ? o.corpus : null;
  const prompts = Array.from({ length: o.concurrency }, () => {
    if (!corpus) return Array.from({ length: o.promptTokens }, () => rng.int(V));
    const at = rng.int(corpus.length - o.promptTokens);
    return corpus.slice(at, at + o.promptTokens);
  });
  const perSeq = Math.ceil((o.promptTokens + o.maxTokens) / 16) + 1;
  const opts: EngineOptions = {
    kvMemoryBytes: 0,
    maxRunningSeqs: Math.max(o.concurrency, 1),
    maxBatchedTokens: Math.max(512, o.concurrency * 8),
    draftModel: o.draftModel ?? null,
    mtpDraft: o.mtpDraft ?? false,
    ...(o.speculativeTokens !== undefined ? { speculativeTokens: o.speculativeTokens } : {}),
    prefixCaching: false,
    kvDtype: o.kvDtype ?? 'float32',
  };
  // enough blocks for every sequence at once (the bench measures batching, not preemption)
  const probe = new Engine(model, { ...opts, kvMemoryBytes: 1 << 30, draftModel: null, mtpDraft: false });
  const bytesPerBlock = (1 << 30) / probe.pool.numBlocks;
  opts.kvMemoryBytes = Math.ceil(bytesPerBlock * perSeq * o.concurrency);
  // the draft's own pool (default: a quarter of the target's) must hold every sequence too, or the
  // drafter finds no blocks and never proposes
  const speculative = !!o.draftModel || !!o.mtpDraft;
  if (speculative) opts.draftKvMemoryBytes = 64 << 20;
  await pass(new Engine(model, opts), prompts.slice(0, 1), 4, false); // warm-up
  const engine = new Engine(model, opts);
  const batched = await pass(engine, prompts, o.maxTokens, true);
  const single = await pass(
    new Engine(model, opts),
    prompts.slice(0, o.singleRequests ?? o.concurrency),
    o.maxTokens,
    false,
  );
  // with a draft model: the same single-stream pass decoding plainly, for the speculative speed-up
  const plain = speculative
    ? await pass(
        new Engine(model, { ...opts, draftModel: null, mtpDraft: false }),
        prompts.slice(0, o.singleRequests ?? o.concurrency),
        o.maxTokens,
        false,
      )
    : null;
  const tps = batched.tokens / batched.seconds;
  const sps = single.tokens / single.seconds;
  const slots = engine.peakBlocks * engine.pool.blockSize;
  return {
    concurrency: o.concurrency,
    promptTokens: o.promptTokens,
    maxTokens: o.maxTokens,
    tokensPerSecond: tps,
    singleStreamTokensPerSecond: sps,
    speedup: tps / sps,
    ttftMsP50: median(batched.ttft),
    itlMsP50: median(batched.itl),
    kvBlocksPeak: engine.peakBlocks,
    kvBlocksTotal: engine.pool.numBlocks,
    kvWastePercent: slots === 0 ? 0 : (100 * engine.peakWasteSlots) / slots,
    acceptanceRate: engine.stats().acceptanceRate,
    speculative,
    kvDtype: opts.kvDtype!,
    kvBytesPerToken: bytesPerBlock / engine.pool.blockSize,
    ...(plain
      ? {
          plainSingleStreamTokensPerSecond: plain.tokens / plain.seconds,
          speculativeSpeedup: sps / (plain.tokens / plain.seconds),
        }
      : {}),
  };
}
