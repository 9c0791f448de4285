// The native mid-M matmul path (SMALL_M_MAX < M <= MID_M_MAX rows of A times a weight stored [N, K]: a
// batched decoding step's projections; native/kernels.inc `midM`) against the reference matmul: M across
// both thresholds (16 | 17 and 64 | 65), N on and off the 16-column panel edge, K past one KC slice (384),
// a batch with a broadcast weight, every native target, 1 and 2 threads. Skipped (naming why) where the
// addon was not built.
import { after, before, describe, test } from 'node:test';
import type { MatmulParams } from '../../src/backend/backend.js';
import { referenceKernels as ref } from '../../src/backend/reference/kernels.js';
import { loadNativeAddon } from '../../src/backend/native/addon-node.js';
import { nativeBackend, nativeTargets, type NativeTarget } from './native-targets.js';

import { Ctx, close, rng, type FastBackend } from './kernel-helpers.js';

const { addon, error } = loadNativeAddon();
const keys: { key: string; target: NativeTarget; threads: number }[] = [];
for (const target of nativeTargets())
  for (const threads of [1, 2]) keys.push({ key: `native-${target.name}/${threads}`, target, threads });

describe('native mid-M matmul', { skip: addon ? false : error }, () => {
  const backends = new Map<string, FastBackend>();
  before(() => {
    for (const k of keys) backends.set(k.key, nativeBackend(k.target, k.threads, true));
  });
  after(async () => {
    for (const be of backends.values()) await be.dispose?.();
  });
  for (const { key } of keys) {
    test(`${key}: M 16..65, Linear layout, against the reference`, () => {
      const ctx = new Ctx(backends.get(key)!);
      const r = rng(5);
      const NK: [number, number][] = [
        [1, 3],
        [16, 256],
        [65, 256],
        [33, 400], // K past one KC slice: the panel's partial products accumulate
        [130, 37],
        [7, 770],
      ];
      for (const M of [16, 17, 23, 32, 47, 64, 65]) {
        for (const [N, K] of NK) {
          for (const [batch, bcB] of [
            [1, false],
            [2, false],
            [2, true],
          ] as const) {
            const a = ctx.t([batch, M, K], r, 'float32', 3);
            const b = ctx.t([bcB ? 1 : batch, N, K], r, 'float32', 5);
            const p: MatmulParams = {
              batch,
              M,
              N,
              K,
              transA: false,
              transB: true,
              strideA: M * K,
              strideB: bcB ? 0 : N * K,
            };
            const o1 = ctx.t([batch, M, N], null);
            const o2 = ctx.t([batch, M, N], null);
            // output filled with garbage first: the kernel must overwrite, not accumulate into it
            (ctx.be.view(o1.buf) as Float32Array).fill(7);
            ctx.k.matmul(a, b, o1, p);
            ref.matmul(a, b, o2, p);
            close(ctx.arr(o1), ctx.arr(o2), 2e-5 * Math.sqrt(K), `matmul ${JSON.stringify(p)}`);
          }
        }
        ctx.done();
      }
    });
  }
});
