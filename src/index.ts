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

// ---- models ----
export * from './models/config.js';
export { createModel, MODEL_FAMILIES } from './models/registry.js';
export type { LanguageModel, ModelInputs, ModelOutputs, Cache, CreateOptions } from './models/model.js';
export { getPreset, getPresetInfo, presetNames, isPreset } from './models/presets.js';
export { fromHFConfig, toHFConfig, applyOverrides } from './models/hf-config.js';
export { inspectConfig, countParams } from './models/inspect.js';
export { parseSafetensors, serializeSafetensors } from './io/safetensors.js';

// ---- tokenizers ----
export * as tokenizers from './tokenizers/index.js';
export { Tokenizer, charTokenizer, bytesTokenizer, trainBPE, trainWordPiece, trainUnigram } from './tokenizers/index.js';

// ---- inference engine ----
export { Engine, RequestHandle } from './infer/engine/engine.js';
export type { EngineOptions, EngineRequest, EngineStats } from './infer/engine/engine.js';
export type { TokenEvent, FinishReason, LogitsProcessor } from './infer/engine/sequence.js';
