// Engine lifecycle and request semantics from the library audit: minTokens holds back stop strings too,
// a constructor that throws frees its pool, bad kvMemoryBytes is named, leaving a handle's loop early aborts
// the request, EngineWorker refuses add() after close() and closes twice, recurrent families take n > 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModelDir } from '../../../src/infer/model-dir-node.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import { EngineWorker } from '../../../src/infer/engine/engine-node.js';
import { KvPool } from '../../../src/infer/engine/kv-pool.js';
import { createModel } from '../../../src/models/registry.js';
import { getPreset } from '../../../src/models/presets.js';
import type { TokenEvent } from '../../../src/infer/engine/sequence.js';

const DIR = 'models/shakespeare-char';

async function collect(h: AsyncIterable<TokenEvent>): Promise<TokenEvent[]> {
  const out: TokenEvent[] = [];
  for await (const e of h) out.push(e);
  return out;
}

test('minTokens holds back stop strings as it does stop ids (vLLM min_tokens)', async () => {
  const { model, tokenizer } = await loadModelDir(DIR);
  const engine = new Engine(model, { tokenizer });
  try {
    const base = { prompt: 'ROMEO:', maxTokens: 30, temperature: 0 };
    const free = await collect(engine.add({ ...base, stop: ['\n'] }));
    // greedy starts with a newline: without minTokens the stop string ends it at once
    assert.equal(free.length, 1);
    assert.equal(free[0]!.finishReason, 'stop');
    const held = await collect(engine.add({ ...base, stop: ['\n'], minTokens: 10 }));
    const tokens = held.filter((e) => e.token >= 0);
    assert.ok(tokens.length >= 10, `${tokens.length} tokens`);
    const text = held.map((e) => e.text).join('');
    // the newline of the first token is shown (it came before minTokens); a later one may stop it
    assert.ok(text.startsWith('\n'), JSON.stringify(text));
    if (held.at(-1)!.finishReason === 'stop') assert.ok(!text.slice(1).includes('\n'));
  } finally {
    engine.dispose();
  }
});

test('an Engine constructor that throws frees the pool it allocated; bad kvMemoryBytes is named', async () => {
  const { model } = await loadModelDir(DIR);
  const disposed: KvPool[] = [];
  const orig = KvPool.prototype.dispose;
  KvPool.prototype.dispose = function (this: KvPool) {
    disposed.push(this);
    orig.call(this);
  };
  try {
    // the MTP drafter is refused after the target's pool exists: that pool must go back
    assert.throws(() => new Engine(model, { mtpDraft: true, kvMemoryBytes: 4 << 20 }), /MTP|mtp/);
    assert.equal(disposed.length, 1);
    // limits are checked before anything is allocated
    assert.throws(() => new Engine(model, { maxRunningSeqs: 0 }), /maxRunningSeqs must be a positive integer/);
    assert.equal(disposed.length, 1);
  } finally {
    KvPool.prototype.dispose = orig;
  }
  for (const bad of [NaN, '64MB', Infinity])
    assert.throws(() => new Engine(model, { kvMemoryBytes: bad as number }), /kvMemoryBytes must be a positive number/);
});

test("leaving a handle's for-await early aborts the request and frees its blocks", async () => {
  const { model, tokenizer } = await loadModelDir(DIR);
  const engine = new Engine(model, { tokenizer });
  try {
    let seen = 0;
    for await (const e of engine.add({ prompt: 'ROMEO:', maxTokens: 50, temperature: 0 })) {
      if (e.token >= 0 && ++seen === 2) break;
    }
    const s = engine.stats();
    assert.equal(s.running, 0);
    assert.equal(s.kvBlocksUsed, 0);
  } finally {
    engine.dispose();
  }
});

test('EngineWorker: add() after close() throws; close() twice settles', async () => {
  const w = await EngineWorker.start({ modelDir: DIR, kvMemoryBytes: 4 << 20, threads: 0 });
  await w.close();
  assert.throws(() => w.add({ prompt: 'ROMEO:', maxTokens: 2 }), /EngineWorker: add\(\) after close\(\)/);
  await w.close();
});

test('recurrent families decode n > 1 samples (each sibling recomputes the prompt in its own slot)', async () => {
  for (const preset of ['tiny-mamba', 'tiny-lstm']) {
    const model = createModel(getPreset(preset), { seed: 3 });
    const engine = new Engine(model, {});
    try {
      const one = await collect(engine.add({ prompt: [1, 2, 3], maxTokens: 6, temperature: 1, seed: 5 }));
      const two = await collect(engine.add({ prompt: [1, 2, 3], maxTokens: 6, temperature: 1, seed: 5, n: 2 }));
      const ids = (evs: TokenEvent[], i: number) =>
        evs.filter((e) => e.index === i && e.token >= 0).map((e) => e.token);
      assert.deepEqual(ids(two, 0), ids(one, 0), preset);
      assert.equal(ids(two, 1).length, 6, preset);
    } finally {
      engine.dispose();
      model.dispose();
    }
  }
});

test("a decoder prompt may fill the whole context: one token, then 'length'", async () => {
  const { model } = await loadModelDir(DIR); // context 64
  const engine = new Engine(model, {});
  try {
    const evs = await collect(
      engine.add({ prompt: Array.from({ length: 64 }, (_, i) => i % 60), maxTokens: 5, temperature: 0 }),
    );
    assert.equal(evs.length, 1);
    assert.equal(evs[0]!.finishReason, 'length');
    assert.throws(() => engine.add({ prompt: new Array(65).fill(1), maxTokens: 1 }), /the prompt has 65 tokens/);
  } finally {
    engine.dispose();
  }
});
