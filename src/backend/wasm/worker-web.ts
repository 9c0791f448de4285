// Web Worker entry (module worker): receives a WorkerInit by postMessage, then serves jobs.
// Needs a cross-origin-isolated page (COOP/COEP) for SharedArrayBuffer. Reports 'ready', or
// { error } when the kernels cannot be instantiated (see pool-browser.ts).
import { serveJobs, type WorkerInit } from './pool.js';

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown): void;
}
const scope = globalThis as unknown as WorkerScope;
scope.onmessage = (e: MessageEvent) => {
  const init = e.data as WorkerInit;
  scope.onmessage = null;
  WebAssembly.instantiate(init.module, { env: { memory: init.memory } }).then(
    (instance) => {
      scope.postMessage('ready');
      serveJobs(init, instance.exports as Record<string, unknown>);
    },
    (err: unknown) => scope.postMessage({ error: `instantiate: ${err instanceof Error ? err.message : String(err)}` }),
  );
};
