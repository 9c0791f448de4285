// Web Worker entry (module worker): receives a WorkerInit by postMessage, then serves jobs.
// Needs a cross-origin-isolated page (COOP/COEP) for SharedArrayBuffer.
import { serveJobs, type WorkerInit } from './pool.js';

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(msg: unknown): void;
}
const scope = globalThis as unknown as WorkerScope;
scope.onmessage = (e: MessageEvent) => {
  const init = e.data as WorkerInit;
  scope.onmessage = null;
  void WebAssembly.instantiate(init.module, { env: { memory: init.memory } }).then((instance) => {
    scope.postMessage('ready');
    serveJobs(init, instance.exports as Record<string, unknown>);
  });
};
