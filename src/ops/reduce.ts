// Reductions over any set of axes: sum, max, min, argmax/argmin (primitives); mean, logsumexp,
// variance (composed).
import type { ReduceOp } from '../backend/backend.js';
import { fmt, normAxes, normAxis, numel, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { allocOut, contig, kernel, record } from './core.js';
import { add, div, eq, exp, log, mul, sub, where } from './elementwise.js';
import { fullLike } from './creation.js';
import { cast, expand, permute, reshape } from './movement.js';
import { noGrad } from '../tensor/engine.js';

function keptShape(shape: Shape, axes: number[]): number[] {
  return shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

/** raw reduction (no autograd): result has the reduced axes kept as size 1 */
function reduceRaw(op: ReduceOp, x: Tensor, axes: number[]): Tensor {
  const outDType = op === 'argmax' || op === 'argmin' ? 'int32' : x.dtype === 'bool' ? 'int32' : x.dtype;
  const src =
    x.dtype === 'float16' || x.dtype === 'bfloat16' || x.dtype === 'bool'
      ? cast(x, x.dtype === 'bool' ? 'int32' : 'float32')
      : x;
  const kshape = keptShape(x.shape, axes);
  const run = axes.length === 0 ? null : axes[axes.length - 1]! - axes[0]! + 1 === axes.length; // adjacent axes
  let input = src;
  let outer: number, n: number, inner: number;
  if (run) {
    input = contig(src);
    outer = numel(x.shape.slice(0, axes[0]));
    n = numel(axes.map((a) => x.shape[a]!));
    inner = numel(x.shape.slice(axes[axes.length - 1]! + 1));
  } else {
    const kept = [...Array(x.ndim).keys()].filter((i) => !axes.includes(i));
    input = contig(permute(src, [...kept, ...axes]));
    outer = numel(kept.map((a) => x.shape[a]!));
    n = numel(axes.map((a) => x.shape[a]!));
    inner = 1;
  }
  if (n === 0 && op !== 'sum') throw new Error(`${op}: cannot reduce over an empty axis (shape ${fmt(x.shape)})`);
  const out = allocOut(kshape, outDType === 'float16' || outDType === 'bfloat16' ? 'float32' : outDType, x);
  kernel(input, 'reduce')(op, input.view(), outer, n, inner, out.view());
  return out.dtype === outDType ? out : cast(out, outDType);
}

function finish(r: Tensor, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  return keepdim
    ? r
    : reshape(
        r,
        x.shape.filter((_, i) => !axes.includes(i)),
      );
}

export function sum(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normAxes(axes, x.ndim, 'sum');
  const r = record(reduceRaw('sum', x, ax), 'sum', [x], (g) => [expand(g, x.shape)]);
  return finish(r, x, ax, keepdim);
}

function extreme(op: 'max' | 'min', x: Tensor, axes: number | readonly number[] | undefined, keepdim: boolean): Tensor {
  const ax = normAxes(axes, x.ndim, op);
  const r = reduceRaw(op, x, ax);
  const out = record(r, op, [x], (g) => {
    // ties share the gradient equally (as torch.amax does)
    const mask = cast(eq(x, expand(r, x.shape)), g.dtype);
    const count = reduceRaw('sum', mask, ax);
    return [mul(mask, expand(div(g, count), x.shape))];
  });
  return finish(out, x, ax, keepdim);
}

export function max(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  return extreme('max', x, axes, keepdim);
}

export function min(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  return extreme('min', x, axes, keepdim);
}

export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  const a = normAxis(axis, x.ndim, 'argmax');
  return finish(reduceRaw('argmax', x, [a]), x, [a], keepdim);
}

export function argmin(x: Tensor, axis = -1, keepdim = false): Tensor {
  const a = normAxis(axis, x.ndim, 'argmin');
  return finish(reduceRaw('argmin', x, [a]), x, [a], keepdim);
}

export function mean(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normAxes(axes, x.ndim, 'mean');
  const n = numel(ax.map((a) => x.shape[a]!));
  return div(sum(x, ax, keepdim), n);
}

/** log(sum(exp(x))) computed stably; fully -inf slices give -inf */
export function logsumexp(x: Tensor, axes?: number | readonly number[], keepdim = false): Tensor {
  const ax = normAxes(axes, x.ndim, 'logsumexp');
  const m = noGrad(() => {
    const mx = reduceRaw('max', x, ax);
    return where(eq(mx, -Infinity), fullLike(mx, 0), mx);
  });
  const s = add(log(sum(exp(sub(x, m)), ax, true)), m);
  return finish(s, x, ax, keepdim);
}

/** variance with Bessel-style `correction` (0 = population variance, as layer norm uses) */
export function variance(x: Tensor, axes?: number | readonly number[], keepdim = false, correction = 0): Tensor {
  const ax = normAxes(axes, x.ndim, 'variance');
  const n = numel(ax.map((a) => x.shape[a]!));
  const d = sub(x, mean(x, ax, true));
  return div(sum(mul(d, d), ax, keepdim), Math.max(n - correction, 0));
}

/** sum g over broadcast dimensions so it has `shape` (the gradient of broadcasting) */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.ndim === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  const lead = g.ndim - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.ndim; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  const r = axes.length ? sum(g, axes, true) : g;
  return reshape(r, shape);
}
