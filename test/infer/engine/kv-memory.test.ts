// The KV pools' native memory. `prefaultKv`: the pool's pages are written when the pool is made (resident
// from the start, so no first-touch page faults land inside a step), and only then, measured through the
// process's resident set (fresh anonymous mappings cost no RSS until touched). `Engine.dispose()`: every
// byte an engine took from the native backend (target and draft pools, kernel scratch, fast-path buffers)
// is returned, so engines made and dropped keep memory flat; a disposed engine refuses work.
// Linux only (/proc-backed RSS); skipped, naming why, where the addon was not built.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNativeBackend } from '../../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../../src/backend/native/addon-node.js';
import { getBackend, setBackend } from '../../../src/tensor/engine.js';
import { KvPool, type LayerSpec } from '../../../src/infer/engine/kv-pool.js';
import { Engine } from '../../../src/infer/engine/engine.js';
import { createModel } from '../../../src/models/registry.js';
import { tinyConfig } from '../../models/decoder-helpers.js';

const SPECS: LayerSpec[] = Array.from({ length: 4 }, () => ({ kvHeads: 2, kDim: 64, vDim: 64, window: null }));
const MB = 1 << 20;

const { addon, error } = loadNativeAddon();
const skip = !addon ? error : process.platform !== 'linux' ? 'RSS of untouched mappings is Linux-specific' : false;

describe('KV pool memory', { skip }, () => {
  const saved = getBackend();
  after(() => setBackend(saved));
  setBackend(createNativeBackend(addon!, { threads: 1 }));

  /** RSS growth (bytes) over making one pool of `bytes` */
  const growth = (bytes: number, prefault: boolean): { rss: number; pool: KvPool } => {
    const before = process.memoryUsage().rss;
    const pool = new KvPool(SPECS, 16, bytes, 'backend', 'float32', prefault);
    return { rss: process.memoryUsage().rss - before, pool };
  };

  test('a prefaulted pool is resident at once; a plain one is not', () => {
    // distinct odd sizes, so neither reuses blocks the native allocator cached (those are written on reuse)
    const plain = growth(37 * MB, false);
    const touched = growth(41 * MB, true);
    assert.ok(plain.pool.kernel && touched.pool.kernel, 'both pools live in the backend kernel');
    assert.ok(plain.rss < 8 * MB, `an untouched 37 MB pool grew RSS by ${(plain.rss / MB).toFixed(1)} MB`);
    assert.ok(touched.rss > 36 * MB, `a prefaulted 41 MB pool grew RSS by only ${(touched.rss / MB).toFixed(1)} MB`);
    // and it is still a zeroed pool
    for (const l of touched.pool.layers) assert.equal(l.k[l.k.length - 1], 0);
  });

  /** greedy tokens of one request */
  const run = async (engine: Engine, prompt: number[]): Promise<number[]> => {
    const got: number[] = [];
    for await (const e of engine.add({ prompt, maxTokens: 12, temperature: 0, ignoreEos: true }))
      if (e.token >= 0) got.push(e.token);
    return got;
  };

  test('dispose() returns every byte the engine took (target and draft pools, scratch) and refuses work', async () => {
    const be = getBackend();
    const target = createModel(tinyConfig('llama'), { seed: 3 }).eval();
    const draft = createModel(tinyConfig('llama'), { seed: 3 }).eval(); // the target's weights: drafts accepted
    const base = be.bytesInUse();
    const engine = new Engine(target, { kvMemoryBytes: 4 * MB, draftModel: draft, prefaultKv: true });
    assert.ok(be.bytesInUse() >= base + 4 * MB, 'the pools live in the native backend');
    const tokens = await run(engine, [1, 2, 3, 4, 5]);
    assert.equal(tokens.length, 12);
    assert.ok(engine.stats().acceptanceRate > 0, 'the drafter ran');
    // an open request ends with 'abort' when the engine goes
    const open = engine.add({ prompt: [7, 8, 9], maxTokens: 50, temperature: 0, ignoreEos: true });
    engine.dispose();
    const ends: string[] = [];
    for await (const e of open) if (e.finishReason) ends.push(e.finishReason);
    assert.deepEqual(ends, ['abort']);
    assert.equal(be.bytesInUse(), base, 'bytes in use after dispose equal those before the engine');
    assert.throws(() => engine.add({ prompt: [1], maxTokens: 1 }), /add\(\) after dispose\(\)/);
    assert.throws(() => engine.step(), /step\(\) after dispose\(\)/);
    engine.dispose(); // twice is a no-op
    // the model is the caller's and still serves a new engine, with the same output
    const again = new Engine(target, { kvMemoryBytes: 4 * MB });
    assert.deepEqual(await run(again, [1, 2, 3, 4, 5]), tokens);
    again.dispose();
    target.dispose();
    draft.dispose();
  });

  test('engines made and disposed one after another keep the resident set flat', async () => {
    const model = createModel(tinyConfig('llama'), { seed: 5 }).eval();
    const once = async () => {
      const e = new Engine(model, { kvMemoryBytes: 24 * MB, prefaultKv: true });
      await run(e, [3, 1, 4]);
      e.dispose();
    };
    await once();
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 12; i++) await once();
    const grew = process.memoryUsage().rss - before;
    // twelve undisposed 24 MB prefaulted pools would add ~288 MB
    assert.ok(grew < 48 * MB, `12 engines made and disposed grew RSS by ${(grew / MB).toFixed(1)} MB`);
    model.dispose();
  });
});
