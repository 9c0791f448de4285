// The functional op API. Primitives call one kernel each; everything else is composed.
export * from './creation.js';
export * from './elementwise.js';
export * from './reduce.js';
export * from './movement.js';
export * from './linalg.js';
export * from './nn.js';
export * from './indices.js';
import './methods.js'; // installs the Tensor methods (x.add(y), ...)
export { alloc, kernel, record } from './core.js';
export type { TensorLike } from './core.js';
export * from './quant.js';
export * from './fused.js';
