// Supervised fine-tuning loss masking: the model sees the whole conversation but is trained only on
// the tokens of the roles it should produce (by default the assistant's replies).
import { IGNORE_INDEX } from './common.js';

export interface RoleSpan {
  role: string;
  tokens: ArrayLike<number>;
  /** Overrides the role rule for this span (e.g. false for an assistant turn kept as context only). */
  train?: boolean;
}

export interface SftExample {
  /** All spans concatenated (truncated to maxLength). */
  inputIds: Int32Array;
  /** Same positions as inputIds: the token where trained, IGNORE_INDEX elsewhere (HF convention; the loss shifts). */
  labels: Int32Array;
}

export interface SftOptions {
  /** Roles whose tokens carry labels. Default ['assistant']. */
  trainRoles?: string[];
  maxLength?: number;
}

/** Concatenates role spans and masks every token not produced by a trained role with -100. */
export function sftLossMask(spans: RoleSpan[], opts: SftOptions = {}): SftExample {
  const roles = new Set(opts.trainRoles ?? ['assistant']);
  const ids: number[] = [];
  const labels: number[] = [];
  for (const s of spans) {
    const train = s.train ?? roles.has(s.role);
    for (let i = 0; i < s.tokens.length; i++) {
      ids.push(s.tokens[i]);
      labels.push(train ? s.tokens[i] : IGNORE_INDEX);
    }
  }
  const n = Math.min(ids.length, opts.maxLength ?? Infinity);
  return { inputIds: Int32Array.from(ids.slice(0, n)), labels: Int32Array.from(labels.slice(0, n)) };
}

/** Masks the first promptLength labels of one prompt+response sequence (single-turn shortcut). */
export function maskPrompt(ids: ArrayLike<number>, promptLength: number): SftExample {
  const labels = Int32Array.from(ids);
  labels.fill(IGNORE_INDEX, 0, Math.min(promptLength, labels.length));
  return { inputIds: Int32Array.from(ids), labels };
}

/**
 * Aligns labels with next-token targets for a model that does not shift internally: targets[t] =
 * labels[t+1], last position ignored.
 */
export function shiftLabels(labels: ArrayLike<number>): Int32Array {
  const out = new Int32Array(labels.length).fill(IGNORE_INDEX);
  for (let t = 0; t + 1 < labels.length; t++) out[t] = labels[t + 1];
  return out;
}
