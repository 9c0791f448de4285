// Mixture of experts (Switch / Mixtral / DeepSeekMoE). A linear router scores every expert per token;
// each token goes to its top-k experts (optionally only within the best `topkGroups` expert groups),
// weighted by its (optionally renormalised, then scaled) scores. Routing is sparse: each expert gathers
// its tokens with indexSelect, runs on them alone, and the weighted results are scattered back with one
// scatterAdd. Optional always-on shared experts (DeepSeek) are added for every token. With a capacity
// factor, an expert takes at most ceil(cf · N · k / E) tokens (earlier tokens first); the rest of its
// assignments are dropped (those tokens keep only their residual path through this layer).
// DeepSeek-V3 adds a per-expert correction bias to the sigmoid scores for choosing experts only; it is
// moved toward balanced load after each optimizer step (`updateCorrectionBias`), never by gradient.
//
// Notation: N = B·T tokens, D width, E routed experts, k experts per token.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import {
  add,
  concat,
  div,
  gatherLast,
  indexSelect,
  indexTensor,
  logsumexp,
  mean,
  mul,
  oneHot,
  reshape,
  scatterAdd,
  sigmoid,
  softmax,
  square,
  sum,
  tensor,
  topk,
  unsqueeze,
  where,
  zeros,
} from '../ops/index.js';
import type { MoeFfn } from './config.js';
import { Linear, type LinearOptions } from './layers.js';
import { noGrad } from '../tensor/engine.js';
import { Module, ModuleList } from './module.js';
import { Glu, Mlp, type GluNames, type MlpNames } from './ffn.js';

export interface MoeNames {
  router: string;
  experts: string;
  shared: string;
  expert: GluNames & MlpNames;
}
export const MIXTRAL_MOE_NAMES: MoeNames = {
  router: 'gate',
  experts: 'experts',
  shared: 'shared_experts',
  expert: { gate: 'w1', up: 'w3', down: 'w2' },
};
export const DEEPSEEK_MOE_NAMES: MoeNames = {
  router: 'gate',
  experts: 'experts',
  shared: 'shared_experts',
  expert: { gate: 'gate_proj', up: 'up_proj', down: 'down_proj' },
};

/** What the last forward did, for inspection and tests. */
export interface MoeStats {
  /** routed assignments each expert processed (after capacity dropping) */
  tokensPerExpert: number[];
  /** assignments dropped by the capacity limit */
  dropped: number;
  /** per-expert capacity (null: unlimited) */
  capacity: number | null;
}

/**
 * A router with DeepSeek-V3's selection bias: `weight` [E, D] as any Linear, plus
 * `e_score_correction_bias` [E] (transformers' name), a parameter the optimizer never sees.
 */
export class BiasedRouter extends Linear {
  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions) {
    super(inFeatures, outFeatures, opts);
    this.param('e_score_correction_bias', zeros([outFeatures])).requiresGrad = false;
  }
  get correctionBias(): Tensor {
    return this.p('e_score_correction_bias');
  }
}

export interface MoeResult {
  out: Tensor;
  /** [N, E] pre-activation router logits */
  routerLogits: Tensor;
}

export class MoE extends Module {
  readonly router: Linear;
  readonly experts: ModuleList<Glu | Mlp>;
  readonly shared: Glu | Mlp | null;
  lastStats: MoeStats | null = null;
  /** routed assignments per expert over the training forwards since the last bias update */
  private loadSinceUpdate: Float64Array;

  constructor(
    readonly dim: number,
    readonly cfg: MoeFfn,
    names: MoeNames,
    opts: { std?: number; rng?: Rng; actDropout?: number } = {},
  ) {
    super();
    const rng = opts.rng ?? new Rng(0);
    const o = { bias: cfg.bias, std: opts.std ?? 0.02, rng, actDropout: opts.actDropout };
    const ffn = (hidden: number) =>
      cfg.expert === 'glu'
        ? new Glu(dim, hidden, cfg.act, names.expert, o)
        : new Mlp(dim, hidden, cfg.act, names.expert, o);
    const ro = { bias: false, std: opts.std ?? 0.02, rng };
    const router = cfg.correctionBias ? new BiasedRouter(dim, cfg.experts, ro) : new Linear(dim, cfg.experts, ro);
    this.router = this.child(names.router, router);
    this.loadSinceUpdate = new Float64Array(cfg.experts);
    this.experts = this.child(
      names.experts,
      new ModuleList(Array.from({ length: cfg.experts }, () => ffn(cfg.expertHidden))),
    );
    this.shared = cfg.sharedExperts > 0 ? this.child(names.shared, ffn(cfg.sharedHidden)) : null;
  }

  /** x [B, T, D] -> out [B, T, D] and router logits [N, E] */
  forward(x: Tensor): MoeResult {
    const D = this.dim;
    const x2 = reshape(x, [-1, D]); // (N, D)
    const N = x2.shape[0]!;
    const logits = this.router.forward(x2); // (N, E)
    const { weights, indices } = this.route(logits);
    const plan = this.assign(indices.data() as Int32Array, N);
    const wFlat = reshape(weights, [-1]); // (N*k)
    const parts: Tensor[] = [];
    const toks: number[] = [];
    plan.tokens.forEach((t, e) => {
      if (t.length === 0) return;
      const ye = this.experts.at(e).forward(indexSelect(x2, 0, indexTensor(t, N))); // (n_e, D)
      const we = unsqueeze(indexSelect(wFlat, 0, indexTensor(plan.slots[e]!, wFlat.shape[0]!)), -1); // (n_e, 1)
      parts.push(mul(ye, we));
      toks.push(...t);
    });
    let out = parts.length
      ? scatterAdd(zeros([N, D]), 0, tensor(Int32Array.from(toks)), concat(parts, 0))
      : zeros([N, D]);
    if (this.shared) out = add(out, this.shared.forward(x2));
    return { out: reshape(out, x.shape), routerLogits: logits };
  }

  /** top-k expert weights [N, k] (differentiable) and indices [N, k] */
  private route(logits: Tensor): { weights: Tensor; indices: Tensor } {
    const c = this.cfg;
    const scores = c.gating === 'softmax' ? softmax(logits, -1) : sigmoid(logits); // (N, E)
    const { values, indices } = this.router instanceof BiasedRouter ? this.chooseBiased(scores) : this.choose(scores);
    let w = values;
    if (c.normTopK) w = div(w, add(sum(w, -1, true), 1e-20));
    if (c.routedScale !== 1) w = mul(w, c.routedScale);
    return { weights: w, indices };
  }

  private choose(scores: Tensor): { values: Tensor; indices: Tensor } {
    return topk(this.cfg.routing.kind === 'group-limited' ? this.limitGroups(scores) : scores, this.cfg.topK);
  }

  /** V3: choose on scores + bias (no gradient), gate with the unbiased scores of the chosen experts */
  private chooseBiased(scores: Tensor): { values: Tensor; indices: Tensor } {
    const bias = (this.router as BiasedRouter).correctionBias;
    const { indices } = noGrad(() => this.choose(add(scores.detach(), bias))); // (N, k)
    return { values: gatherLast(scores, indices), indices };
  }

  /** DeepSeek group-limited greedy: zero the scores outside each token's best `topkGroups` groups */
  private limitGroups(scores: Tensor): Tensor {
    const r = this.cfg.routing as Extract<MoeFfn['routing'], { kind: 'group-limited' }>;
    const [N, E] = scores.shape as [number, number];
    const per = E / r.groups;
    const s = scores.data();
    const keepMask = new Uint8Array(N * E);
    const groupScore = r.groupScore === 'top2-sum' ? topTwoSum : (v: ArrayLike<number>) => Math.max(...Array.from(v));
    for (let n = 0; n < N; n++) {
      const best = Array.from({ length: r.groups }, (_, g) => ({
        g,
        v: groupScore(s.subarray(n * E + g * per, n * E + (g + 1) * per)),
      }));
      best.sort((a, b) => b.v - a.v);
      for (const { g } of best.slice(0, r.topkGroups)) keepMask.fill(1, n * E + g * per, n * E + (g + 1) * per);
    }
    return where(tensor(keepMask, { shape: [N, E] }), scores, 0);
  }

  /** per expert: token rows and flat (token, slot) indices, applying the capacity limit */
  private assign(idx: Int32Array, N: number): { tokens: number[][]; slots: number[][] } {
    const { experts: E, topK: k, capacityFactor } = this.cfg;
    const capacity = capacityFactor === null ? null : Math.ceil((capacityFactor * N * k) / E);
    const tokens: number[][] = Array.from({ length: E }, () => []);
    const slots: number[][] = Array.from({ length: E }, () => []);
    let dropped = 0;
    for (let n = 0; n < N; n++) {
      for (let j = 0; j < k; j++) {
        const e = idx[n * k + j]!;
        if (capacity !== null && tokens[e]!.length >= capacity) {
          dropped++;
          continue;
        }
        tokens[e]!.push(n);
        slots[e]!.push(n * k + j);
      }
    }
    this.lastStats = { tokensPerExpert: tokens.map((t) => t.length), dropped, capacity };
    if (this.training) tokens.forEach((t, e) => (this.loadSinceUpdate[e]! += t.length));
    return { tokens, slots };
  }

  /**
   * DeepSeek-V3 auxiliary-loss-free balancing, called once per optimizer step: bias_e += u · sign(mean − load_e)
   * over the load counted since the last call (underloaded experts become more likely to be chosen).
   * Resets the count. No-op without a correction bias or when nothing was routed.
   */
  updateCorrectionBias(): void {
    const load = this.loadSinceUpdate;
    this.loadSinceUpdate = new Float64Array(load.length);
    if (!(this.router instanceof BiasedRouter) || !this.cfg.correctionBias) return;
    const total = load.reduce((a, b) => a + b, 0);
    if (total === 0) return;
    const u = this.cfg.correctionBias.updateRate;
    const mean = total / load.length;
    const bias = this.router.correctionBias.data() as Float32Array;
    const next = Float32Array.from(bias, (b, e) => b + u * Math.sign(mean - load[e]!));
    this.router.setParameter('e_score_correction_bias', tensor(next));
    this.router.correctionBias.requiresGrad = false;
  }
}

/** sum of the two largest values (V3's group score) */
function topTwoSum(v: ArrayLike<number>): number {
  let a = -Infinity;
  let b = -Infinity;
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (x > a) [a, b] = [x, a];
    else if (x > b) b = x;
  }
  return a + b;
}

/**
 * Switch / Mixtral load-balancing loss over router logits [N, E] (transformers' load_balancing_loss_func
 * without an attention mask): E · Σ_slot Σ_e f(slot, e) · P(e), where f is the fraction of tokens whose
 * slot-th choice is e and P the mean routing probability of e. 1 per slot when balanced. Pass the logits
 * of every MoE layer concatenated, as transformers does.
 */
export function loadBalancingLoss(routerLogits: Tensor, topK: number): Tensor {
  const E = routerLogits.shape[routerLogits.ndim - 1]!;
  const probs = softmax(routerLogits, -1); // (N, E)
  const { indices } = topk(probs.detach(), topK); // (N, k)
  const tokensPerExpert = mean(oneHot(indices, E), 0); // (k, E) fraction of tokens routed per slot
  const probPerExpert = mean(probs, 0); // (E)
  return mul(sum(mul(tokensPerExpert, probPerExpert)), E);
}

/**
 * DeepSeek's sequence-level balance loss (MoEGate with seq_aux) for one layer's router logits [B·T, E]:
 * per sequence, Σ_e (count_e / (T·k/E)) · mean_t p_e, averaged over the batch. Counts come from the greedy
 * top-k of the softmax probabilities (what greedy routing picks). With sigmoid gating (DeepSeek-V3's
 * complementary sequence-wise loss) the probabilities are the sigmoid scores normalised to sum to 1.
 */
export function sequenceBalanceLoss(
  routerLogits: Tensor,
  batch: number,
  topK: number,
  gating: 'softmax' | 'sigmoid' = 'softmax',
): Tensor {
  const [N, E] = routerLogits.shape as [number, number];
  const T = N / batch;
  const s = gating === 'softmax' ? softmax(routerLogits, -1) : sigmoid(routerLogits); // (N, E)
  const p = gating === 'softmax' ? s : div(s, sum(s, -1, true));
  const probs = reshape(p, [batch, T, E]); // (B, T, E)
  const { indices } = topk(probs.detach(), topK); // (B, T, k)
  const counts = sum(oneHot(reshape(indices, [batch, T * topK]), E), 1); // (B, E)
  const ce = mul(counts, E / (T * topK));
  return mean(sum(mul(ce, mean(probs, 1)), 1)); // mean over sequences of Σ_e ce · p̄
}

/** router z-loss (ST-MoE): mean_n logsumexp(logits_n)² */
export function routerZLoss(routerLogits: Tensor): Tensor {
  return mean(square(logsumexp(routerLogits, -1)));
}
