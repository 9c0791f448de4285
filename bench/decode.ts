// `lineage bench decode`: serving throughput of the inference engine on one model directory.
// N concurrent requests of P random prompt tokens and T new tokens each (greedy, EOS ignored) run through
// one Engine; the same requests then run one at a time in the same process, so the ratio of the two is
// measured under the same machine load. Reports aggregate and single-stream tokens/s, time to first
// token and inter-token latency medians, the KV blocks in use at the peak and the unfilled share of them.
//
// With a drafter, the single-stream pass runs `rounds` times (default 5), each request with and without
// the drafter back to back (alternating which goes first; fresh engines each round, after a full-length
// warm-up of both), and the speed-up is the median of the per-round ratios: on a shared machine a load
// spike then hits both sides of a pair and moves one round, not the figure. The single-stream figures are
// the medians of the rounds; CPU time gives a second, less load-sensitive ratio.
import { Rng } from '../src/tensor/random.js';
import type { LanguageModel } from '../src/models/model.js';
import type { DecoderConfig } from '../src/models/config.js';
import { Engine, type EngineOptions } from '../src/infer/engine/engine.js';
import { bytesPerBlock, KvPool } from '../src/infer/engine/kv-pool.js';
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
  /** requests of the single-stream pass (default: `concurrency`; may exceed it) */
  singleRequests?: number;
  seed?: number;
  /** single-stream rounds (default 5 with a drafter, else 1); the figures are their medians */
  rounds?: number;
  /** the process's CPU time in ms (Node: process.cpuUsage), for the CPU-time speed-up beside the wall one */
  cpuMs?: (() => number) | null;
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
  /**
   * inter-token latency, ms per token: the median over every request's emissions after its first of (time
   * since the request's previous emission) / (tokens in this emission). An emission is what one engine step
   * gives a request: one token, or several with speculative decoding (an accepted draft arrives at once).
   * Without speculation this is vLLM's ITL; with it, vLLM's per-chunk ITL divided by the chunk's tokens,
   * so it stays comparable with plain decoding. null when no request emitted twice (--max-tokens 1)
   */
  itlMsP50: number | null;
  /** vLLM's TPOT: the median over requests of (last token time - first token time) / (tokens - 1); null
   * when every request has a single token */
  tpotMsP50: number | null;
  kvBlocksPeak: number;
  kvBlocksTotal: number;
  kvWastePercent: number;
  acceptanceRate: number;
  speculative: boolean;
  kvDtype: KvDtype;
  /** KV bytes per token, exact: all layers, K and V, int8 scales included (an encoder-decoder counts its
   * self- and cross-attention layers; 0 for recurrent families, whose state does not grow per token) */
  kvBytesPerToken: number;
  /** with a draft model or MTP drafts: single-stream tokens/s without them, and the ratio */
  plainSingleStreamTokensPerSecond?: number;
  /** median over the rounds of (speculative / plain) single-stream tokens/s, each round's pair back to back */
  speculativeSpeedup?: number;
  /** the per-round ratios behind speculativeSpeedup, in round order */
  speculativeSpeedupRounds?: number[];
  /** the same median ratio in process CPU time (less distorted by other jobs on a shared machine) */
  speculativeSpeedupCpu?: number;
  /** greedy output with the drafter equalled plain decoding's, request by request, in every round */
  identicalOutput?: boolean;
  /** acceptanceRate over the single-stream requests (acceptanceRate itself is the batched pass's) */
  singleStreamAcceptanceRate?: number;
  /** requests in each single-stream pass */
  singleRequests: number;
  /** single-stream rounds run */
  rounds: number;
}

function median(xs: number[]): number;
function median(xs: number[], empty: null): number | null;
function median(xs: number[], empty: number | null = 0): number | null {
  if (xs.length === 0) return empty;
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

interface PassResult {
  tokens: number;
  seconds: number;
  /** process CPU seconds (0 without a CPU clock) */
  cpuSeconds: number;
  ttft: number[];
  /** per emission after a request's first: ms since its previous emission / tokens in it */
  itl: number[];
  /** per request with more than one token: (last - first token time) / (tokens - 1), ms */
  tpot: number[];
  /** each request's generated token ids, in prompt order */
  outputs: number[][];
}

const emptyPass = (): PassResult => ({
  tokens: 0,
  seconds: 0,
  cpuSeconds: 0,
  ttft: [],
  itl: [],
  tpot: [],
  outputs: [],
});

/** one request through the engine, its tokens and timestamps (taken as events arrive) added to r */
async function request(engine: Engine, prompt: number[], maxTokens: number, r: PassResult, i: number): Promise<void> {
  const out: number[] = (r.outputs[i] = []);
  const t0 = performance.now();
  // emissions: the tokens one engine step gave this request (they arrive together), with the time of the first
  const emissions: { at: number; step: number; tokens: number }[] = [];
  for await (const e of engine.add({ prompt, maxTokens, temperature: 0, ignoreEos: true })) {
    if (e.token < 0) continue;
    const last = emissions.at(-1);
    if (last && last.step === engine.stepCount) last.tokens++;
    else emissions.push({ at: performance.now(), step: engine.stepCount, tokens: 1 });
    r.tokens++;
    out.push(e.token);
  }
  if (emissions.length === 0) return;
  r.ttft.push(emissions[0]!.at - t0);
  for (let j = 1; j < emissions.length; j++)
    r.itl.push((emissions[j]!.at - emissions[j - 1]!.at) / emissions[j]!.tokens);
  if (out.length > 1) r.tpot.push((emissions.at(-1)!.at - emissions[0]!.at) / (out.length - 1));
}

/** runs the prompts through the engine, all at once or one after another */
/** a pass on an engine made for it, disposed after (its KV pools are native memory) */
async function passOn(engine: Engine, prompts: number[][], maxTokens: number): Promise<PassResult> {
  try {
    return await pass(engine, prompts, maxTokens, false);
  } finally {
    engine.dispose();
  }
}

async function pass(engine: Engine, prompts: number[][], maxTokens: number, parallel: boolean): Promise<PassResult> {
  const r = emptyPass();
  const start = performance.now();
  if (parallel) await Promise.all(prompts.map((p, i) => request(engine, p, maxTokens, r, i)));
  else for (const [i, p] of prompts.entries()) await request(engine, p, maxTokens, r, i);
  r.seconds = (performance.now() - start) / 1000;
  return r;
}

interface SingleRounds {
  /** tokens/s of each round's pass with the engine's options (with the drafter, if any) */
  tps: number[];
  /** with a drafter: the same without it, and the per-round wall and CPU ratios */
  plainTps: number[];
  ratios: number[];
  cpuRatios: number[];
  identical: boolean;
  /** accepted / proposed draft tokens over a round's single-stream requests (the same every round) */
  acceptance: number;
}

/**
 * The single-stream pass, `rounds` times. With a drafter each round runs every request twice, with and
 * without it, the two back to back in alternating order, on two engines made for the round: a load spike
 * on a shared machine then lands on both sides of a pair, and neither side always runs first.
 */
async function singleRounds(
  model: LanguageModel,
  opts: EngineOptions,
  prompts: number[][],
  maxTokens: number,
  rounds: number,
  speculative: boolean,
  cpuMs: (() => number) | null,
): Promise<SingleRounds> {
  const r: SingleRounds = { tps: [], plainTps: [], ratios: [], cpuRatios: [], identical: true, acceptance: 0 };
  for (let i = 0; i < rounds; i++) {
    if (!speculative) {
      const a = await passOn(new Engine(model, opts), prompts, maxTokens);
      r.tps.push(a.tokens / a.seconds);
      continue;
    }
    const engines = [new Engine(model, opts), new Engine(model, { ...opts, draftModel: null, mtpDraft: false })];
    const [spec, plain] = [emptyPass(), emptyPass()];
    const timed = async (side: 0 | 1, j: number) => {
      const res = side === 0 ? spec : plain;
      const [t0, c0] = [performance.now(), cpuMs?.() ?? 0];
      await request(engines[side]!, prompts[j]!, maxTokens, res, j);
      res.seconds += (performance.now() - t0) / 1000;
      res.cpuSeconds += cpuMs ? (cpuMs() - c0) / 1000 : 0;
    };
    for (let j = 0; j < prompts.length; j++) {
      const first = (i + j) % 2 === 0 ? 0 : 1;
      await timed(first, j);
      await timed(first === 0 ? 1 : 0, j);
    }
    r.tps.push(spec.tokens / spec.seconds);
    r.plainTps.push(plain.tokens / plain.seconds);
    r.ratios.push(spec.tokens / spec.seconds / (plain.tokens / plain.seconds));
    if (cpuMs) r.cpuRatios.push(spec.tokens / spec.cpuSeconds / (plain.tokens / plain.cpuSeconds));
    r.identical &&= spec.outputs.every((o, j) => o.join() === plain.outputs[j]!.join());
    r.acceptance = engines[0]!.stats().acceptanceRate;
    for (const e of engines) e.dispose();
  }
  return r;
}

/** the exact KV bytes of one token: every layer's K and V rows (and int8 scales) in the pool's dtype; the
 * pool's own rounding to whole blocks is not in it. 0 without a paged pool (recurrent state slots) */
export function kvBytesPerToken(engine: Engine): number {
  const pool = engine.pool instanceof KvPool ? engine.pool : (engine.pool as { pool?: unknown }).pool;
  return pool instanceof KvPool ? bytesPerBlock(pool.layers, 1, pool.dtype) : 0;
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
  // the batched pass takes the first `concurrency` prompts, the single-stream pass the first
  // `singleRequests` (more than concurrency is allowed: it used to be capped at concurrency silently)
  const single = o.singleRequests ?? o.concurrency;
  if (!Number.isInteger(single) || single < 1)
    throw new Error(`bench decode: --single-requests must be >= 1, got ${single}`);
  const all = Array.from({ length: Math.max(o.concurrency, single) }, () => {
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
    prefaultKv: true, // as a server runs: first-touch page faults of a fresh pool are not in the timings
  };
  // enough blocks for every sequence at once (the bench measures batching, not preemption)
  // (probeBytes / numBlocks is at least a block's size)
  const probeBytes = 64 << 20;
  const probe = new Engine(model, {
    ...opts,
    kvMemoryBytes: probeBytes,
    draftModel: null,
    mtpDraft: false,
    prefaultKv: false,
  });
  const perBlock = probeBytes / probe.pool.numBlocks;
  probe.dispose();
  opts.kvMemoryBytes = Math.ceil(perBlock * perSeq * o.concurrency);
  // the draft's own pool (default: a quarter of the target's) must hold every sequence too, or the
  // drafter finds no blocks and never proposes
  const speculative = !!o.draftModel || !!o.mtpDraft;
  if (speculative) opts.draftKvMemoryBytes = 64 << 20;
  const singlePrompts = all.slice(0, single);
  const rounds = o.rounds ?? (speculative ? 5 : 1);
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`bench decode: --rounds must be >= 1, got ${rounds}`);
  // warm-up at full length, with and without the drafter (a short one left the first timed round slow)
  const warm = singlePrompts.slice(0, Math.min(4, singlePrompts.length));
  await passOn(new Engine(model, opts), warm, o.maxTokens);
  if (speculative) await passOn(new Engine(model, { ...opts, draftModel: null, mtpDraft: false }), warm, o.maxTokens);
  const engine = new Engine(model, opts);
  const batched = await pass(engine, all.slice(0, o.concurrency), o.maxTokens, true);
  engine.dispose(); // its counters stay readable below
  const singles = await singleRounds(model, opts, singlePrompts, o.maxTokens, rounds, speculative, o.cpuMs ?? null);
  const tps = batched.tokens / batched.seconds;
  const sps = median(singles.tps);
  const slots = engine.peakBlocks * engine.pool.blockSize;
  return {
    concurrency: o.concurrency,
    promptTokens: o.promptTokens,
    maxTokens: o.maxTokens,
    tokensPerSecond: tps,
    singleStreamTokensPerSecond: sps,
    speedup: tps / sps,
    ttftMsP50: median(batched.ttft),
    itlMsP50: median(batched.itl, null),
    tpotMsP50: median(batched.tpot, null),
    kvBlocksPeak: engine.peakBlocks,
    kvBlocksTotal: engine.pool.numBlocks,
    kvWastePercent: slots === 0 ? 0 : (100 * engine.peakWasteSlots) / slots,
    acceptanceRate: engine.stats().acceptanceRate,
    speculative,
    kvDtype: opts.kvDtype!,
    kvBytesPerToken: kvBytesPerToken(engine),
    singleRequests: single,
    rounds,
    ...(speculative
      ? {
          plainSingleStreamTokensPerSecond: median(singles.plainTps),
          speculativeSpeedup: median(singles.ratios),
          speculativeSpeedupRounds: singles.ratios,
          ...(singles.cpuRatios.length > 0 ? { speculativeSpeedupCpu: median(singles.cpuRatios) } : {}),
          identicalOutput: singles.identical,
          singleStreamAcceptanceRate: singles.acceptance,
        }
      : {}),
  };
}
