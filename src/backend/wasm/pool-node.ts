// Node adapter of the thread pool: worker_threads, unref'd so an idle pool never keeps a process alive.
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { SpawnWorker, WorkerHandle } from './pool.js';

export const spawnNodeWorker: SpawnWorker = (init): WorkerHandle => {
  const w = new Worker(new URL('./worker-node.js', import.meta.url), { workerData: init });
  w.unref();
  const ready = new Promise<void>((resolve, reject) => {
    w.once('message', () => resolve());
    w.once('error', (e) => reject(new Error(`wasm backend: worker ${init.tid} failed to start: ${e.message}`)));
    w.once('exit', (code) => reject(new Error(`wasm backend: worker ${init.tid} exited during start (code ${code})`)));
  });
  return { ready, terminate: () => w.terminate() };
};

/** cores available to this process */
export function nodeCores(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}
