// Continuous (iteration-level) batching, vLLM v1 style: each step the scheduler only decides which
// tokens of which sequences run, under a token budget. Running sequences first (a decode token each, or
// the next chunk of a long prefill), then waiting ones in arrival order (FCFS), with prefix-cache hits
// skipping the cached part of their prompt. When the KV pool runs out of blocks, the most recently
// admitted running sequence is preempted: its blocks are freed and it goes back to the front of the
// waiting queue, to be recomputed later (delayed, never lost).
import type { BlockManager } from './block-manager.js';
import type { Sequence } from './sequence.js';

export interface SchedulerLimits {
  /** tokens per step, all sequences together */
  maxBatchedTokens: number;
  /** sequences in the running queue */
  maxRunningSeqs: number;
}

export interface ScheduledChunk {
  seq: Sequence;
  /** tokens of seq.tokens from seq.computed that run this step */
  count: number;
}

export class Scheduler {
  readonly waiting: Sequence[] = [];
  readonly running: Sequence[] = [];
  preemptions = 0;

  /** called when a sequence gives its blocks back (finished, aborted, preempted): drafter state */
  onRelease: (seq: Sequence) => void = () => {};

  constructor(
    readonly blocks: BlockManager,
    readonly limits: SchedulerLimits,
    private readonly copyBlock: (from: number, to: number) => void,
  ) {}

  add(seq: Sequence): void {
    seq.status = 'waiting';
    this.waiting.push(seq);
  }

  get hasWork(): boolean {
    return this.waiting.length + this.running.length > 0;
  }

  /** removes a sequence from either queue and frees its blocks */
  remove(seq: Sequence): void {
    for (const q of [this.waiting, this.running]) {
      const i = q.indexOf(seq);
      if (i >= 0) q.splice(i, 1);
    }
    this.blocks.freeTable(seq.table);
    seq.computed = 0;
    this.onRelease(seq);
  }

  schedule(): ScheduledChunk[] {
    let budget = this.limits.maxBatchedTokens;
    const out: ScheduledChunk[] = [];
    let preempted = false;
    for (let i = 0; i < this.running.length && budget > 0; i++) {
      const seq = this.running[i]!;
      const left = seq.tokens.length - seq.computed;
      const n = Math.min(left + seq.draft.length, budget);
      if (n <= 0) continue;
      seq.draft.length = seq.draftQ.length = Math.max(0, n - left); // drafts past the budget are dropped
      let ok = this.grow(seq, n);
      while (!ok && this.running.length - 1 > i) {
        this.preempt(this.running[this.running.length - 1]!);
        preempted = true;
        ok = this.grow(seq, n);
      }
      if (!ok) {
        this.preempt(seq); // the last one left: it waits for blocks to come back
        preempted = true;
        break;
      }
      out.push({ seq, count: n });
      budget -= n;
    }
    if (!preempted) this.admit(out, budget);
    return out;
  }

  private grow(seq: Sequence, n: number): boolean {
    return this.blocks.ensure(seq.table, seq.computed, seq.computed + n, this.copyBlock);
  }

  /** waiting sequences, first come first served, while budget, seats and blocks allow */
  private admit(out: ScheduledChunk[], budget: number): void {
    while (this.waiting.length > 0 && budget > 0) {
      const seq = this.waiting[0]!;
      if (this.running.length + 1 + seq.pendingForks > this.limits.maxRunningSeqs) return;
      let hits = 0;
      if (seq.computed === 0) {
        const hit = this.blocks.matchPrefix(seq.tokens);
        [seq.table, seq.computed, hits] = [hit.table, hit.tokens, hit.table.blocks.length];
      }
      const n = Math.min(seq.tokens.length - seq.computed, budget);
      if (!this.grow(seq, n)) {
        this.blocks.freeTable(seq.table);
        seq.computed = 0;
        return;
      }
      this.blocks.prefixHits += hits;
      this.waiting.shift();
      seq.status = 'running';
      this.running.push(seq);
      out.push({ seq, count: n });
      budget -= n;
    }
  }

  /** frees a running sequence's blocks and puts it at the front of the waiting queue (recompute) */
  preempt(seq: Sequence): void {
    this.running.splice(this.running.indexOf(seq), 1);
    this.blocks.freeTable(seq.table);
    seq.computed = 0;
    this.onRelease(seq);
    seq.status = 'waiting';
    this.waiting.unshift(seq);
    this.preemptions++;
  }
}
