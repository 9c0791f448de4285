// One generated sequence (a request with n > 1 has n of them): its tokens, how many are in the KV cache,
// its block table, its sampler state and its text. Owned by the engine; the scheduler moves it between
// the waiting and running queues.
import type { Rng } from '../../tensor/random.js';
import type { BlockTable } from './block-manager.js';
import type { PenaltyState, SamplingParams, TokenLogprob } from './sampler.js';
import { StopText } from './stop-text.js';
import type { BeamSearch } from './beam.js';

/** the live beams of one beam-search request: each step waits for every beam's row, then re-forks */
export interface BeamGroup {
  search: BeamSearch;
  /** hypotheses returned */
  n: number;
  /** arrival order of the request (the oldest beam request is unstuck first) */
  arrival: number;
  live: Sequence[];
  /** running sum of log-probabilities, per live beam */
  scores: number[];
  /** log-softmax rows of the live beams that ran this step */
  rows: Map<Sequence, Float32Array>;
}

/** (tokens so far) -> allowed-token mask over the vocabulary (1 = allowed), or null for no constraint */
/** allowed-token mask for the next token given the output so far (null: no constraint this step;
 * 'finished': the constrained output is complete and nothing may follow, so the sequence ends) */
export type LogitsProcessor = (tokenIds: readonly number[]) => Uint8Array | null | 'finished';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface TokenEvent {
  /** request id */
  id: string;
  /** which of the request's n sequences */
  index: number;
  /** the new token id */
  token: number;
  /** text this token completes (may be '' while a UTF-8 sequence or a possible stop string is pending) */
  text: string;
  /** log-probability of the token and the top alternatives, when the request asked for logprobs */
  logprobs?: { logprob: number; top: TokenLogprob[] };
  /** set on the sequence's last event */
  finishReason: FinishReason | null;
  /** beam search: the hypothesis' length-penalised score, on its last event */
  beamScore?: number;
}

export interface SequenceOptions {
  params: SamplingParams;
  maxTokens: number;
  minTokens: number;
  stopIds: ReadonlySet<number>;
  logitsProcessor: LogitsProcessor | null;
}

export class Sequence {
  /** prompt followed by the output */
  readonly tokens: number[];
  /** tokens whose keys/values are in the cache */
  computed = 0;
  table: BlockTable = { blocks: [], hashes: [] };
  status: 'waiting' | 'running' | 'finished' = 'waiting';
  /** siblings still to fork from this sequence at its first sample (n > 1) */
  pendingForks = 0;
  readonly penalties: PenaltyState;
  /** speculative decoding: draft tokens proposed for this step and the drafter's distributions */
  draft: number[] = [];
  draftQ: (Float32Array | null)[] = [];
  /** the draft model's block table and cached tokens */
  draftTable: BlockTable = { blocks: [], hashes: [] };
  draftComputed = 0;
  /** beam search: the request's beams (null: sampled) */
  beam: BeamGroup | null = null;
  /** wall time of the first token, of the previous token (benchmarks) */
  firstTokenAt = 0;
  lastTokenAt = 0;

  constructor(
    readonly requestId: string,
    readonly index: number,
    readonly arrival: number,
    readonly promptLength: number,
    tokens: readonly number[],
    readonly opts: SequenceOptions,
    readonly rng: Rng,
    readonly text: StopText,
    readonly emit: (e: TokenEvent) => void,
  ) {
    this.tokens = [...tokens];
    const seen = new Set(tokens.slice(0, promptLength));
    const counts = new Map<number, number>();
    for (const t of tokens.slice(promptLength)) [seen.add(t), counts.set(t, (counts.get(t) ?? 0) + 1)];
    this.penalties = { seen, counts };
  }

  get outputLength(): number {
    return this.tokens.length - this.promptLength;
  }

  push(id: number): void {
    this.tokens.push(id);
    this.penalties.seen.add(id);
    this.penalties.counts.set(id, (this.penalties.counts.get(id) ?? 0) + 1);
  }
}
