// Every alignment loss and its gradient against an independent PyTorch implementation of TRL's formulas
// (fixtures/align/losses.json from scripts/fixtures/align_losses.py), plus central finite differences.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, type Tensor } from '../../src/index.js';
import { noGrad } from '../../src/tensor/engine.js';
import {
  dpoLoss,
  gae,
  groupAdvantages,
  grpoLoss,
  hingeLoss,
  ipoLoss,
  klK1,
  klK3,
  ktoLoss,
  orpoLoss,
  ppoPolicyLoss,
  ppoValueLoss,
  rewardLoss,
  rlooAdvantages,
  sftLoss,
  simpoLoss,
  whiten,
} from '../../src/align/losses.js';

interface Case {
  loss: number;
  grad_chosen?: number[];
  grad_rejected?: number[];
  grad_logps?: number[];
  grad_values?: number[];
  values?: number[];
  advantages?: number[];
  returns?: number[];
}
const F = JSON.parse(readFileSync(join('fixtures', 'align', 'losses.json'), 'utf8')) as {
  inputs: Record<string, number[] & number>;
  cases: Record<string, Case>;
};
const I = F.inputs as unknown as Record<string, number[]> & {
  B: number;
  T: number;
  G: number;
  chosen_nll: number;
  kto_kl: number;
  labels: boolean[];
};
const { B, T, G } = I;

const vec = (xs: readonly number[], shape = [xs.length]) => tensor(Float32Array.from(xs), { shape });
const bt = (xs: readonly number[]) => vec(xs, [B, T]);

function close(actual: ArrayLike<number>, expected: readonly number[], tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    assert.ok(Math.abs(actual[i]! - e) <= tol * Math.max(1, Math.abs(e)), `${what}[${i}]: ${actual[i]} vs torch ${e}`);
  }
}

/** loss value and autograd gradients of `f` over the given leaf inputs, plus central finite differences */
function check(
  name: string,
  leaves: number[][],
  shapes: number[][],
  f: (xs: Tensor[]) => Tensor,
  grads: (number[] | undefined)[],
): void {
  const xs = leaves.map((l, i) => vec(l, shapes[i]));
  for (const x of xs) x.requiresGrad = true;
  const loss = f(xs);
  close([loss.item()], [F.cases[name]!.loss], 1e-4, `${name} loss`);
  loss.backward();
  xs.forEach((x, i) => grads[i] && close(x.grad!.data(), grads[i]!, 1e-4, `${name} grad ${i}`));
  // finite differences in float32: h large enough for the rounding, small enough for the curvature
  const h = 1e-2;
  leaves.forEach((l, i) => {
    const fd = l.map((_, j) => {
      const at = (d: number) =>
        noGrad(() =>
          f(leaves.map((m, k) => vec(k === i ? m.map((v, q) => (q === j ? v + d : v)) : m, shapes[k]))).item(),
        );
      return (at(h) - at(-h)) / (2 * h);
    });
    close(fd, grads[i]!, 2e-2, `${name} finite-difference grad ${i}`);
  });
}

const refs = { refChosen: vec(I.ref_chosen!), refRejected: vec(I.ref_rejected!) };

test('preference losses match TRL formulas (torch) with gradients', () => {
  const table: [string, number[], number[], (c: Tensor, r: Tensor) => Tensor][] = [
    ['dpo', I.chosen!, I.rejected!, (c, r) => dpoLoss({ chosen: c, rejected: r, ...refs }, 0.1).loss],
    ['dpo_smooth', I.chosen!, I.rejected!, (c, r) => dpoLoss({ chosen: c, rejected: r, ...refs }, 0.5, 0.2).loss],
    ['ipo', I.avg_chosen!, I.avg_rejected!, (c, r) => ipoLoss({ chosen: c, rejected: r, ...refs }, 0.1).loss],
    ['hinge', I.chosen!, I.rejected!, (c, r) => hingeLoss({ chosen: c, rejected: r, ...refs }, 0.3).loss],
    ['simpo', I.avg_chosen!, I.avg_rejected!, (c, r) => simpoLoss({ chosen: c, rejected: r }, 2.0, 0.5).loss],
    [
      'orpo',
      I.avg_chosen!,
      I.avg_rejected!,
      (c, r) => orpoLoss({ chosen: c, rejected: r }, tensor(I.chosen_nll), 0.1).loss,
    ],
    ['reward', I.rm_chosen!, I.rm_rejected!, (c, r) => rewardLoss(c, r)],
  ];
  for (const [name, c, r, f] of table) {
    const k = F.cases[name]!;
    check(name, [c, r], [[B], [B]], ([x, y]) => f(x!, y!), [k.grad_chosen, k.grad_rejected]);
  }
});

test('KTO loss matches TRL kto_loss (torch) with gradients', () => {
  const f = ([x]: Tensor[]) =>
    ktoLoss({ logps: x!, refLogps: vec(I.ref_chosen!), labels: I.labels, kl: I.kto_kl }, 0.1, 1.0, 1.33).loss;
  check('kto', [I.chosen!], [[B]], f, [F.cases.kto!.grad_logps]);
});

test('token-level losses (SFT, PPO policy, GRPO ± KL) match torch with gradients', () => {
  const mask = () => bt(I.mask!);
  const table: [string, (lp: Tensor) => Tensor][] = [
    ['sft', (lp) => sftLoss(lp, mask())],
    [
      'ppo_policy',
      (lp) =>
        ppoPolicyLoss({ logps: lp, oldLogps: bt(I.old_logps!), advantages: bt(I.adv_tok!), mask: mask() }, 0.2).loss,
    ],
    [
      'grpo',
      (lp) =>
        grpoLoss({ logps: lp, oldLogps: bt(I.old_logps!), advantages: vec(I.adv_seq!), mask: mask() }, 0, 0.2).loss,
    ],
    [
      'grpo_kl',
      (lp) =>
        grpoLoss(
          {
            logps: lp,
            oldLogps: bt(I.old_logps!),
            refLogps: bt(I.ref_logps!),
            advantages: vec(I.adv_seq!),
            mask: mask(),
          },
          0.04,
          0.2,
        ).loss,
    ],
  ];
  for (const [name, f] of table) check(name, [I.tok_logps!], [[B, T]], ([x]) => f(x!), [F.cases[name]!.grad_logps]);
});

test('PPO clipped value loss matches torch with gradients', () => {
  const f = ([v]: Tensor[]) => ppoValueLoss(v!, bt(I.old_values!), bt(I.returns!), bt(I.mask!), 0.2);
  check('ppo_value', [I.values!], [[B, T]], f, [F.cases.ppo_value!.grad_values]);
});

test('KL estimators, GAE, whitening, GRPO and RLOO advantages match torch', () => {
  close(klK1(bt(I.tok_logps!), bt(I.ref_logps!)).data(), F.cases.k1!.values!, 1e-5, 'k1');
  close(klK3(bt(I.tok_logps!), bt(I.ref_logps!)).data(), F.cases.k3!.values!, 1e-4, 'k3');
  for (const [name, g, l] of [
    ['gae', 1, 0.95],
    ['gae_discount', 0.9, 0.8],
  ] as const) {
    const r = gae(Float32Array.from(I.rewards_tok!), Float32Array.from(I.values!), B, T, g, l);
    close(r.advantages, F.cases[name]!.advantages!, 1e-5, `${name} advantages`);
    close(r.returns, F.cases[name]!.returns!, 1e-5, `${name} returns`);
  }
  close(whiten(Float32Array.from(I.adv_tok!), Float32Array.from(I.mask!)), F.cases.whiten!.values!, 1e-5, 'whiten');
  close(
    whiten(Float32Array.from(I.adv_tok!), Float32Array.from(I.mask!), false),
    F.cases.whiten_keep_mean!.values!,
    1e-5,
    'whiten keep mean',
  );
  close(groupAdvantages(Float32Array.from(I.group_rewards!), G), F.cases.group_adv!.values!, 1e-5, 'grpo advantages');
  close(rlooAdvantages(Float32Array.from(I.group_rewards!), G), F.cases.rloo_adv!.values!, 1e-5, 'rloo advantages');
});

test('losses reject inputs they cannot use', () => {
  assert.throws(
    () => dpoLoss({ chosen: vec([-1]), rejected: vec([-2]) }, 0.1),
    /dpo: reference log-probabilities are required/,
  );
  assert.throws(() => groupAdvantages(new Float32Array(5), 4), /not a multiple of G=4/);
  assert.throws(() => rlooAdvantages(new Float32Array(4), 1), /at least 2/);
});
