// Matrix multiplication: (..., M, K) @ (..., K, N) -> (..., M, N) with batch broadcasting.
// Transposed views (e.g. `w.transpose()`) are passed to the kernel as transA/transB flags, so
// `x @ W^T` never copies W.
import type { MatmulParams } from '../backend/backend.js';
import { broadcastShapes, fmt, numel } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { alloc, allocOut, checkDType, contig, kernel, narrow, record, sameBackend, widened } from './core.js';
import { noGrad } from '../tensor/engine.js';
import { add } from './elementwise.js';
import { cast, expand, reshape, squeeze, transpose, unsqueeze } from './movement.js';
import { sumTo } from './reduce.js';

interface Operand {
  t: Tensor;
  trans: boolean;
  batchStride: number;
}

/** pick a kernel-ready layout for one operand: plain, transposed view, or a contiguous copy */
function layout(x: Tensor, batchShape: readonly number[], rows: number, cols: number): Operand {
  const nb = x.ndim - 2;
  const bstr = x.strides.slice(0, nb);
  const [s0, s1] = [x.strides[nb]!, x.strides[nb + 1]!];
  const batchN = numel(batchShape);
  const ownBatch = numel(x.shape.slice(0, nb));
  // batch dims: either all broadcast (one matrix) or exactly the output batch, densely packed
  const broadcastAll = ownBatch === 1;
  const dense = (mat: number) =>
    x.shape.slice(0, nb).every((d, i) => d === batchShape[batchShape.length - nb + i]) &&
    nb === batchShape.length &&
    bstr.every((s, i) => s === mat * numel(x.shape.slice(i + 1, nb)));
  const mat = rows * cols;
  const plain = (s1 === 1 || cols === 1) && (s0 === cols || rows === 1);
  const trans = !plain && (s0 === 1 || rows === 1) && (s1 === rows || cols === 1);
  if ((plain || trans) && (broadcastAll || batchN === 1 || dense(mat))) {
    return { t: x, trans, batchStride: broadcastAll ? 0 : mat };
  }
  const c = contig(expand(x, [...batchShape, rows, cols]));
  return { t: c, trans: false, batchStride: batchN === 1 ? 0 : mat };
}

export interface MatmulOptions {
  /** multiply by a^T instead of a (same as passing a.transpose()) */
  transA?: boolean;
  transB?: boolean;
}

export function matmul(aIn: Tensor, bIn: Tensor, opts: MatmulOptions = {}): Tensor {
  sameBackend('matmul', aIn, bIn);
  checkDType('matmul', 'a', aIn, ['float32', 'float16', 'bfloat16']);
  checkDType('matmul', 'b', bIn, ['float32', 'float16', 'bfloat16']);
  if (aIn.ndim === 0 || bIn.ndim === 0)
    throw new Error(`matmul: operands must have at least 1 dimension, got ${fmt(aIn.shape)} and ${fmt(bIn.shape)}`);
  let a = aIn;
  let b = bIn;
  const vecA = a.ndim === 1;
  const vecB = b.ndim === 1;
  if (vecA) a = unsqueeze(a, 0);
  if (vecB) b = unsqueeze(b, 1);
  if (opts.transA) a = transpose(a);
  if (opts.transB) b = transpose(b);
  const out = a.dtype === 'float32' && b.dtype === 'float32' ? matmul2(a, b) : matmulLowp(a, b);
  let y = vecA ? squeeze(out, -2) : out;
  y = vecB ? squeeze(y, -1) : y;
  return y;
}

/**
 * Mixed precision: float16/bfloat16 operands are widened to float32 for the kernel only; the
 * temporaries are dropped at once and re-made in backward, and the product is stored in the
 * operands' low precision (float32 when one operand is float32).
 */
function matmulLowp(a: Tensor, b: Tensor): Tensor {
  const lowp = a.dtype !== 'float32' && b.dtype !== 'float32' ? a.dtype : null;
  const out = narrow(
    noGrad(() => widened(a, (a32) => widened(b, (b32) => matmul2(a32, b32)))),
    lowp,
  );
  return record(out, 'matmul', [a, b], (g) =>
    widened(a, (a32) =>
      widened(b, (b32) =>
        widened(g, (g32) => [
          a.requiresGrad ? sumTo(matmul2(g32, transpose(b32)), a.shape) : null,
          b.requiresGrad ? sumTo(matmul2(transpose(a32), g32), b.shape) : null,
        ]),
      ),
    ),
  );
}

function matmul2(a: Tensor, b: Tensor): Tensor {
  const [M, K] = a.shape.slice(-2) as [number, number];
  const [K2, N] = b.shape.slice(-2) as [number, number];
  if (K !== K2)
    throw new Error(`matmul: inner dimensions differ: a ${fmt(a.shape)} @ b ${fmt(b.shape)} (${K} vs ${K2})`);
  const batchShape = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2), 'matmul (batch dims)');
  const la = layout(a, batchShape, M, K);
  const lb = layout(b, batchShape, K, N);
  const batch = numel(batchShape);
  const out = K === 0 ? alloc([...batchShape, M, N], 'float32', a) : allocOut([...batchShape, M, N], 'float32', a);
  const p: MatmulParams = {
    batch,
    M,
    N,
    K,
    transA: la.trans,
    transB: lb.trans,
    strideA: la.batchStride,
    strideB: lb.batchStride,
  };
  if (batch > 0 && M > 0 && N > 0) kernel(a, 'matmul')(la.t.view(), lb.t.view(), out.view(), p);
  return record(out, 'matmul', [a, b], (g) => [
    a.requiresGrad ? sumTo(matmul2(g, transpose(b)), a.shape) : null,
    b.requiresGrad ? sumTo(matmul2(transpose(a), g), b.shape) : null,
  ]);
}

/** x @ W^T (+ bias): the Linear layer's op, with W stored [out, in] as PyTorch does */
export function linear(x: Tensor, w: Tensor, bias?: Tensor | null): Tensor {
  if (w.ndim !== 2 || x.shape[x.ndim - 1] !== w.shape[1]) {
    throw new Error(
      `linear: input ${fmt(x.shape)} does not match weight ${fmt(w.shape)} (expected last dim ${w.shape[1]})`,
    );
  }
  const lead = x.shape.slice(0, -1);
  const x2 = reshape(x, [-1, w.shape[1]!]); // (rows, in)
  let y = matmul(x2, w, { transB: true }); // (rows, out)
  if (bias) y = add(y, bias);
  return reshape(y, [...lead, w.shape[0]!]);
}
