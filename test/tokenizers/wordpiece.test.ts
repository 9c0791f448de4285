// WordPiece (BERT): basic tokenizer behaviour and greedy longest-match-first subwords, on the cases
// from Google BERT's tokenization_test.py plus a few more edge cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BertNormalizer, BertPre, Tokenizer, WordPiece } from '../../src/tokenizers/index.js';

const VOCAB = [
  '[PAD]',
  '[UNK]',
  '[CLS]',
  '[SEP]',
  '[MASK]',
  'want',
  '##want',
  '##ed',
  'wa',
  'un',
  'runn',
  '##ing',
  ',',
  'hello',
  '!',
  'how',
  'are',
  'you',
  '?',
  'ah',
  '博',
  '推',
  'zz',
  '.',
  "'",
  's',
  'a',
  '##a',
  'cafe',
  'naive',
  '日',
];

function bert(opts: { lowercase?: boolean; stripAccents?: boolean | null } = {}): Tokenizer {
  const vocab: Record<string, number> = {};
  VOCAB.forEach((t, i) => {
    vocab[t] = i;
  });
  return Tokenizer.fromJSON({
    version: '1.0',
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'BertNormalizer',
      clean_text: true,
      handle_chinese_chars: true,
      strip_accents: opts.stripAccents ?? null,
      lowercase: opts.lowercase ?? true,
    },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: {
      type: 'WordPiece',
      unk_token: '[UNK]',
      continuing_subword_prefix: '##',
      max_input_chars_per_word: 100,
      vocab,
    },
  });
}

function basic(text: string, lowercase = true, stripAccents: boolean | null = null): string[] {
  return new BertPre().preTokenize([new BertNormalizer(true, true, stripAccents, lowercase).normalize(text)]);
}

test('basic tokenizer: lowercase, whitespace, punctuation', () => {
  assert.deepEqual(basic(' \tHeLLo!how  \n Are yoU?  '), ['hello', '!', 'how', 'are', 'you', '?']);
  assert.deepEqual(basic('H\u00E9llo'), ['hello']);
});

test('basic tokenizer: no lowercase keeps case and accents', () => {
  assert.deepEqual(basic(' \tHeLLo!how  \n Are yoU?  ', false), ['HeLLo', '!', 'how', 'Are', 'yoU', '?']);
  assert.deepEqual(basic(' \tHäLLo!how  \n Are yoU?  ', true, false), ['hällo', '!', 'how', 'are', 'you', '?']);
  assert.deepEqual(basic(' \tHäLLo!how  \n Are yoU?  ', true, true), ['hallo', '!', 'how', 'are', 'you', '?']);
  assert.deepEqual(basic(' \tHäLLo!how  \n Are yoU?  ', false, true), ['HaLLo', '!', 'how', 'Are', 'yoU', '?']);
});

test('basic tokenizer: CJK characters become single words', () => {
  assert.deepEqual(basic('ah\u535A\u63A8zz'), ['ah', '\u535A', '\u63A8', 'zz']);
});

test('basic tokenizer: control chars dropped, exotic whitespace splits, ASCII symbols are punctuation', () => {
  assert.deepEqual(basic('a\u0000b\u200bc\ufffdd'), ['abcd']); // \u200b is Cf: removed
  assert.deepEqual(basic('x\u00a0y\u3000z'), ['x', 'y', 'z']);
  assert.deepEqual(basic('$5+3=8^2`~|'), ['$', '5', '+', '3', '=', '8', '^', '2', '`', '~', '|']);
  assert.deepEqual(basic('«quoted»—dash'), ['«', 'quoted', '»', '—', 'dash']);
});

test('wordpiece: greedy longest-match-first with ## continuations', () => {
  const tok = bert();
  assert.deepEqual(tok.tokenize('unwanted running', { addSpecialTokens: false }), [
    'un',
    '##want',
    '##ed',
    'runn',
    '##ing',
  ]);
  assert.deepEqual(tok.tokenize('UNwant\u00E9d,running', { addSpecialTokens: false }), [
    'un',
    '##want',
    '##ed',
    ',',
    'runn',
    '##ing',
  ]);
  assert.deepEqual(tok.tokenize('', { addSpecialTokens: false }), []);
  assert.deepEqual(tok.tokenize('aaa', { addSpecialTokens: false }), ['a', '##a', '##a']);
});

test('wordpiece: a word with an unmatchable part is a single [UNK]', () => {
  const tok = bert();
  assert.deepEqual(tok.tokenize('unwantedX running', { addSpecialTokens: false }), ['[UNK]', 'runn', '##ing']);
  assert.deepEqual(tok.tokenize('😀 hello', { addSpecialTokens: false }), ['[UNK]', 'hello']);
});

test('wordpiece: words over max_input_chars_per_word are [UNK]', () => {
  const tok = bert();
  assert.deepEqual(tok.tokenize('a'.repeat(100), { addSpecialTokens: false }), ['a', ...Array(99).fill('##a')]);
  assert.deepEqual(tok.tokenize('a'.repeat(101), { addSpecialTokens: false }), ['[UNK]']);
  const wp = new WordPiece(
    new Map([
      ['[UNK]', 0],
      ['a', 1],
      ['##a', 2],
    ]),
    '[UNK]',
    '##',
    3,
  );
  assert.deepEqual(wp.tokenize('aaa'), [1, 2, 2]);
  assert.deepEqual(wp.tokenize('aaaa'), [0]);
});

test('wordpiece: accents stripped and lowercased before lookup; CJK split', () => {
  const tok = bert();
  assert.deepEqual(tok.tokenize('Café NAÏVE', { addSpecialTokens: false }), ['cafe', 'naive']);
  assert.deepEqual(tok.tokenize('日日', { addSpecialTokens: false }), ['日', '日']);
});

test('post-processor adds [CLS] ... [SEP] (and pairs); special tokens in text are not split', () => {
  const tok = bert();
  assert.deepEqual(tok.encode('hello!'), [2, 13, 14, 3]);
  assert.deepEqual(tok.encode('hello!', { addSpecialTokens: false }), [13, 14]);
  assert.deepEqual(tok.encode('hello', { pair: 'how are you' }), [2, 13, 3, 15, 16, 17, 3]);
  assert.deepEqual(tok.encode('hello [SEP] you [MASK]', { addSpecialTokens: false }), [13, 3, 17, 4]);
  assert.equal(tok.specialTokens.cls?.id, 2);
  assert.equal(tok.specialTokens.sep?.id, 3);
  assert.equal(tok.specialTokens.unk?.id, 1);
  assert.equal(tok.specialTokens.mask?.id, 4);
  assert.equal(tok.specialTokens.pad?.id, 0);
});

test('decode joins ## pieces and cleans up spaces before punctuation', () => {
  const tok = bert();
  const ids = tok.encode('Unwanted, running! how are you?');
  assert.equal(tok.decode(ids), '[CLS] unwanted, running! how are you? [SEP]');
  assert.equal(tok.decode(ids, { skipSpecialTokens: true }), 'unwanted, running! how are you?');
});
