// A serving soak on the WebAssembly backend: batches of random prompt lengths and output lengths change
// the step shapes every iteration, yet after a warm-up the wasm memory stops growing (the allocator
// coalesces freed blocks instead of keeping a free list per size ever seen) and nothing stays live.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend, setBackend } from '../../../src/tensor/engine.js';
import { createWasmBackend } from '../../../src/backend/wasm/backend.js';
import { createModel } from '../../../src/models/registry.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import { tinyConfig } from '../../models/decoder-helpers.js';

test('engine soak (wasm): memory touched after warm-up stays flat over rounds of ragged batches', async () => {
  const prev = getBackend();
  const be = await createWasmBackend({ threads: 1 });
  setBackend(be);
  try {
    const reserved0 = be.touchedBytes();
    const live0 = be.bytesInUse();
    be.resetPeak();
    const model = createModel(
      tinyConfig('llama', (c) => ((c.vocabSize = 1024), (c.maxContext = 256))),
      { seed: 4 },
    );
    const engine = new Engine(model, { blockSize: 4, maxRunningSeqs: 16, maxBatchedTokens: 256, autoRun: false });
    let seed = 11;
    const rnd = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
    const reserved: number[] = [];
    const live: number[] = [];
    for (let round = 0; round < 14; round++) {
      for (let i = 0; i < 24; i++) {
        const prompt = Array.from({ length: 1 + rnd(100) }, () => rnd(1024));
        engine.add({ prompt, maxTokens: 1 + rnd(24), temperature: 0.9, seed: i });
      }
      engine.runToCompletion();
      reserved.push(be.touchedBytes());
      live.push(be.bytesInUse());
    }
    // the first rounds find the shapes' peak; from round 6 on, memory is reused, never grown
    const warm = reserved[5]!;
    for (let r = 6; r < reserved.length; r++)
      assert.ok(reserved[r]! <= warm * 1.05, `round ${r}: reserved ${reserved[r]} > ${warm} after warm-up`);
    assert.equal(live.at(-1), live[5], 'no tensor stays live across rounds');
    // and what is reserved is close to what was ever live at once: freed blocks merge and are reused
    const ratio = (reserved.at(-1)! - reserved0) / (be.peakBytes() - live0);
    assert.ok(ratio <= 1.5, `reserved ${ratio.toFixed(2)}x the peak live bytes: fragmentation`);
    assert.deepEqual([engine.stats().running, engine.stats().kvBlocksUsed], [0, 0]);
  } finally {
    setBackend(prev);
    await be.dispose();
  }
});
