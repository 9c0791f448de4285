// Lineage public API.
export { Tensor, type GradNode } from './tensor/tensor.js';
export { tidy, keep, noGrad, isGradEnabled, getBackend, setBackend } from './tensor/engine.js';
export { Rng, manualSeed, defaultRng } from './tensor/random.js';
export type { DType } from './backend/dtype.js';
export * from './ops/index.js';
export type { Backend, KernelTable, View, Buf } from './backend/backend.js';
export { ReferenceBackend } from './backend/reference/backend.js';
export { backward, checkpoint } from './autograd/index.js';
export * as nn from './nn/index.js';

// ---- models ----
export * from './models/config.js';
export { createModel, MODEL_FAMILIES } from './models/registry.js';
export type { LanguageModel, ModelInputs, ModelOutputs, Cache, CreateOptions } from './models/model.js';
export { getPreset, getPresetInfo, presetNames, isPreset } from './models/presets.js';
export { fromHFConfig, toHFConfig, applyOverrides } from './models/hf-config.js';
export { inspectConfig, countParams } from './models/inspect.js';
export { parseSafetensors, serializeSafetensors } from './io/safetensors.js';
export {
  loadModelFromFiles,
  modelFromCheckpoint,
  configFromJson,
  configToJson,
  checkTokenizer,
} from './models/load.js';

// ---- tokenizers ----
export * as tokenizers from './tokenizers/index.js';
export {
  Tokenizer,
  charTokenizer,
  bytesTokenizer,
  trainBPE,
  trainWordPiece,
  trainUnigram,
} from './tokenizers/index.js';

// ---- inference ----
export { generate, contextLimit, type GenerateOptions } from './infer/generate.js';
export type { SamplingOptions } from './infer/sampling.js';

// ---- training ----
export {
  Trainer,
  runTraining,
  type TrainerOptions,
  type TrainHooks,
  type RunResult,
  type StepResult,
} from './train/trainer.js';
export {
  createTask,
  defaultObjective,
  OBJECTIVES,
  type ObjectiveName,
  type TaskData,
  type TaskOptions,
  type TrainTask,
  type HostBatch,
  type LossResult,
} from './train/family-objectives.js';
// training data: implement TokenSource (or use MemoryTokenFile) for createTask's { train, val }
export { MemoryTokenFile, type TokenSource, type TokenDType } from './train/data/token-file.js';
export {
  SGD,
  Adam,
  AdamW,
  createOptimizer,
  clipGradNorm,
  type Optimizer,
  type OptimizerConfig,
} from './train/optim.js';
// ---- WebAssembly backend (browsers: a cross-origin-isolated page; see docs/BROWSER.md) ----
export { createWasmBackend, type WasmBackend, type WasmBackendOptions } from './backend/wasm/backend.js';
export { webWorkerSpawner, webWorkersAvailable } from './backend/wasm/pool-browser.js';
// ---- inference engine ----
export { Engine, RequestHandle } from './infer/engine/engine.js';
export type { EngineOptions, EngineRequest, EngineStats } from './infer/engine/engine.js';
export type { TokenEvent, FinishReason, LogitsProcessor } from './infer/engine/sequence.js';
