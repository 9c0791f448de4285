// Whether two tokenizers give the same ids to the same tokens: a model scored or trained with ids from one
// tokenizer reads them through the other's vocabulary (DPO's reference, a reward model, a separate
// --tokenizer), so a difference must be caught before any id crosses over.
import type { Tokenizer } from './tokenizer.js';

const show = (t: string | undefined) => (t === undefined ? 'no token' : JSON.stringify(t));

/**
 * null when `a` and `b` map every id to the same token; else a phrase naming the first difference
 * ("65 ids vs 258", "id 57 is "z" vs "~""). Normalizers and pre-tokenizers are not compared: the ids
 * are what crosses between models.
 */
export function vocabularyDifference(a: Tokenizer, b: Tokenizer): string | null {
  if (a.vocabSize !== b.vocabSize) return `${a.vocabSize} ids vs ${b.vocabSize}`;
  for (let id = 0; id < a.vocabSize; id++) {
    const [x, y] = [a.idToToken(id), b.idToToken(id)];
    if (x !== y) return `id ${id} is ${show(x)} vs ${show(y)}`;
  }
  return null;
}
