// Trainer.dispose() frees everything the trainer allocated (optimizer moments, and under bf16/fp16 the
// float32 master weights), and a disposed trainer refuses to keep training.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModel, createTask, getBackend, getPreset, MemoryTokenFile, Trainer } from '../../src/index.js';
import type { Precision } from '../../src/train/precision.js';

const ids = Int32Array.from({ length: 600 }, (_, i) => (i * 7) % 200);

function make(precision: Precision): Trainer {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 0 });
  const data = { train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids.slice(0, 200)) };
  const task = createTask('causal-lm', model.config, data, { batchSize: 2, blockSize: 8, seed: 1 });
  return new Trainer(model, task, {
    steps: 4,
    precision,
    evalBatches: 1,
    schedule: { kind: 'constant', lr: 1e-2 },
    optimizer: { kind: 'adamw', lr: 1e-2 },
  });
}

for (const precision of ['fp32', 'bf16', 'fp16'] as const) {
  test(`${precision}: backend memory returns to its baseline after trainer.dispose() and model.dispose()`, () => {
    const be = getBackend();
    const base = be.bytesInUse();
    for (let i = 0; i < 2; i++) {
      const t = make(precision);
      t.trainStep();
      t.evaluate();
      t.dispose();
      t.model.dispose();
    }
    assert.equal(be.bytesInUse() - base, 0, 'bytes left behind');
  });
}

test('a disposed trainer throws instead of training on with fresh optimizer moments', () => {
  const t = make('bf16');
  t.trainStep();
  t.dispose();
  assert.equal(t.isDisposed, true);
  assert.throws(() => t.trainStep(), /trainer: trainStep\(\) after dispose\(\)/);
  assert.throws(() => t.evaluate(), /trainer: evaluate\(\) after dispose\(\)/);
  assert.throws(() => t.state(), /trainer: state\(\) after dispose\(\)/);
  assert.throws(() => t.weights(), /trainer: weights\(\) after dispose\(\)/);
  assert.throws(() => t.microStep(t.task.next()), /trainer: microStep\(\) after dispose\(\)/);
  t.dispose(); // idempotent
  t.model.dispose();
});
