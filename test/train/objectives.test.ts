import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/train/rng.js';
import { MemoryTokenFile } from '../../src/train/data/token-file.js';
import { packDocuments } from '../../src/train/data/packing.js';
import {
  IGNORE_INDEX,
  causalLM,
  causalLMBatch,
  maskTokens,
  nspPairs,
  randomSpansNoiseMask,
  spanCorruption,
  spanCorruptionLengths,
  reconstructFromSpans,
  roundHalfEven,
  sentinelId,
  bartDenoising,
  textInfilling,
  permuteSentences,
  teacherForcing,
  seq2seqBatch,
  BpttBatcher,
  syntheticSeq2Seq,
  toyTranslate,
  sftLossMask,
  maskPrompt,
  shiftLabels,
} from '../../src/train/objectives/index.js';

test('causalLM shifts targets and masks padding and document boundaries', () => {
  const ex = causalLM([5, 6, 7, 0, 0], { padId: 0 });
  assert.deepEqual(Array.from(ex.inputs), [5, 6, 7, 0]);
  assert.deepEqual(Array.from(ex.targets), [6, 7, IGNORE_INDEX, IGNORE_INDEX]);
  assert.deepEqual(Array.from(ex.lossMask), [1, 1, 0, 0]);
  const packed = packDocuments(
    [
      [1, 2],
      [3, 4],
    ],
    { rowLength: 5, padId: 0, eosId: 9 },
  );
  const b = causalLMBatch(packed.inputIds, 5, { segmentIds: packed.segmentIds });
  // row 0: [1 2 9 3 4] with segments [1 1 1 2 2]: predicting 3 from 9 crosses documents
  assert.deepEqual(Array.from(b.targets.subarray(0, 4)), [2, 9, IGNORE_INDEX, 4]);
});

test('MLM: ~15% selected, 80/10/10 split, special tokens never masked', () => {
  const rng = new Rng(0);
  const vocab = 1000;
  const special = [0, 1, 2, 3];
  const MASK = 3;
  let n = 0,
    selected = 0,
    masked = 0,
    random = 0,
    kept = 0;
  for (let s = 0; s < 400; s++) {
    const ids = Array.from({ length: 512 }, (_, i) =>
      i === 0 ? 1 : i === 511 ? 2 : i % 17 === 0 ? 0 : 4 + rng.int(vocab - 4),
    );
    const ex = maskTokens(ids, rng, { vocabSize: vocab, maskId: MASK, specialIds: special });
    for (let i = 0; i < ids.length; i++) {
      if (special.includes(ids[i])) {
        assert.equal(ex.labels[i], IGNORE_INDEX);
        assert.equal(ex.inputIds[i], ids[i]);
        continue;
      }
      n++;
      if (ex.labels[i] === IGNORE_INDEX) {
        assert.equal(ex.inputIds[i], ids[i]);
        continue;
      }
      selected++;
      assert.equal(ex.labels[i], ids[i]);
      if (ex.inputIds[i] === MASK) masked++;
      else if (ex.inputIds[i] === ids[i]) kept++;
      else {
        random++;
        assert.ok(!special.includes(ex.inputIds[i]), 'random replacements are not special');
      }
    }
  }
  assert.ok(Math.abs(selected / n - 0.15) < 0.005, `selection ${selected / n}`);
  assert.ok(Math.abs(masked / selected - 0.8) < 0.01, `mask ${masked / selected}`);
  assert.ok(Math.abs(random / selected - 0.1) < 0.01, `random ${random / selected}`);
  assert.ok(Math.abs(kept / selected - 0.1) < 0.01, `kept ${kept / selected}`);
});

test('NSP pairs: [CLS] A [SEP] B [SEP], token types, ~50% random', () => {
  const rng = new Rng(1);
  const docs = Array.from({ length: 50 }, (_, d) => Array.from({ length: 6 }, (_, s) => [1000 + d * 10 + s, 5000 + d]));
  const pairs = nspPairs(docs, rng, { clsId: 101, sepId: 102, maxLength: 16 });
  assert.equal(pairs.length, 50 * 5);
  let randomCount = 0;
  for (const p of pairs) {
    const ids = Array.from(p.inputIds);
    assert.equal(ids[0], 101);
    assert.equal(ids[3], 102);
    assert.equal(ids[ids.length - 1], 102);
    assert.deepEqual(Array.from(p.tokenTypeIds), [0, 0, 0, 0, 1, 1, 1]);
    const a = ids[1],
      b = ids[4];
    const sameDocNext = Math.floor((a - 1000) / 10) === Math.floor((b - 1000) / 10) && b === a + 1;
    assert.equal(p.nextSentenceLabel === 0, sameDocNext);
    randomCount += p.nextSentenceLabel;
  }
  assert.ok(Math.abs(randomCount / pairs.length - 0.5) < 0.08, `random fraction ${randomCount / pairs.length}`);
  const long = nspPairs(
    [
      [
        [1, 2, 3, 4, 5, 6, 7, 8],
        [9, 10, 11, 12, 13, 14],
      ],
    ],
    rng,
    { clsId: 101, sepId: 102, maxLength: 10 },
  );
  assert.ok(long[0].inputIds.length <= 10);
});

test('roundHalfEven matches Python round()', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 76.5, 2.4, 2.6, -0.5, -1.5].map(roundHalfEven), [0, 2, 2, 76, 2, 3, -0, -2]);
});

test('T5 noise mask: exact counts, alternating spans, ends with noise', () => {
  const rng = new Rng(2);
  for (const L of [2, 10, 31, 100, 512]) {
    const m = randomSpansNoiseMask(L, rng, 0.15, 3);
    const noise = m.reduce((a, b) => a + b, 0);
    const want = Math.min(Math.max(roundHalfEven(L * 0.15), 1), L - 1);
    assert.equal(noise, want, `L=${L}`);
    let spans = 0;
    for (let i = 0; i < L; i++) if (m[i] && (i === 0 || !m[i - 1])) spans++;
    assert.equal(spans, Math.max(roundHalfEven(want / 3), 1));
    assert.equal(m[0], 0, 'starts with non-noise');
    assert.equal(m[L - 1], 1, 'ends with noise (T5 without random_roll)');
  }
});

test('span corruption: sentinels count down, inputs+targets reconstruct, density ≈ 0.15', () => {
  const rng = new Rng(3);
  const vocab = 32128;
  const EOS = 1;
  let noise = 0,
    total = 0,
    spanTokens = 0,
    spans = 0;
  for (let s = 0; s < 200; s++) {
    const L = 50 + rng.int(400);
    const toks = Array.from({ length: L }, () => 2 + rng.int(30000));
    const ex = spanCorruption(toks, rng, { vocabSize: vocab, eosId: EOS, randomRoll: s % 2 === 1 });
    assert.deepEqual(reconstructFromSpans(ex.inputs, ex.targets, vocab, EOS), toks);
    assert.equal(ex.inputs[ex.inputs.length - 1], EOS);
    assert.equal(ex.targets[ex.targets.length - 1], EOS);
    const inSent = Array.from(ex.inputs).filter((t) => t >= vocab - 100);
    const tgtSent = Array.from(ex.targets).filter((t) => t >= vocab - 100);
    assert.deepEqual(
      inSent,
      inSent.map((_, k) => sentinelId(vocab, k)),
      'inputs: <extra_id_0>, <extra_id_1>, ...',
    );
    assert.deepEqual(tgtSent.slice(0, inSent.length), inSent, 'targets use the same sentinels in order');
    if (s % 2 === 0) assert.equal(ex.targets[0], vocab - 1, 'targets start with <extra_id_0>');
    const n = ex.mask.reduce((a, b) => a + b, 0);
    noise += n;
    total += L;
    spanTokens += n;
    spans += inSent.length;
    assert.equal(ex.inputs.length, L - n + inSent.length + 1);
  }
  assert.ok(Math.abs(noise / total - 0.15) < 0.005, `density ${noise / total}`);
  assert.ok(Math.abs(spanTokens / spans - 3) < 0.2, `mean span ${spanTokens / spans}`);
});

test('spanCorruptionLengths matches HF compute_input_and_target_lengths', () => {
  assert.deepEqual(spanCorruptionLengths(512), { tokensLength: 568, targetsLength: 114 });
  const { tokensLength, targetsLength } = spanCorruptionLengths(128);
  const ex = spanCorruption(
    Array.from({ length: tokensLength }, (_, i) => 10 + i),
    new Rng(4),
    { vocabSize: 1000, eosId: 1 },
  );
  assert.equal(ex.inputs.length, 128);
  assert.equal(ex.targets.length, targetsLength);
});

test('BART text infilling: ~30% masked, spans collapse to single masks, order kept', () => {
  const rng = new Rng(5);
  const MASK = 3;
  let covered = 0,
    total = 0,
    masks = 0;
  for (let s = 0; s < 100; s++) {
    const toks = [0, ...Array.from({ length: 200 }, (_, i) => 10 + i), 2];
    const out = textInfilling(toks, rng, { maskId: MASK, specialIds: [0, 2] });
    assert.equal(out[0], 0);
    assert.equal(out[out.length - 1], 2);
    const kept = out.filter((t) => t !== MASK);
    let j = 0;
    for (const t of kept) {
      while (toks[j] !== t) j++; // subsequence check
      j++;
    }
    for (let i = 1; i < out.length; i++) assert.ok(!(out[i] === MASK && out[i - 1] === MASK), 'no adjacent masks');
    covered += toks.length - kept.length;
    total += 200;
    masks += out.length - kept.length;
  }
  assert.equal(covered / total, 0.3);
  const meanSpan = covered / masks;
  assert.ok(meanSpan > 2 && meanSpan < 4.5, `mean span ${meanSpan}`);
});

test('BART sentence permutation keeps sentences intact', () => {
  const rng = new Rng(6);
  const toks = [10, 11, 4, 20, 4, 30, 31, 32, 4];
  const p = permuteSentences(toks, [4], rng);
  assert.deepEqual([...p].sort(), [...toks].sort());
  const framed = permuteSentences([0, ...toks, 2], [4], rng, [0, 2]);
  assert.equal(framed[0], 0);
  assert.equal(framed[framed.length - 1], 2);
  const ex = bartDenoising(toks, rng, { maskId: 3, permuteSentences: true, sentenceEndIds: [4], maskRatio: 0 });
  assert.deepEqual(Array.from(ex.targets), toks);
  assert.equal(ex.inputs.length, toks.length);
});

test('teacher forcing and padded seq2seq batches', () => {
  const tf = teacherForcing([7, 8, 9], { bosId: 1, eosId: 2 });
  assert.deepEqual(Array.from(tf.decoderInputs), [1, 7, 8, 9]);
  assert.deepEqual(Array.from(tf.labels), [7, 8, 9, 2]);
  const b = seq2seqBatch(
    [
      { source: [5, 6, 7], target: [8] },
      { source: [5], target: [8, 9] },
    ],
    { bosId: 1, eosId: 2, padId: 0, labelSmoothing: 0.1 },
  );
  assert.equal(b.labelSmoothing, 0.1);
  assert.deepEqual(Array.from(b.inputIds), [5, 6, 7, 5, 0, 0]);
  assert.deepEqual(Array.from(b.attentionMask), [1, 1, 1, 1, 0, 0]);
  assert.deepEqual(Array.from(b.decoderInputIds), [1, 8, 0, 1, 8, 9]);
  assert.deepEqual(Array.from(b.labels), [8, 2, IGNORE_INDEX, 8, 9, 2]);
  assert.deepEqual(Array.from(b.decoderAttentionMask), [1, 1, 0, 1, 1, 1]);
});

test('BPTT: rows are contiguous streams continued across chunks; resets reported', () => {
  const N = 103;
  const src = new MemoryTokenFile(Array.from({ length: N }, (_, i) => i));
  const bb = new BpttBatcher(src, 4, 7); // rows of R = 25 tokens → chunks 7, 7, 7, 4
  assert.equal(bb.rowLength, 25);
  assert.equal(bb.chunksPerEpoch, 4);
  const rows: number[][] = [[], [], [], []];
  for (let c = 0; c < 4; c++) {
    const ch = bb.next();
    assert.deepEqual(ch.reset, new Array(4).fill(c === 0));
    for (let b = 0; b < 4; b++) {
      const x = Array.from(ch.x.subarray(b * ch.seqLen, (b + 1) * ch.seqLen));
      const y = Array.from(ch.y.subarray(b * ch.seqLen, (b + 1) * ch.seqLen));
      assert.deepEqual(
        y,
        x.map((v) => v + 1),
      );
      if (rows[b].length > 0) assert.equal(x[0], rows[b][rows[b].length - 1] + 1, 'chunk continues the previous one');
      rows[b].push(...x);
    }
  }
  rows.forEach((r, b) =>
    assert.deepEqual(
      r,
      Array.from({ length: 25 }, (_, i) => b * 25 + i),
    ),
  );
  const next = bb.next();
  assert.equal(next.epoch, 1);
  assert.deepEqual(next.reset, [true, true, true, true]);
  assert.equal(bb.next().reset[0], false);
});

test('synthetic seq2seq tasks: rules, vocabulary, disjoint split', () => {
  for (const task of ['copy', 'reverse', 'sort', 'add', 'translate'] as const) {
    const ds = syntheticSeq2Seq({ task, count: 500, seed: 1, minLength: 3, maxLength: 8 });
    assert.equal(ds.train.length + ds.val.length, 500);
    assert.equal(ds.val.length, 50);
    const trainSrc = new Set(ds.train.map((p) => p.sourceText));
    for (const p of ds.val) assert.ok(!trainSrc.has(p.sourceText), 'val source not in train');
    for (const p of [...ds.train, ...ds.val]) {
      assert.equal(ds.decode(p.source), p.sourceText);
      assert.equal(ds.decode(p.target), p.targetText);
      for (const id of [...p.source, ...p.target]) assert.ok(id > 2 && id < ds.vocabSize);
    }
    assert.deepEqual(
      syntheticSeq2Seq({ task, count: 20, seed: 1 }).train,
      syntheticSeq2Seq({ task, count: 20, seed: 1 }).train,
    );
  }
  const rev = syntheticSeq2Seq({ task: 'reverse', count: 10, seed: 2 }).train[0];
  assert.equal(rev.targetText, [...rev.sourceText].reverse().join(''));
  const add = syntheticSeq2Seq({ task: 'add', count: 10, seed: 2 }).train[0];
  const [a, b] = add.sourceText.split('+').map(Number);
  assert.equal(Number(add.targetText), a + b);
  assert.equal(toyTranslate('hello world'), 'uppil hpvuz'); // reverse each word, vowels +1, consonants +3
});

test('SFT loss mask trains on assistant spans only', () => {
  const ex = sftLossMask([
    { role: 'system', tokens: [1, 2] },
    { role: 'user', tokens: [3, 4] },
    { role: 'assistant', tokens: [5, 6] },
    { role: 'user', tokens: [7] },
    { role: 'assistant', tokens: [8, 9], train: false },
    { role: 'assistant', tokens: [10] },
  ]);
  const I = IGNORE_INDEX;
  assert.deepEqual(Array.from(ex.inputIds), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(Array.from(ex.labels), [I, I, I, I, 5, 6, I, I, I, 10]);
  assert.deepEqual(Array.from(maskPrompt([1, 2, 3], 2).labels), [I, I, 3]);
  assert.deepEqual(Array.from(shiftLabels([I, 5, 6])), [5, 6, I]);
  assert.equal(sftLossMask([{ role: 'assistant', tokens: [1, 2, 3] }], { maxLength: 2 }).labels.length, 2);
});

test('BART random span replacement (fairseq mask_random)', () => {
  const rng = new Rng(9);
  let masks = 0,
    randoms = 0;
  for (let s = 0; s < 50; s++) {
    const toks = Array.from({ length: 300 }, (_, i) => 10 + (i % 50));
    const out = textInfilling(toks, rng, { maskId: 3, randomRatio: 0.1, vocabSize: 1000, specialIds: [0, 1, 2] });
    masks += out.filter((t) => t === 3).length;
    randoms += out.filter((t) => t >= 60 || (t < 10 && t !== 3)).length; // ids never in the input
    assert.ok(!out.some((t) => t === 0 || t === 1 || t === 2));
  }
  const frac = randoms / (randoms + masks);
  assert.ok(frac > 0.05 && frac < 0.15, `random fraction ${frac}`);
  assert.throws(() => textInfilling([5, 6, 7, 8], rng, { maskId: 3, randomRatio: 0.5 }), /vocabSize/);
});
