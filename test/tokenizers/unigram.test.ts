// Unigram (sentencepiece-style): Viterbi segmentation, metaspace, byte fallback, unknown fusing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer, Unigram, byteToken } from '../../src/tokenizers/index.js';

function unigramJson(pieces: [string, number][], byteFallback: boolean, extra: Record<string, unknown> = {}) {
  const specials = ['<unk>', '<s>', '</s>'];
  const vocab: [string, number][] = [...specials.map((s): [string, number] => [s, 0])];
  if (byteFallback) for (let b = 0; b < 256; b++) vocab.push([byteToken(b), -100]);
  vocab.push(...pieces);
  return {
    version: '1.0',
    added_tokens: specials.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: null,
    decoder: byteFallback
      ? {
          type: 'Sequence',
          decoders: [
            { type: 'ByteFallback' },
            { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
          ],
        }
      : { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 0, vocab, byte_fallback: byteFallback },
    ...extra,
  };
}

const PIECES: [string, number][] = [
  ['▁', -2],
  ['▁hello', -3],
  ['▁he', -4],
  ['llo', -4],
  ['▁world', -3],
  ['▁wor', -4],
  ['ld', -4],
  ['h', -5],
  ['e', -5],
  ['l', -5],
  ['o', -5],
  ['w', -5],
  ['r', -5],
  ['d', -5],
  ['a', -1],
  ['b', -1],
  ['c', -1],
  ['ab', -1.5],
  ['abc', -10],
];

test('Viterbi picks the highest-scoring segmentation', () => {
  const m = new Unigram([
    ['a', -1],
    ['b', -1],
    ['c', -1],
    ['ab', -3],
    ['abc', -10],
  ]);
  assert.deepEqual(
    m.tokenize('abc').map((i) => m.idToToken(i)),
    ['a', 'b', 'c'],
  ); // -3 beats -4 and -10
  const m2 = new Unigram([
    ['a', -1],
    ['b', -1],
    ['c', -1],
    ['ab', -1.5],
    ['abc', -10],
  ]);
  assert.deepEqual(
    m2.tokenize('abc').map((i) => m2.idToToken(i)),
    ['ab', 'c'],
  ); // -2.5
  const m3 = new Unigram([
    ['a', -1],
    ['b', -1],
    ['c', -1],
    ['ab', -1.5],
    ['abc', -2],
  ]);
  assert.deepEqual(
    m3.tokenize('abc').map((i) => m3.idToToken(i)),
    ['abc'],
  );
});

test('metaspace pre-tokenization and decode', () => {
  const tok = Tokenizer.fromJSON(unigramJson(PIECES, false));
  assert.deepEqual(tok.tokenize('hello world'), ['▁hello', '▁world']);
  assert.deepEqual(tok.tokenize('hello  world'), ['▁hello', '▁', '▁world']);
  assert.equal(tok.decode(tok.encode('hello  world')), 'hello  world');
  assert.deepEqual(tok.tokenize('abc'), ['▁', 'ab', 'c']);
  assert.deepEqual(tok.encode(''), []);
});

test('without byte fallback, unknown characters fuse into one <unk>', () => {
  const tok = Tokenizer.fromJSON(unigramJson(PIECES, false));
  assert.deepEqual(tok.tokenize('hello 😀😀x'), ['▁hello', '▁', '<unk>']);
  assert.deepEqual(tok.tokenize('hello 😀😀a'), ['▁hello', '▁', '<unk>', 'a']);
  assert.equal(tok.specialTokens.unk?.id, 0);
  assert.equal(tok.specialTokens.bos?.id, 1);
  assert.equal(tok.specialTokens.eos?.id, 2);
});

test('byte fallback: unknown characters become <0xNN> pieces and decode back exactly', () => {
  const tok = Tokenizer.fromJSON(unigramJson(PIECES, true));
  assert.deepEqual(tok.tokenize('hello 😀'), ['▁hello', '▁', '<0xF0>', '<0x9F>', '<0x98>', '<0x80>']);
  for (const s of [
    'hello 😀 world',
    '日本語 hello',
    'héllo wörld',
    'abc\ttab\nnewline',
    'x  y   z',
    'Ωmega ∑ 👩‍👩‍👧',
    '',
  ]) {
    assert.equal(tok.decode(tok.encode(s)), s, `round trip ${JSON.stringify(s)}`);
  }
  assert.ok(!tok.encode('日本語 😀 ∑').includes(0), 'no <unk> with byte fallback');
});

test('byte fallback decoding of invalid UTF-8 gives U+FFFD per byte', () => {
  const tok = Tokenizer.fromJSON(unigramJson(PIECES, true));
  const ids = [tok.tokenToId('▁hello')!, tok.tokenToId('<0xF0>')!, tok.tokenToId('<0x9F>')!];
  assert.equal(tok.decode(ids), 'hello\ufffd\ufffd');
});

test('Unigram tokenizer.json round trip keeps scores and byte_fallback', () => {
  const tok = Tokenizer.fromJSON(unigramJson(PIECES, true));
  const j = JSON.parse(JSON.stringify(tok.toJSON()));
  assert.equal(j.model.type, 'Unigram');
  assert.equal(j.model.byte_fallback, true);
  assert.equal(j.model.unk_id, 0);
  const again = Tokenizer.fromJSON(j);
  const s = 'hello world 😀 abc';
  assert.deepEqual(again.encode(s), tok.encode(s));
  assert.equal(again.decode(again.encode(s)), s);
});

test('special tokens in text are matched before the model', () => {
  const tok = Tokenizer.fromJSON(unigramJson(PIECES, true));
  assert.deepEqual(tok.tokenize('<s>hello</s>'), ['<s>', '▁hello', '</s>']);
  assert.equal(tok.decode(tok.encode('<s>hello</s>'), { skipSpecialTokens: true }), 'hello');
});
