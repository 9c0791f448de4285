import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../../src/train/rng.js';
import {
  MemoryTokenFile,
  dtypeForVocab,
  encodeTokens,
  iterateChunks,
  parseMeta,
  streamDocuments,
} from '../../src/train/data/token-file.js';
import {
  NodeTokenFile,
  TokenFileWriter,
  findChunkCut,
  openTokenSplits,
  prepareTokenFiles,
  writeTokenFile,
} from '../../src/train/data/token-file-node.js';
import {
  EpochSampler,
  RandomBatcher,
  ShuffledWindowBatcher,
  sequentialBatches,
  sequentialWindowCount,
} from '../../src/train/data/batches.js';
import { blockCausalMask, packDocuments, splitDocuments } from '../../src/train/data/packing.js';

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'lineage-data-'));
}

test('Rng is deterministic, in range and roughly uniform', () => {
  const a = new Rng(42);
  const b = new Rng(42);
  for (let i = 0; i < 100; i++) assert.equal(a.nextU32(), b.nextU32());
  assert.notEqual(new Rng(1).nextU32(), new Rng(2).nextU32());
  const r = new Rng(7);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 100000; i++) counts[r.int(10)]++;
  for (const c of counts) assert.ok(Math.abs(c - 10000) < 500, `bucket ${c}`);
  let s = 0;
  for (let i = 0; i < 20000; i++) s += r.poisson(3);
  assert.ok(Math.abs(s / 20000 - 3) < 0.06);
  const p = r.permutation(50);
  assert.deepEqual(
    Array.from(p).sort((x, y) => x - y),
    Array.from({ length: 50 }, (_, i) => i),
  );
});

test('dtype choice and byte encoding', () => {
  assert.equal(dtypeForVocab(65), 'uint16');
  assert.equal(dtypeForVocab(50257), 'uint16');
  assert.equal(dtypeForVocab(65536), 'uint16');
  assert.equal(dtypeForVocab(65537), 'uint32');
  assert.deepEqual(Array.from(encodeTokens([1, 258], 'uint16', 300)), [1, 0, 2, 1]);
  assert.throws(() => encodeTokens([300], 'uint16', 300), /outside the vocabulary/);
  assert.throws(() => parseMeta('{"format":"x"}', 'f.json'), /format/);
});

test('MemoryTokenFile reads ranges and raw bytes', () => {
  const m = new MemoryTokenFile([5, 6, 7, 8]);
  assert.equal(m.length, 4);
  assert.deepEqual(Array.from(m.read(1, 2)), [6, 7]);
  assert.throws(() => m.read(3, 2), /outside/);
  const raw = MemoryTokenFile.fromBytes(new Uint8Array([1, 0, 2, 1]));
  assert.deepEqual(Array.from(raw.data), [1, 258]);
});

test('NodeTokenFile round-trips uint16 and uint32 files with sidecars', () => {
  const dir = tmpDir();
  const ids = Array.from({ length: 1000 }, (_, i) => (i * 7919) % 50257);
  const meta = writeTokenFile(path.join(dir, 'a.bin'), ids, 50257, 'gpt2');
  assert.deepEqual(meta, {
    format: 'lineage-tokens',
    version: 1,
    dtype: 'uint16',
    vocabSize: 50257,
    count: 1000,
    tokenizer: 'gpt2',
  });
  assert.equal(fs.statSync(path.join(dir, 'a.bin')).size, 2000);
  const f = new NodeTokenFile(path.join(dir, 'a.bin'));
  assert.equal(f.length, 1000);
  assert.deepEqual(Array.from(f.read(990, 10)), ids.slice(990));
  f.close();
  const big = Array.from({ length: 100 }, (_, i) => 100000 + i);
  writeTokenFile(path.join(dir, 'b.bin'), big, 200000);
  const g = new NodeTokenFile(path.join(dir, 'b.bin'));
  assert.equal(g.dtype, 'uint32');
  assert.deepEqual(Array.from(g.read(0, 100)), big);
  g.close();
  assert.deepEqual(fs.readdirSync(dir).sort(), ['a.bin', 'a.bin.json', 'b.bin', 'b.bin.json']);
});

test('NodeTokenFile reads a raw nanoGPT uint16 .bin without sidecar', () => {
  const dir = tmpDir();
  const p = path.join(dir, 'train.bin');
  const u16 = Uint16Array.from([0, 1, 64, 65535, 300]); // np.array(ids, dtype=np.uint16).tofile(...) on little-endian
  fs.writeFileSync(p, new Uint8Array(u16.buffer));
  const f = new NodeTokenFile(p);
  assert.equal(f.meta, undefined);
  assert.equal(f.length, 5);
  assert.deepEqual(Array.from(f.read(0, 5)), [0, 1, 64, 65535, 300]);
  f.close();
});

test('TokenFileWriter leaves no file until close and nothing after abort', () => {
  const dir = tmpDir();
  const p = path.join(dir, 'x.bin');
  const w = new TokenFileWriter(p, 100);
  w.append([1, 2, 3]);
  assert.equal(fs.existsSync(p), false);
  w.abort();
  assert.deepEqual(fs.readdirSync(dir), []);
});

test('findChunkCut cuts before a line that starts with a non-space', () => {
  const enc = new TextEncoder();
  const b = enc.encode('ab\ncd\n\n  ef\ngh');
  const cut = findChunkCut(b);
  assert.equal(new TextDecoder().decode(b.subarray(cut)), 'gh');
  assert.equal(findChunkCut(enc.encode('no newline here')), 0);
});

test('prepareTokenFiles streams a file larger than the chunk size into train/val', () => {
  const dir = tmpDir();
  const lines: string[] = [];
  const rng = new Rng(3);
  for (let i = 0; i < 2000; i++)
    lines.push(Array.from({ length: 1 + rng.int(40) }, () => 'abcdefgh éü\n'[rng.int(11)]).join(''));
  const text = lines.join('\n') + '\n';
  const input = path.join(dir, 'input.txt');
  fs.writeFileSync(input, text);
  const chars = [...new Set(text)].sort();
  const stoi = new Map(chars.map((c, i) => [c, i]));
  let calls = 0;
  const encode = (s: string) => {
    calls++;
    return [...s].map((c) => stoi.get(c)!);
  };
  const res = prepareTokenFiles({
    input,
    outDir: path.join(dir, 'out'),
    encode,
    vocabSize: chars.length,
    tokenizer: 'char',
    chunkBytes: 4096,
  });
  assert.ok(calls > 10, `expected many chunks, got ${calls}`);
  const train = new NodeTokenFile(res.train.path);
  const val = new NodeTokenFile(res.val.path);
  const all = [...train.read(0, train.length), ...val.read(0, val.length)];
  assert.equal(all.map((i) => chars[i]).join(''), text, 'chunked tokenization reproduces the text');
  const frac = val.length / all.length;
  assert.ok(frac > 0.08 && frac < 0.12, `val fraction ${frac}`);
  assert.equal(train.meta?.tokenizer, 'char');
  // Split lands on a line start.
  assert.equal(chars[train.read(train.length - 1, 1)[0]], '\n');
  train.close();
  val.close();
});

test('RandomBatcher follows get_batch semantics and is deterministic', () => {
  const data = new MemoryTokenFile(Array.from({ length: 100 }, (_, i) => i));
  const a = new RandomBatcher(data, 8, 10, 1337);
  const b = new RandomBatcher(data, 8, 10, 1337);
  let maxStart = 0;
  for (let k = 0; k < 200; k++) {
    const x = a.next();
    const y = b.next();
    assert.deepEqual(x.x, y.x);
    assert.deepEqual(x.starts, y.starts);
    for (let r = 0; r < 8; r++) {
      const i = x.starts[r];
      assert.ok(i >= 0 && i < 90, `start ${i}`);
      maxStart = Math.max(maxStart, i);
      for (let t = 0; t < 10; t++) {
        assert.equal(x.x[r * 10 + t], i + t);
        assert.equal(x.y[r * 10 + t], i + t + 1);
      }
    }
  }
  assert.equal(maxStart, 89, 'the last valid window (len - T - 1) is reachable');
  assert.notDeepEqual(new RandomBatcher(data, 8, 10, 1).next().starts, new RandomBatcher(data, 8, 10, 2).next().starts);
});

test('sequentialBatches covers every target once', () => {
  const data = new MemoryTokenFile(Array.from({ length: 103 }, (_, i) => i));
  assert.equal(sequentialWindowCount(103, 10), 10);
  const seen: number[] = [];
  let batches = 0;
  for (const b of sequentialBatches(data, 4, 10)) {
    batches++;
    seen.push(...b.y);
    assert.equal(b.x.length, b.rows * 10);
  }
  assert.equal(batches, 3);
  assert.deepEqual(
    seen,
    Array.from({ length: 100 }, (_, i) => i + 1),
  );
  assert.equal([...sequentialBatches(data, 4, 10, 1)].length, 1);
});

test('EpochSampler: a permutation per epoch, reproducible, different across epochs', () => {
  const s = new EpochSampler(20, 5);
  const e0 = s.take(0, 20);
  const e1 = s.take(20, 20);
  assert.deepEqual(
    [...e0].sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, i) => i),
  );
  assert.notDeepEqual(e0, e1);
  assert.deepEqual(new EpochSampler(20, 5).take(20, 20), e1, 'resuming at epoch 1 needs no replay');
  const sb = new ShuffledWindowBatcher(new MemoryTokenFile(Array.from({ length: 41 }, (_, i) => i)), 2, 10, 9);
  const starts = [...sb.next().starts, ...sb.next().starts].sort((a, b) => a - b);
  assert.deepEqual(starts, [0, 10, 20, 30]);
  assert.equal(sb.epoch, 1);
});

test('packDocuments concat mode: documents straddle rows, segments restart per row', () => {
  const docs = splitDocuments([1, 2, 0, 3, 4, 5, 0, 6], 0);
  assert.deepEqual(docs, [[1, 2, 0], [3, 4, 5, 0], [6]]);
  const p = packDocuments(docs, { rowLength: 4, padId: 9, eosId: 0 });
  assert.equal(p.rows, 3);
  assert.deepEqual(Array.from(p.inputIds), [1, 2, 0, 3, 4, 5, 0, 6, 0, 9, 9, 9]);
  assert.deepEqual(Array.from(p.segmentIds), [1, 1, 1, 2, 1, 1, 1, 2, 1, 0, 0, 0]);
  assert.deepEqual(Array.from(p.positionIds), [0, 1, 2, 0, 0, 1, 2, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(p.attentionMask), [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
  assert.equal(packDocuments(docs, { rowLength: 4, padId: 9, eosId: 0, dropLast: true }).rows, 2);
});

test('packDocuments greedy mode keeps documents whole when they fit', () => {
  const p = packDocuments([[1, 2], [3, 4, 5], [6]], { rowLength: 4, padId: 0, eosId: 9, mode: 'greedy' });
  assert.deepEqual(Array.from(p.inputIds), [1, 2, 9, 0, 3, 4, 5, 9, 6, 9, 0, 0]);
  assert.deepEqual(Array.from(p.segmentIds), [1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0, 0]);
  const long = packDocuments([[1, 2, 3, 4, 5, 6]], { rowLength: 4, padId: 0, mode: 'greedy' });
  assert.deepEqual(Array.from(long.inputIds), [1, 2, 3, 4, 5, 6, 0, 0]);
});

test('blockCausalMask keeps attention inside a segment', () => {
  const m = blockCausalMask([1, 1, 2, 0]);
  assert.deepEqual(Array.from(m), [1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
});

test('Rng state round-trips (exact resume of the data order)', () => {
  const r = new Rng(11);
  r.nextU32();
  const st = r.getState();
  const want = [r.nextU32(), r.nextU32()];
  const q = new Rng(0);
  q.setState(st);
  assert.deepEqual([q.nextU32(), q.nextU32()], want);
  const data = new MemoryTokenFile(Array.from({ length: 500 }, (_, i) => i));
  const a = new RandomBatcher(data, 4, 8, 3);
  a.next();
  const saved = a.rng.getState();
  const next = a.next().starts;
  const b = new RandomBatcher(data, 4, 8, 999);
  b.rng.setState(saved);
  assert.deepEqual(b.next().starts, next);
});

test('streaming a disk file larger than the chunk size: chunks and documents', () => {
  const dir = tmpDir();
  const rng = new Rng(8);
  const EOS = 0;
  const ids: number[] = [];
  while (ids.length < 50000) {
    const len = 1 + rng.int(300);
    for (let i = 0; i < len; i++) ids.push(1 + rng.int(999));
    ids.push(EOS);
  }
  writeTokenFile(path.join(dir, 'train.bin'), ids, 1000);
  writeTokenFile(path.join(dir, 'val.bin'), ids.slice(0, 100), 1000);
  const { train, val } = openTokenSplits(dir);
  assert.equal(val.length, 100);
  const chunks = [...iterateChunks(train, 4096)];
  assert.ok(chunks.length > 10 && chunks.every((c) => c.length <= 4096));
  assert.deepEqual(
    chunks.flatMap((c) => Array.from(c)),
    ids,
  );
  const streamed = [...streamDocuments(train, EOS, 1000)].map((d) => Array.from(d));
  assert.deepEqual(streamed, splitDocuments(ids, EOS));
  const packed = packDocuments(streamDocuments(train, EOS, 777), { rowLength: 257, padId: 0 });
  assert.deepEqual(Array.from(packed.inputIds.subarray(0, ids.length)), ids);
  train.close();
  val.close();
});
