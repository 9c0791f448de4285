// GPT-2 byte-level BPE must encode exactly as GPT-2 (js-tiktoken's "gpt2" encoding is the oracle).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getEncoding } from 'js-tiktoken';
import { encode as gpt3Encode } from 'gpt-3-encoder';
import { Tokenizer, toByteLevel, byteToChar } from '../../src/tokenizers/index.js';
import { gpt2Tokenizer, gpt2TokenizerJson, rng, shakespeare } from './helpers.js';

const oracle = getEncoding('gpt2');

const CASES = [
  '',
  ' ',
  'Hello world',
  'Hello, world!',
  ' leading space',
  'trailing space ',
  'double  space',
  '   three leading',
  "I'm here, you're not; they've gone, she'll stay, he'd know, it's John's.",
  "DON'T SHOUT 'quoted' ''",
  "'s's 't",
  'tabs\tand\nnewlines\r\n\n\n  mixed \t\n ',
  '\n\n\nFirst line',
  'a\u00a0b non-breaking',
  'ends with newline\n',
  '12345 3.14159 1,000,000 1e-9 0x1F 007',
  'v2.0.1-beta+build.5',
  'a1b2c3',
  '１２３ full-width digits',
  'emoji 🤗🎉 👩‍👩‍👧 🇫🇷 flags ❤️',
  'café naïve résumé Ångström façade',
  '日本語のテキスト 中文 한국어 ภาษาไทย',
  'Здравствуй, мир! Γειά σου Κόσμε',
  'مرحبا بالعالم',
  'math ∑∫√∞≠≈ ← → ⇒',
  '``code`` <tag attr="x"/> {json: [1, 2]}',
  '!!!???...,,,;;;',
  '----====____',
  'http://example.com/path?q=1&r=2#frag',
  'user@example.com',
  '\u0000\u0001\u001f control',
  'zero\u200bwidth',
  'combining e\u0301 a\u0300',
  'lone surrogate? no: \ud83d\ude00 ok',
  'The quick brown fox jumps over the lazy dog. THE QUICK BROWN FOX.',
  ' '.repeat(50) + 'x',
  'x'.repeat(300),
  'supercalifragilisticexpialidocious antidisestablishmentarianism',
  '   \n   ',
  '\ufeffstarts with a BOM',
  'NEL\u0085line \u2028sep\u2029',
  'ｱｲｳ half-width ١٢٣ arabic digits',
];

test('GPT-2 encode matches js-tiktoken on varied strings', () => {
  const tok = gpt2Tokenizer();
  for (const s of CASES) assert.deepEqual(tok.encode(s), oracle.encode(s), `encoding ${JSON.stringify(s)}`);
});

test('GPT-2 encode matches gpt-3-encoder (second oracle) on the same strings', () => {
  const tok = gpt2Tokenizer();
  for (const s of CASES) {
    if (s.includes('\u0000')) continue;
    assert.deepEqual(tok.encode(s), gpt3Encode(s), `encoding ${JSON.stringify(s)}`);
  }
});

test('GPT-2 decode inverts encode exactly', () => {
  const tok = gpt2Tokenizer();
  for (const s of CASES) assert.equal(tok.decode(tok.encode(s)), s);
});

test('GPT-2 matches js-tiktoken on random unicode strings (seeded)', () => {
  const tok = gpt2Tokenizer();
  const r = rng(1234);
  const pools = [
    ' \t\n',
    'abcdefghijklmnopqrstuvwxyzABCXYZ',
    '0123456789\'.,;:!?-_()[]{}"',
    'éèêàçñüößøåæœ',
    'αβγδΔΩжщЯ',
    '日本語中文字한국',
    '🤗🎉😀👍🏽🇺🇸',
    '\u0301\u200d\u00a0\u3000\ufeff\u0085\r',
  ];
  for (let n = 0; n < 300; n++) {
    let s = '';
    const len = 1 + Math.floor(r() * 40);
    for (let i = 0; i < len; i++) {
      const pool = Array.from(pools[Math.floor(r() * pools.length)]);
      s += pool[Math.floor(r() * pool.length)];
    }
    assert.deepEqual(tok.encode(s), oracle.encode(s), `encoding ${JSON.stringify(s)}`);
    assert.equal(tok.decode(tok.encode(s)), s);
  }
});

test('GPT-2 matches js-tiktoken on a tinyshakespeare slice', (t) => {
  const text = shakespeare(200_000);
  if (!text) return t.skip('tinyshakespeare.txt not available');
  const tok = gpt2Tokenizer();
  assert.deepEqual(tok.encode(text), oracle.encode(text));
});

test('GPT-2 special token <|endoftext|> is split out before BPE', () => {
  const tok = gpt2Tokenizer();
  const s = 'Hello<|endoftext|> world<|endoftext|>';
  assert.deepEqual(tok.encode(s), oracle.encode(s, 'all'));
  assert.deepEqual(tok.specialTokens.eos, { token: '<|endoftext|>', id: 50256 });
  assert.deepEqual(tok.specialTokens.bos, { token: '<|endoftext|>', id: 50256 });
  assert.equal(tok.decode(tok.encode(s)), s);
  assert.equal(tok.decode(tok.encode(s), { skipSpecialTokens: true }), 'Hello world');
});

test('GPT-2 vocabulary accessors', () => {
  const tok = gpt2Tokenizer();
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.tokenToId('Ġthe'), 262);
  assert.equal(tok.idToToken(262), 'Ġthe');
  assert.equal(tok.tokenToId('<|endoftext|>'), 50256);
  assert.equal(tok.idToToken(50256), '<|endoftext|>');
  assert.equal(tok.tokenToId('not-a-token-at-all'), undefined);
});

test("byte-to-unicode table is GPT-2's", () => {
  const t = byteToChar();
  assert.equal(t.length, 256);
  assert.equal(new Set(t).size, 256);
  assert.equal(t[' '.charCodeAt(0)], 'Ġ');
  assert.equal(t['\n'.charCodeAt(0)], 'Ċ');
  assert.equal(t[0], 'Ā');
  assert.equal(t['A'.charCodeAt(0)], 'A');
  assert.equal(toByteLevel(' é'), 'ĠÃ©');
});

test('GPT-2 tokenizer.json survives toJSON/fromJSON', () => {
  const tok = gpt2Tokenizer();
  const again = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
  for (const s of CASES.slice(0, 20)) assert.deepEqual(again.encode(s), tok.encode(s));
  const j = again.toJSON() as { model: { merges: string[] } };
  assert.equal(j.model.merges[0], 'Ġ t');
  assert.equal(j.model.merges.length, (gpt2TokenizerJson().model as { merges: string[] }).merges.length);
});
