// The engine in a worker thread: same tokens as the in-process engine, bad requests fail their own
// handle, abort ends a stream, stats come back.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModelDir } from '../../../src/infer/model-dir-node.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import { EngineWorker } from '../../../src/infer/engine/engine-node.js';
import type { TokenEvent } from '../../../src/infer/engine/sequence.js';

async function collect(h: AsyncIterable<TokenEvent>): Promise<TokenEvent[]> {
  const out: TokenEvent[] = [];
  for await (const e of h) out.push(e);
  return out;
}

test('EngineWorker proxies the engine from a worker thread', async () => {
  const dir = 'models/shakespeare-char';
  const { model, tokenizer } = await loadModelDir(dir);
  const local = await collect(
    new Engine(model, { tokenizer }).add({ prompt: 'ROMEO:', maxTokens: 20, temperature: 0 }),
  );
  const w = await EngineWorker.start({ modelDir: dir, kvMemoryBytes: 8 << 20, threads: 0 });
  try {
    const long = w.add({ id: 'long', prompt: 'JULIET:', maxTokens: 50, temperature: 0.8, seed: 1 });
    const remote = await collect(w.add({ prompt: 'ROMEO:', maxTokens: 20, temperature: 0 }));
    assert.deepEqual(
      remote.map((e) => e.token),
      local.map((e) => e.token),
    );
    assert.equal(remote.map((e) => e.text).join(''), local.map((e) => e.text).join(''));
    await assert.rejects(collect(w.add({ prompt: 'x', maxTokens: 5, topP: 2 })), /topP/);
    w.abort('long');
    const evs = await collect(long);
    assert.ok(['abort', 'length'].includes(evs.at(-1)!.finishReason!));
    assert.equal(w.stats().kvBlocksUsed, 0);
    assert.ok(w.stats().kvBlocksTotal > 0);
  } finally {
    await w.close();
  }
});

test('EngineWorker stats count the requests posted but not yet acknowledged (n each)', async () => {
  const w = await EngineWorker.start({ modelDir: 'models/shakespeare-char', kvMemoryBytes: 8 << 20, threads: 0 });
  try {
    assert.equal(w.stats().waiting, 0);
    const hs = [1, 2, 3].map((n) => w.add({ prompt: 'ROMEO:', maxTokens: 3, temperature: 0, n }));
    // posted this tick: no snapshot from the worker can know them yet, the queue limit must
    assert.equal(w.stats().waiting, 6);
    await Promise.all(hs.map((h) => collect(h)));
    assert.equal(w.stats().waiting, 0);
    await assert.rejects(collect(w.add({ prompt: 'x', maxTokens: 5, topP: 2, n: 4 })), /topP/);
    assert.equal(w.stats().waiting, 0, 'a refused request leaves the count');
  } finally {
    await w.close();
  }
});
