// Neural-network building blocks: modules and layers, positions, attention (standard, MLA, masks,
// KV cache), feed-forward (MLP, GLU, MoE), transformer layers, recurrent / state-space / vision blocks.
export * from './module.js';
export * from './layers.js';
export * from './activations.js';
export * from './norm.js';
export * from './conv1d.js';
export * from './positions.js';
export * from './masks.js';
export * from './cache.js';
export * from './attention.js';
export * from './mla.js';
export * from './ffn.js';
export * from './moe.js';
export * from './block.js';
export * from './rnn.js';
export * from './mamba.js';
export * from './vision.js';
export * from './t5-bias.js';
export * from './quant.js';
