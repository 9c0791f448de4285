// How the training loop stops: a non-finite loss is an error before the optimizer step (weights stay as
// they were); fp16 loss scaling skips such steps instead; shouldStop (a signal) ends the run between
// steps with a checkpoint and no final evaluation; the state records the schedule and elapsed time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { noGrad, tidy } from '../../src/tensor/engine.js';
import { tensor } from '../../src/ops/index.js';
import { assign } from '../../src/train/optim.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { MemoryTokenFile } from '../../src/train/data/index.js';
import { CausalLMTask } from '../../src/train/family-objectives.js';
import { NonFiniteLossError, Trainer, runTraining, type TrainerOptions } from '../../src/train/trainer.js';

const ids = Int32Array.from(new TextEncoder().encode('To be, or not to be, that is the question. '.repeat(30)));
const OPTS: TrainerOptions = {
  steps: 4,
  schedule: { kind: 'constant', lr: 1e-3 },
  optimizer: { kind: 'adamw', lr: 1e-3 },
  evalBatches: 1,
};

function makeTrainer(opts: Partial<TrainerOptions> = {}): Trainer {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 3 });
  const task = new CausalLMTask(
    { train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids.slice(0, 300)) },
    { batchSize: 2, blockSize: 16, seed: 1 },
  );
  return new Trainer(model, task, { ...OPTS, ...opts });
}

/** puts NaN into one weight so that the next forward gives a NaN loss */
function poison(t: Trainer): void {
  noGrad(() =>
    tidy(() => {
      const [, w] = t.model.namedParameters().find(([n]) => n.endsWith('ln_f.weight'))!;
      assign(w, tensor(new Float32Array(w.size).fill(NaN), { shape: [...w.shape] }).to(w.dtype));
    }),
  );
}

test('fp32: a NaN loss throws NonFiniteLossError before the optimizer step; no step is counted', () => {
  const t = makeTrainer();
  t.trainStep();
  poison(t);
  const before = t.model
    .namedParameters()
    .filter(([n]) => !n.endsWith('ln_f.weight'))
    .map(([, p]) => Float32Array.from(p.data()));
  assert.throws(
    () => t.trainStep(),
    (e: unknown) => e instanceof NonFiniteLossError && /step 1: the loss is NaN \(not finite\)/.test(e.message),
  );
  assert.equal(t.step, 1);
  const after = t.model
    .namedParameters()
    .filter(([n]) => !n.endsWith('ln_f.weight'))
    .map(([, p]) => Float32Array.from(p.data()));
  assert.deepEqual(after, before, 'the optimizer must not have stepped');
  t.dispose();
});

test('fp16: a non-finite step is skipped by loss scaling, and too many in a row are an error', () => {
  const t = makeTrainer({ precision: 'fp16', maxSkippedSteps: 3 });
  poison(t);
  const scale = t.mp.scaler!.scale;
  for (let i = 0; i < 2; i++) assert.equal(t.trainStep().skipped, true);
  assert.equal(t.mp.scaler!.scale, scale / 4, 'each skip halves the loss scale');
  assert.equal(t.step, 2);
  assert.throws(() => t.trainStep(), /3 fp16 steps in a row were skipped/);
  t.dispose();
});

test('shouldStop ends the run between steps: a final checkpoint, no final evaluation, interrupted', async () => {
  const t = makeTrainer({ steps: 50 });
  const ckpts: number[] = [];
  let evals = 0;
  let steps = 0;
  // a signal handler runs only if the loop yields to the event loop between its synchronous steps
  let stop = false;
  const r = await runTraining(t, {
    onStep: () => {
      if (++steps === 2) setImmediate(() => (stop = true));
    },
    onEval: () => void evals++,
    checkpoint: (s) => void ckpts.push(s),
    shouldStop: () => stop,
  });
  assert.equal(r.interrupted, true);
  assert.ok(r.steps >= 2 && r.steps <= 3, `stopped after ${r.steps} steps`);
  assert.deepEqual(ckpts, [r.steps]);
  assert.equal(evals, 0);
  const { json } = t.state();
  assert.deepEqual(json.schedule, OPTS.schedule);
  assert.equal(json.steps, 50);
  assert.ok((json.elapsed ?? 0) > 0);
  t.dispose();
});
