// T5 relative position bias (Raffel et al. 2020): the offset key - query is mapped to one of `buckets`
// buckets (exact for small offsets, log-spaced up to `maxDistance`, then capped), and each bucket holds
// a learned per-head bias added to the attention logits. Bidirectional (encoder) stacks give half the
// buckets to positive offsets; causal (decoder) stacks bucket only the past.
// Bucket ids are computed on the host with float32 rounding at each step, as transformers computes them.
//
// Notation: nh heads, Tq queries, Tk keys.
import type { Tensor } from '../tensor/tensor.js';
import { embedding, permute, tensor, unsqueeze } from '../ops/index.js';

export interface T5BucketSpec {
  buckets: number;
  maxDistance: number;
  bidirectional: boolean;
}

const f32 = Math.fround;

/** transformers T5Attention._relative_position_bucket for one offset (key - query) */
export function relativePositionBucket(rel: number, s: T5BucketSpec): number {
  let n = s.buckets;
  let bucket = 0;
  let r: number;
  if (s.bidirectional) {
    n = Math.floor(n / 2);
    if (rel > 0) bucket += n;
    r = Math.abs(rel);
  } else {
    r = -Math.min(rel, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (r < maxExact) return bucket + r;
  const scaled = f32(f32(f32(Math.log(f32(r / maxExact))) / f32(Math.log(s.maxDistance / maxExact))) * (n - maxExact));
  return bucket + Math.min(maxExact + Math.trunc(scaled), n - 1);
}

/** int32 [Tq, Tk] bucket ids for queries at qStart.. and keys at kStart.. */
export function relativeBuckets(s: T5BucketSpec, qStart: number, Tq: number, kStart: number, Tk: number): Tensor {
  const ids = new Int32Array(Tq * Tk);
  for (let i = 0; i < Tq; i++)
    for (let j = 0; j < Tk; j++) ids[i * Tk + j] = relativePositionBucket(kStart + j - (qStart + i), s);
  return tensor(ids, { shape: [Tq, Tk] });
}

/** weight [buckets, nh] -> bias [1, nh, Tq, Tk] (differentiable in the weight) */
export function t5PositionBias(
  weight: Tensor,
  s: T5BucketSpec,
  qStart: number,
  Tq: number,
  kStart: number,
  Tk: number,
): Tensor {
  const vals = embedding(weight, relativeBuckets(s, qStart, Tq, kStart, Tk)); // (Tq, Tk, nh)
  return unsqueeze(permute(vals, [2, 0, 1]), 0); // (1, nh, Tq, Tk)
}
