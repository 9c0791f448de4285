// Elementwise ops with numpy broadcasting. Two primitives (unary, binary) plus `where`; their
// gradient rules are exhaustive tables keyed by op name, so a new op without a rule fails to compile.
import type { BinaryOp, DType, UnaryOp } from '../backend/backend.js';
import { isFloat } from '../backend/dtype.js';
import { broadcastShapes } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import {
  allocOut,
  broadcastView,
  collapseRowBroadcast,
  contig,
  kernel,
  narrow,
  record,
  sameBackend,
  widened,
  type TensorLike,
} from './core.js';
import { UNARY_DERIVS } from '../backend/reference/kernels.js';
import { fromValues } from './creation.js';
import { cast } from './movement.js';
import { sumTo } from './reduce.js';

// ---- unary ----
// Gradients of unary ops run one fused kernel, dy * op'(x), whose per-op derivative table
// (UNARY_DERIVS, typed over every UnaryOp) lives beside the reference kernels.

function unaryGrad(op: UnaryOp, x: Tensor, y: Tensor, g: Tensor): Tensor {
  const [xc, gc] = [contig(x.dtype === 'float32' ? x : cast(x, 'float32')), contig(g)];
  const out = allocOut(x.shape, 'float32', x);
  kernel(xc, 'unaryBackward')(op, xc.view(), y.view(), gc.view(), out.view());
  return out;
}

export function unary(op: UnaryOp, x: Tensor): Tensor {
  x.assertAlive(op);
  const lowp = x.dtype === 'float16' || x.dtype === 'bfloat16' ? x.dtype : null;
  const intKeep = x.dtype === 'int32' && (op === 'neg' || op === 'abs' || op === 'sign' || op === 'square');
  const outDType: DType = op === 'not' ? 'bool' : intKeep ? 'int32' : 'float32';
  const run = (input: Tensor) => {
    const out = allocOut(x.shape, outDType, x);
    kernel(input, 'unary')(op, input.view(), out.view());
    return out;
  };
  const differentiable = UNARY_DERIVS[op] && outDType === 'float32';
  if (lowp && outDType === 'float32') {
    const y = narrow(widened(x, run), lowp);
    return differentiable
      ? record(y, op, [x], (g) => [widened(x, (x32) => widened(y, (y32) => unaryGrad(op, x32, y32, g)))])
      : y;
  }
  const input = op === 'not' || intKeep || x.dtype === 'float32' ? x : cast(x, 'float32');
  const out = run(input);
  return differentiable ? record(out, op, [x], (g) => [unaryGrad(op, x, out, g)]) : out;
}

export const neg = (x: Tensor) => unary('neg', x);
export const abs = (x: Tensor) => unary('abs', x);
export const exp = (x: Tensor) => unary('exp', x);
export const log = (x: Tensor) => unary('log', x);
export const sqrt = (x: Tensor) => unary('sqrt', x);
export const rsqrt = (x: Tensor) => unary('rsqrt', x);
export const tanh = (x: Tensor) => unary('tanh', x);
export const sigmoid = (x: Tensor) => unary('sigmoid', x);
export const relu = (x: Tensor) => unary('relu', x);
export const silu = (x: Tensor) => unary('silu', x);
export const softplus = (x: Tensor) => unary('softplus', x);
export const square = (x: Tensor) => unary('square', x);
export const sin = (x: Tensor) => unary('sin', x);
export const cos = (x: Tensor) => unary('cos', x);
export const erf = (x: Tensor) => unary('erf', x);
export const logicalNot = (x: Tensor) => unary('not', x);
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  return unary(approximate === 'tanh' ? 'gelu_tanh' : 'gelu', x);
}

// ---- binary ----
type BinaryGrad = ((a: Tensor, b: Tensor, y: Tensor, g: Tensor) => [Tensor | null, Tensor | null]) | null;

const BINARY_GRADS: { [K in BinaryOp]: BinaryGrad } = {
  add: (_a, _b, _y, g) => [g, g],
  sub: (_a, _b, _y, g) => [g, neg(g)],
  mul: (a, b, _y, g) => [mul(g, b), mul(g, a)],
  div: (a, b, _y, g) => [div(g, b), neg(div(mul(g, a), mul(b, b)))],
  pow: (a, b, y, g) => [mul(g, mul(b, pow(a, sub(b, 1)))), b.requiresGrad ? mul(g, mul(y, log(a))) : null],
  maximum: (a, b, _y, g) => [mul(g, cast(ge(a, b), g.dtype)), mul(g, cast(lt(a, b), g.dtype))],
  minimum: (a, b, _y, g) => [mul(g, cast(le(a, b), g.dtype)), mul(g, cast(gt(a, b), g.dtype))],
  eq: null,
  ne: null,
  lt: null,
  le: null,
  gt: null,
  ge: null,
  and: null,
  or: null,
};

const COMPARISON = new Set<BinaryOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or']);

/** wrap a JS number as a 0-d tensor matching the other operand's kind */
function scalarFor(v: number, other: Tensor): Tensor {
  const dtype: DType =
    other.dtype === 'int32' && Number.isInteger(v)
      ? 'int32'
      : other.dtype === 'bool' && (v === 0 || v === 1)
        ? 'bool'
        : 'float32';
  return fromValues([v], [], dtype);
}

function computeDType(op: BinaryOp, a: Tensor, b: Tensor): DType {
  if (op === 'and' || op === 'or') return 'bool';
  if (op === 'div' || op === 'pow') return 'float32';
  if (a.dtype === 'int32' && b.dtype === 'int32') return 'int32';
  return 'float32';
}

export function binary(op: BinaryOp, aIn: TensorLike, bIn: TensorLike): Tensor {
  if (typeof aIn === 'number' && typeof bIn === 'number')
    throw new Error(`${op}: at least one operand must be a tensor`);
  const a = typeof aIn === 'number' ? scalarFor(aIn, bIn as Tensor) : aIn;
  const b = typeof bIn === 'number' ? scalarFor(bIn, a) : bIn;
  sameBackend(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const ct = computeDType(op, a, b);
  // a JS number takes the tensor's precision, as a Python scalar does in PyTorch
  const lowp = !COMPARISON.has(op) && lowpOf(typeof aIn === 'number' ? b : a, typeof bIn === 'number' ? a : b);
  const rule = BINARY_GRADS[op];
  const run = (x: Tensor, y: Tensor) => {
    const xc = x.dtype === ct || op === 'and' || op === 'or' ? x : cast(x, ct);
    const yc = y.dtype === ct || op === 'and' || op === 'or' ? y : cast(y, ct);
    const out = allocOut(shape, COMPARISON.has(op) ? 'bool' : ct, a);
    kernel(xc, 'binary')(op, ...collapseRowBroadcast(broadcastView(xc, shape), broadcastView(yc, shape), out.view()));
    return out;
  };
  const grads = (x: Tensor, y: Tensor, out: Tensor, g: Tensor): (Tensor | null)[] => {
    const [ga, gb] = rule!(x, y, out, g);
    return [ga && a.requiresGrad ? sumTo(ga, a.shape) : null, gb && b.requiresGrad ? sumTo(gb, b.shape) : null];
  };
  if (lowp) {
    // compute on float32 copies freed at once; keep only the low-precision result
    const out = narrow(
      widened(a, (a32) => widened(b, (b32) => run(a32, b32))),
      lowp,
    );
    if (!rule) return out;
    return record(out, op, [a, b], (g) =>
      widened(a, (a32) => widened(b, (b32) => widened(out, (o32) => grads(a32, b32, o32, g)))),
    );
  }
  const out = run(a, b);
  return rule ? record(out, op, [a, b], (g) => grads(a, b, out, g)) : out;
}

/** float16/bfloat16 results stay in low precision when no operand is float32 */
function lowpOf(a: Tensor, b: Tensor): DType | null {
  const ds = [a.dtype, b.dtype].filter((d) => isFloat(d));
  if (ds.length === 0 || ds.includes('float32')) return null;
  return ds.includes('bfloat16') ? 'bfloat16' : 'float16';
}

export const add = (a: TensorLike, b: TensorLike) => binary('add', a, b);
export const sub = (a: TensorLike, b: TensorLike) => binary('sub', a, b);
export const mul = (a: TensorLike, b: TensorLike) => binary('mul', a, b);
export const div = (a: TensorLike, b: TensorLike) => binary('div', a, b);
export const pow = (a: TensorLike, b: TensorLike) => binary('pow', a, b);
export const maximum = (a: TensorLike, b: TensorLike) => binary('maximum', a, b);
export const minimum = (a: TensorLike, b: TensorLike) => binary('minimum', a, b);
export const eq = (a: TensorLike, b: TensorLike) => binary('eq', a, b);
export const ne = (a: TensorLike, b: TensorLike) => binary('ne', a, b);
export const lt = (a: TensorLike, b: TensorLike) => binary('lt', a, b);
export const le = (a: TensorLike, b: TensorLike) => binary('le', a, b);
export const gt = (a: TensorLike, b: TensorLike) => binary('gt', a, b);
export const ge = (a: TensorLike, b: TensorLike) => binary('ge', a, b);
export const logicalAnd = (a: TensorLike, b: TensorLike) => binary('and', a, b);
export const logicalOr = (a: TensorLike, b: TensorLike) => binary('or', a, b);

export function clamp(x: Tensor, lo: number | null, hi: number | null): Tensor {
  let y = x;
  if (lo !== null) y = maximum(y, lo);
  if (hi !== null) y = minimum(y, hi);
  return y;
}

// ---- where ----
export function where(cond: Tensor, aIn: TensorLike, bIn: TensorLike): Tensor {
  if (cond.dtype !== 'bool') throw new Error(`where: condition must be bool, got ${cond.dtype}`);
  const like = (v: number, t: Tensor) =>
    t.dtype === 'float16' || t.dtype === 'bfloat16' ? fromValues([v], [], t.dtype) : scalarFor(v, t);
  const a = typeof aIn === 'number' ? like(aIn, typeof bIn === 'number' ? cond : bIn) : aIn;
  const b = typeof bIn === 'number' ? like(bIn, a) : bIn;
  sameBackend('where', cond, a, b);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape, 'where'), b.shape, 'where');
  const dt: DType = a.dtype === b.dtype ? a.dtype : 'float32';
  const ac = a.dtype === dt ? a : cast(a, dt);
  const bc = b.dtype === dt ? b : cast(b, dt);
  const out = allocOut(shape, dt, a);
  kernel(ac, 'where')(broadcastView(cond, shape), broadcastView(ac, shape), broadcastView(bc, shape), out.view());
  return record(out, 'where', [a, b], (g) => {
    const zero = fromValues([0], [], g.dtype);
    return [
      a.requiresGrad ? sumTo(where(cond, g, zero), a.shape) : null,
      b.requiresGrad ? sumTo(where(cond, zero, g), b.shape) : null,
    ];
  });
}
