// PPO-RLHF (Ouyang et al. 2022; TRL's PPOTrainer): the policy carries a value head on its trunk
// (ScalarHeadModel 'v_head'); a rollout samples completions, scores them (a reward model or a reward
// function), and turns scores into per-token rewards with a KL penalty to the frozen reference:
//   r_t = −β·k1_t (+ score at the last completion token)
//   GAE over each completion (values of padding = 0), advantages whitened over the batch
// The same rollout is then optimised for `epochs` steps with the clipped policy and value losses.
//
// Notation: N rollout rows (prompts × samples), Tc longest completion, T-1 packed positions.
import type { Tensor } from '../tensor/tensor.js';
import { noGrad, tidy } from '../tensor/engine.js';
import { abs, add, exp, gt, logSoftmax, mul, neg, sub, sum, tensor } from '../ops/index.js';
import type { LanguageModel } from '../models/model.js';
import { logpsFromLogits, packBatch, packFull, tokenLogps, type PackedBatch, type Sequence } from './logprobs.js';
import { gae, maskedMean, ppoPolicyLoss, ppoValueLoss, whiten } from './losses.js';
import type { ScalarHeadModel } from './heads.js';

export interface PpoRollout {
  rows: Sequence[];
  /** (N, T-1) host arrays over packed positions: rollout-time log-probs, values, advantages, returns */
  oldLogps: Float32Array;
  oldValues: Float32Array;
  advantages: Float32Array;
  returns: Float32Array;
  scores: Float32Array;
  /** mean over rows of Σ_t k1 */
  kl: number;
  /** the KL coefficient β of the per-token penalty (set per rollout by the KL controller) */
  klCoef: number;
}

export interface PpoOptions {
  beta: number;
  limit: number;
  gamma?: number;
  lam?: number;
  clipRange?: number;
  valueClipRange?: number;
  valueCoef?: number;
}

/** scores of finished rows: a reward model (score at the last token) */
export function rewardModelScores(rm: ScalarHeadModel, rows: readonly Sequence[], limit: number): Float32Array {
  return noGrad(() =>
    tidy(() => {
      const b = packFull(rows, limit);
      return Float32Array.from(rm.scoreAt(rm.forward({ inputIds: b.inputIds }).lastHiddenState!, b.lastIndex).data());
    }),
  );
}

/** rollout-time statistics of sampled rows (no gradients) */
export function ppoRollout(
  policy: ScalarHeadModel,
  ref: LanguageModel,
  rows: Sequence[],
  scores: Float32Array,
  o: PpoOptions,
): PpoRollout {
  return noGrad(() =>
    tidy(() => {
      const b = packBatch(rows, o.limit);
      const was = policy.training;
      policy.eval();
      ref.eval();
      const cur = tokenLogps(policy, b);
      const refLp = tokenLogps(ref, b).logps.data() as Float32Array;
      const values = policy.scoreAll(cur.hidden!).data() as Float32Array; // (N, T-1)
      policy.train(was);
      const lp = cur.logps.data() as Float32Array;
      const mask = b.mask.data() as Float32Array;
      const { advantages, returns, kl } = rewardsToAdvantages(b, lp, refLp, values, mask, scores, o);
      return {
        rows,
        oldLogps: Float32Array.from(lp),
        oldValues: Float32Array.from(values),
        advantages,
        returns,
        scores,
        kl,
        klCoef: o.beta,
      };
    }),
  );
}

/** per-token KL-penalised rewards → GAE on each completion → whitened advantages, over (N, T-1) */
function rewardsToAdvantages(
  b: PackedBatch,
  lp: Float32Array,
  refLp: Float32Array,
  values: Float32Array,
  mask: Float32Array,
  scores: Float32Array,
  o: PpoOptions,
) {
  const W = b.T - 1;
  const rewards = new Float32Array(b.B * W);
  const vals = new Float32Array(b.B * W);
  let kl = 0;
  for (let r = 0; r < b.B; r++) {
    let last = -1;
    for (let t = 0; t < W; t++) {
      const i = r * W + t;
      if (!mask[i]) continue;
      const k1 = lp[i]! - refLp[i]!;
      kl += k1;
      rewards[i] = -o.beta * k1;
      vals[i] = values[i]!;
      last = i;
    }
    if (last >= 0) rewards[last] += scores[r]!;
  }
  // prompt and padding positions carry 0 reward and 0 value, so GAE over the row is GAE over its completion
  const g = gae(rewards, vals, b.B, W, o.gamma ?? 1, o.lam ?? 0.95);
  return { advantages: whiten(g.advantages, mask, true).map((a, i) => a * mask[i]!), returns: g.returns, kl: kl / b.B };
}

/** the PPO loss of one rollout under the current policy, with TRL's logged statistics */
export function ppoLoss(
  policy: ScalarHeadModel,
  ro: PpoRollout,
  o: PpoOptions,
): { loss: Tensor; tokens: number; metrics: Record<string, number> } {
  const b = packBatch(ro.rows, o.limit);
  const out = policy.forward({ inputIds: b.inputIds });
  const logits = out.logits.dtype === 'float32' ? out.logits : out.logits.to('float32');
  const logps = logpsFromLogits(logits, b);
  const host = (a: Float32Array) => tensor(a, { shape: [b.B, b.T - 1] });
  const values = policy.scoreAll(out.lastHiddenState!);
  const pg = ppoPolicyLoss(
    { logps, oldLogps: host(ro.oldLogps), advantages: host(ro.advantages), mask: b.mask },
    o.clipRange ?? 0.2,
  );
  const vf = ppoValueLoss(values, host(ro.oldValues), host(ro.returns), b.mask, o.valueClipRange ?? 0.2);
  const loss = add(pg.loss, mul(vf, o.valueCoef ?? 0.1));
  const metrics = noGrad(() =>
    tidy(() => {
      const lsm = logSoftmax(logits, -1);
      const entropy = maskedMean(neg(sum(mul(exp(lsm), lsm), -1)), b.mask).item();
      const clipFrac = maskedMean(gt(abs(sub(pg.ratio, 1)), o.clipRange ?? 0.2).to('float32'), b.mask).item();
      return {
        reward: mean(ro.scores),
        kl: ro.kl,
        kl_coef: ro.klCoef,
        entropy,
        clip_fraction: clipFrac,
        value_loss: vf.item(),
        policy_loss: pg.loss.item(),
      };
    }),
  );
  return { loss, tokens: (b.mask.data() as Float32Array).reduce((s, x) => s + x, 0), metrics };
}

const mean = (a: Float32Array) => a.reduce((s, x) => s + x, 0) / Math.max(1, a.length);
