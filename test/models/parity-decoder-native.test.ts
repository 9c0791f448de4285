// The decoder fixtures (PyTorch goldens) on the native backend, 2 threads with every kernel split:
// full and token-by-token cached logits must match, as on the WebAssembly backend. Skipped where the
// addon was not built.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNativeBackend, type NativeBackend } from '../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { getBackend, noGrad, setBackend, tidy } from '../../src/tensor/engine.js';
import type { Backend } from '../../src/backend/backend.js';
import { tensor } from '../../src/ops/index.js';
import { loadModel } from '../../src/models/load-node.js';

const NAMES = ['gpt2', 'openai-gpt', 'llama', 'llama-rope-yarn', 'llama-rope-llama3', 'mistral', 'qwen2', 'qwen3', 'qwen3_moe', 'gemma', 'mixtral', 'deepseek_v2'];
const { addon, error } = loadNativeAddon();
let native: NativeBackend;
let previous: Backend;

before(() => {
  previous = getBackend();
  if (addon) {
    native = createNativeBackend(addon, { threads: 2, forceParallel: true });
    setBackend(native);
  }
});
after(() => {
  setBackend(previous);
});

for (const name of NAMES) {
  test(`native backend: ${name} full and cached logits match the golden`, { skip: addon ? false : error }, async () => {
    const g = JSON.parse(readFileSync(join('fixtures', name, 'golden.json'), 'utf8')) as { inputs: { input_ids: number[][] }; outputs: { logits: { data: number[] } } };
    const model = (await loadModel(join('fixtures', name))).eval();
    assert.equal(model.namedParameters()[0]![1].backend, native);
    const ids = tensor(g.inputs.input_ids, { dtype: 'int32' });
    const [B, T] = ids.shape as [number, number];
    const want = g.outputs.logits.data;
    const V = want.length / (B * T);
    const full = noGrad(() => model.forward({ inputIds: ids }).logits.data());
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(full[i]! - want[i]!));
    const cache = model.newCache!(B);
    for (let t = 0; t < T; t++) {
      const step = tidy(() => noGrad(() => model.forward({ inputIds: tensor(g.inputs.input_ids.map((r) => [r[t]!]), { dtype: 'int32' }), cache }).logits.data()));
      for (let b = 0; b < B; b++) for (let v = 0; v < V; v++) worst = Math.max(worst, Math.abs(step[b * V + v]! - want[(b * T + t) * V + v]!));
    }
    cache.dispose();
    assert.ok(worst < 1e-4, `max abs error ${worst}`);
  });
}
