// Draft proposals for speculative decoding, batched over every decoding sequence: a draft model runs
// ragged steps over its own paged cache (first a catch-up chunk of the tokens it has not seen, then one
// token per step), or prompt lookup copies what followed an earlier n-gram match. Draft distributions use
// the request's own sampling parameters, so q matches what the drafter actually sampled from. The target's
// own multi-token-prediction depths (DeepSeek-V3) draft through MtpDrafter (mtp-drafter.ts).
import type { LanguageModel } from '../../models/model.js';
import type { DecoderConfig, ModelConfig } from '../../models/config.js';
import { BlockManager } from './block-manager.js';
import { KvPool, layerSpecs } from './kv-pool.js';
import { ModelRunner, type RunItem } from './runner.js';
import type { Sequence } from './sequence.js';
import { drawFrom, probsOf, promptLookup } from './speculative.js';
import { argmax, isGreedy } from './sampler.js';
import { MtpDrafter } from './mtp-drafter.js';

/**
 * A notice for the user when a draft model's context is shorter than the target's: a sequence past the
 * draft's last position decodes without drafts (its learned position table, or its trained length, ends
 * there). Null when the draft covers the target's context, or sequences of `length` tokens.
 */
export function draftContextNotice(target: ModelConfig, draft: ModelConfig, length = Infinity): string | null {
  const [t, d] = [target, draft].map((c) => ('maxContext' in c ? c.maxContext : Infinity));
  if (!(d! < t!) || length <= d!) return null;
  return (
    `the draft model's context is ${d} positions (the target's ${Number.isFinite(t) ? t : 'unbounded'}): ` +
    `tokens past position ${d} decode without speculation`
  );
}

export type DraftSource =
  | { kind: 'model'; model: LanguageModel; kvMemoryBytes: number; prefault?: boolean }
  | { kind: 'prompt-lookup'; maxNgram: number }
  /** the target's own MTP depths (`model` is the target); kvMemoryBytes sizes their KV pool */
  | { kind: 'mtp'; model: LanguageModel; kvMemoryBytes: number };

export class Drafter {
  private readonly runner: ModelRunner | null = null;
  private readonly blocks: BlockManager | null = null;
  /** set for { kind: 'mtp' }: it needs the target's final states of every run (`observe`) */
  readonly mtp: MtpDrafter | null = null;
  /** the draft model's context: past it (a learned position table may be shorter than the target's) the
   * sequence decodes plainly */
  private readonly draftContext: number = Infinity;

  constructor(
    source: DraftSource,
    readonly k: number,
    blockSize: number,
    vocabSize: number,
    private readonly maxNgram = 3,
  ) {
    if (!Number.isInteger(k) || k < 1) throw new Error(`engine: speculativeTokens must be an integer >= 1, got ${k}`);
    if (source.kind === 'prompt-lookup') {
      this.maxNgram = source.maxNgram;
      return;
    }
    if (source.kind === 'mtp') {
      this.mtp = new MtpDrafter(source.model, k, blockSize, source.kvMemoryBytes);
      return;
    }
    const cfg = source.model.config as DecoderConfig;
    if (cfg.vocabSize !== vocabSize)
      throw new Error(
        `engine: the draft model's vocabulary (${cfg.vocabSize}) differs from the target's (${vocabSize})`,
      );
    if ('maxContext' in cfg) this.draftContext = cfg.maxContext;
    source.model.eval();
    const pool = new KvPool(layerSpecs(cfg), blockSize, source.kvMemoryBytes, 'auto', 'float32', source.prefault);
    try {
      this.runner = new ModelRunner(source.model, pool);
    } catch (e) {
      pool.dispose(); // native memory: not left behind by a constructor that throws
      throw e;
    }
    this.blocks = new BlockManager(this.runner.pool.numBlocks, blockSize, true);
  }

  /** fills seq.draft / seq.draftQ for each sequence (at most `room(seq)` tokens each) */
  propose(seqs: readonly Sequence[], room: (s: Sequence) => number): void {
    if (this.mtp) return this.mtp.propose(seqs, room);
    // the draft feeds positions up to tokens + want - 2: keep them inside its own context
    const want = seqs.map((s) => Math.max(0, Math.min(this.k, room(s), this.draftContext - s.tokens.length)));
    for (const s of seqs) if (this.blocks && s.tokens.length >= this.draftContext) this.release(s); // never again
    if (!this.runner) {
      seqs.forEach((s, i) => {
        s.draft = want[i]! > 0 ? promptLookup(s.tokens, want[i]!, this.maxNgram) : [];
        s.draftQ = s.draft.map(() => null);
      });
      return;
    }
    const active = seqs.filter((s, i) => want[i]! > 0 && this.reserve(s, s.tokens.length + want[i]! - 1));
    for (const s of active) [s.draft, s.draftQ] = [[], []];
    const steps = Math.max(0, ...active.map((s) => want[seqs.indexOf(s)]!));
    for (let j = 0; j < steps; j++) {
      const now = active.filter((s) => s.draft.length < want[seqs.indexOf(s)]!);
      if (now.length === 0) break;
      this.draftStep(now);
    }
  }

  /** one draft token for each sequence: feed what the draft cache lacks, sample from q */
  private draftStep(seqs: Sequence[]): void {
    const items: RunItem[] = seqs.map((s) => {
      // what the draft cache lacks of tokens ++ draft (1 token, or a few after a round or the prompt)
      const [L, ids] = [s.tokens.length, [] as number[]];
      for (let j = s.draftComputed; j < L + s.draft.length; j++) ids.push(j < L ? s.tokens[j]! : s.draft[j - L]!);
      return { ids, start: s.draftComputed, blocks: s.draftTable.blocks, logits: 1 };
    });
    const logits = this.runner!.run(items);
    const V = logits.length / seqs.length;
    seqs.forEach((s, i) => {
      s.draftComputed += items[i]!.ids.length;
      this.blocks!.commit(s.draftTable, s.tokens, Math.min(s.draftComputed, s.tokens.length));
      const row = logits.subarray(i * V, (i + 1) * V);
      if (isGreedy(s.opts.params)) {
        // greedy: the draft's argmax, no distribution (verification compares it with the target's argmax)
        s.draft.push(argmax(row));
        s.draftQ.push(null);
        return;
      }
      const q = probsOf(row.slice(), s.opts.params);
      s.draft.push(drawFrom(q, s.rng));
      s.draftQ.push(q);
    });
  }

  /** draft blocks for `n` tokens; on failure the sequence's draft cache is dropped (no speculation) */
  private reserve(s: Sequence, n: number): boolean {
    if (this.blocks!.ensure(s.draftTable, s.draftComputed, n, (a, b) => this.runner!.pool.copyBlock(a, b))) return true;
    this.release(s);
    return false;
  }

  /** after verification: the draft cache keeps only positions that are still the sequence's tokens */
  rollback(s: Sequence, validTokens: number): void {
    if (this.mtp) return this.mtp.rollback(s, validTokens);
    if (!this.blocks) return;
    s.draftComputed = Math.min(s.draftComputed, validTokens);
    this.blocks.truncate(s.draftTable, s.draftComputed);
  }

  /** frees the draft model's (or MTP depths') KV pool */
  dispose(): void {
    this.runner?.dispose();
    this.mtp?.pool.dispose();
  }

  release(s: Sequence): void {
    if (this.mtp) return this.mtp.release(s);
    [s.draft, s.draftQ] = [[], []];
    if (!this.blocks) return;
    this.blocks.freeTable(s.draftTable);
    s.draftComputed = 0;
  }

  /** MTP: the target's final states of the rows it just ran ([T * D], items in order) */
  observe(seqs: readonly Sequence[], items: readonly RunItem[], hidden: Float32Array): void {
    this.mtp?.observe(seqs, items, hidden);
  }

  /** MTP: a sibling forked after the prompt inherits the parent's states */
  fork(parent: Sequence, child: Sequence): void {
    this.mtp?.fork(parent, child);
  }
}
