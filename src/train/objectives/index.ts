// Training objectives: plain arrays ready to become tensors.
export * from './common.js';
export * from './causal.js';
export * from './mlm.js';
export * from './span-corruption.js';
export * from './bart.js';
export * from './seq2seq.js';
export * from './bptt.js';
export * from './synthetic.js';
export * from './sft.js';
