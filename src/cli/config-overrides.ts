// `--set` overrides the CLI adds for a tokenizer that defines the vocabulary itself (`bytes`, `char`):
// the model's vocabulary is the tokenizer's, and a preset's special-token ids (gpt2's 50256, qwen2's
// 151643) mean nothing to it, so they are cleared. The user's own `--set` values win over both.
import { type HfJson, hfFieldNames } from '../models/hf-config.js';

/** config.json fields that hold special-token ids */
const SPECIAL_TOKEN_FIELDS = [
  'bos_token_id',
  'eos_token_id',
  'pad_token_id',
  'decoder_start_token_id',
  'sep_token_id',
  'cls_token_id',
  'mask_token_id',
  'unk_token_id',
];

/** the field a `field=value` override names */
export const setKey = (set: string): string => set.slice(0, Math.max(0, set.indexOf('='))).trim();

/**
 * `field=value` overrides to put before the user's: vocab_size = the tokenizer's, special-token ids
 * null; fields the user sets are left to the user.
 */
export function tokenizerVocabOverrides(
  hf: HfJson,
  vocabSize: number,
  userSets: readonly string[],
  tokenizer: 'bytes' | 'char' = 'bytes',
): string[] {
  const user = new Set(userSets.map(setKey));
  const names = new Set(hfFieldNames(hf));
  const out = user.has('vocab_size') ? [] : [`vocab_size=${vocabSize}`];
  for (const f of SPECIAL_TOKEN_FIELDS) {
    if (!names.has(f) || user.has(f)) continue;
    // RoBERTa-layout families number positions from pad_token_id + 1, so they need a pad id. Under `bytes`
    // id 0 is a control byte that never occurs in text and the objectives' pad as well (specialIds); a char
    // vocabulary has no free id, so there the user must choose (`--set pad_token_id=...`).
    const keepPad = f === 'pad_token_id' && tokenizer === 'bytes' && PAD_NUMBERED.has(String(hf['model_type']));
    out.push(`${f}=${keepPad ? 0 : 'null'}`);
  }
  return out;
}

/** model types whose position ids count from pad_token_id + 1 (transformers' create_position_ids_from_input_ids) */
const PAD_NUMBERED = new Set(['roberta', 'longformer']);
