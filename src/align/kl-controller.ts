// The KL coefficient β of PPO-RLHF, per rollout. Ziegler et al. 2019 ("Fine-Tuning Language Models from
// Human Preferences", §2.2) and TRL's AdaptiveKLController steer β so that the KL to the reference tracks
// a target: a proportional controller whose error is clipped to ±0.2,
//   e = clip(KL / target − 1, −0.2, 0.2),   β ← β · (1 + e · n / horizon)
// with KL the rollout's mean per-sequence KL (nats) and n the rollout's size (sequences). The fixed
// controller keeps β constant (TRL's FixedKLController).

export type KlControl =
  { kind: 'fixed'; coef: number } | { kind: 'adaptive'; coef: number; target: number; horizon: number };

/** the next β after a rollout of `n` sequences whose mean KL to the reference was `kl` */
export function updateKlCoef(c: KlControl, beta: number, kl: number, n: number): number {
  switch (c.kind) {
    case 'fixed':
      return beta;
    case 'adaptive': {
      const e = Math.min(0.2, Math.max(-0.2, kl / c.target - 1));
      return beta * (1 + (e * n) / c.horizon);
    }
  }
}

/** validates the controller's settings, naming the flag */
export function klControl(coef: number, target?: number, horizon?: number): KlControl {
  if (!(coef >= 0)) throw new Error(`--beta: the KL coefficient must be >= 0, got ${coef}`);
  if (target === undefined) {
    if (horizon !== undefined) throw new Error('--kl-horizon needs --kl-target (the adaptive KL controller)');
    return { kind: 'fixed', coef };
  }
  if (!(target > 0)) throw new Error(`--kl-target must be > 0 nats, got ${target}`);
  const h = horizon ?? 10000; // TRL's default
  if (!(h > 0)) throw new Error(`--kl-horizon must be > 0, got ${h}`);
  if (!(coef > 0)) throw new Error('--beta: the adaptive KL controller needs a positive initial coefficient');
  return { kind: 'adaptive', coef, target, horizon: h };
}
