// Browser-safe data pipeline (the Node file adapter is ./token-file-node.js).
export * from './token-file.js';
export * from './batches.js';
export * from './packing.js';
