// tokenizer.json: save/load round trips for every kind, char/bytes tokenizers, HF pipelines (LLaMA-style
// BPE with byte fallback, RoBERTa), clear errors on malformed files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Tokenizer,
  bytesTokenizer,
  charTokenizer,
  trainBPE,
  trainUnigram,
  trainWordPiece,
  byteToken,
} from '../../src/tokenizers/index.js';
import { loadTokenizer, saveTokenizer } from '../../src/tokenizers/load-node.js';
import { gpt2Tokenizer, shakespeare } from './helpers.js';

const corpus = shakespeare(60_000) ?? 'First Citizen:\nBefore we proceed any further, hear me speak.\n'.repeat(300);
const SAMPLES = [
  'First Citizen:\nBefore we proceed any further, hear me speak.',
  'You are all resolved rather to die than to famish?',
  '',
];

test('charTokenizer: sorted character vocabulary (nanoGPT shakespeare-char)', () => {
  const tok = charTokenizer(corpus);
  const chars = [...new Set(corpus)].sort();
  assert.equal(tok.vocabSize, chars.length);
  chars.forEach((c, i) => assert.equal(tok.tokenToId(c), i));
  const s = corpus.slice(0, 3000);
  const ids = tok.encode(s);
  assert.equal(ids.length, s.length);
  assert.deepEqual(
    ids,
    Array.from(s, (c) => chars.indexOf(c)),
  );
  assert.equal(tok.decode(ids), s);
  assert.deepEqual(tok.specialTokens, {});
  assert.throws(() => tok.encode('Ω'), /not in the vocabulary/);
  if (shakespeare(2_000_000)?.length === 1115394) assert.equal(charTokenizer(shakespeare(2_000_000)!).vocabSize, 65);
});

test('charTokenizer: astral characters, newlines and an optional unk token', () => {
  const tok = charTokenizer('ab\n😀c', { unkToken: '<unk>' });
  assert.equal(tok.vocabSize, 6);
  assert.deepEqual(tok.encode('a😀\nZ'), [1, 4, 0, 5]);
  assert.equal(tok.decode(tok.encode('c\nab😀')), 'c\nab😀');
  assert.equal(tok.specialTokens.unk?.id, 5);
});

test('bytesTokenizer: id = UTF-8 byte, 256 ids, no special tokens', () => {
  const tok = bytesTokenizer();
  assert.equal(tok.vocabSize, 256);
  const s = 'héllo 😀\n\t\u0000 end';
  assert.deepEqual(tok.encode(s), Array.from(new TextEncoder().encode(s)));
  assert.equal(tok.decode(tok.encode(s)), s);
  assert.deepEqual(tok.specialTokens, {});
  assert.deepEqual(tok.encode('<|endoftext|>'), Array.from(new TextEncoder().encode('<|endoftext|>')));
  const j = tok.toJSON() as any;
  assert.equal(j.model.type, 'BPE');
  assert.deepEqual(j.model.merges, []);
  assert.equal(j.pre_tokenizer.use_regex, false);
});

function kinds(): [string, Tokenizer][] {
  return [
    ['char', charTokenizer(corpus)],
    ['bytes', bytesTokenizer()],
    ['gpt2', gpt2Tokenizer()],
    ['bpe', trainBPE(corpus, { vocabSize: 400 })],
    ['wordpiece', trainWordPiece(corpus, { vocabSize: 400 })],
    ['unigram', trainUnigram(corpus, { vocabSize: 500 })],
  ];
}

test('save/load round trip for every kind (file and directory layouts)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-tok-'));
  try {
    for (const [name, tok] of kinds()) {
      const file = join(dir, `${name}.json`);
      saveTokenizer(tok, file);
      const a = loadTokenizer(file);
      const modelDir = join(dir, name);
      saveTokenizer(tok, modelDir);
      assert.deepEqual(readdirSync(modelDir).sort(), ['tokenizer.json', 'tokenizer_config.json']);
      const b = loadTokenizer(modelDir);
      for (const t of [a, b]) {
        assert.equal(t.vocabSize, tok.vocabSize, `${name} vocabSize`);
        assert.deepEqual(t.specialTokens, tok.specialTokens, `${name} specialTokens`);
        for (const s of SAMPLES) {
          assert.deepEqual(t.encode(s), tok.encode(s), `${name} encode ${JSON.stringify(s)}`);
          assert.equal(t.decode(t.encode(s)), tok.decode(tok.encode(s)), `${name} decode`);
        }
        assert.deepEqual(t.toJSON(), tok.toJSON(), `${name} toJSON is stable`);
      }
      assert.ok(!readdirSync(dir).some((f) => f.includes('.tmp-')), 'no temp files left behind');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loadTokenizer: "bytes", model directories with tokenizer_config.json, clear errors', () => {
  assert.equal(loadTokenizer('bytes').vocabSize, 256);
  const dir = mkdtempSync(join(tmpdir(), 'lineage-tok-'));
  try {
    assert.throws(() => loadTokenizer(join(dir, 'missing.json')), /does not exist/);
    assert.throws(() => loadTokenizer(dir), /has no tokenizer\.json/);
    writeFileSync(join(dir, 'bad.json'), '{ not json');
    assert.throws(() => loadTokenizer(join(dir, 'bad.json')), /bad\.json is not valid JSON/);
    writeFileSync(join(dir, 'nomodel.json'), '{"added_tokens": []}');
    assert.throws(() => loadTokenizer(join(dir, 'nomodel.json')), /nomodel\.json: tokenizer\.json: "model" is missing/);
    writeFileSync(
      join(dir, 'badmerge.json'),
      JSON.stringify({ model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: ['a b'] } }),
    );
    assert.throws(
      () => loadTokenizer(join(dir, 'badmerge.json')),
      /merges\[0\] produces "ab", which is missing from model\.vocab/,
    );
    writeFileSync(join(dir, 'badtype.json'), JSON.stringify({ model: { type: 'Mystery' } }));
    assert.throws(() => loadTokenizer(join(dir, 'badtype.json')), /unsupported model type "Mystery"/);
    // a model directory: config names roles; chat_template.jinja is picked up
    const m = join(dir, 'model');
    mkdirSync(m);
    saveTokenizer(gpt2Tokenizer(), join(m, 'tokenizer.json'));
    writeFileSync(
      join(m, 'tokenizer_config.json'),
      JSON.stringify({
        bos_token: '<|endoftext|>',
        eos_token: { content: '<|endoftext|>' },
        pad_token: '<|endoftext|>',
      }),
    );
    writeFileSync(join(m, 'chat_template.jinja'), '{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}');
    const tok = loadTokenizer(m);
    assert.equal(tok.specialTokens.pad?.id, 50256);
    assert.equal(tok.applyChatTemplate([{ role: 'user', content: 'hi' }]), '<|endoftext|>hi');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('LLaMA-style BPE: Prepend/Replace normalizer, byte_fallback, fuse_unk, Strip decoder', () => {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[byteToken(b)] = 3 + b;
  const pieces = [
    '▁',
    'h',
    'e',
    'l',
    'o',
    'w',
    'r',
    'd',
    '▁h',
    'll',
    '▁he',
    '▁hell',
    '▁hello',
    'or',
    '▁w',
    '▁wor',
    'ld',
    '▁world',
  ];
  for (const p of pieces) vocab[p] = Object.keys(vocab).length;
  const merges = ['▁ h', 'l l', '▁h e', '▁he ll', '▁hell o', 'o r', '▁ w', '▁w or', 'l d', '▁wor ld'];
  const tok = Tokenizer.fromJSON({
    version: '1.0',
    added_tokens: ['<unk>', '<s>', '</s>'].map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  });
  assert.deepEqual(tok.tokenize('hello world'), ['<s>', '▁hello', '▁world']);
  assert.deepEqual(tok.tokenize('hello 😀', { addSpecialTokens: false }), [
    '▁hello',
    '▁',
    '<0xF0>',
    '<0x9F>',
    '<0x98>',
    '<0x80>',
  ]);
  assert.equal(tok.decode(tok.encode('hello 😀 world'), { skipSpecialTokens: true }), 'hello 😀 world');
  assert.equal(tok.specialTokens.bos?.id, 1);
  assert.equal(tok.specialTokens.unk?.id, 0);
  const again = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
  assert.deepEqual(again.encode('hello world 😀'), tok.encode('hello world 😀'));
});

test('RoBERTa-style processing and lstrip/rstrip added tokens', () => {
  const gpt2 = gpt2Tokenizer().toJSON() as any;
  const j = {
    ...gpt2,
    added_tokens: [
      { id: 50257, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      {
        id: 50258,
        content: '</s>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      },
      {
        id: 50259,
        content: '<mask>',
        single_word: false,
        lstrip: true,
        rstrip: false,
        normalized: false,
        special: true,
      },
    ],
    post_processor: {
      type: 'RobertaProcessing',
      sep: ['</s>', 50258],
      cls: ['<s>', 50257],
      trim_offsets: true,
      add_prefix_space: false,
    },
  };
  const tok = Tokenizer.fromJSON(j);
  const hello = gpt2Tokenizer().encode('Hello');
  assert.deepEqual(tok.encode('Hello'), [50257, ...hello, 50258]);
  assert.deepEqual(tok.encode('Hello', { pair: 'Hello' }), [50257, ...hello, 50258, 50258, ...hello, 50258]);
  // lstrip: the space before <mask> is swallowed by the token
  assert.deepEqual(tok.encode('Hello <mask>', { addSpecialTokens: false }), [...hello, 50259]);
  assert.equal(tok.vocabSize, 50260);
  assert.equal(tok.specialTokens.mask?.id, 50259);
  assert.equal(tok.specialTokens.bos?.id, 50257);
});

test('Split pre-tokenizer behaviours and the char-level tokenizer.json shape', () => {
  const j = charTokenizer('hello\nworld').toJSON() as any;
  assert.deepEqual(j.pre_tokenizer, {
    type: 'Split',
    pattern: { Regex: '[\\s\\S]' },
    behavior: 'Isolated',
    invert: false,
  });
  assert.equal(j.model.type, 'WordLevel');
  assert.deepEqual(j.decoder, { type: 'Fuse' });
  const saved = JSON.parse(readFileSync(new URL(import.meta.url), 'utf8').length ? JSON.stringify(j) : '{}');
  assert.equal(Tokenizer.fromJSON(saved).decode(Tokenizer.fromJSON(saved).encode('low\nword')), 'low\nword');
});

test('Llama-3-style pipeline: Split regex + ByteLevel(use_regex false), Sequence post-processor, ignore_merges', () => {
  const gpt2 = gpt2Tokenizer().toJSON() as any;
  const llama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const tok = Tokenizer.fromJSON({
    ...gpt2,
    added_tokens: [
      ...gpt2.added_tokens,
      {
        id: 50257,
        content: '<|begin_of_text|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: true,
      },
    ],
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: llama3Regex }, behavior: 'Isolated', invert: false },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } },
            { Sequence: { id: 'A', type_id: 0 } },
            { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } },
            { Sequence: { id: 'B', type_id: 1 } },
          ],
          special_tokens: {
            '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [50257], tokens: ['<|begin_of_text|>'] },
          },
        },
      ],
    },
    model: { ...gpt2.model, ignore_merges: true },
  });
  const g = gpt2Tokenizer();
  assert.deepEqual(tok.encode('Hello world'), [50257, ...g.encode('Hello world')]);
  assert.deepEqual(tok.encode('Hi', { pair: 'there' }), [50257, ...g.encode('Hi'), 50257, ...g.encode('there')]);
  // digits are grouped by three, unlike GPT-2
  assert.deepEqual(tok.tokenize('12345', { addSpecialTokens: false }), ['123', '45']);
  assert.equal(tok.decode(tok.encode("I'M here 12345"), { skipSpecialTokens: true }), "I'M here 12345");
  assert.equal(tok.specialTokens.bos?.id, 50257);
});

test('decodeStream: incremental text equals the full decode, never a partial character', () => {
  const cases: [Tokenizer, string][] = [
    [gpt2Tokenizer(), 'Hello 🤗 wörld, 日本語! 👩‍👩‍👧 done.'],
    [bytesTokenizer(), 'bytes: é 😀 ok'],
    [trainUnigram(corpus, { vocabSize: 500 }), 'First Citizen: 日本 😀 speak'],
    [trainWordPiece(corpus, { vocabSize: 400 }), 'Before we proceed, any further!'],
  ];
  for (const [tok, text] of cases) {
    const ids = tok.encode(text, { addSpecialTokens: false });
    const stream = tok.decodeStream();
    const pieces = ids.map((id) => stream.push(id));
    pieces.push(stream.flush());
    assert.equal(pieces.join(''), tok.decode(ids), `stream of ${JSON.stringify(text)}`);
    assert.ok(
      pieces.every((p) => !p.includes('\ufffd')),
      'no replacement characters mid-stream',
    );
  }
});
