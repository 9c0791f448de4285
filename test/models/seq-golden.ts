// Golden-fixture helpers for the RNN / Mamba / BERT / T5 / BART / Marian tests: load fixtures/<name>
// (config.json, model.safetensors, golden.json, manifest tolerance) and compare tensors with the
// manifest's atol + rtol * |golden| rule, reporting the max abs error.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { readCheckpoint } from '../../src/io/checkpoint-node.js';
import type { HfJson } from '../../src/models/hf-config.js';
import { Tensor, getBackend, setBackend, tensor, type Backend } from '../../src/index.js';
import { createWasmBackend } from '../../src/backend/wasm/backend.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { countParams } from '../../src/models/inspect.js';

export const ROOT = fileURLToPath(new URL('../../../fixtures/', import.meta.url));

export interface GoldenTensor {
  shape: number[];
  data: number[];
}

export interface Golden {
  inputs: Record<string, unknown>;
  outputs: Record<string, GoldenTensor | number>;
  loss?: number;
  grads?: Record<string, GoldenTensor>;
}

export interface Fixture {
  name: string;
  config: HfJson;
  weights: Map<string, Tensor>;
  golden: Golden;
  /** tolerances for outputs, loss and grads (the manifest may give one for all) */
  tol: { outputs: Tol; loss: Tol; grads: Tol };
}

export interface Tol {
  atol: number;
  rtol: number;
}

export async function loadFixture(name: string): Promise<Fixture> {
  const ckpt = await readCheckpoint(ROOT + name);
  const weights = new Map<string, Tensor>();
  for (const t of ckpt.tensors) weights.set(t.name, tensor(t.data as Float32Array, { shape: t.shape, dtype: t.dtype }));
  const golden = JSON.parse(readFileSync(`${ROOT}${name}/golden.json`, 'utf8')) as Golden;
  const manifest = JSON.parse(readFileSync(`${ROOT}manifest.json`, 'utf8')) as { fixtures: { name: string; tolerance: Tol | Record<string, Tol> }[] };
  const entry = manifest.fixtures.find((f) => f.name === name);
  assert.ok(entry, `fixture ${name} is not in fixtures/manifest.json`);
  const t = entry.tolerance;
  const one = (k: string): Tol => ('atol' in t ? (t as Tol) : ((t as Record<string, Tol>)[k] ?? (t as Record<string, Tol>).outputs!));
  return { name, config: ckpt.config, weights, golden, tol: { outputs: one('outputs'), loss: one('loss'), grads: one('grads') } };
}

/** int32 tensor from a golden input (nested number arrays) */
export function ids(v: unknown): Tensor {
  return tensor(v as number[][], { dtype: 'int32' });
}

/** asserts closeness (atol + rtol * |golden|) and returns the max abs error */
export function expectClose(what: string, actual: Tensor, golden: GoldenTensor | number, tol: Tol): number {
  const g = typeof golden === 'number' ? { shape: [], data: [golden] } : golden;
  assert.deepEqual([...actual.shape], g.shape, `${what}: shape ${JSON.stringify(actual.shape)} vs golden ${JSON.stringify(g.shape)}`);
  const a = actual.data();
  let maxErr = 0;
  let worst = -1;
  for (let i = 0; i < g.data.length; i++) {
    const err = Math.abs(a[i]! - g.data[i]!);
    if (!(err <= maxErr)) {
      maxErr = err;
      worst = i;
    }
    if (!(err <= tol.atol + tol.rtol * Math.abs(g.data[i]!))) {
      assert.fail(`${what}: element ${i} is ${a[i]}, golden ${g.data[i]} (err ${err}, atol ${tol.atol}, rtol ${tol.rtol})`);
    }
  }
  if (process.env.LINEAGE_REPORT_ERR) console.log(`  max|err| ${what}: ${maxErr.toExponential(2)} (at ${worst})`);
  return maxErr;
}

/** max abs difference of two tensors of the same shape */
export function maxDiff(a: Tensor, b: Tensor): number {
  assert.deepEqual([...a.shape], [...b.shape]);
  const x = a.data();
  const y = b.data();
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
}

/** one training step's checks: logits of the expected shape, finite loss, a finite non-zero gradient on
 * every trainable parameter */
export function checkTrainStep(model: { namedParameters(): [string, Tensor][] }, logits: Tensor, targets: Tensor, lossOf: (logits: Tensor, targets: Tensor) => Tensor): void {
  const loss = lossOf(logits, targets);
  assert.ok(Number.isFinite(loss.item()), `loss is ${loss.item()}`);
  loss.backward();
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    assert.ok(p.grad, `${name} got no gradient`);
    const g = p.grad.data();
    assert.ok(g.every((v) => Number.isFinite(v)), `${name} has a non-finite gradient`);
    assert.ok(g.some((v) => v !== 0), `${name} has an all-zero gradient`);
  }
}

/** runs fn with the WebAssembly backend (1 thread) as the current backend, restoring the previous one */
export async function onWasm<T>(fn: () => Promise<T> | T): Promise<T> {
  const prev = getBackend();
  wasm ??= await createWasmBackend({ threads: 1 });
  setBackend(wasm);
  try {
    return await fn();
  } finally {
    setBackend(prev);
  }
}
let wasm: Backend | null = null;

/** the built model's trainable parameter count equals src/models/inspect's count from the config alone */
export function checkParamCount(preset: string): void {
  const cfg = getPreset(preset);
  const model = createModel(cfg);
  const trainable = model.parameters().filter((p) => p.requiresGrad).reduce((s, p) => s + p.size, 0);
  assert.equal(trainable, countParams(cfg).params, `${preset}: built model vs countParams`);
}
