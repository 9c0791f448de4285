// Reverse-mode autograd above the op layer: the backward pass over the graph the ops record
// (importing this installs `Tensor.prototype.backward`) and gradient checkpointing.
export { backward } from './backward.js';
export { checkpoint } from './checkpoint.js';
