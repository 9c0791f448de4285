// Browser adapter of the thread pool: module Web Workers on the shared WebAssembly.Memory.
//
// What a page needs for threads: SharedArrayBuffer and a shared WebAssembly.Memory exist only in a
// cross-origin-isolated context, i.e. the document is served with
//   Cross-Origin-Opener-Policy: same-origin
//   Cross-Origin-Embedder-Policy: require-corp   (or credentialless)
// and every script it loads (the worker script included) is same-origin or CORP/CORS-enabled.
//
// Where the engine runs: the pool's caller is thread 0 and waits for the workers with Atomics.wait.
// Browsers forbid Atomics.wait on the main (window) thread, so there the pool spins on Atomics.load
// instead (correct, but the tab is busy for the whole kernel). Run the engine in a dedicated Web
// Worker (docs/BROWSER.md): there Atomics.wait is allowed, the UI stays responsive, and the pool's
// own workers are nested workers started from it.

import type { SpawnWorker, WorkerHandle, WorkerInit } from './pool.js';

/** the message worker-web.ts posts: 'ready', or why it could not start */
export type WebWorkerReport = 'ready' | { error: string };

interface WorkerLike {
  onmessage: ((e: MessageEvent) => void) | null;
  onerror: ((e: ErrorEvent) => void) | null;
  onmessageerror: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown): void;
  terminate(): void;
}
type WorkerCtor = new (url: string | URL, opts: { type: 'module'; name?: string }) => WorkerLike;

function workerCtor(): WorkerCtor | null {
  const w = (globalThis as { Worker?: unknown }).Worker;
  return typeof w === 'function' ? (w as WorkerCtor) : null;
}

/** whether this context can run the pool's workers (Web Workers + cross-origin isolation) */
export function webWorkersAvailable(): boolean {
  const g = globalThis as { crossOriginIsolated?: boolean };
  return g.crossOriginIsolated === true && typeof SharedArrayBuffer === 'function' && workerCtor() !== null;
}

/** logical cores the browser reports (1 when unknown) */
export function browserCores(): number {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  return Math.max(1, Math.floor(nav?.hardwareConcurrency ?? 1));
}

/**
 * Starts pool workers from `url`, a module script that runs worker-web.js (the default is the file next
 * to this module, which is also where a bundle must put it: bundle dist/src/backend/wasm/worker-web.js
 * as its own entry point, or pass the URL it is served from).
 */
export function webWorkerSpawner(url: string | URL = new URL('./worker-web.js', import.meta.url)): SpawnWorker {
  return (init: WorkerInit): WorkerHandle => {
    const Ctor = workerCtor();
    if (!Ctor) throw new Error('wasm backend: Web Workers are unavailable in this context');
    const w = new Ctor(url, { type: 'module', name: `lineage-wasm-${init.tid}` });
    let settled = false;
    const ready = new Promise<void>((resolve, reject) => {
      const fail = (why: string) => {
        if (settled) return; // after start-up the pool reports kernel errors itself
        settled = true;
        w.terminate();
        reject(new Error(`wasm backend: web worker ${init.tid} (${String(url)}) failed to start: ${why}`));
      };
      w.onmessage = (e: MessageEvent) => {
        const r = e.data as WebWorkerReport;
        if (r === 'ready') {
          settled = true;
          resolve();
        } else fail(typeof r === 'object' && r && 'error' in r ? r.error : `unexpected message ${JSON.stringify(r)}`);
      };
      // a module script that 404s or does not parse only gives an ErrorEvent, often without a message
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault?.();
        fail(e.message || 'the worker script could not be loaded (wrong URL, or served without COEP/CORP headers?)');
      };
      w.onmessageerror = () => {
        fail('the WebAssembly module or memory could not be sent (is the page cross-origin isolated?)');
      };
    });
    w.postMessage(init);
    return { ready, terminate: () => w.terminate() };
  };
}
