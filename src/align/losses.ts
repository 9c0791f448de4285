// Post-training losses as pure functions over per-sequence (or per-token) log-probabilities, one per
// method, following TRL's formulas (trl/trainer/dpo_trainer.py dpo_loss, kto_trainer.py kto_loss,
// cpo_trainer.py (SimPO), orpo_trainer.py odds_ratio_loss, reward_trainer.py, ppo_trainer.py,
// grpo_trainer.py, rloo_trainer.py). Every tensor function is differentiable through the policy inputs;
// the reference inputs are constants. Host-side helpers (GAE, whitening, group advantages) work on
// Float32Array because they only shape the targets of a loss, never its gradient.
//
// Notation: B sequences (pairs for preference losses), T completion tokens, G samples per prompt.
import type { Tensor } from '../tensor/tensor.js';
import {
  add,
  clamp,
  div,
  exp,
  log,
  maximum,
  mean,
  minimum,
  mul,
  neg,
  relu,
  sigmoid,
  softplus,
  square,
  sub,
  sum,
  tensor,
} from '../ops/index.js';

/** log σ(x) = −softplus(−x), stable for large |x| */
export const logSigmoid = (x: Tensor): Tensor => neg(softplus(neg(x)));

// ---- supervised ----

/** masked NLL: −Σ logp·mask / Σ mask over every token of the batch. logps, mask: (B, T) */
export function sftLoss(tokenLogps: Tensor, mask: Tensor): Tensor {
  return neg(div(sum(mul(tokenLogps, mask)), sum(mask)));
}

/** Σ_t logp·mask over each row: (B, T) → (B); `average` divides by the row's token count (IPO/ORPO/SimPO) */
export function sequenceLogps(tokenLogps: Tensor, mask: Tensor, average = false): Tensor {
  const s = sum(mul(tokenLogps, mask), -1);
  return average ? div(s, sum(mask, -1)) : s;
}

// ---- preference (paired) ----

export interface PairLogps {
  /** (B) policy log p(chosen | prompt), log p(rejected | prompt) */
  chosen: Tensor;
  rejected: Tensor;
  /** (B) the same under the frozen reference model (absent for reference-free losses) */
  refChosen?: Tensor;
  refRejected?: Tensor;
}

export interface PreferenceResult {
  /** scalar mean loss */
  loss: Tensor;
  /** (B) β·(logπ − logπ_ref) of chosen and rejected (TRL's chosen_rewards / rejected_rewards) */
  chosenRewards: Tensor;
  rejectedRewards: Tensor;
}

function needRef(p: PairLogps, method: string): { refChosen: Tensor; refRejected: Tensor } {
  if (!p.refChosen || !p.refRejected) throw new Error(`${method}: reference log-probabilities are required`);
  return { refChosen: p.refChosen, refRejected: p.refRejected };
}

/** (π_c − π_r) − (ref_c − ref_r): the DPO logits before β */
function dpoLogits(p: PairLogps, method: string): Tensor {
  const { refChosen, refRejected } = needRef(p, method);
  return sub(sub(p.chosen, p.rejected), sub(refChosen, refRejected));
}

function implicitRewards(p: PairLogps, beta: number): Pick<PreferenceResult, 'chosenRewards' | 'rejectedRewards'> {
  const { refChosen, refRejected } = needRef(p, 'rewards');
  return {
    chosenRewards: mul(sub(p.chosen, refChosen), beta),
    rejectedRewards: mul(sub(p.rejected, refRejected), beta),
  };
}

/** sigmoid loss with label smoothing ε: −(1−ε)·logσ(βz) − ε·logσ(−βz), averaged */
function smoothedSigmoid(z: Tensor, beta: number, labelSmoothing: number): Tensor {
  const bz = mul(z, beta);
  const pos = mul(logSigmoid(bz), -(1 - labelSmoothing));
  return labelSmoothing === 0 ? mean(pos) : mean(sub(pos, mul(logSigmoid(neg(bz)), labelSmoothing)));
}

/** DPO (Rafailov et al. 2023), TRL loss_type="sigmoid" with label_smoothing (cDPO) */
export function dpoLoss(p: PairLogps, beta: number, labelSmoothing = 0): PreferenceResult {
  return { loss: smoothedSigmoid(dpoLogits(p, 'dpo'), beta, labelSmoothing), ...implicitRewards(p, beta) };
}

/** IPO (Azar et al. 2023): (z − 1/(2β))²; TRL feeds it length-averaged log-probs */
export function ipoLoss(p: PairLogps, beta: number): PreferenceResult {
  return { loss: mean(square(sub(dpoLogits(p, 'ipo'), 1 / (2 * beta)))), ...implicitRewards(p, beta) };
}

/** hinge (SLiC): relu(1 − βz) */
export function hingeLoss(p: PairLogps, beta: number): PreferenceResult {
  return { loss: mean(relu(sub(1, mul(dpoLogits(p, 'hinge'), beta)))), ...implicitRewards(p, beta) };
}

/**
 * SimPO (Meng et al. 2024): reference-free, length-averaged: −logσ(β(π_c − π_r) − γ), TRL γ/β = simpoGamma
 */
export function simpoLoss(p: PairLogps, beta: number, gammaBetaRatio = 0.5, labelSmoothing = 0): PreferenceResult {
  const z = sub(sub(p.chosen, p.rejected), gammaBetaRatio);
  return {
    loss: smoothedSigmoid(z, beta, labelSmoothing),
    chosenRewards: mul(p.chosen, beta),
    rejectedRewards: mul(p.rejected, beta),
  };
}

/**
 * ORPO (Hong et al. 2024): NLL on chosen − β·mean logσ(log odds ratio), with length-averaged log-probs p:
 * log odds = (p_c − p_r) − (log(1 − e^{p_c}) − log(1 − e^{p_r})). `chosenNll` is the SFT loss of the chosen.
 */
export function orpoLoss(p: PairLogps, chosenNll: Tensor, beta: number): PreferenceResult & { logOdds: Tensor } {
  const log1mExp = (x: Tensor) => log(sub(1, exp(x)));
  const logOdds = sub(sub(p.chosen, p.rejected), sub(log1mExp(p.chosen), log1mExp(p.rejected)));
  const ratio = mean(mul(logSigmoid(logOdds), beta));
  return {
    loss: sub(chosenNll, ratio),
    chosenRewards: mul(p.chosen, beta),
    rejectedRewards: mul(p.rejected, beta),
    logOdds,
  };
}

/** Bradley–Terry reward-model loss −logσ(r_c − r_r (− margin)), averaged. rewards: (B) */
export function rewardLoss(chosen: Tensor, rejected: Tensor, margin?: Tensor): Tensor {
  const d = sub(chosen, rejected);
  return mean(neg(logSigmoid(margin ? sub(d, margin) : d)));
}

// ---- unpaired (KTO) ----

export interface KtoInputs {
  /** (B) policy and reference log p(completion | prompt) */
  logps: Tensor;
  refLogps: Tensor;
  /** desirable (true) or undesirable (false) per example */
  labels: readonly boolean[];
  /**
   * the batch KL estimate (TRL: mean of policy − reference log-probs of mismatched pairs, clamped ≥ 0,
   * detached)
   */
  kl: number;
}

/**
 * KTO (Ethayarajh et al. 2024), TRL kto_loss: desirable 1 − σ(β(r − KL)), undesirable 1 − σ(β(KL − r)),
 * r = logπ − logπ_ref, weighted by desirable/undesirable weights, mean over the batch.
 */
export function ktoLoss(
  k: KtoInputs,
  beta: number,
  desirableWeight = 1,
  undesirableWeight = 1,
): { loss: Tensor; rewards: Tensor } {
  const B = k.labels.length;
  const r = sub(k.logps, k.refLogps);
  const sign = tensor(
    Float32Array.from(k.labels, (l) => (l ? 1 : -1)),
    { shape: [B] },
  );
  const w = tensor(
    Float32Array.from(k.labels, (l) => (l ? desirableWeight : undesirableWeight)),
    { shape: [B] },
  );
  const kl = Math.max(0, k.kl);
  const losses = mul(w, sub(1, sigmoid(mul(mul(sub(r, kl), sign), beta))));
  return { loss: mean(losses), rewards: mul(r, beta) };
}

// ---- policy gradient (PPO, GRPO) ----

/** per-token KL estimators of KL(π‖π_ref) from samples of π (Schulman's k1 and k3) */
export function klK1(logps: Tensor, refLogps: Tensor): Tensor {
  return sub(logps, refLogps);
}
export function klK3(logps: Tensor, refLogps: Tensor): Tensor {
  const d = sub(refLogps, logps);
  return sub(sub(exp(d), d), 1);
}

/** Σ x·mask / Σ mask */
export function maskedMean(x: Tensor, mask: Tensor): Tensor {
  return div(sum(mul(x, mask)), sum(mask));
}

export interface PpoInputs {
  /** (B, T) per-token log-probs of the sampled tokens under the current policy and at rollout time */
  logps: Tensor;
  oldLogps: Tensor;
  /** (B, T) advantages (constants) and completion mask */
  advantages: Tensor;
  mask: Tensor;
}

/** PPO clipped surrogate: masked mean of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)); also the clip fraction */
export function ppoPolicyLoss(x: PpoInputs, clipRange = 0.2): { loss: Tensor; ratio: Tensor } {
  const ratio = exp(sub(x.logps, x.oldLogps));
  const l1 = mul(neg(x.advantages), ratio);
  const l2 = mul(neg(x.advantages), clamp(ratio, 1 - clipRange, 1 + clipRange));
  return { loss: maskedMean(maximum(l1, l2), x.mask), ratio };
}

/** PPO clipped value loss: ½·masked mean of max((v − R)², (clip(v, v_old ± ε) − R)²) */
export function ppoValueLoss(
  values: Tensor,
  oldValues: Tensor,
  returns: Tensor,
  mask: Tensor,
  clipRange = 0.2,
): Tensor {
  const clipped = add(oldValues, clamp(sub(values, oldValues), -clipRange, clipRange));
  const l = maximum(square(sub(values, returns)), square(sub(clipped, returns)));
  return mul(maskedMean(l, mask), 0.5);
}

/**
 * GRPO (Shao et al. 2024), TRL loss_type "grpo": per token −min(ρA, clip(ρ)A) + β·k3(π, π_ref), averaged
 * over each sequence's tokens, then over sequences. advantages: (B) one per sequence.
 */
export function grpoLoss(
  x: { logps: Tensor; oldLogps: Tensor; refLogps?: Tensor; advantages: Tensor; mask: Tensor },
  beta = 0,
  clipRange = 0.2,
): { loss: Tensor; ratio: Tensor } {
  const ratio = exp(sub(x.logps, x.oldLogps));
  const a = x.advantages.reshape(-1, 1); // (B, 1)
  let perTok = neg(minimum(mul(ratio, a), mul(clamp(ratio, 1 - clipRange, 1 + clipRange), a)));
  if (beta !== 0) {
    if (!x.refLogps) throw new Error('grpo: beta > 0 needs reference log-probabilities');
    perTok = add(perTok, mul(klK3(x.logps, x.refLogps), beta));
  }
  const perSeq = div(sum(mul(perTok, x.mask), -1), sum(x.mask, -1));
  return { loss: mean(perSeq), ratio };
}

// ---- advantages (host side) ----

/**
 * GAE (Schulman et al. 2016) over each row of per-token rewards and values, masked rows of length T:
 * δ_t = r_t + γ·V_{t+1} − V_t, A_t = δ_t + γλ·A_{t+1}; returns = A + V. rows: B arrays of T.
 */
export function gae(
  rewards: Float32Array,
  values: Float32Array,
  B: number,
  T: number,
  gamma = 1,
  lam = 0.95,
): { advantages: Float32Array; returns: Float32Array } {
  const adv = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    let last = 0;
    for (let t = T - 1; t >= 0; t--) {
      const next = t + 1 < T ? values[b * T + t + 1]! : 0;
      const delta = rewards[b * T + t]! + gamma * next - values[b * T + t]!;
      last = delta + gamma * lam * last;
      adv[b * T + t] = last;
    }
  }
  return { advantages: adv, returns: adv.map((a, i) => a + values[i]!) };
}

/**
 * TRL masked_whiten: (x − mean)/sqrt(var + 1e-8) over masked entries, unbiased variance; mean added back
 * unless shiftMean
 */
export function whiten(x: Float32Array, mask: Float32Array | null = null, shiftMean = true): Float32Array {
  const m = mask ?? new Float32Array(x.length).fill(1);
  let n = 0,
    s = 0;
  for (let i = 0; i < x.length; i++) ((n += m[i]!), (s += x[i]! * m[i]!));
  const mu = s / n;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += m[i]! * (x[i]! - mu) ** 2;
  const variance = n > 1 ? (v / n) * (n / (n - 1)) : v / n;
  const inv = 1 / Math.sqrt(variance + 1e-8);
  return x.map((xi) => (xi - mu) * inv + (shiftMean ? 0 : mu));
}

/** GRPO advantages: (r − mean_group) / (std_group + 1e-4), unbiased std; groups are G consecutive samples */
export function groupAdvantages(rewards: Float32Array, G: number, scale = true): Float32Array {
  if (rewards.length % G !== 0)
    throw new Error(`groupAdvantages: ${rewards.length} rewards are not a multiple of G=${G}`);
  const out = new Float32Array(rewards.length);
  for (let g = 0; g < rewards.length; g += G) {
    const r = rewards.subarray(g, g + G);
    const mu = r.reduce((a, b) => a + b, 0) / G;
    const sd = G > 1 ? Math.sqrt(r.reduce((a, b) => a + (b - mu) ** 2, 0) / (G - 1)) : 0;
    for (let i = 0; i < G; i++) out[g + i] = scale ? (r[i]! - mu) / (sd + 1e-4) : r[i]! - mu;
  }
  return out;
}

/** RLOO advantages: r_i − mean of the other G−1 rewards of its group */
export function rlooAdvantages(rewards: Float32Array, G: number): Float32Array {
  if (G < 2) throw new Error('rloo: needs at least 2 samples per prompt');
  if (rewards.length % G !== 0) throw new Error(`rloo: ${rewards.length} rewards are not a multiple of G=${G}`);
  const out = new Float32Array(rewards.length);
  for (let g = 0; g < rewards.length; g += G) {
    const total = rewards.subarray(g, g + G).reduce((a, b) => a + b, 0);
    for (let i = 0; i < G; i++) out[g + i] = rewards[g + i]! - (total - rewards[g + i]!) / (G - 1);
  }
  return out;
}
