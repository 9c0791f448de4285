// Node-only entry point (`lineage/node`): files, worker threads, the WebAssembly backend on all cores.
export { loadModel, saveModel } from './models/load-node.js';
export { loadTokenizer, saveTokenizer } from './tokenizers/load-node.js';
export { readCheckpoint, writeCheckpoint } from './io/checkpoint-node.js';
export { useFastBackend, shutdownBackend } from './cli/backend-node.js';
export { createWasmBackend } from './backend/wasm/backend.js';
export { createNativeBackend } from './backend/native/backend.js';
export { loadNativeAddon } from './backend/native/addon-node.js';
