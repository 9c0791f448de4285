// The page script of the browser test (window thread). Two things run here:
//  1. the wasm backend on the window thread itself (2 threads): browsers forbid Atomics.wait there, so
//     the pool spins while its worker runs; a matmul is checked against a plain-JS product;
//  2. the engine worker (page-engine.ts), which does the real work the way an app should.
// The outcome lands in `window.lineageResult` for the Node side (browser.test.ts) to assert on.
import { createWasmBackend, getBackend, matmul, setBackend, tensor, tidy } from '../../src/index.js';
import type { EngineReport, EngineRequest } from './page-shared.js';

export interface MainThreadReport {
  threads: number;
  parallelJobs: number;
  backend: string;
  /** largest |wasm - plain JS| over the product */
  maxAbsErr: number;
}

export interface PageResult {
  crossOriginIsolated: boolean;
  /** on a page served without COOP/COEP: why createWasmBackend refused */
  isolationError?: string;
  mainThread?: MainThreadReport;
  engine?: EngineReport;
  error?: string;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 4294967296 - 0.5;
}

async function mainThreadMatmul(): Promise<MainThreadReport> {
  const [M, K, N] = [64, 48, 40];
  const r = lcg(5);
  const a = Float32Array.from({ length: M * K }, r);
  const b = Float32Array.from({ length: K * N }, r);
  // forceParallel: split even this small product, so the spinning wait on the window thread is exercised
  const be = await createWasmBackend({ threads: 2, forceParallel: true });
  const prev = getBackend();
  setBackend(be);
  let maxAbsErr = 0;
  try {
    const product = () => matmul(tensor(a, { shape: [M, K] }), tensor(b, { shape: [K, N] })); // (M, N)
    const got = tidy(() => product().data() as Float32Array);
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a[i * K + k]! * b[k * N + j]!;
        maxAbsErr = Math.max(maxAbsErr, Math.abs(s - got[i * N + j]!));
      }
    }
  } finally {
    setBackend(prev);
  }
  const report = { threads: be.threads, parallelJobs: be.parallelJobs, backend: be.name, maxAbsErr };
  await be.dispose();
  return report;
}

function runEngine(req: EngineRequest): Promise<EngineReport> {
  const w = new Worker(new URL('./page-engine.js', import.meta.url), { type: 'module', name: 'lineage-engine' });
  return new Promise((resolve, reject) => {
    w.onmessage = (e: MessageEvent) => {
      const m = e.data as { report?: EngineReport; error?: string };
      w.terminate();
      if (m.report) resolve(m.report);
      else reject(new Error(`engine worker: ${m.error}`));
    };
    w.onerror = (e) => reject(new Error(`engine worker failed to load or threw: ${e.message}`));
    w.postMessage(req);
  });
}

async function main(): Promise<PageResult> {
  const result: PageResult = { crossOriginIsolated: globalThis.crossOriginIsolated === true };
  if (!result.crossOriginIsolated) {
    // the control page (served without the headers): the backend must refuse with a clear message
    result.isolationError = await createWasmBackend({ threads: 2 }).then(
      (be) => `started anyway with ${be.threads} thread(s)`,
      (e: unknown) => (e instanceof Error ? e.message : String(e)),
    );
    return result;
  }
  const req = JSON.parse(document.getElementById('request')!.textContent!) as EngineRequest;
  result.mainThread = await mainThreadMatmul();
  result.engine = await runEngine(req);
  return result;
}

const w = window as unknown as { lineageResult?: PageResult };
main().then(
  (r) => (w.lineageResult = r),
  (e: unknown) => {
    const error = e instanceof Error ? `${e.message}\n${e.stack}` : String(e);
    w.lineageResult = { crossOriginIsolated: globalThis.crossOriginIsolated === true, error };
  },
);
