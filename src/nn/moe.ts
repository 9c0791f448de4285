// Mixture of experts (Switch / Mixtral / DeepSeekMoE). A linear router scores every expert per token;
// each token goes to its top-k experts (optionally only within the best `topkGroups` expert groups),
// weighted by its (optionally renormalised, then scaled) scores. Routing is sparse: each expert gathers
// its tokens with indexSelect, runs on them alone, and the weighted results are scattered back with one
// scatterAdd. Optional always-on shared experts (DeepSeek) are added for every token. With a capacity
// factor, an expert takes at most ceil(cf · N · k / E) tokens (earlier tokens first); the rest of its
// assignments are dropped (those tokens keep only their residual path through this layer).
//
// Notation: N = B·T tokens, D width, E routed experts, k experts per token.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import {
  add,
  concat,
  div,
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
import { Linear } from './layers.js';
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
    this.router = this.child(names.router, new Linear(dim, cfg.experts, { bias: false, std: opts.std ?? 0.02, rng }));
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
    const { values, indices } = topk(c.routing.kind === 'group-limited' ? this.limitGroups(scores) : scores, c.topK);
    let w = values;
    if (c.normTopK) w = div(w, add(sum(w, -1, true), 1e-20));
    if (c.routedScale !== 1) w = mul(w, c.routedScale);
    return { weights: w, indices };
  }

  /** DeepSeek group-limited greedy: zero the scores outside each token's best `topkGroups` groups */
  private limitGroups(scores: Tensor): Tensor {
    const r = this.cfg.routing as Extract<MoeFfn['routing'], { kind: 'group-limited' }>;
    const [N, E] = scores.shape as [number, number];
    const per = E / r.groups;
    const s = scores.data();
    const keepMask = new Uint8Array(N * E);
    for (let n = 0; n < N; n++) {
      const best = Array.from({ length: r.groups }, (_, g) => ({
        g,
        v: Math.max(...Array.from(s.subarray(n * E + g * per, n * E + (g + 1) * per))),
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
    return { tokens, slots };
  }
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
 * top-k of the softmax probabilities (what greedy routing picks).
 */
export function sequenceBalanceLoss(routerLogits: Tensor, batch: number, topK: number): Tensor {
  const [N, E] = routerLogits.shape as [number, number];
  const T = N / batch;
  const probs = reshape(softmax(routerLogits, -1), [batch, T, E]); // (B, T, E)
  const { indices } = topk(probs.detach(), topK); // (B, T, k)
  const counts = sum(oneHot(reshape(indices, [batch, T * topK]), E), 1); // (B, E)
  const ce = mul(counts, E / (T * topK));
  return mean(sum(mul(ce, mean(probs, 1)), 1)); // mean over sequences of Σ_e ce · p̄
}

/** router z-loss (ST-MoE): mean_n logsumexp(logits_n)² */
export function routerZLoss(routerLogits: Tensor): Tensor {
  return mean(square(logsumexp(routerLogits, -1)));
}
