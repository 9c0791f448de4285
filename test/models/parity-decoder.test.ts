// Parity of every decoder-only fixture (fixtures/<name>, made by an independent PyTorch implementation)
// with the models loaded through loadModel: logits, loss, router logits / aux loss and gradients.
import '../../src/autograd/index.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tensor, crossEntropy, slice, contiguous } from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/engine.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { loadModel } from '../../src/models/load-node.js';
import type { LanguageModel, ModelOutputs } from '../../src/models/model.js';

const ROOT = 'fixtures';
const DECODER_TYPES = new Set([
  'gpt2', 'gpt3', 'openai-gpt', 'llama', 'mistral', 'qwen2', 'qwen3', 'qwen3_moe', 'gemma', 'gemma2', 'phi3', 'minicpm',
  'mixtral', 'deepseek_v2', 'deepseek_v3',
]);

interface Golden {
  inputs: { input_ids: number[][] };
  outputs: Record<string, { shape: number[]; data: number[] } | number>;
  loss?: number;
  grads?: Record<string, { shape: number[]; data: number[] }>;
}
interface Entry {
  name: string;
  model_type: string;
  tolerance: { outputs: Tol; loss: Tol; grads: Tol };
}
interface Tol {
  atol: number;
  rtol: number;
}

const manifest = JSON.parse(readFileSync(join(ROOT, 'manifest.json'), 'utf8')) as { fixtures: Entry[] };
const fixtures = manifest.fixtures.filter((f) => DECODER_TYPES.has(f.model_type));

/** max |a - b| and whether every element is within atol + rtol·|b| */
export function compare(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol): { maxAbs: number; ok: boolean } {
  assert.equal(actual.length, expected.length, 'element count');
  let maxAbs = 0;
  let ok = true;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    maxAbs = Math.max(maxAbs, d);
    if (!(d <= tol.atol + tol.rtol * Math.abs(expected[i]!))) ok = false;
  }
  return { maxAbs, ok };
}

function nextTokenLoss(logits: Tensor, ids: Tensor): Tensor {
  const T = ids.shape[1]!;
  return crossEntropy(contiguous(slice(logits, 1, 0, T - 1)), contiguous(slice(ids, 1, 1)));
}

function checkTensor(label: string, t: Tensor, g: { shape: number[]; data: number[] }, tol: Tol): number {
  assert.deepEqual([...t.shape], g.shape, `${label} shape`);
  const { maxAbs, ok } = compare(t.data(), g.data, tol);
  assert.ok(ok, `${label}: max abs error ${maxAbs.toExponential(3)} exceeds atol ${tol.atol} + rtol ${tol.rtol}`);
  return maxAbs;
}

for (const fx of fixtures) {
  test(`parity ${fx.name}`, async () => {
    const golden = JSON.parse(readFileSync(join(ROOT, fx.name, 'golden.json'), 'utf8')) as Golden;
    const model: LanguageModel = (await loadModel(join(ROOT, fx.name))).eval();
    const ids = tensor(golden.inputs.input_ids, { dtype: 'int32' });
    const wantGrads = golden.grads && Object.keys(golden.grads).length > 0;
    const out: ModelOutputs = wantGrads ? model.forward({ inputIds: ids }) : noGrad(() => model.forward({ inputIds: ids }));
    const errors: string[] = [];
    errors.push(`logits ${checkTensor('logits', out.logits, golden.outputs.logits as never, fx.tolerance.outputs).toExponential(2)}`);
    const loss = nextTokenLoss(out.logits, ids);
    if (golden.loss !== undefined) {
      const t = fx.tolerance.loss;
      assert.ok(Math.abs(loss.item() - golden.loss) <= t.atol + t.rtol * Math.abs(golden.loss), `loss ${loss.item()} vs ${golden.loss}`);
      errors.push(`loss ${Math.abs(loss.item() - golden.loss).toExponential(2)}`);
    }
    if (golden.outputs.router_logits) {
      errors.push(`router ${checkTensor('router_logits', out.routerLogits!, golden.outputs.router_logits as never, fx.tolerance.outputs).toExponential(2)}`);
    }
    if (typeof golden.outputs.aux_loss === 'number') {
      const f = model.config.arch === 'decoder' && model.config.decoder.block.ffn.kind === 'moe' ? model.config.decoder.block.ffn : null;
      const raw = out.auxLoss!.item() / f!.auxLossCoef;
      assert.ok(Math.abs(raw - golden.outputs.aux_loss) < 1e-4, `aux_loss ${raw} vs ${golden.outputs.aux_loss}`);
      const withAux = loss.item() + out.auxLoss!.item();
      assert.ok(Math.abs(withAux - (golden.outputs.loss_with_aux as number)) < 1e-4, `loss_with_aux ${withAux}`);
    }
    if (wantGrads) {
      loss.backward();
      const params = new Map(model.namedParameters());
      let worst = 0;
      for (const [name, g] of Object.entries(golden.grads!)) {
        const p = params.get(name);
        assert.ok(p?.grad, `no gradient for ${name}`);
        worst = Math.max(worst, checkTensor(`grad ${name}`, p.grad, g, fx.tolerance.grads));
      }
      errors.push(`grads ${worst.toExponential(2)}`);
    }
    console.log(`# ${fx.name}: max abs error ${errors.join(', ')}`);
  });
}

test('deepseek_v2: transformers-semantics logits differ from the reference ones the model follows', async () => {
  const golden = JSON.parse(readFileSync(join(ROOT, 'deepseek_v2', 'golden.json'), 'utf8')) as Golden;
  const hf = golden.outputs.logits_transformers_semantics as { data: number[] };
  const ref = golden.outputs.logits as { data: number[] };
  assert.ok(compare(hf.data, ref.data, { atol: 1e-2, rtol: 0 }).maxAbs > 1e-2);
});
