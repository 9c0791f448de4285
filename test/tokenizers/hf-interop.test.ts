// HF tokenizer.json interop details that silently changed ids: normalized added tokens and Rust's per-char lowercase.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer, normalizerFromJSON } from '../../src/tokenizers/index.js';

test('normalized added tokens are matched by their normalized content (HF AddedVocabulary)', () => {
  const vocab = { '[UNK]': 0, '[CLS]': 1, '[SEP]': 2, hello: 3, new: 4, '##word': 5 };
  const tok = Tokenizer.fromJSON({
    added_tokens: [
      { id: 0, content: '[UNK]', special: true, normalized: false },
      { id: 7, content: 'NewWord', special: false, normalized: true },
    ],
    normalizer: { type: 'BertNormalizer', lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    model: { type: 'WordPiece', unk_token: '[UNK]', vocab },
  });
  // the uncased normalizer lowercases the input, and HF lowercases the token's pattern too
  assert.deepEqual(tok.encode('NewWord hello'), [7, 3]);
  assert.deepEqual(tok.encode('newword hello'), [7, 3]);
  assert.equal(tok.decode([7]), 'NewWord'); // decoding still gives the token's own content
});

test('Lowercase and BertNormalizer lowercase per char, like Rust (a final capital sigma becomes σ)', () => {
  assert.equal(normalizerFromJSON({ type: 'Lowercase' })!.normalize('ΟΔΟΣ ΑΣ'), 'οδοσ ασ');
  assert.equal(normalizerFromJSON({ type: 'BertNormalizer', lowercase: true })!.normalize('ΟΔΟΣ'), 'οδοσ');
  assert.equal(normalizerFromJSON({ type: 'Lowercase' })!.normalize('HeLLo İ'), 'hello i\u0307');
});

test('TemplateProcessing without a pair template refuses a pair instead of returning no ids', () => {
  const tok = Tokenizer.fromJSON({
    pre_tokenizer: { type: 'WhitespaceSplit' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      special_tokens: { '[CLS]': { id: '[CLS]', ids: [1], tokens: ['[CLS]'] } },
    },
    model: { type: 'WordLevel', vocab: { '[UNK]': 0, '[CLS]': 1, a: 2, b: 3 }, unk_token: '[UNK]' },
  });
  assert.deepEqual(tok.encode('a'), [1, 2]);
  assert.deepEqual(tok.encode('a', { pair: 'b', addSpecialTokens: false }), [2, 3]);
  assert.throws(() => tok.encode('a', { pair: 'b' }), /TemplateProcessing has no "pair" template/);
});
