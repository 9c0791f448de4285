// Pipeline pieces: normalizers (incl. sentencepiece's precompiled charsmap), pre-tokenizers, regexes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizerFromJSON, preTokenizerFromJSON, splitWith } from '../../src/tokenizers/index.js';
import { translateRegex } from '../../src/tokenizers/unicode.js';

test('Split behaviours match HF on "the-final--countdown"', () => {
  const s = 'the-final--countdown';
  const re = /-/gu;
  assert.deepEqual(splitWith(s, re, 'Removed'), ['the', 'final', 'countdown']);
  assert.deepEqual(splitWith(s, re, 'Isolated'), ['the', '-', 'final', '-', '-', 'countdown']);
  assert.deepEqual(splitWith(s, re, 'MergedWithPrevious'), ['the-', 'final-', '-', 'countdown']);
  assert.deepEqual(splitWith(s, re, 'MergedWithNext'), ['the', '-final', '-', '-countdown']);
  assert.deepEqual(splitWith(s, re, 'Contiguous'), ['the', '-', 'final', '--', 'countdown']);
  assert.deepEqual(splitWith('Hey friend!', /\w+/gu, 'Removed', true), ['Hey', 'friend']);
});

test('pre-tokenizers from JSON: Whitespace, WhitespaceSplit, Digits, Punctuation, Metaspace, Sequence', () => {
  const run = (j: object, s: string, first = true) => preTokenizerFromJSON(j as any)!.preTokenize([s], first);
  assert.deepEqual(run({ type: 'Whitespace' }, "Hey man!! How's it going?"), [
    'Hey',
    'man',
    '!!',
    'How',
    "'",
    's',
    'it',
    'going',
    '?',
  ]);
  assert.deepEqual(run({ type: 'WhitespaceSplit' }, ' a  b\tc\n'), ['a', 'b', 'c']);
  assert.deepEqual(run({ type: 'Digits', individual_digits: true }, 'a123b'), ['a', '1', '2', '3', 'b']);
  assert.deepEqual(run({ type: 'Digits', individual_digits: false }, 'a123b'), ['a', '123', 'b']);
  assert.deepEqual(run({ type: 'Punctuation', behavior: 'Isolated' }, 'Hey, you!'), ['Hey', ',', ' you', '!']);
  assert.deepEqual(run({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true }, 'Hey  friend'), [
    '▁Hey',
    '▁',
    '▁friend',
  ]);
  assert.deepEqual(
    run({ type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }, 'Hey friend', false),
    ['Hey▁friend'],
  );
  assert.deepEqual(run({ type: 'Metaspace', replacement: '▁', add_prefix_space: true }, 'x'), ['▁x']);
  assert.deepEqual(
    run(
      { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, { type: 'Digits', individual_digits: true }] },
      'ab12 c3',
    ),
    ['ab', '1', '2', 'c', '3'],
  );
});

test('Llama-3 style regex with (?i:...) is translated for JS', () => {
  const src =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  const pre = preTokenizerFromJSON({ type: 'Split', pattern: { Regex: src }, behavior: 'Isolated', invert: false })!;
  assert.deepEqual(pre.preTokenize(["I'M here 12345 ok"], true), ['I', "'M", ' here', ' ', '123', '45', ' ok']);
  assert.equal(translateRegex('(?i:ab)c'), '(?:[aA][bB])c');
  assert.equal(translateRegex('(?i:x\\p{L}[a-z])'), '(?:[xX]\\p{L}[a-z])');
  // possessive quantifiers (cl100k-style patterns) lose their '+'
  assert.equal(
    translateRegex('[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+|[?+]+'),
    '[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|[?+]+',
  );
  // Oniguruma's bare script names
  assert.equal(translateRegex('\\p{Han}+|\\P{Hiragana}'), '\\p{Script=Han}+|\\P{Script=Hiragana}');
  assert.deepEqual('漢字かな'.match(new RegExp(translateRegex('\\p{Han}+'), 'gu')), ['漢字']);
});

test('normalizers from JSON: NFKC, Lowercase, Strip, Replace, Prepend, StripAccents, Sequence', () => {
  const run = (j: object, s: string) => normalizerFromJSON(j as any)!.normalize(s);
  assert.equal(run({ type: 'NFKC' }, 'ﬁ①'), 'fi1');
  assert.equal(run({ type: 'Lowercase' }, 'ÀB'), 'àb');
  assert.equal(run({ type: 'Strip', strip_left: true, strip_right: false }, '  x  '), 'x  ');
  assert.equal(run({ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }, 'a   b  c'), 'a b c');
  assert.equal(run({ type: 'Replace', pattern: { String: '.' }, content: '!' }, 'a.b'), 'a!b');
  assert.equal(run({ type: 'Prepend', prepend: '▁' }, 'x'), '▁x');
  assert.equal(run({ type: 'Prepend', prepend: '▁' }, ''), '');
  assert.equal(
    run({ type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'StripAccents' }, { type: 'Lowercase' }] }, 'Héllo'),
    'hello',
  );
  assert.throws(
    () => normalizerFromJSON({ type: 'Replace', pattern: {}, content: '' }),
    /normalizer Replace\.pattern must be/,
  );
  assert.throws(() => normalizerFromJSON({ type: 'Nope' }), /unsupported normalizer type "Nope"/);
});

/** A precompiled_charsmap with the rules A -> "a" and "é" (C3 A9) -> "e", built by hand as a darts-clone array. */
function charsmap(): string {
  const units = new Uint32Array(0x200);
  // unit: label (bits 0-7, bit 31 marks value units), has_leaf (bit 8), offset (bits 10-31)
  const node = (label: number, offset: number, leaf: boolean) => label | (leaf ? 1 << 8 : 0) | (offset << 10);
  units[0] = node(0, 1, false); // root: children at 1 ^ byte
  const a = 1 ^ 0x41;
  units[a] = node(0x41, 1, true);
  units[a ^ 1] = (0x80000000 | 0) >>> 0; // "a" at 0
  const c3 = 1 ^ 0xc3;
  units[c3] = node(0xc3, 0x100, false);
  const a9 = c3 ^ 0x100 ^ 0xa9;
  units[a9] = node(0xa9, 1, true);
  units[a9 ^ 1] = (0x80000000 | 2) >>> 0; // "e" at 2
  const pool = new TextEncoder().encode('a\0e\0');
  const blob = new Uint8Array(4 + units.byteLength + pool.length);
  new DataView(blob.buffer).setUint32(0, units.byteLength, true);
  blob.set(new Uint8Array(units.buffer), 4);
  blob.set(pool, 4 + units.byteLength);
  let bin = '';
  for (const b of blob) bin += String.fromCharCode(b);
  return btoa(bin);
}

test('Precompiled normalizer reads the darts-clone charsmap (per grapheme, as the Rust crate does)', () => {
  const n = normalizerFromJSON({ type: 'Precompiled', precompiled_charsmap: charsmap() })!;
  assert.equal(n.normalize('ABA'), 'aBa');
  assert.equal(n.normalize('café'), 'cafe');
  assert.equal(n.normalize('xyz'), 'xyz');
  // the whole grapheme "A + combining acute" is replaced by the first (shortest) prefix rule's output
  assert.equal(n.normalize('A\u0301!'), 'a!');
  assert.deepEqual(n.toJSON(), { type: 'Precompiled', precompiled_charsmap: charsmap() });
  assert.equal(normalizerFromJSON({ type: 'Precompiled', precompiled_charsmap: '' }), null);
});
