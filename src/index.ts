// Lineage public API.
export { Tensor, type GradNode } from './tensor/tensor.js';
export { tidy, keep, noGrad, isGradEnabled, getBackend, setBackend } from './tensor/engine.js';
export { Rng, manualSeed, defaultRng } from './tensor/random.js';
export type { DType } from './tensor/dtype.js';
export * from './ops/index.js';
export type { Backend, KernelTable, View, Buf } from './backend/backend.js';
export { ReferenceBackend } from './backend/reference/backend.js';
export { checkpoint } from './autograd/checkpoint.js';
export * as nn from './nn/index.js';
