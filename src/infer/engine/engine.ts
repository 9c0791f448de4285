// The inference engine: many concurrent requests on one loaded decoder, continuous batching over a
// paged KV cache. Three roles with narrow interfaces (vLLM v1): the Scheduler picks which tokens of which
// sequences run, the BlockManager hands out KV blocks, the ModelRunner runs one flattened ragged batch;
// the engine ties them together, samples per sequence and streams token events.
//
//   const engine = new Engine(model, { tokenizer, kvMemoryBytes: 64 << 20 });
//   const h = engine.add({ prompt: 'To be', maxTokens: 32, temperature: 0 });
//   for await (const ev of h) process.stdout.write(ev.text);
//
// Steppable: `step()` runs one iteration; by default the engine also drives itself (a macrotask per
// step, so the host's event loop stays responsive); `{ autoRun: false }` leaves stepping to the caller.
import type { LanguageModel } from '../../models/model.js';
import type { DecoderConfig } from '../../models/config.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { BlockManager } from './block-manager.js';
import { KvPool, layerSpecs } from './kv-pool.js';
import { checkKvDtype, type KvDtype } from './kv-dtype.js';
import { ModelRunner, type RunItem } from './runner.js';
import { Scheduler, type ScheduledChunk } from './scheduler.js';
import { Sequence, type FinishReason, type LogitsProcessor, type TokenEvent } from './sequence.js';
import { StopText } from './stop-text.js';
import {
  anyAllowed,
  applyPenalties,
  checkSamplingParams,
  drawToken,
  isGreedy,
  logprobsOf,
  sequenceRng,
  type SamplingParams,
} from './sampler.js';
import { Drafter } from './drafter.js';
import { mtpKvBytes } from './mtp-drafter.js';
import { constraintProcessor } from './constrained.js';
import type { ConstraintSpec } from '../constrain/index.js';
import { StateRunner } from './state-runner.js';
import { macrotask } from './macrotask.js';
import { Seq2SeqRunner } from './seq2seq-runner.js';
import { probsOf, verifyDraft, verifyGreedy } from './speculative.js';
import { BeamSearch, logSoftmax, type BeamChoice, type EarlyStopping, type Hypothesis } from './beam.js';
import type { BeamGroup } from './sequence.js';

export interface EngineOptions {
  /** bytes of the KV block pool (default 64 MiB) */
  kvMemoryBytes?: number;
  /** tokens per KV block (default 16) */
  blockSize?: number;
  /** element type of the KV cache (default float32); float16/bfloat16 hold 2x, int8 ~4x the tokens per byte */
  kvDtype?: KvDtype;
  /** tokens per step over all sequences (default 512) */
  maxBatchedTokens?: number;
  /** sequences running at once (default 64) */
  maxRunningSeqs?: number;
  /** reuse KV blocks of identical prompt prefixes across requests (default true) */
  prefixCaching?: boolean;
  /** needed for text prompts, text deltas and stop strings */
  tokenizer?: Tokenizer | null;
  /** drive steps automatically when requests are added (default true) */
  autoRun?: boolean;
  /** speculative decoding with this smaller model (same vocabulary) as the drafter */
  draftModel?: LanguageModel | null;
  /** write every page of the KV pools when the engine is made (default false): no first-touch page faults
   * inside steps (up to ms each with huge pages), at the cost of the whole pool being resident at once.
   * `lineage serve` and `lineage bench decode` turn it on */
  prefaultKv?: boolean;
  /** bytes of the draft model's KV pool (default kvMemoryBytes / 4) */
  draftKvMemoryBytes?: number;
  /** speculative decoding with prompt lookup (n-gram) drafts, when there is no draft model */
  promptLookup?: boolean;
  /** speculative decoding with the target's own multi-token-prediction depths (DeepSeek-V3 MTP) as the
   * drafter; their KV pool takes draftKvMemoryBytes (default: as many blocks as the target's pool). Prefix
   * caching defaults to off with it (the MTP keys need the target's state at every position; a prompt
   * served from the cache would decode without drafts) */
  mtpDraft?: boolean;
  /** draft tokens per step (default 5 with a draft model, else 4: see DRAFT_MODEL_TOKENS) */
  speculativeTokens?: number;
  /** NFA node budget of a request's constraint (default CONSTRAINT_MAX_STATES): a bigger schema is refused
   * at add() instead of compiling for seconds on the thread that decodes every other request */
  constraintMaxStates?: number;
  /** plain decoders: the tensor-free fast path (src/infer/fast-decoder.ts) where it applies (default true;
   * false runs `model.forward`, the reference path) */
  fastPath?: boolean;
}

export interface EngineRequest extends SamplingParams {
  /** unique id (default: generated) */
  id?: string;
  /** token ids, or text when the engine has a tokenizer */
  prompt: readonly number[] | string;
  /** new tokens at most (default 128) */
  maxTokens?: number;
  /** new tokens before a stop token or string may end the sequence (default 0) */
  minTokens?: number;
  /** token ids that end a sequence (the model's EOS is added unless ignoreEos) */
  stopTokenIds?: readonly number[];
  /** strings that end a sequence (not included in the text); at most 16 */
  stop?: readonly string[];
  ignoreEos?: boolean;
  /** independent samples of the same prompt, sharing its KV blocks (default 1) */
  n?: number;
  /** constrained decoding hook: allowed-token mask per step */
  logitsProcessor?: LogitsProcessor | null;
  /** beam search with this many beams (default 1: sampling); deterministic, `n` <= beams best hypotheses
   * are returned (each as a burst of events once the search ends, its last event carrying `beamScore`) */
  beams?: number;
  /** beam search: a hypothesis scores sum_logprobs / generated_length^lengthPenalty (default 1) */
  lengthPenalty?: number;
  /** beam search: true stops at `beams` finished hypotheses; false (default) also waits until no live
   * beam can beat them; 'never' bounds that by maxTokens (Hugging Face's early_stopping) */
  earlyStopping?: EarlyStopping;
  /** constrained decoding as data (JSON Schema / JSON object / regex): compiled by the engine against its
   * tokenizer, so it works across a worker boundary too; ignored when logitsProcessor is given */
  constraint?: ConstraintSpec | null;
}

/** what the engine needs of its cache storage: block counts, per-layer windows, block copies */
export interface BlockStore {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly layers: readonly { window: number | null }[];
  copyBlock(from: number, to: number): void;
}

export interface EngineStats {
  running: number;
  waiting: number;
  kvBlocksUsed: number;
  kvBlocksTotal: number;
  /** prompt blocks served from the prefix cache so far */
  prefixCacheHits: number;
  /** accepted / proposed draft tokens (speculative decoding; 0 without it) */
  acceptanceRate: number;
  preemptions: number;
}

/**
 * async iterable of a request's token events (all n sequences interleaved), with its id. Leaving the
 * `for await` early (break, return, a throw in the loop body) aborts the request: its sequences end and
 * their KV blocks go back at once, instead of decoding on to maxTokens for nobody
 */
export class RequestHandle implements AsyncIterable<TokenEvent> {
  private readonly queue: TokenEvent[] = [];
  private wake: (() => void) | null = null;
  private open: number;
  error: Error | null = null;

  constructor(
    readonly id: string,
    n: number,
    private readonly kick: () => void,
    /** called when the consumer stops iterating before the request ended (the engine aborts it) */
    private readonly abandon: () => void = () => {},
  ) {
    this.open = n;
  }

  /** engine side */
  push(e: TokenEvent): void {
    this.queue.push(e);
    if (e.finishReason !== null) this.open--;
    this.wake?.();
  }

  fail(e: Error): void {
    this.error = e;
    this.open = 0;
    this.wake?.();
  }

  get done(): boolean {
    return this.open <= 0;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<TokenEvent> {
    try {
      for (;;) {
        while (this.queue.length > 0) yield this.queue.shift()!;
        if (this.error) throw this.error;
        if (this.open <= 0) return;
        this.kick();
        await new Promise<void>((r) => (this.wake = r));
        this.wake = null;
      }
    } finally {
      // the consumer left early (the generator's return()): nobody reads the rest, so stop producing it
      if (this.open > 0 && !this.error) this.abandon();
    }
  }
}

const MAX_STOPS = 16;

/**
 * Default draft length with a draft model. Measured on the bundled pair (shakespeare-char drafting for
 * shakespeare-llama, greedy, 16 prompts x 40 tokens, CPU time, interleaved with plain decoding): on the
 * loaded machine 5 beat 4 in every run (+3 to +14%), 6 fell between; with less load 4, 5 and 6 tied.
 * Adaptive lengths (+2 / -1 per round, Hugging Face's heuristic) and stopping at a low draft confidence
 * (0.3-0.7) both did worse than a fixed 5.
 */
export const DRAFT_MODEL_TOKENS = 5;

/** Default constraint budget: ~0.3 s of compiling and ~40 MB on the machine it was measured on (a 2-core VM;
 * about 3 µs and 400 bytes per node), where the library default (2M nodes) took seconds and GBs. */
export const CONSTRAINT_MAX_STATES = 100_000;

export class Engine {
  /** the paged KV pool (transformers) or the state slots (recurrent families) */
  readonly pool: BlockStore;
  readonly blocks: BlockManager;
  readonly scheduler: Scheduler;
  readonly runner: { run(items: readonly RunItem[]): Float32Array; dispose?(): void };
  readonly tokenizer: Tokenizer | null;
  private readonly seqs = new Map<string, Sequence[]>();
  private readonly handles = new Map<string, RequestHandle>();
  private nextId = 0;
  private arrivals = 0;
  private looping = false;
  private disposed = false;
  private readonly autoRun: boolean;
  /** the sliding window every layer shares (blocks before it are freed), or null */
  private readonly window: number | null;
  private readonly maxContext: number;
  /** blocks in use at the busiest step, and their unfilled slots then (benchmarks) */
  peakBlocks = 0;
  /** steps that ran a batch so far: the tokens a request gets in one step arrive together (benchmarks tell
   * one emission of several speculative tokens from several emissions by it) */
  stepCount = 0;
  peakWasteSlots = 0;
  draftProposed = 0;
  draftAccepted = 0;
  private readonly drafter: Drafter | null;
  private readonly recurrent: boolean;
  /** one state slot per sequence instead of paged blocks (recurrent families) */
  private readonly slotted: boolean;
  private readonly seq2seq: boolean;
  private readonly constraintMaxStates: number;

  constructor(
    readonly model: LanguageModel,
    opts: EngineOptions = {},
  ) {
    const cfg = model.config as DecoderConfig;
    const limits = { maxBatchedTokens: opts.maxBatchedTokens ?? 512, maxRunningSeqs: opts.maxRunningSeqs ?? 64 };
    // every option is checked before a pool is allocated: a constructor that throws leaves nothing behind
    // (a native KV pool is not garbage collected)
    for (const [k, v] of Object.entries(limits))
      if (!Number.isInteger(v) || v < 1) throw new Error(`engine: ${k} must be a positive integer, got ${v}`);
    for (const k of ['kvMemoryBytes', 'draftKvMemoryBytes'] as const) {
      const v = opts[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v <= 0))
        throw new Error(`engine: ${k} must be a positive number of bytes, got ${String(v)}`);
    }
    const k = opts.speculativeTokens;
    if (k !== undefined && (!Number.isInteger(k) || k < 1))
      throw new Error(`engine: speculativeTokens must be an integer >= 1, got ${String(k)}`);
    if (opts.mtpDraft && (opts.draftModel || opts.promptLookup))
      throw new Error('engine: choose one drafter: mtpDraft, draftModel or promptLookup');
    const recurrent = model.config.arch === 'rnn' || model.config.arch === 'mamba';
    const seq2seq = model.config.arch === 'encoder-decoder';
    if (recurrent && (opts.draftModel || opts.promptLookup || opts.mtpDraft))
      throw new Error(
        `engine: speculative decoding needs a transformer target (${model.config.family} keeps a recurrent state)`,
      );
    if (seq2seq && (opts.draftModel || opts.promptLookup || opts.mtpDraft))
      throw new Error(
        `engine: speculative decoding needs a decoder-only target (${model.config.family} is encoder-decoder)`,
      );
    if (seq2seq) {
      // the encoder's cross K/V and the decoder's self K/V in one paged pool, one decoder forward per step
      const s2s = new Seq2SeqRunner(model, {
        blockSize: opts.blockSize ?? 16,
        kvMemoryBytes: opts.kvMemoryBytes ?? 64 * 1024 * 1024,
        kvDtype: checkKvDtype(opts.kvDtype ?? 'float32', 'engine: kvDtype'),
      });
      [this.runner, this.pool] = [s2s, s2s];
    } else if (recurrent) {
      // one slot per running sequence; a "block" as long as any sequence, so each holds exactly one
      const states = new StateRunner(model, limits.maxRunningSeqs, 2 ** 30);
      [this.runner, this.pool] = [states, states];
    } else {
      const paged = new ModelRunner(
        model,
        new KvPool(
          layerSpecs(cfg),
          opts.blockSize ?? 16,
          opts.kvMemoryBytes ?? 64 * 1024 * 1024,
          'auto',
          checkKvDtype(opts.kvDtype ?? 'float32', 'engine: kvDtype'),
          opts.prefaultKv ?? false,
        ),
        { fast: opts.fastPath },
      );
      [this.runner, this.pool] = [paged, paged.pool];
    }
    try {
      this.recurrent = recurrent;
      this.slotted = recurrent;
      this.seq2seq = seq2seq;
      this.blocks = new BlockManager(
        this.pool.numBlocks,
        this.pool.blockSize,
        // not for encoder-decoders: a source token's encoder K/V depend on the whole source, not its prefix
        !this.slotted && !seq2seq && (opts.prefixCaching ?? !opts.mtpDraft),
      );
      this.scheduler = new Scheduler(this.blocks, limits, (a, b) => this.pool.copyBlock(a, b));
      this.tokenizer = opts.tokenizer ?? null;
      this.autoRun = opts.autoRun ?? true;
      this.constraintMaxStates = opts.constraintMaxStates ?? CONSTRAINT_MAX_STATES;
      const windows = this.pool.layers.map((l) => l.window);
      this.window = windows.length > 0 && windows.every((w) => w !== null && w === windows[0]) ? windows[0]! : null;
      this.maxContext = 'maxContext' in cfg ? cfg.maxContext : Infinity;
      this.drafter = this.makeDrafter(opts);
    } catch (e) {
      this.runner.dispose?.(); // the pool allocated above (a drafter that fails frees its own)
      throw e;
    }
    if (this.drafter?.mtp) (this.runner as ModelRunner).captureHidden = true;
    this.scheduler.onRelease = (seq) => this.drafter?.release(seq);
    model.eval();
  }

  private makeDrafter(opts: EngineOptions): Drafter | null {
    const k = opts.speculativeTokens ?? (opts.draftModel && !opts.mtpDraft ? DRAFT_MODEL_TOKENS : 4);
    const [bs, V] = [this.pool.blockSize, this.model.config.vocabSize];
    if (opts.mtpDraft) {
      if (opts.draftModel || opts.promptLookup)
        throw new Error('engine: choose one drafter: mtpDraft, draftModel or promptLookup');
      const blocks = this.pool.numBlocks + this.scheduler.limits.maxRunningSeqs;
      const bytes = opts.draftKvMemoryBytes ?? mtpKvBytes(this.model, blocks, bs);
      return new Drafter({ kind: 'mtp', model: this.model, kvMemoryBytes: bytes }, k, bs, V);
    }
    if (opts.draftModel) {
      const bytes = opts.draftKvMemoryBytes ?? (opts.kvMemoryBytes ?? 64 * 1024 * 1024) / 4;
      const source = {
        kind: 'model',
        model: opts.draftModel,
        kvMemoryBytes: bytes,
        prefault: opts.prefaultKv,
      } as const;
      return new Drafter(source, k, bs, V);
    }
    return opts.promptLookup ? new Drafter({ kind: 'prompt-lookup', maxNgram: 3 }, k, bs, V) : null;
  }

  // ---- requests ----

  /** validates and queues a request; throws a clear error for a bad one (nothing else is touched) */
  add(req: EngineRequest): RequestHandle {
    if (this.disposed) throw new Error('engine: add() after dispose()');
    const id = req.id ?? `req-${this.nextId++}`;
    if (this.seqs.has(id)) throw new Error(`engine: request id "${id}" is already in use`);
    const prompt = this.promptIds(req);
    const o = this.checkRequest(req, prompt);
    const n = req.n ?? 1;
    const handle = new RequestHandle(
      id,
      n,
      () => this.kick(),
      () => void (this.disposed || this.abort(id)),
    );
    const first = this.newSequence(id, 0, prompt, prompt.length, o, req, handle);
    first.pendingForks = n - 1;
    if ((req.beams ?? 1) > 1) first.beam = this.beamGroup(first, req, prompt.length);
    this.seqs.set(id, [first]);
    this.handles.set(id, handle);
    this.scheduler.add(first);
    this.kick();
    return handle;
  }

  private promptIds(req: EngineRequest): number[] {
    if (typeof req.prompt === 'string') {
      if (!this.tokenizer) throw new Error('engine: a text prompt needs an engine tokenizer (or give token ids)');
      return this.tokenizer.encode(req.prompt, { addSpecialTokens: false });
    }
    if (!Array.isArray(req.prompt)) throw new Error('request: prompt must be token ids or a string');
    return [...req.prompt];
  }

  private checkRequest(req: EngineRequest, prompt: number[]): Sequence['opts'] {
    const V = this.model.config.vocabSize;
    const { maxTokens = 128, minTokens = 0, n = 1, stop = [] } = req;
    checkSamplingParams(req, V);
    if (!Number.isInteger(maxTokens) || maxTokens < 1)
      throw new Error(`request: maxTokens must be an integer >= 1, got ${maxTokens}`);
    if (!Number.isInteger(minTokens) || minTokens < 0 || minTokens > maxTokens)
      throw new Error(`request: minTokens must be an integer in [0, maxTokens], got ${minTokens}`);
    if (!Number.isInteger(n) || n < 1 || n > this.scheduler.limits.maxRunningSeqs) {
      throw new Error(
        `request: n must be an integer in [1, maxRunningSeqs=${this.scheduler.limits.maxRunningSeqs}], got ${n}`,
      );
    }
    if (prompt.length === 0) throw new Error('request: prompt is empty');
    prompt.forEach((t, i) => {
      if (!Number.isInteger(t) || t < 0 || t >= V)
        throw new Error(`request: prompt token ${i} is ${t}, outside the vocabulary [0, ${V})`);
    });
    // a decoder's prompt may fill the context (its last position still gives the next token's logits); an
    // encoder-decoder's source has the whole context to itself (the decoder counts only its own steps)
    if (prompt.length > this.maxContext)
      throw new Error(`request: the prompt has ${prompt.length} tokens; the model's context is ${this.maxContext}`);
    const need = Math.ceil(this.streamLength(prompt.length, maxTokens) / this.pool.blockSize);
    if (need > this.pool.numBlocks)
      throw new Error(
        `request: prompt + maxTokens need ${need} KV blocks; the pool has ${this.pool.numBlocks} (raise kvMemoryBytes)`,
      );
    if (!Array.isArray(stop) || stop.length > MAX_STOPS)
      throw new Error(`request: stop must be a list of at most ${MAX_STOPS} strings`);
    if (stop.some((s) => typeof s !== 'string' || s.length === 0))
      throw new Error('request: every stop string must be a non-empty string');
    if (stop.length > 0 && !this.tokenizer) throw new Error('request: stop strings need an engine tokenizer');
    const stopIds = new Set(req.stopTokenIds ?? []);
    for (const s of stopIds)
      if (!Number.isInteger(s) || s < 0 || s >= V) throw new Error(`request: stopTokenIds has ${s}, outside [0, ${V})`);
    const eos = this.model.config.tokens.eos;
    if (eos !== null && !req.ignoreEos) stopIds.add(eos);
    this.checkBeams(req, prompt.length, maxTokens);
    const processor =
      req.logitsProcessor ??
      (req.constraint
        ? constraintProcessor(req.constraint, this.tokenizer, eos, maxTokens, this.constraintMaxStates)
        : null);
    return { params: req, maxTokens, minTokens, stopIds, logitsProcessor: processor };
  }

  /** the longest token stream (prompt, then output) a request can reach: the context bounds the whole stream
   * of a decoder, only the decoder steps of an encoder-decoder */
  private streamLength(promptLength: number, maxTokens: number): number {
    return this.seq2seq
      ? promptLength + Math.min(maxTokens, this.maxContext)
      : Math.min(promptLength + maxTokens, this.maxContext);
  }

  private newSequence(
    id: string,
    index: number,
    tokens: readonly number[],
    promptLength: number,
    o: Sequence['opts'],
    req: EngineRequest,
    h: RequestHandle,
  ): Sequence {
    const text = new StopText(this.tokenizer ? this.tokenizer.decodeStream() : null, req.stop ?? []);
    return new Sequence(id, index, this.arrivals++, promptLength, tokens, o, sequenceRng(req.seed, index), text, (e) =>
      h.push(e),
    );
  }

  /**
   * Ends every open request (finishReason 'abort') and frees the KV pools now: their native memory is not
   * garbage collected, so an engine that is dropped without this holds its pool until the process exits.
   * add() and step() throw afterwards. The model is the caller's and stays usable.
   */
  dispose(): void {
    if (this.disposed) return;
    for (const id of [...this.seqs.keys()]) this.abort(id);
    this.disposed = true;
    this.runner.dispose?.();
    this.drafter?.dispose();
  }

  /** stops a request now: its blocks are freed and each open sequence ends with finishReason 'abort' */
  abort(id: string): boolean {
    const list = this.seqs.get(id);
    if (!list) return false;
    if (list[0]!.beam) return (this.beamAbort(list[0]!.beam, id), true);
    for (const s of [...list]) if (s.status !== 'finished') this.finish(s, 'abort', -1, '', undefined, false);
    return true;
  }

  stats(): EngineStats {
    return {
      running: this.scheduler.running.length,
      // a waiting request with n > 1 holds n sequences' worth of work (its siblings fork after the prompt)
      waiting: this.scheduler.waiting.reduce((s, q) => s + 1 + q.pendingForks, 0),
      kvBlocksUsed: this.blocks.numUsed,
      kvBlocksTotal: this.blocks.numBlocks,
      prefixCacheHits: this.blocks.prefixHits,
      acceptanceRate: this.draftProposed === 0 ? 0 : this.draftAccepted / this.draftProposed,
      preemptions: this.scheduler.preemptions,
    };
  }

  get hasWork(): boolean {
    return this.scheduler.hasWork;
  }

  // ---- stepping ----

  /** one iteration: schedule, run one flattened batch, sample; false when there was nothing to do */
  step(): boolean {
    if (this.disposed) throw new Error('engine: step() after dispose()');
    if (this.drafter) this.propose();
    let chunks = this.scheduler.schedule();
    if (chunks.length === 0 && this.unstickBeams()) chunks = this.scheduler.schedule();
    if (chunks.length === 0) return false;
    this.stepCount++;
    this.notePeak();
    const items: RunItem[] = chunks.map(({ seq, count }) => {
      const ids = [...seq.tokens.slice(seq.computed), ...seq.draft].slice(0, count);
      const samples = seq.computed + count >= seq.tokens.length;
      const logits = samples ? 1 + seq.draft.length : 0;
      return { ids, start: seq.computed, blocks: seq.table.blocks, logits, promptLength: seq.promptLength };
    });
    const logits = this.runner.run(items);
    if (this.drafter?.mtp)
      this.drafter.observe(
        chunks.map((c) => c.seq),
        items,
        (this.runner as ModelRunner).lastHidden!,
      );
    this.afterRun(chunks, items, logits);
    return true;
  }

  /** draft tokens for the running sequences that decode this step (and may speculate) */
  private propose(): void {
    const eligible = this.scheduler.running.filter(
      (s) => s.computed === s.tokens.length - 1 && s.pendingForks === 0 && this.canSpeculate(s),
    );
    const room = (s: Sequence) =>
      Math.min(s.opts.maxTokens - s.outputLength - 1, this.maxContext - s.tokens.length - 1);
    this.drafter!.propose(eligible, room);
  }

  /** penalties, masks and min-tokens depend on each previous token: those requests decode plainly */
  private canSpeculate(s: Sequence): boolean {
    const p = s.opts.params;
    const plain = (p.repetitionPenalty ?? 1) === 1 && !p.presencePenalty && !p.frequencyPenalty;
    return plain && !s.opts.logitsProcessor && s.outputLength >= s.opts.minTokens && !s.beam;
  }

  private afterRun(chunks: ScheduledChunk[], items: RunItem[], logits: Float32Array): void {
    const V = this.model.config.vocabSize;
    let r = 0;
    chunks.forEach(({ seq, count }, i) => {
      const rows = items[i]!.logits;
      const out = logits.subarray(r * V, (r + rows) * V);
      r += rows;
      if (seq.status === 'finished') return; // its request failed earlier in this step
      // what goes wrong in one request's own sampling (its mask, its constraint) ends that request only:
      // the batch's other requests are not its hostages
      try {
        this.afterChunk(seq, count, rows, out);
      } catch (e) {
        this.failRequest(seq.requestId, e as Error);
      }
    });
  }

  private afterChunk(seq: Sequence, count: number, rows: number, out: Float32Array): void {
    if (seq.draft.length > 0) return this.verify(seq, out);
    seq.computed += count;
    this.commit(seq);
    if (rows === 0 || seq.status !== 'running') return;
    if (seq.beam) return this.beamRow(seq, seq.beam, out.slice());
    const row = out.slice();
    const forks = seq.pendingForks;
    seq.pendingForks = 0;
    for (let f = 1; f <= forks; f++) this.sample(this.fork(seq, f), row.slice());
    this.sample(seq, row);
  }

  /**
   * Ends one request whose generation failed (every sequence leaves the scheduler, its blocks go back) and
   * makes its handle throw. The message starts with "generation:": the request was valid when it was added,
   * so this is the engine's failure, not the caller's input (a server must not answer it as a bad request).
   */
  private failRequest(id: string, e: Error): void {
    const list = this.seqs.get(id) ?? [];
    const h = this.handles.get(id);
    this.release(id, list[0]?.beam ? list[0].beam.live : list);
    h?.fail(new Error(`generation: ${e.message.replace(/^generation: /, '')}`));
  }

  /** every unfinished sequence of a request leaves the scheduler and gives its blocks back; the request is forgotten */
  private release(id: string, seqs: readonly Sequence[]): void {
    for (const s of seqs) {
      if (s.status === 'finished') continue;
      this.scheduler.remove(s);
      s.status = 'finished';
    }
    this.seqs.delete(id);
    this.handles.delete(id);
  }

  private commit(seq: Sequence): void {
    this.blocks.commit(seq.table, seq.tokens, seq.computed);
    if (this.window !== null) this.blocks.dropBefore(seq.table, seq.computed - this.window + 1);
  }

  /** rejection-samples a sequence's draft against the target rows [(1 + k) * V]; rolls caches back */
  private verify(seq: Sequence, rows: Float32Array): void {
    const V = this.model.config.vocabSize;
    const L = seq.tokens.length;
    const k = seq.draft.length;
    const processed = Array.from({ length: k + 1 }, (_, i) => {
      const row = rows.slice(i * V, (i + 1) * V);
      applyPenalties(row, seq.opts.params, seq.penalties); // logit bias only (penalised requests never draft)
      return row;
    });
    const { tokens, accepted } = isGreedy(seq.opts.params)
      ? verifyGreedy(processed, seq.draft)
      : verifyDraft(
          processed.map((row) => probsOf(row, seq.opts.params)),
          seq.draft,
          seq.draftQ,
          seq.rng,
        );
    this.draftProposed += k;
    this.draftAccepted += accepted;
    seq.computed = L + accepted;
    this.blocks.truncate(seq.table, seq.computed);
    this.commit(seq);
    this.drafter!.rollback(seq, seq.computed);
    [seq.draft, seq.draftQ] = [[], []];
    for (let i = 0; i < tokens.length && seq.status === 'running'; i++) this.emitToken(seq, tokens[i]!, processed[i]!);
  }

  /** sibling `index` of a sequence that just finished its prompt: shares every block */
  private fork(seq: Sequence, index: number): Sequence {
    const req = seq.opts.params as EngineRequest;
    const h = this.handles.get(seq.requestId)!;
    const child = this.newSequence(seq.requestId, index, seq.tokens, seq.promptLength, seq.opts, req, h);
    this.seqs.get(seq.requestId)!.push(child);
    if (this.slotted) {
      // a recurrent state cannot be shared or copied block-wise: the sibling takes its own slot and
      // recomputes the prompt there (O(prompt) for these families), first in the queue
      child.status = 'waiting';
      this.scheduler.waiting.unshift(child);
      return child;
    }
    child.table = this.blocks.fork(seq.table);
    child.computed = seq.computed;
    child.status = 'running';
    this.drafter?.fork(seq, child);
    this.scheduler.running.push(child);
    return child;
  }

  private sample(seq: Sequence, row: Float32Array): void {
    const o = seq.opts;
    applyPenalties(row, o.params, seq.penalties);
    const mask = o.logitsProcessor?.(seq.tokens.slice(seq.promptLength));
    if (mask === 'finished') return this.finish(seq, 'stop', -1, '');
    if (mask) for (let i = 0; i < row.length; i++) if (!mask[i]) row[i] = -Infinity;
    if (seq.outputLength < o.minTokens) for (const s of o.stopIds) row[s] = -Infinity;
    // greedy decoding would take token 0 of an all -Infinity row and feed it to the constraint
    if (!anyAllowed(row)) throw new Error('sampling: every token is masked out');
    this.emitToken(seq, drawToken(row, o.params, seq.rng), row);
  }

  /** appends a chosen token, streams its text, ends the sequence when a stop or limit is reached */
  private emitToken(seq: Sequence, id: number, row: Float32Array): void {
    const o = seq.opts;
    const lp = o.params.logprobs !== undefined ? logprobsOf(row, id, o.params.logprobs) : null;
    seq.push(id);
    const now = performance.now();
    if (seq.firstTokenAt === 0) seq.firstTokenAt = now;
    seq.lastTokenAt = now;
    const logprobs = lp ? { logprob: lp.logprob!, top: lp.top ?? [] } : undefined;
    if (o.stopIds.has(id)) return this.finish(seq, 'stop', id, '', logprobs, true); // a stop token shows no text
    // below minTokens no stop string may end the sequence (stop ids are masked in sample())
    const { text, stopped } = seq.text.push(id, seq.outputLength >= o.minTokens);
    const reason = this.finishReason(seq, stopped);
    if (reason) return this.finish(seq, reason, id, text, logprobs, !stopped);
    seq.emit({ id: seq.requestId, index: seq.index, token: id, text, logprobs, finishReason: null });
  }

  /** positions the next step would need: the whole stream, or an encoder-decoder's decoder steps */
  private decodeLength(seq: Sequence): number {
    return this.seq2seq ? seq.outputLength : seq.tokens.length;
  }

  private finishReason(seq: Sequence, stopped: boolean): FinishReason | null {
    if (stopped) return 'stop';
    if (seq.outputLength >= seq.opts.maxTokens || this.decodeLength(seq) >= this.maxContext) return 'length';
    return null;
  }

  /** ends a sequence; `flush`: show text still held back (not when a stop string matched) */
  private finish(
    seq: Sequence,
    reason: FinishReason,
    id: number,
    text: string,
    logprobs?: TokenEvent['logprobs'],
    flush = true,
  ): void {
    const rest = flush ? seq.text.finish(seq.outputLength >= seq.opts.minTokens) : '';
    this.scheduler.remove(seq);
    seq.status = 'finished';
    seq.emit({ id: seq.requestId, index: seq.index, token: id, text: text + rest, logprobs, finishReason: reason });
    // siblings never forked (aborted before the prompt finished) still end, so the handle closes
    for (let f = 1; f <= seq.pendingForks; f++)
      seq.emit({ id: seq.requestId, index: f, token: -1, text: '', finishReason: reason });
    seq.pendingForks = 0;
    const list = this.seqs.get(seq.requestId)!;
    if (list.every((s) => s.status === 'finished')) {
      this.seqs.delete(seq.requestId);
      this.handles.delete(seq.requestId);
    }
  }

  // ---- beam search ----

  private checkBeams(req: EngineRequest, promptLength: number, maxTokens: number): void {
    const { beams = 1, n = 1, lengthPenalty = 1, earlyStopping = false } = req;
    const seats = this.scheduler.limits.maxRunningSeqs;
    if (!Number.isInteger(beams) || beams < 1 || beams > seats)
      throw new Error(`request: beams must be an integer in [1, maxRunningSeqs=${seats}], got ${beams}`);
    if (!Number.isFinite(lengthPenalty)) throw new Error(`request: lengthPenalty must be finite, got ${lengthPenalty}`);
    if (earlyStopping !== true && earlyStopping !== false && earlyStopping !== 'never')
      throw new Error(`request: earlyStopping must be true, false or 'never', got ${String(earlyStopping)}`);
    if (beams === 1) {
      for (const k of ['lengthPenalty', 'earlyStopping'] as const)
        if (req[k] !== undefined) throw new Error(`request: ${k} needs beam search (beams > 1)`);
      return;
    }
    if (n > beams) throw new Error(`request: n (${n}) must be at most beams (${beams})`);
    if (this.recurrent)
      throw new Error(`request: beam search needs a paged KV cache (${this.model.config.family} is recurrent)`);
    // the search is deterministic over the model's log-probabilities: anything that would sample or
    // reshape the distribution is refused rather than silently ignored
    const refused = {
      stop: req.stop?.length,
      logprobs: req.logprobs !== undefined,
      logitsProcessor: req.logitsProcessor,
      constraint: req.constraint,
      temperature: (req.temperature ?? 0) !== 0,
      topK: (req.topK ?? 0) !== 0,
      topP: (req.topP ?? 1) !== 1,
      minP: (req.minP ?? 0) !== 0,
      repetitionPenalty: (req.repetitionPenalty ?? 1) !== 1,
      presencePenalty: (req.presencePenalty ?? 0) !== 0,
      frequencyPenalty: (req.frequencyPenalty ?? 0) !== 0,
      logitBias: Object.keys(req.logitBias ?? {}).length > 0,
    };
    for (const [k, v] of Object.entries(refused))
      if (v) throw new Error(`request: ${k} is not supported with beam search (beams = ${beams})`);
    // every beam of one request must fit the pool at once (no prefix sharing assumed: a preempted beam
    // recomputes alone), so that the oldest beam request can always make progress (see unstickBeams)
    const need = beams * Math.ceil(this.streamLength(promptLength, maxTokens) / this.pool.blockSize);
    if (need > this.pool.numBlocks)
      throw new Error(
        `request: ${beams} beams of prompt + maxTokens need ${need} KV blocks; the pool has ${this.pool.numBlocks} (raise kvMemoryBytes)`,
      );
  }

  /**
   * A beam that has its row for this search step waits, holding its blocks, for its siblings. When
   * nothing can run (the waiting sequences find no free blocks), the oldest beam request gets the pool:
   * the idle beams of younger beam requests are preempted (recomputed later) and the oldest request's
   * waiting beams go to the front of the queue. One request's beams always fit (checked at add), so the
   * oldest makes progress and no set of half-resident beam requests can deadlock. True when it moved any.
   */
  private unstickBeams(): boolean {
    const s = this.scheduler;
    if (s.waiting.length === 0) return false;
    let oldest: BeamGroup | null = null;
    for (const q of [...s.running, ...s.waiting])
      if (q.beam && (!oldest || q.beam.arrival < oldest.arrival)) oldest = q.beam;
    if (!oldest) return false;
    const idle = s.running.filter((q) => q.beam && q.beam !== oldest && q.computed === q.tokens.length);
    for (const q of idle.reverse()) s.preempt(q);
    const mine = s.waiting.filter((q) => q.beam === oldest);
    const moved = mine.some((q, i) => s.waiting[i] !== q);
    if (moved) s.waiting.splice(0, s.waiting.length, ...mine, ...s.waiting.filter((q) => q.beam !== oldest));
    return idle.length > 0 || moved;
  }

  private beamGroup(first: Sequence, req: EngineRequest, promptLength: number): BeamGroup {
    const width = req.beams!;
    first.pendingForks = width - 1; // seats for the beams forked at the first step
    const search = new BeamSearch({
      width,
      lengthPenalty: req.lengthPenalty ?? 1,
      earlyStopping: req.earlyStopping ?? false,
      maxTokens: Math.min(first.opts.maxTokens, this.maxContext - (this.seq2seq ? 0 : promptLength)),
      minTokens: first.opts.minTokens,
      eos: first.opts.stopIds,
    });
    return { search, n: req.n ?? 1, arrival: first.arrival, live: [first], scores: [0], rows: new Map() };
  }

  /** a beam's row of this step; once every live beam has one, the search steps */
  private beamRow(seq: Sequence, g: BeamGroup, row: Float32Array): void {
    seq.pendingForks = 0;
    g.rows.set(seq, logSoftmax(row));
    if (!g.live.every((s) => g.rows.has(s))) return;
    const beams = g.live.map((s, i) => ({ out: s.tokens.slice(s.promptLength), score: g.scores[i]! }));
    const next = g.search.step(
      beams,
      g.live.map((s) => g.rows.get(s)!),
    );
    g.rows.clear();
    if (next.length === 0) return this.beamFinish(g);
    this.beamAdvance(g, beams, next);
  }

  /** the new beams take forks of their parents' block tables (copy-on-write), then the old tables go */
  private beamAdvance(g: BeamGroup, beams: { out: number[] }[], next: BeamChoice[]): void {
    const old = g.live;
    const empty = () => ({ blocks: [] as number[], hashes: [] as string[] });
    const cached = (s: Sequence) => s.status === 'running' && s.computed === s.tokens.length;
    const tables = next.map(({ parent }) => {
      const p = old[parent]!; // a preempted parent has nothing cached: its child recomputes
      return cached(p) ? { table: this.blocks.fork(p.table), computed: p.computed } : { table: empty(), computed: 0 };
    });
    for (const s of old) {
      this.blocks.freeTable(s.table);
      [s.table, s.computed] = [empty(), 0];
    }
    for (const s of old.slice(next.length)) {
      this.scheduler.remove(s);
      s.status = 'finished';
    }
    g.live = next.map((_, i) => old[i] ?? this.beamSibling(old[0]!, i, g));
    g.live.forEach((s, i) => {
      const c = next[i]!;
      s.tokens.length = s.promptLength;
      s.tokens.push(...beams[c.parent]!.out, c.token);
      [s.table, s.computed] = [tables[i]!.table, tables[i]!.computed];
    });
    g.scores = next.map((c) => c.score);
    this.seqs.set(g.live[0]!.requestId, [...g.live]); // dropped beams are gone (their blocks already freed)
  }

  private beamSibling(first: Sequence, index: number, g: BeamGroup): Sequence {
    const req = first.opts.params as EngineRequest;
    const h = this.handles.get(first.requestId)!;
    const s = this.newSequence(first.requestId, index, first.tokens, first.promptLength, first.opts, req, h);
    s.beam = g;
    s.status = 'running';
    this.scheduler.running.push(s);
    this.seqs.get(first.requestId)!.push(s);
    return s;
  }

  /** the search is over: the beams' blocks go back, the best n hypotheses stream out */
  private beamFinish(g: BeamGroup): void {
    const id = g.live[0]!.requestId;
    const h = this.handles.get(id)!;
    this.release(id, g.live);
    const hyps = g.search.result(g.n);
    hyps.forEach((hyp, i) => this.emitHypothesis(h, id, i, hyp));
    for (let i = hyps.length; i < g.n; i++) h.push({ id, index: i, token: -1, text: '', finishReason: 'stop' });
  }

  private emitHypothesis(h: RequestHandle, id: string, index: number, hyp: Hypothesis): void {
    const text = new StopText(this.tokenizer ? this.tokenizer.decodeStream() : null, []);
    const last = hyp.eos === null ? hyp.tokens.length - 1 : -1;
    hyp.tokens.forEach((token, j) => {
      const end = j === last;
      const t = text.push(token).text + (end ? text.finish() : '');
      h.push({
        id,
        index,
        token,
        text: t,
        finishReason: end ? 'length' : null,
        ...(end ? { beamScore: hyp.score } : {}),
      });
    });
    if (hyp.eos !== null)
      h.push({ id, index, token: hyp.eos, text: text.finish(), finishReason: 'stop', beamScore: hyp.score });
  }

  private beamAbort(g: BeamGroup, id: string): void {
    const h = this.handles.get(id)!;
    this.release(id, g.live);
    for (let i = 0; i < g.n; i++) h.push({ id, index: i, token: -1, text: '', finishReason: 'abort' });
  }

  private notePeak(): void {
    const used = this.blocks.numUsed;
    if (used < this.peakBlocks) return;
    this.peakBlocks = used;
    const filled = this.scheduler.running.reduce((s, q) => s + q.tokens.length, 0);
    this.peakWasteSlots = this.slotted ? 0 : Math.max(0, used * this.pool.blockSize - filled);
  }

  /** runs steps until no request is left (synchronously) */
  runToCompletion(): void {
    while (this.step());
  }

  /** starts the self-driving loop when requests wait and autoRun is on */
  private kick(): void {
    if (!this.autoRun || this.looping) return;
    this.looping = true;
    const tick = () => {
      try {
        if (!this.disposed && this.step()) return macrotask(tick);
      } catch (e) {
        this.failAll(new Error(`generation: the engine failed: ${(e as Error).message}`));
      }
      this.looping = false;
    };
    macrotask(tick);
  }

  /** a model error fails every open request (the engine state is unknown afterwards) */
  private failAll(e: Error): void {
    for (const [id, list] of this.seqs) {
      for (const s of list) this.scheduler.remove(s);
      this.handles.get(id)?.fail(e);
    }
    this.seqs.clear();
    this.handles.clear();
  }
}
