// Index tensors checked on the host: indexSelect / embedding skip reading them back, every other index
// tensor keeps the checked path, and an engine decode step reads no int32 tensor back at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tensor } from '../../src/tensor/tensor.js';
import { embedding, indexSelect, indexTensor, tensor } from '../../src/ops/index.js';
import { createModel } from '../../src/models/registry.js';
import { Engine } from '../../src/infer/engine/engine.js';
import { generate } from '../../src/infer/generate.js';
import { tinyConfig } from '../models/decoder-helpers.js';

/** runs f counting reads of int32 tensors back to the host */
function int32Reads(f: () => void): number {
  const data = Tensor.prototype.data;
  let reads = 0;
  Tensor.prototype.data = function (this: Tensor) {
    if (this.dtype === 'int32') reads++;
    return data.call(this);
  };
  try {
    f();
  } finally {
    Tensor.prototype.data = data;
  }
  return reads;
}

test('indexTensor checks on the host; indexSelect and embedding then skip the read-back', () => {
  const w = tensor([
    [1, 2],
    [3, 4],
    [5, 6],
  ]);
  const ids = indexTensor([2, 0], 3);
  assert.equal(
    int32Reads(() => embedding(w, ids)),
    0,
  );
  assert.deepEqual(Array.from(embedding(w, ids).data()), [5, 6, 1, 2]);
  assert.throws(
    () => indexTensor([0, 3], 3, { what: 'inputIds' }),
    /inputIds: value 3 at position 1 is outside \[0, 3\)/,
  );
  assert.throws(() => indexTensor([1.5], 3), /value 1.5 at position 0/);
  // checked against a larger bound than the table: the op checks again (and finds the bad index)
  assert.throws(
    () => indexSelect(w, 0, indexTensor([4], 10)),
    /indexSelect: index 4 at position 0 is out of range \[0, 3\)/,
  );
  // a plain int32 tensor keeps the checked path (user-facing calls)
  const plain = tensor(Int32Array.of(0, 7));
  assert.ok(int32Reads(() => assert.throws(() => embedding(w, plain), /out of range \[0, 3\)/)) > 0);
});

test('an engine decode step and generate() read no index tensor back', () => {
  const model = createModel(tinyConfig('llama'), { seed: 1 });
  const prompt = [1, 2, 3, 4, 5];
  const engine = new Engine(model, { autoRun: false, kvMemoryBytes: 1 << 20 });
  engine.add({ prompt, maxTokens: 4, temperature: 0, ignoreEos: true });
  assert.equal(
    int32Reads(() => engine.runToCompletion()),
    0,
  );
  assert.equal(
    int32Reads(() => generate(model, prompt, { maxTokens: 3, temperature: 0 })),
    0,
  );
});
