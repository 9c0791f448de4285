// Mamba language model in transformers' MambaForCausalLM layout:
//   backbone.embeddings.weight [V, D]
//   backbone.layers.{l}.norm.weight, backbone.layers.{l}.mixer.* (src/nn/mamba.ts)
//   backbone.norm_f.weight; lm_head.weight tied to the embeddings unless tie_word_embeddings is false.
// Each layer: x + mixer(RMSNorm(x)). A `MambaCache` holds O(1) state per sequence (conv window + SSM
// state per layer), so decoding one token costs the same whatever the length so far.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { keep } from '../tensor/engine.js';
import { add, linear } from '../ops/index.js';
import { Module, ModuleList } from '../nn/module.js';
import { Embedding, Linear, RMSNorm } from '../nn/layers.js';
import { MambaMixer, type MambaLayerState } from '../nn/mamba.js';
import { type MambaConfig, mambaInner } from './config.js';
import type { Cache, CreateOptions, LanguageModel, ModelInputs, ModelOutputs } from './model.js';

/**
 * Decoding state: per layer the last K-1 conv inputs and the SSM state, O(1) per sequence.
 * Memory: the cache owns its tensors (kept out of `tidy` scopes, stored detached); tensors a call
 * replaces are disposed at the next call, so a backward through one call may still run after it.
 */
export class MambaCache implements Cache {
  length = 0;
  /** one entry per layer; null until the first forward */
  layers: (MambaLayerState | null)[];
  private retired: Tensor[] = [];
  constructor(numLayers: number) {
    this.layers = new Array<MambaLayerState | null>(numLayers).fill(null);
  }
  /** called once per call, before the layers store their new state */
  begin(): void {
    for (const t of this.retired) t.dispose();
    this.retired = [];
  }
  set(layer: number, s: MambaLayerState): void {
    const old = this.layers[layer];
    if (old) this.retired.push(old.conv, old.ssm);
    this.layers[layer] = { conv: keep(s.conv.detach()), ssm: keep(s.ssm.detach()) };
  }
  dispose(): void {
    this.begin();
    for (const s of this.layers) {
      s?.conv.dispose();
      s?.ssm.dispose();
    }
    this.layers.fill(null);
  }
}

class MambaBlock extends Module {
  readonly norm: RMSNorm;
  readonly mixer: MambaMixer;
  constructor(cfg: MambaConfig, rng: Rng) {
    super();
    this.norm = this.child('norm', new RMSNorm(cfg.hidden, cfg.norm.eps));
    const s = cfg.ssm;
    this.mixer = this.child('mixer', new MambaMixer({
      hidden: cfg.hidden, inner: mambaInner(cfg), dState: s.dState, dConv: s.dConv, dtRank: s.dtRank, convBias: s.convBias,
      projBias: s.projBias, dtMin: s.dtMin, dtMax: s.dtMax, dtInitFloor: s.dtInitFloor, dtScale: s.dtScale, initStd: cfg.initStd, rng,
    }));
  }
  forward(x: Tensor, state: MambaLayerState | null): { y: Tensor; state: MambaLayerState } {
    const r = this.mixer.forward(this.norm.forward(x), state);
    return { y: add(x, r.y), state: r.state }; // the residual stays float32 (residual_in_fp32)
  }
}

class MambaBackbone extends Module {
  readonly embeddings: Embedding;
  readonly layers: ModuleList<MambaBlock>;
  readonly norm_f: RMSNorm;
  constructor(cfg: MambaConfig, rng: Rng) {
    super();
    this.embeddings = this.child('embeddings', new Embedding(cfg.vocabSize, cfg.hidden, { std: cfg.initStd, rng }));
    this.layers = this.child('layers', new ModuleList(Array.from({ length: cfg.layers }, () => new MambaBlock(cfg, rng))));
    this.norm_f = this.child('norm_f', new RMSNorm(cfg.hidden, cfg.norm.eps));
  }
}

export class MambaLM extends Module implements LanguageModel {
  readonly backbone: MambaBackbone;
  readonly lm_head: Linear | null;

  constructor(readonly config: MambaConfig, opts: { rng?: Rng } = {}) {
    super();
    const rng = opts.rng ?? new Rng(0);
    this.backbone = this.child('backbone', new MambaBackbone(config, rng));
    this.lm_head = config.tieEmbeddings ? null : this.child('lm_head', new Linear(config.hidden, config.vocabSize, { bias: false, std: config.initStd, rng }));
  }

  newCache(_batch: number): MambaCache {
    return new MambaCache(this.config.layers);
  }

  /** logits for every position; with `inputs.cache` the state continues from (and is written back to) it */
  forward(inputs: ModelInputs): ModelOutputs {
    if (inputs.pixelValues) throw new Error('MambaLM.forward: pixelValues is not supported by mamba');
    const cache = inputs.cache as MambaCache | null | undefined;
    let x = this.backbone.embeddings.forward(inputs.inputIds); // (B, T, D)
    cache?.begin();
    this.backbone.layers.items.forEach((block, l) => {
      const r = block.forward(x, cache?.layers[l] ?? null);
      x = r.y;
      cache?.set(l, r.state);
    });
    const h = this.backbone.norm_f.forward(x);
    const logits = this.lm_head ? this.lm_head.forward(h) : linear(h, this.backbone.embeddings.weight); // (B, T, V)
    if (cache) cache.length += inputs.inputIds.shape[1]!;
    return { logits, lastHiddenState: h, ...(cache ? { cache } : {}) };
  }

  /** renames the original state-spaces checkpoints' `backbone.embedding` and drops a stored tied lm_head */
  sanitize(state: Map<string, Tensor>): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const [name, t] of state) {
      if (name === 'lm_head.weight' && this.config.tieEmbeddings) continue;
      out.set(name === 'backbone.embedding.weight' ? 'backbone.embeddings.weight' : name, t);
    }
    return out;
  }
}

export function buildMamba(config: MambaConfig, opts: CreateOptions = {}): MambaLM {
  return new MambaLM(config, { rng: new Rng(opts.seed ?? 0) });
}
