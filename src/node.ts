// Node entry point. `import ... from 'lineage'` resolves here under Node (package.json's "node"
// condition): everything in the browser-safe core (./index.js), plus files, worker threads and the
// fast backend, which is selected on import (LINEAGE_BACKEND=reference|wasm and LINEAGE_THREADS=N
// choose otherwise). Its worker threads are unref'd: an idle library never keeps a process alive.
export * from './index.js';
export { loadModel, saveModel, loadModelDir } from './models/load-node.js';
export { saveModelDir, type LoadedModel } from './infer/model-dir-node.js';
export { loadTokenizer, saveTokenizer } from './tokenizers/load-node.js';
export { readCheckpoint, writeCheckpoint } from './io/checkpoint-node.js';
export {
  NodeTokenFile,
  openTokenSplits,
  prepareTokenFiles,
  writeTokenFile,
  type OpenTokenFileOptions,
  type PrepareOptions,
  type PrepareResult,
} from './train/data/token-file-node.js';
export { useFastBackend, shutdownBackend } from './cli/backend-node.js';
export { EngineWorker } from './infer/engine/engine-node.js';
export { createNativeBackend } from './backend/native/backend.js';
export { loadNativeAddon } from './backend/native/addon-node.js';

import { useFastBackend } from './cli/backend-node.js';
await useFastBackend();
