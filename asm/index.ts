// Entry point of the WebAssembly kernels (compiled twice by scripts/build-wasm.mjs: relaxed SIMD and
// plain SIMD). Every parallel kernel takes (tid, nth) first and computes its own share of the work.
export { heapBase } from './common';
export { gemm, gemmScratchBytes, gemmSmallM, gemv } from './gemm';
export { attention, attentionBackward, attentionScratchBytes } from './attention';
export { unary, unaryBackward, binary } from './elementwise';
export { fused, fusedScratchBytes } from './fused';
export { copyStrided, reduce, gather, scatterAdd } from './layout';
export { softmax, softmaxBackward, norm, normBackward, sumPartials, crossEntropy, crossEntropyBackward, adamw } from './rows';
export { pagedAttention } from './paged';
export { qgemv } from './quant';
