// Multi-token-prediction drafts (DeepSeek-V3 §2.2, used for speculative decoding as vLLM's DeepSeek MTP
// proposer does): the target's OWN MTP depths propose the draft tokens, so no second model is loaded.
//
// Notation: N tokens known (t_0..t_{N-1}; the target has computed positions 0..N-2 and feeds t_{N-1} next),
// h_p the target's final (normed) state at p, h^d_p depth d's output state at p (h^0 = h), D depths, k drafts.
//
// Depth d at position p joins h^{d-1}_p with the embedding of t_{p+d} and predicts t_{p+d+1} (exactly as
// DecoderLM.mtpForward trains it: same position p, same RoPE, causal attention over depth d's own keys).
//   - draft 1:      depth 1 at p = N-2 (h_{N-2}, t_{N-1})              -> t_N
//   - draft d <= D: depth d at p = N-2 (h^{d-1}_{N-2}, draft d-1)       -> t_{N+d-1}
//   - draft j > D:  CHAINED — depth D again, one position further (q = N-2 + j-D), joining its own output
//     state at q-1 with the embedding of draft j-1. h^D_{q-1} stands in for h^{D-1}_q: both predict the same
//     token. With D = 1 this is vLLM's chaining of the single V3 MTP layer.
// Each depth has its own attention, so its own paged KV pool (one layer per depth, sized by bytes, one block
// table per sequence: `seq.draftTable`). Depth d's key at p is REAL when its inputs are the sequence's tokens
// and real states (p <= N-1-d); positions beyond are drafts, rewritten by the next round's catch-up, so a
// rejected draft needs no KV rollback — only blocks past the real positions go back.
//
// The target hands over its states: the runner keeps the final states of every fed position (one read of
// [T, D] per step, next to the logits read), `observe` appends each sequence's rows; verification then trims
// them to the accepted positions (`rollback`). Rows of states not yet turned into depth-1 keys wait per
// sequence (a prompt's worth before the first draft, one to k + 1 rows per step after).
import type { Tensor } from '../../tensor/tensor.js';
import { noGrad, tidy } from '../../tensor/engine.js';
import { indexTensor, tensor } from '../../ops/index.js';
import { DecoderLM } from '../../models/decoder.js';
import type { LanguageModel, PagedBatch } from '../../models/model.js';
import type { PagedLayer } from '../../nn/attention.js';
import { BlockManager } from './block-manager.js';
import { bytesPerBlock, KvPool, layerSpecs, type LayerSpec } from './kv-pool.js';
import { pagedAttention, type BatchLayout } from './paged-attention.js';
import { writeStep } from './paged-backend.js';
import type { RunItem } from './runner.js';
import type { Sequence } from './sequence.js';
import { drawFrom, probsOf } from './speculative.js';

/** depth d's inputs waiting to become keys: h^{d-1} rows of positions [computed, computed + rows.length) */
interface DepthState {
  /** positions 0..computed-1 of this depth hold real keys */
  computed: number;
  rows: Float32Array[];
}

interface MtpState {
  depths: DepthState[];
  /** the target skipped positions (prefix-cache hit): no states to build keys from, so no drafts */
  broken: boolean;
}

/** one sequence's part of a depth's batch */
interface MtpItem {
  start: number;
  /** tokens one depth ahead of each position */
  ids: number[];
  /** the previous depth's states at those positions, [D] each */
  prev: Float32Array[];
  blocks: readonly number[];
}

/** the KV storage of the MTP depths: one layer each, of the main stack's kind, with the last main layer's
 * window (as mtpForward masks them) */
function mtpSpecs(model: DecoderLM): LayerSpec[] {
  const last = layerSpecs(model.config).at(-1)!;
  return model.mtpLayers.map(() => ({ ...last }));
}

/** bytes of an MTP pool of `blocks` blocks (the engine's default: as many blocks as the target's pool, plus
 * one per running sequence — an MTP table never covers more positions than the target's) */
export function mtpKvBytes(model: LanguageModel, blocks: number, blockSize: number): number {
  return blocks * bytesPerBlock(mtpSpecs(mtpModel(model)), blockSize);
}

/** the model's MTP depths, or a clear error */
export function mtpModel(model: LanguageModel): DecoderLM {
  const depth = model.config.arch === 'decoder' ? (model.config.mtp?.depth ?? 0) : 0;
  if (!(model instanceof DecoderLM) || depth < 1 || model.mtpLayers.length < 1)
    throw new Error(
      `engine: MTP drafting needs a model with multi-token-prediction depths (config.mtp.depth >= 1, e.g. DeepSeek-V3's num_nextn_predict_layers); ${model.config.family} has none`,
    );
  return model;
}

export class MtpDrafter {
  readonly model: DecoderLM;
  readonly pool: KvPool;
  readonly blocks: BlockManager;
  /** D */
  readonly depth: number;
  private readonly width: number;
  private readonly states = new Map<Sequence, MtpState>();

  constructor(
    model: LanguageModel,
    readonly k: number,
    blockSize: number,
    kvMemoryBytes: number,
  ) {
    this.model = mtpModel(model);
    const cfg = this.model.config;
    this.depth = this.model.mtpLayers.length;
    this.width = cfg.hidden;
    this.pool = new KvPool(mtpSpecs(this.model), blockSize, kvMemoryBytes);
    this.blocks = new BlockManager(this.pool.numBlocks, blockSize, false);
  }

  private state(s: Sequence): MtpState {
    let st = this.states.get(s);
    if (!st) {
      st = { depths: Array.from({ length: this.depth }, () => ({ computed: 0, rows: [] })), broken: false };
      this.states.set(s, st);
    }
    return st;
  }

  /** the target just ran `items` (in order) and its final states of every fed row are `hidden` [T * D] */
  observe(seqs: readonly Sequence[], items: readonly RunItem[], hidden: Float32Array): void {
    const W = this.width;
    let t = 0;
    items.forEach((it, i) => {
      const st = this.state(seqs[i]!);
      const d1 = st.depths[0]!;
      const end = d1.computed + d1.rows.length;
      if (it.start < d1.computed || it.start > end) {
        // a recomputation from an earlier point or a gap: start over (a gap can never draft again)
        this.reset(seqs[i]!, st);
        st.broken = it.start > 0;
      } else d1.rows.length = it.start - d1.computed;
      for (let j = 0; j < it.ids.length; j++, t++) d1.rows.push(hidden.slice(t * W, (t + 1) * W));
    });
  }

  /** fills seq.draft / seq.draftQ (at most `room(seq)` tokens each); a sequence that cannot draft gets none */
  propose(seqs: readonly Sequence[], room: (s: Sequence) => number): void {
    const want = new Map<Sequence, number>();
    for (const s of seqs) {
      [s.draft, s.draftQ] = [[], []];
      const n = Math.min(this.k, room(s));
      if (n > 0 && this.ready(s) && this.reserve(s, s.tokens.length - 1 + Math.max(0, n - this.depth))) want.set(s, n);
    }
    if (want.size === 0) return;
    // spec.get(s): the last depth's states past its real positions, by position (the next depth's inputs)
    let spec = new Map<Sequence, Map<number, Float32Array>>();
    let last = new Map<Sequence, Float32Array>();
    for (let d = 1; d <= this.depth; d++) {
      const now = [...want].filter(([, n]) => n >= d).map(([s]) => s);
      if (now.length === 0) break;
      [spec, last] = this.depthStep(d, now, spec);
    }
    const top = Math.max(...want.values());
    for (let j = this.depth + 1; j <= top; j++) {
      const now = [...want].filter(([, n]) => n >= j).map(([s]) => s);
      last = this.chainStep(j, now, last);
    }
  }

  /** depth 1 has the target's states up to position N-2 (the target has computed every position before t_{N-1}) */
  private ready(s: Sequence): boolean {
    const st = this.state(s);
    const d1 = st.depths[0]!;
    return !st.broken && d1.computed + d1.rows.length === s.tokens.length - 1;
  }

  /**
   * Depth d over positions [computed_d, N-2] of each sequence: its real keys catch up, the last position
   * drafts token d. Returns its states past the real positions (depth d+1's inputs) and at N-2 (chaining).
   */
  private depthStep(
    d: number,
    seqs: Sequence[],
    prevSpec: Map<Sequence, Map<number, Float32Array>>,
  ): [Map<Sequence, Map<number, Float32Array>>, Map<Sequence, Float32Array>] {
    const items = seqs.map((s): MtpItem => {
      const ds = this.state(s).depths[d - 1]!;
      const N = s.tokens.length;
      const ext = [...s.tokens, ...s.draft];
      const start = ds.computed;
      const positions = Array.from({ length: N - 1 - start }, (_, i) => start + i); // [computed_d, N-2]
      const prev = positions.map((p) => ds.rows[p - start] ?? prevSpec.get(s)!.get(p)!);
      return { start, ids: positions.map((p) => ext[p + d]!), prev, blocks: s.draftTable.blocks };
    });
    const { hidden, logits } = this.run(d - 1, items);
    const [spec, last] = [new Map<Sequence, Map<number, Float32Array>>(), new Map<Sequence, Float32Array>()];
    const W = this.width;
    let t = 0;
    seqs.forEach((s, i) => {
      const st = this.state(s);
      const ds = st.depths[d - 1]!;
      const N = s.tokens.length;
      const it = items[i]!;
      const realEnd = N - d; // positions < realEnd are real at this depth (p <= N-1-d)
      const next = st.depths[d];
      const mine = new Map<number, Float32Array>();
      for (let j = 0; j < it.ids.length; j++, t++) {
        const p = it.start + j;
        const row = hidden.subarray(t * W, (t + 1) * W);
        if (p >= realEnd) mine.set(p, row);
        else if (next && p === next.computed + next.rows.length) next.rows.push(row.slice()); // (re-runs add nothing)
        if (p === N - 2) last.set(s, row);
      }
      spec.set(s, mine);
      // real keys now cover [0, realEnd); their inputs are used up — except position N-2's, kept so that a
      // sequence drafting again at the same length (its draft was not scheduled) re-runs that position
      const done = Math.min(realEnd, N - 2) - ds.computed;
      ds.rows.splice(0, done);
      ds.computed += done;
      this.draw(s, logits, i);
    });
    return [spec, last];
  }

  /** draft j > D: depth D one position further, on its own previous output state and draft j-1 */
  private chainStep(j: number, seqs: Sequence[], lastState: Map<Sequence, Float32Array>): Map<Sequence, Float32Array> {
    const items = seqs.map((s): MtpItem => ({
      start: s.tokens.length - 2 + (j - this.depth),
      ids: [s.draft.at(-1)!],
      prev: [lastState.get(s)!],
      blocks: s.draftTable.blocks,
    }));
    const { hidden, logits } = this.run(this.depth - 1, items);
    const W = this.width;
    const next = new Map<Sequence, Float32Array>();
    seqs.forEach((s, i) => {
      next.set(s, hidden.subarray(i * W, (i + 1) * W));
      this.draw(s, logits, i);
    });
    return next;
  }

  /** samples draft token from row i of `logits` with the request's own sampling parameters (q) */
  private draw(s: Sequence, logits: Float32Array, i: number): void {
    const V = this.model.config.vocabSize;
    const q = probsOf(logits.slice(i * V, (i + 1) * V), s.opts.params);
    s.draft.push(drawFrom(q, s.rng));
    s.draftQ.push(q);
  }

  /** runs depth j (0-based) over a ragged batch; the logits of each item's last position */
  private run(j: number, items: readonly MtpItem[]): { hidden: Float32Array; logits: Float32Array } {
    const T = items.reduce((n, it) => n + it.ids.length, 0);
    const W = this.width;
    const [ids, seq, pos, seqLens] = [new Int32Array(T), new Int32Array(T), new Int32Array(T), new Int32Array(T)];
    const prev = new Float32Array(T * W);
    const rows = new Int32Array(items.length);
    let t = 0;
    items.forEach((it, i) => {
      const end = it.start + it.ids.length;
      for (let q = 0; q < it.ids.length; q++, t++) {
        [ids[t], seq[t], pos[t], seqLens[t]] = [it.ids[q]!, i, it.start + q, end];
        prev.set(it.prev[q]!, t * W);
      }
      rows[i] = t - 1;
    });
    const layout: BatchLayout = {
      blockSize: this.pool.blockSize,
      seq,
      pos,
      tables: items.map((it) => Int32Array.from(it.blocks)),
    };
    const paged: PagedBatch = { positions: pos, seqLens, logitRows: rows, layer: (l) => this.pagedLayer(l, layout) };
    const V = this.model.config.vocabSize;
    return noGrad(() =>
      tidy(() => {
        const idsT = indexTensor(ids, V, { shape: [1, T], what: 'engine: MTP draft ids' });
        const out = this.model.mtpPaged(j, tensor(prev, { shape: [1, T, W] }), idsT, paged);
        return { hidden: out.hidden.data() as Float32Array, logits: out.logits.data() as Float32Array };
      }),
    );
  }

  /** depth l's paged attention through this drafter's pool (as the ModelRunner does for the target) */
  private pagedLayer(l: number, layout: BatchLayout): PagedLayer {
    const store = this.pool.layers[l]!;
    return {
      attend: (q: Tensor, k: Tensor, v: Tensor, scale: number, softcap = 0) => {
        writeStep(this.pool.kernel, store, layout, k.data() as Float32Array, v.data() as Float32Array);
        const nh = q.shape[1]!;
        const qd = q.data() as Float32Array;
        const fast = softcap > 0 ? null : this.pool.kernel;
        const o = fast ? fast.run(store, layout, qd, nh, scale) : pagedAttention(store, layout, qd, nh, scale, softcap);
        return tensor(o, { shape: [1, nh, layout.pos.length, store.vDim] }); // (1, nh, T, dv)
      },
    };
  }

  /** blocks for positions [0, n); on failure the sequence's MTP cache is dropped (it decodes plainly) */
  private reserve(s: Sequence, n: number): boolean {
    const st = this.state(s);
    const from = Math.min(...st.depths.map((x) => x.computed));
    if (this.blocks.ensure(s.draftTable, from, n, (a, b) => this.pool.copyBlock(a, b))) return true;
    this.reset(s, st);
    st.broken = true; // the target's states of the dropped positions are gone
    return false;
  }

  /** after verification: states of rejected positions go; blocks past the real keys go back */
  rollback(s: Sequence, validTokens: number): void {
    const st = this.states.get(s);
    if (!st) return;
    const d1 = st.depths[0]!;
    d1.rows.length = Math.max(0, Math.min(d1.rows.length, validTokens - d1.computed));
    this.blocks.truncate(s.draftTable, Math.max(...st.depths.map((x) => x.computed)));
  }

  /** a sibling forked after the prompt: it gets copies of the parent's waiting states (and no keys yet) */
  fork(parent: Sequence, child: Sequence): void {
    const st = this.states.get(parent);
    if (!st || st.broken || parent.draftTable.blocks.length > 0) return; // only before the parent drafted
    this.states.set(child, {
      depths: st.depths.map((x) => ({ computed: x.computed, rows: [...x.rows] })),
      broken: false,
    });
  }

  release(s: Sequence): void {
    [s.draft, s.draftQ] = [[], []];
    const st = this.states.get(s);
    if (st) this.reset(s, st);
    this.states.delete(s);
    this.blocks.freeTable(s.draftTable);
  }

  private reset(s: Sequence, st: MtpState): void {
    this.blocks.freeTable(s.draftTable);
    for (const x of st.depths) [x.computed, x.rows] = [0, []];
  }
}
