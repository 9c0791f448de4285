// The engine worker of the browser test: a dedicated module Web Worker (where Atomics.wait is
// allowed) that runs Lineage on the WebAssembly backend with 2 threads (itself + one nested pool
// worker): it loads the bundled Shakespeare model, generates text, and trains a tiny model.
import {
  createModel,
  createTask,
  createWasmBackend,
  generate,
  getPreset,
  manualSeed,
  MemoryTokenFile,
  noGrad,
  setBackend,
  tidy,
  Trainer,
  type WasmBackend,
} from '../../src/index.js';
import { fetchModelFiles, modelFromFiles } from './page-model.js';
import { lastLogits, SAMPLING, type EngineReport, type EngineRequest } from './page-shared.js';

const errorText = (e: unknown) => (e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e));

interface Scope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown): void;
}
const scope = globalThis as unknown as Scope;

const TEXT =
  'ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n'.repeat(40);

/** mean loss of a fixed set of batches (the same before and after training) */
function fixedLoss(t: Trainer): number {
  const batches = t.task.evalBatches('val', 0, 2);
  t.model.eval();
  const loss = (b: (typeof batches)[number]) => noGrad(() => tidy(() => t.task.loss(t.model, b).loss.item()));
  const l = batches.reduce((s, b) => s + loss(b), 0) / batches.length;
  t.model.train();
  return l;
}

async function trainTiny(be: WasmBackend, steps: number): Promise<EngineReport['train']> {
  manualSeed(1);
  const model = createModel(getPreset('tiny-gpt2'), { seed: 1 }); // byte vocabulary (256), 2 layers, width 64
  const ids = Int32Array.from(new TextEncoder().encode(TEXT));
  const data = { train: new MemoryTokenFile(ids), val: new MemoryTokenFile(ids.slice(0, 800)) };
  // (8, 32) batches: the block's matmuls are above the pool's parallel threshold, so both threads work
  const task = createTask('causal-lm', model.config, data, { batchSize: 8, blockSize: 32, seed: 3 });
  const trainer = new Trainer(model, task, {
    steps,
    schedule: { kind: 'constant', lr: 3e-3 },
    gradClip: 1,
    optimizer: { kind: 'adamw', lr: 3e-3, weightDecay: 0 },
  });
  const jobs0 = be.parallelJobs;
  const lossBefore = fixedLoss(trainer);
  const stepLosses: number[] = [];
  for (let i = 0; i < steps; i++) stepLosses.push(trainer.trainStep().loss);
  const lossAfter = fixedLoss(trainer);
  trainer.dispose();
  return { steps, lossBefore, lossAfter, stepLosses, parallelJobs: be.parallelJobs - jobs0 };
}

async function run(req: EngineRequest): Promise<EngineReport> {
  const t0 = performance.now();
  const be = await createWasmBackend({ threads: 2 });
  if (be.threads !== 2) throw new Error(`engine: the wasm backend started ${be.threads} thread(s), expected 2`);
  setBackend(be);
  const t1 = performance.now();
  const { model, tokenizer } = modelFromFiles(await fetchModelFiles(req.modelBase));
  const t2 = performance.now();
  const promptIds = tokenizer.encode(req.prompt);
  const promptLogits = lastLogits(model, promptIds);
  const ids = generate(model, promptIds, { maxTokens: req.maxTokens, ...SAMPLING });
  const t3 = performance.now();
  const train = await trainTiny(be, req.trainSteps);
  const t4 = performance.now();
  const report: EngineReport = {
    crossOriginIsolated: (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === true,
    backend: be.name,
    threads: be.threads,
    parallelJobs: be.parallelJobs,
    generated: { promptIds, ids, text: tokenizer.decode(ids), vocabSize: tokenizer.vocabSize },
    promptLogits,
    train,
    ms: { backend: t1 - t0, load: t2 - t1, generate: t3 - t2, train: t4 - t3 },
  };
  await be.dispose();
  return report;
}

scope.onmessage = (e: MessageEvent) => {
  run(e.data as EngineRequest).then(
    (report) => scope.postMessage({ report }),
    (err: unknown) => scope.postMessage({ error: errorText(err) }),
  );
};
