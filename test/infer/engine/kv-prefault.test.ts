// `prefaultKv`: the KV pool's pages are written when the pool is made (resident from the start, so no
// first-touch page faults land inside a step), and only then. Measured through the process's resident set:
// the pool's memory comes from fresh anonymous mappings (native backend) that cost no RSS until touched.
// Linux only (/proc-backed RSS); skipped, naming why, where the addon was not built.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNativeBackend } from '../../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../../src/backend/native/addon-node.js';
import { getBackend, setBackend } from '../../../src/tensor/engine.js';
import { KvPool, type LayerSpec } from '../../../src/infer/engine/kv-pool.js';

const SPECS: LayerSpec[] = Array.from({ length: 4 }, () => ({ kvHeads: 2, kDim: 64, vDim: 64, window: null }));
const MB = 1 << 20;

const { addon, error } = loadNativeAddon();
const skip = !addon ? error : process.platform !== 'linux' ? 'RSS of untouched mappings is Linux-specific' : false;

describe('KV pool prefault', { skip }, () => {
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
});
