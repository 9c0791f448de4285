// Module.replace: a submodule swapped by path is the one every caller uses afterwards (fields,
// arrays, maps, references held by an ancestor below a Container), and parameter names follow it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mul, tensor } from '../../src/ops/index.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { noGrad } from '../../src/tensor/engine.js';
import { Module } from '../../src/nn/module.js';
import { Linear } from '../../src/nn/layers.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { tinyConfig } from '../models/decoder-helpers.js';

/** wraps a linear and doubles its output: a stand-in for a LoRA or quantized linear */
class Doubled extends Module {
  constructor(readonly base: Linear) {
    super();
    this.child('base_layer', base);
  }
  forward(x: Tensor): Tensor {
    return mul(this.base.forward(x), 2);
  }
}

const ids = () => tensor([[1, 2, 3, 4]], { dtype: 'int32' });
const logits = (m: ReturnType<typeof createModel>) =>
  noGrad(() => m.forward({ inputIds: ids() }).logits.toList() as unknown);

test('replace swaps a decoder projection for every caller, and renames its parameters', () => {
  const model = createModel(tinyConfig('llama'), { seed: 3 });
  const before = logits(model);
  const path = 'model.layers.0.self_attn.q_proj';
  const old = model.getModule(path) as Linear;
  assert.ok(old instanceof Linear);
  assert.equal(model.replace(path, new Doubled(old)), old);
  assert.ok(model.getModule(path) instanceof Doubled);
  const names = model.namedParameters().map(([n]) => n);
  assert.ok(names.includes(`${path}.base_layer.weight`));
  assert.ok(!names.includes(`${path}.weight`));
  assert.notDeepEqual(logits(model), before, 'the new module is called');
  model.replace(path, old);
  assert.deepEqual(logits(model), before, 'putting the old one back restores the output');
});

test('replace reaches a projection registered below a Container (BERT attention.self.query)', () => {
  const model = createModel(getPreset('tiny-bert'), { seed: 1 });
  const path = 'bert.encoder.layer.0.attention.self.query';
  const before = logits(model);
  const old = model.getModule(path) as Linear;
  model.replace(path, new Doubled(old));
  assert.notDeepEqual(logits(model), before);
});

test('replace and getModule name the missing piece', () => {
  const model = createModel(tinyConfig('llama'));
  assert.throws(() => model.getModule('model.layers.9.self_attn'), /no submodule '9'/);
  assert.throws(() => model.replace('model.layers.0.self_attn.nope', new Linear(2, 2)), /no submodule/);
  class NoForward extends Module {}
  assert.throws(() => model.replace('model.layers.0.self_attn.q_proj', new NoForward()), /has none/);
});
