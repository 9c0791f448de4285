// Node worker_threads entry: instantiate the kernels on the shared memory, then serve jobs.
import { parentPort, workerData } from 'node:worker_threads';
import { serveJobs, type WorkerInit } from './pool.js';

const init = workerData as WorkerInit;
const instance = await WebAssembly.instantiate(init.module, { env: { memory: init.memory } });
parentPort!.postMessage('ready');
serveJobs(init, instance.exports as Record<string, unknown>);
