// The native paged-attention kernel's vector paths (eight keys of a 16-token block scored together when the
// key width is a multiple of 8; value rows summed in registers for widths of 1, 2, 4 or 8 vectors) against
// the engine's host kernel, on shuffled blocks of 16 with ragged sequences, GQA and sliding windows. Groups of
// 1, 2, 3, 4 and 8 query heads per kv head cover the value accumulators that share each value row among
// 8 / (value vectors) heads (runs of 8, 4, 2, 1); a lone decoding token covers the kv heads split over threads.
// Pools of float32, float16 and bfloat16. Skipped (naming why) where the addon was not built.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createNativeBackend } from '../../../src/backend/native/backend.js';
import { loadNativeAddon } from '../../../src/backend/native/addon-node.js';
import { getBackend, setBackend } from '../../../src/tensor/engine.js';
import { Rng } from '../../../src/tensor/random.js';
import { KvPool, type LayerSpec } from '../../../src/infer/engine/kv-pool.js';
import { BackendPagedKernel } from '../../../src/infer/engine/paged-backend.js';
import { pagedAttention, writeKv, type BatchLayout } from '../../../src/infer/engine/paged-attention.js';

const SPECS: [nh: number, spec: LayerSpec][] = [
  [4, { kvHeads: 2, kDim: 32, vDim: 32, window: null }],
  [8, { kvHeads: 2, kDim: 64, vDim: 64, window: 20 }],
  [2, { kvHeads: 1, kDim: 16, vDim: 24, window: null }], // 3 value vectors: the generic path
  [4, { kvHeads: 4, kDim: 8, vDim: 8, window: 11 }],
  [6, { kvHeads: 3, kDim: 12, vDim: 16, window: null }], // key width not a multiple of 8: per-key scores
  [12, { kvHeads: 4, kDim: 8, vDim: 8, window: null }], // groups of 3 one-vector heads: runs of 2 + 1
  [16, { kvHeads: 2, kDim: 8, vDim: 8, window: 30 }], // groups of 8 one-vector heads: one run of 8
  [6, { kvHeads: 2, kDim: 32, vDim: 32, window: null }], // groups of 3 four-vector heads: runs of 2 + 1
];

function near(got: Float32Array, want: Float32Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++)
    assert.ok(
      Math.abs(want[i]! - got[i]!) <= 2e-5 * (1 + Math.abs(want[i]!)),
      `${what} at ${i}: ${got[i]} vs ${want[i]}`,
    );
}

const { addon, error } = loadNativeAddon();
describe('native paged attention on blocks of 16', { skip: addon ? false : error }, () => {
  const prev = getBackend();
  after(() => setBackend(prev));
  // float16 / bfloat16 pools: each block's rows of the item's kv heads converted once, then the same paths
  for (const dtype of ['float32', 'float16', 'bfloat16'] as const)
    for (const threads of [1, 2]) {
      test(`equals the host kernel over a ${dtype} pool, ${threads} thread(s)`, () => {
        setBackend(createNativeBackend(addon!, { threads, forceParallel: threads > 1 }));
        const rng = new Rng(21 + threads);
        for (const [nh, spec] of SPECS) {
          const pool = new KvPool([spec], 16, 1 << 20, 'auto', dtype);
          assert.ok(pool.kernel instanceof BackendPagedKernel);
          const store = pool.layers[0]!;
          const lens = [1, 37, 9, 64, 20];
          const free = rng.shuffle(Array.from({ length: pool.numBlocks }, (_, i) => i));
          const tables = lens.map((n) => Int32Array.from({ length: Math.ceil(n / 16) }, () => free.pop()!));
          const T = lens.reduce((s, n) => s + n, 0);
          const [seq, pos] = [new Int32Array(T), new Int32Array(T)];
          let t = 0;
          lens.forEach((n, i) => {
            for (let p = 0; p < n; p++, t++) [seq[t], pos[t]] = [i, p];
          });
          const layout: BatchLayout = { blockSize: 16, seq, pos, tables };
          const rnd = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
          writeKv(store, layout, rnd(spec.kvHeads * T * spec.kDim), rnd(spec.kvHeads * T * spec.vDim));
          const q = rnd(nh * T * spec.kDim);
          const want = pagedAttention(store, layout, q, nh, 0.3);
          const got = pool.kernel.run(store, layout, q, nh, 0.3);
          near(got, want, `${dtype}, ${nh} heads ${JSON.stringify(spec)}`);
          // one decoding token of the longest sequence: too few tokens to go round the threads, so its kv
          // heads are split between them
          const one: BatchLayout = {
            blockSize: 16,
            seq: Int32Array.of(0),
            pos: Int32Array.of(40),
            tables: [tables[3]!],
          };
          const q1 = rnd(nh * spec.kDim);
          near(
            pool.kernel.run(store, one, q1, nh, 0.3),
            pagedAttention(store, one, q1, nh, 0.3),
            `${dtype}, ${nh} heads, one token`,
          );
        }
      });
    }
});
