// Trainers: requested vocabulary size, lossless round trip, progress reporting, determinism.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tokenizer, trainBPE, trainUnigram, trainWordPiece, BertNormalizer } from '../../src/tokenizers/index.js';
import { shakespeare } from './helpers.js';

const FALLBACK = 'First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n'.repeat(200);
const corpus = shakespeare(120_000) ?? FALLBACK;
const heldOut = (shakespeare(140_000) ?? FALLBACK).slice(corpus.length) || FALLBACK.slice(0, 2000);

function progressLog() {
  const calls: [number, number, string | undefined][] = [];
  return {
    calls,
    fn: (d: number, t: number, p?: string) => {
      calls.push([d, t, p]);
    },
  };
}
function checkProgress(calls: [number, number, string | undefined][], phases: string[]) {
  assert.ok(calls.length > 0, 'onProgress was called');
  for (const p of phases)
    assert.ok(
      calls.some((c) => c[2] === p),
      `phase ${p} reported`,
    );
  for (const [d, t] of calls) assert.ok(d >= 0 && d <= t, `0 <= ${d} <= ${t}`);
  for (const p of phases) {
    const ds = calls.filter((c) => c[2] === p).map((c) => c[0]);
    for (let i = 1; i < ds.length; i++) assert.ok(ds[i] >= ds[i - 1], `${p} progress is monotonic`);
  }
}

test('trainBPE: exact vocabulary size, lossless round trip, GPT-2 layout', () => {
  const prog = progressLog();
  const tok = trainBPE(corpus, { vocabSize: 1000, onProgress: prog.fn });
  assert.equal(tok.vocabSize, 1000);
  checkProgress(prog.calls, ['count', 'merges']);
  for (const s of [corpus.slice(0, 5000), heldOut, 'Unseen wörds & émoji 🤗 still round-trip.\n']) {
    assert.equal(tok.decode(tok.encode(s)), s);
  }
  assert.ok(tok.encode(corpus).length < corpus.length / 2.5, 'merges compress the training text');
  assert.equal(tok.tokenToId('<|endoftext|>'), 0);
  assert.equal(tok.specialTokens.eos?.id, 0);
  assert.equal(tok.tokenToId('Ġ'), 1 + 32); // byte alphabet at specials.length + byte
  const again = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
  assert.deepEqual(again.encode(heldOut), tok.encode(heldOut));
});

test('trainBPE is deterministic and respects minFrequency', () => {
  const a = trainBPE(corpus.slice(0, 20000), { vocabSize: 400 });
  const b = trainBPE(corpus.slice(0, 20000), { vocabSize: 400 });
  assert.deepEqual(a.toJSON(), b.toJSON());
  const tiny = trainBPE('ab ab cd', { vocabSize: 1000, minFrequency: 2 });
  // only "a b" (x2), "Ġ a" (x1 -> no), ... : merges stop when no pair reaches minFrequency
  assert.ok(tiny.vocabSize < 1000);
  assert.equal(tiny.decode(tiny.encode('ab cd')), 'ab cd');
  assert.throws(() => trainBPE(corpus, { vocabSize: 100 }), /vocabSize 100 is below/);
});

test('trainWordPiece: exact size, BERT pipeline, stable re-encoding', () => {
  const prog = progressLog();
  const tok = trainWordPiece(corpus, { vocabSize: 1200, onProgress: prog.fn });
  assert.equal(tok.vocabSize, 1200);
  checkProgress(prog.calls, ['count', 'merges']);
  const ids = tok.encode(heldOut, { addSpecialTokens: false });
  const text = tok.decode(ids);
  assert.ok(!ids.includes(tok.specialTokens.unk!.id) || /[^\x00-\x7f]/.test(heldOut), 'no [UNK] on same-alphabet text');
  // WordPiece loses case and spacing, but decoding then re-encoding is stable
  assert.deepEqual(tok.encode(text, { addSpecialTokens: false }), ids);
  // and nothing but case and spacing is lost: same characters as the normalized input
  const squash = (s: string) => s.replace(/\s+/g, '');
  assert.ok(
    squash(text) === squash(new BertNormalizer().normalize(heldOut)),
    'decoded text equals the normalized input up to spaces',
  );
  const withSpecial = tok.encode('hear me speak');
  assert.equal(withSpecial[0], tok.specialTokens.cls!.id);
  assert.equal(withSpecial[withSpecial.length - 1], tok.specialTokens.sep!.id);
  assert.ok(tok.tokenToId('##s') !== undefined, 'continuation pieces exist');
});

test('trainUnigram: exact size, byte fallback, lossless round trip', () => {
  const prog = progressLog();
  const tok = trainUnigram(corpus, { vocabSize: 800, onProgress: prog.fn });
  assert.equal(tok.vocabSize, 800);
  checkProgress(prog.calls, ['count', 'em']);
  for (const s of [corpus.slice(0, 5000), heldOut, 'Unseen wörds & émoji 🤗 still round-trip.']) {
    assert.equal(tok.decode(tok.encode(s)), s, 'round trip');
  }
  assert.equal(tok.specialTokens.unk?.id, 0);
  assert.equal(tok.specialTokens.bos?.id, 1);
  assert.equal(tok.specialTokens.eos?.id, 2);
  assert.equal(tok.tokenToId('<0x0A>'), 3 + 10);
  assert.ok(!tok.encode(heldOut).includes(0), 'no <unk> on held-out text');
  assert.ok(tok.encode(corpus).length < corpus.length / 2.5, 'pieces compress the training text');
  const again = Tokenizer.fromJSON(JSON.parse(JSON.stringify(tok.toJSON())));
  assert.deepEqual(again.encode(heldOut), tok.encode(heldOut));
});

test('trainUnigram without byte fallback keeps every corpus character', () => {
  const tok = trainUnigram(corpus.slice(0, 30000), { vocabSize: 300, byteFallback: false });
  assert.equal(tok.vocabSize, 300);
  for (const c of new Set(corpus.slice(0, 30000).replaceAll(' ', '')))
    assert.ok(tok.tokenToId(c) !== undefined, `char ${JSON.stringify(c)} kept`);
  assert.throws(
    () => trainUnigram(corpus, { vocabSize: 10, byteFallback: false }),
    /fewer than the \d+ distinct characters/,
  );
});
