// A TokenSource written by a library user (through the public entry point) may return a fresh array from
// read() instead of filling `out`, as its contract allows: the batches must hold its tokens (they used to
// be all zeros, and train and val losses came out identical). A read() of the wrong length is an error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  createModel,
  createTask,
  getPreset,
  MemoryTokenFile,
  Trainer,
  type TaskData,
  type TokenSource,
} from '../../src/index.js';
import { RandomBatcher, sequentialBatches } from '../../src/train/data/batches.js';
import { iterateChunks } from '../../src/train/data/token-file.js';
import { BpttBatcher } from '../../src/train/objectives/bptt.js';

/** token i is f(i); read() returns a fresh array every time and never touches `out` */
class FreshArraySource implements TokenSource {
  constructor(
    readonly length: number,
    private readonly f: (i: number) => number,
  ) {}
  read(start: number, count: number): Int32Array {
    return Int32Array.from({ length: count }, (_, k) => this.f(start + k));
  }
}

test('batches hold the tokens of a source whose read() returns a fresh array', () => {
  const src = new FreshArraySource(300, (i) => 1 + (i % 50));
  const b = new RandomBatcher(src, 3, 8, 1).next();
  for (let r = 0; r < b.rows; r++) {
    for (let t = 0; t < 8; t++) {
      assert.equal(b.x[r * 8 + t], 1 + ((b.starts[r]! + t) % 50));
      assert.equal(b.y[r * 8 + t], 1 + ((b.starts[r]! + t + 1) % 50));
    }
  }
  const seq = [...sequentialBatches(src, 4, 8, 1)][0]!;
  assert.deepEqual(Array.from(seq.x.subarray(0, 8)), [1, 2, 3, 4, 5, 6, 7, 8]);
  const chunk = new BpttBatcher(src, 2, 5).next();
  assert.deepEqual(Array.from(chunk.x.subarray(0, 5)), [1, 2, 3, 4, 5]);
  assert.deepEqual(Array.from(chunk.y.subarray(0, 5)), [2, 3, 4, 5, 6]);
});

test('createTask through the public API: training and evaluation see the user source tokens', () => {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 0 });
  const data: TaskData = {
    train: new FreshArraySource(400, (i) => 1 + ((i * 7) % 50)),
    val: new FreshArraySource(400, (i) => 100 + (i % 3)), // entirely different tokens
  };
  const task = createTask('causal-lm', model.config, data, { batchSize: 2, blockSize: 8, seed: 1 });
  const ids = task.next().arrays.inputIds!.data;
  assert.ok(
    ids.every((v) => v >= 1 && v <= 50),
    `train batch holds the source's ids: ${Array.from(ids).join(',')}`,
  );
  const trainer = new Trainer(model, task, {
    steps: 1,
    evalBatches: 2,
    schedule: { kind: 'constant', lr: 1e-3 },
    optimizer: { kind: 'adamw', lr: 1e-3 },
  });
  const ev = trainer.evaluate();
  assert.notEqual(ev.train, ev.val, 'different splits give different losses');
  trainer.dispose();
  model.dispose();
});

test('a read() of the wrong length is an error naming the source and the range', () => {
  const short = new FreshArraySource(100, (i) => i);
  short.read = (start: number, count: number) => new Int32Array(count - 1);
  assert.throws(
    () => new RandomBatcher(short, 1, 8, 0).next(),
    /token source FreshArraySource: read\(\d+, 9\) \(tokens \[\d+, \d+\) of 100\) returned 8 tokens, expected 9/,
  );
  const none: TokenSource = { length: 50, read: () => undefined as unknown as Int32Array };
  assert.throws(() => [...sequentialBatches(none, 1, 8)], /token source: read\(0, 9\) .* returned undefined/);
  assert.throws(
    () => [...iterateChunks({ length: 10, read: () => new Int32Array(3) }, 4)],
    /returned 3 tokens, expected 4/,
  );
  // MemoryTokenFile (exported for library users) still fills `out`
  const m = new MemoryTokenFile([5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
  assert.deepEqual(Array.from(new RandomBatcher(m, 1, 9, 0).next().x), [5, 6, 7, 8, 9, 10, 11, 12, 13]);
});
