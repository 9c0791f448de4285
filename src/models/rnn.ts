// lineage-rnn: a recurrent language model (Mikolov 2010 / Zaremba 2014 style).
//   embed_tokens.weight [V, E] -> rnn (torch.nn.RNN / LSTM / GRU names, src/nn/rnn.ts) -> lm_head.weight [V, H]
// The recurrent state lives in an `RnnCache` passed to `forward`: generation feeds one token at a time
// with O(1) state per sequence, and truncated BPTT carries the cache across chunks (`cache.detach()`).
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { isGradEnabled, keep } from '../tensor/engine.js';
import { dropout, linear } from '../ops/index.js';
import { Module } from '../nn/module.js';
import { Embedding, Linear } from '../nn/layers.js';
import { RNN, detachRnnState, type RnnLayerState, type RnnState } from '../nn/rnn.js';
import type { RnnConfig } from './config.js';
import type { Cache, CreateOptions, LanguageModel, ModelInputs, ModelOutputs } from './model.js';

/**
 * Recurrent state between calls: O(1) per sequence (h, and c for LSTM, per layer).
 * Memory: the cache owns its state (kept out of `tidy` scopes). Without gradient recording the state is
 * stored detached; with it (truncated BPTT) it keeps its graph until `detach()`. Tensors a call replaces
 * are disposed at the next call, so run a chunk's backward before the next forward on the same cache.
 */
export class RnnCache implements Cache {
  length = 0;
  state: RnnState | null = null;
  private retired: Tensor[] = [];

  /** stores the state after a call of `n` tokens */
  update(state: RnnState, n: number): void {
    this.release();
    this.retire();
    this.state = (isGradEnabled() ? state : detachRnnState(state)).map(keepLayer);
    this.length += n;
  }

  /** truncated BPTT: keep the values, cut the gradient path to earlier chunks */
  detach(): void {
    if (!this.state) return;
    const next = detachRnnState(this.state).map(keepLayer);
    this.retire();
    this.state = next;
  }

  dispose(): void {
    this.release();
    this.retire();
    this.release();
    this.state = null;
  }

  private retire(): void {
    for (const s of this.state ?? []) this.retired.push(s.h, ...(s.c ? [s.c] : []));
  }
  private release(): void {
    for (const t of this.retired) t.dispose();
    this.retired = [];
  }
}

const keepLayer = (s: RnnLayerState): RnnLayerState => ({ h: keep(s.h), c: s.c ? keep(s.c) : null });

export class RnnLM extends Module implements LanguageModel {
  readonly embed_tokens: Embedding;
  readonly rnn: RNN;
  readonly lm_head: Linear | null;

  constructor(readonly config: RnnConfig, opts: { rng?: Rng } = {}) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const c = config;
    this.embed_tokens = this.child('embed_tokens', new Embedding(c.vocabSize, c.embedSize, { std: c.initStd, rng }));
    this.rnn = this.child('rnn', new RNN(c.cell, c.embedSize, c.hidden, c.layers, { dropout: c.dropout.residual, rng }));
    this.lm_head = c.tieEmbeddings ? null : this.child('lm_head', new Linear(c.hidden, c.vocabSize, { bias: false, std: c.initStd, rng }));
  }

  newCache(_batch: number): RnnCache {
    return new RnnCache();
  }

  /** logits for every position; with `inputs.cache` the state continues from (and is written back to) it */
  forward(inputs: ModelInputs): ModelOutputs & { state: RnnState } {
    if (inputs.pixelValues) throw new Error('RnnLM.forward: pixelValues is not supported by lineage-rnn');
    const cache = inputs.cache as RnnCache | null | undefined;
    const p = this.config.dropout;
    const x = dropout(this.embed_tokens.forward(inputs.inputIds), p.embedding, this.training); // (B, T, E)
    const { output, state } = this.rnn.forward(x, cache?.state ?? null);
    const h = dropout(output, p.residual, this.training); // (B, T, H)
    const logits = this.lm_head ? this.lm_head.forward(h) : linear(h, this.embed_tokens.weight);
    cache?.update(state, inputs.inputIds.shape[1]!);
    return { logits, lastHiddenState: output, state, ...(cache ? { cache } : {}) };
  }
}

export function buildRnnLM(config: RnnConfig, opts: CreateOptions = {}): RnnLM {
  return new RnnLM(config, { rng: new Rng(opts.seed ?? 0) });
}
