// One forward of the fast decoder (src/infer/fast-decoder.ts) on a model directory, split into the time in
// its matmuls and the rest (norms, RoPE and head-major copies, SwiGLU, residual adds: the host side of a
// step), for a prefill-sized and a decode-sized step. Attention is left out (the callback returns its
// queries), so the figures are the step's own work without the KV cache.
//   node --experimental-wasm-relaxed-simd dist/bench/fast-step.js [--model DIR] [--threads T] [--tokens 512,32]
//     [--reps R]
// Prints one JSON object: per step size, the median forward and matmul milliseconds over R forwards.
import { loadModelDir } from '../src/infer/model-dir-node.js';
import { FastDecoder } from '../src/infer/fast-decoder.js';
import { useFastBackend, shutdownBackend } from '../src/cli/backend-node.js';
import { fileURLToPath } from 'node:url';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : def;
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;

async function main(): Promise<void> {
  const threads = Number(arg('threads', '2'));
  const reps = Number(arg('reps', '40'));
  const sizes = arg('tokens', '512,32').split(',').map(Number);
  if (!(threads >= 1) || !(reps >= 1) || sizes.some((t) => !Number.isInteger(t) || t < 1))
    throw new Error('fast-step: --threads, --reps and --tokens must be positive integers');
  const backend = await useFastBackend({ threads });
  const dir = arg('model', fileURLToPath(new URL('../../models/shakespeare-llama', import.meta.url)));
  const { model } = await loadModelDir(dir);
  model.eval();
  const fast = FastDecoder.create(model);
  if (!fast) throw new Error(`fast-step: no fast path for ${dir}: ${FastDecoder.why}`);
  // time inside the matmuls: the decoder's projection method, wrapped
  let mm = 0;
  const proto = FastDecoder.prototype as unknown as { project: (...a: unknown[]) => unknown };
  const project = proto.project;
  proto.project = function (this: unknown, ...a: unknown[]) {
    const t0 = performance.now();
    const r = project.apply(this, a);
    mm += performance.now() - t0;
    return r;
  };
  const rows: unknown[] = [];
  for (const T of sizes) {
    const V = model.config.vocabSize;
    const step = {
      ids: Int32Array.from({ length: T }, (_, i) => (i * 7) % V),
      positions: Int32Array.from({ length: T }, (_, i) => i % 64),
      seqLen: () => 64,
      rows: Int32Array.of(T - 1),
    };
    const [total, mms] = [[] as number[], [] as number[]];
    for (let r = 0; r < reps + 2; r++) {
      mm = 0;
      const t0 = performance.now();
      fast.forward(step, (_i, q) => q.slice());
      if (r < 2) continue; // warm-up
      total.push(performance.now() - t0);
      mms.push(mm);
    }
    const [f, m] = [median(total), median(mms)];
    rows.push({ tokens: T, forwardMs: f, matmulMs: m, restMs: f - m });
  }
  proto.project = project;
  console.log(JSON.stringify({ bench: 'fast-step', model: dir, backend: backend.name, threads, reps, steps: rows }));
  fast.dispose();
  await shutdownBackend();
}

await main();
