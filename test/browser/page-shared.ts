// What the page and the Node side of the browser test share: the request, the report, the sampling
// settings, and the logits probe (Node repeats it on the same weights to compare).
import { noGrad, tensor, tidy, type LanguageModel } from '../../src/index.js';

/** sampling settings of the generation (the Node side repeats it with the same ones) */
export const SAMPLING = { temperature: 0.8, topK: 20, seed: 7 } as const;

/** what the page asks for (the Node test chooses the values) */
export interface EngineRequest {
  /** URL of the model directory, e.g. '/models/shakespeare-char/' */
  modelBase: string;
  prompt: string;
  maxTokens: number;
  trainSteps: number;
}

export interface EngineReport {
  crossOriginIsolated: boolean;
  backend: string;
  threads: number;
  /** kernel calls that ran on both threads (0 would mean the pool never used its worker) */
  parallelJobs: number;
  generated: { promptIds: number[]; ids: number[]; text: string; vocabSize: number };
  /** logits at the prompt's last position (V), to compare with Node on the same weights */
  promptLogits: number[];
  train: { steps: number; lossBefore: number; lossAfter: number; stepLosses: number[]; parallelJobs: number };
  ms: { backend: number; load: number; generate: number; train: number };
}

/** logits of the last position after one forward pass over `ids` (V) */
export function lastLogits(model: LanguageModel, ids: readonly number[]): number[] {
  return noGrad(() =>
    tidy(() => {
      const T = ids.length;
      const inputIds = tensor(Int32Array.from(ids), { shape: [1, T], dtype: 'int32' }); // (1, T)
      const { logits } = model.forward({ inputIds }); // (1, T, V)
      const V = logits.shape[2]!;
      return Array.from(
        logits
          .slice(1, T - 1, T)
          .reshape(V)
          .data() as Float32Array,
      ); // (V)
    }),
  );
}
