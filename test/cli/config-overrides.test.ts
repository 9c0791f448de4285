// The overrides `train` / `init` add when a char or bytes tokenizer defines the vocabulary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tokenizerVocabOverrides } from '../../src/cli/config-overrides.js';
import { getPresetInfo } from '../../src/models/presets.js';

test('tokenizer overrides: vocab sized, special ids cleared, user --set wins', () => {
  const o = tokenizerVocabOverrides(getPresetInfo('tiny-llama').hf, 65, ['eos_token_id=3'], 'char');
  assert.ok(o.includes('vocab_size=65'));
  assert.ok(o.includes('bos_token_id=null'));
  assert.ok(!o.some((s) => s.startsWith('eos_token_id')));
});

test('tokenizer overrides: RoBERTa-layout families keep a pad id (0) under bytes, none under char', () => {
  for (const p of ['tiny-roberta', 'tiny-longformer']) {
    const hf = getPresetInfo(p).hf;
    assert.ok(tokenizerVocabOverrides(hf, 256, [], 'bytes').includes('pad_token_id=0'), p);
    assert.ok(tokenizerVocabOverrides(hf, 65, [], 'char').includes('pad_token_id=null'), p);
    assert.ok(!tokenizerVocabOverrides(hf, 256, ['pad_token_id=7'], 'bytes').some((s) => s.startsWith('pad_token_id')));
  }
  assert.ok(tokenizerVocabOverrides(getPresetInfo('tiny-bert').hf, 256, [], 'bytes').includes('pad_token_id=null'));
});
