// Recurrent families (Mamba, RNN/LSTM/GRU) in the engine: no KV pages, one state slot per sequence,
// O(1) whatever its length. The block manager still hands out the slots — each sequence holds exactly
// one "block" whose size is the longest sequence — so admission, preemption (the state is dropped and
// recomputed) and abort work as for transformers. Each scheduled chunk runs through the model's own
// cache for its slot (a batch of one per sequence: the families' forward takes one state per batch).
// Prefix caching and speculative decoding do not apply (a state cannot be shared or rolled back).
import { noGrad, tidy } from '../../tensor/engine.js';
import { indexTensor, slice } from '../../ops/index.js';
import type { Cache, LanguageModel } from '../../models/model.js';
import type { RunItem } from './runner.js';

export class StateRunner {
  private readonly slots = new Map<number, Cache>();
  readonly layers: { window: number | null }[] = [];

  constructor(
    readonly model: LanguageModel,
    readonly numBlocks: number,
    readonly blockSize: number,
  ) {
    if (model.config.arch !== 'rnn' && model.config.arch !== 'mamba')
      throw new Error(`engine: ${model.config.family} has no recurrent state`);
    if (!model.newCache) throw new Error(`engine: ${model.config.family} has no inference cache`);
  }

  /** a state is never shared, so there is nothing to copy */
  copyBlock(): void {}

  run(items: readonly RunItem[]): Float32Array {
    const rows: Float32Array[] = [];
    for (const it of items) {
      const slot = it.blocks[0]!;
      if (it.start === 0 || !this.slots.has(slot)) {
        this.slots.get(slot)?.dispose();
        this.slots.set(slot, this.model.newCache!(1));
      }
      const cache = this.slots.get(slot)!;
      if (cache.length !== it.start)
        throw new Error(`engine: state slot ${slot} holds ${cache.length} tokens, the step starts at ${it.start}`);
      const T = it.ids.length;
      const out = noGrad(() =>
        tidy(() => {
          const { logits } = this.model.forward({
            inputIds: indexTensor(it.ids, this.model.config.vocabSize, { shape: [1, T], what: 'engine: token ids' }),
            cache,
          });
          return it.logits > 0 ? (slice(logits, 1, T - it.logits, T).data() as Float32Array) : null;
        }),
      );
      if (out) rows.push(out);
    }
    const all = new Float32Array(rows.reduce((s, r) => s + r.length, 0));
    let o = 0;
    for (const r of rows) [all.set(r, o), (o += r.length)];
    return all;
  }
}
