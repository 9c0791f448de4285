// Elementwise ops with numpy broadcasting. Two primitives (unary, binary) plus `where`; their
// gradient rules are exhaustive tables keyed by op name, so a new op without a rule fails to compile.
import type { BinaryOp, DType, UnaryOp } from '../backend/backend.js';
import { isFloat } from '../tensor/dtype.js';
import { broadcastShapes } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { alloc, broadcastView, kernel, record, sameBackend, type TensorLike } from './core.js';
import { fromValues } from './creation.js';
import { cast } from './movement.js';
import { sumTo } from './reduce.js';

// ---- unary ----
type UnaryGrad = ((x: Tensor, y: Tensor, g: Tensor) => Tensor) | null;

const SQRT_2_OVER_PI = 0.7978845608028654;

const UNARY_GRADS: { [K in UnaryOp]: UnaryGrad } = {
  neg: (_x, _y, g) => neg(g),
  abs: (x, _y, g) => mul(g, unary('sign', x)),
  exp: (_x, y, g) => mul(g, y),
  log: (x, _y, g) => div(g, x),
  sqrt: (_x, y, g) => div(mul(g, 0.5), y),
  rsqrt: (_x, y, g) => mul(g, mul(pow(y, 3), -0.5)),
  tanh: (_x, y, g) => mul(g, sub(1, mul(y, y))),
  sigmoid: (_x, y, g) => mul(g, mul(y, sub(1, y))),
  relu: (x, _y, g) => mul(g, cast(gt(x, 0), g.dtype)),
  // d/dx x·Φ(x) = Φ(x) + x·φ(x)
  gelu: (x, _y, g) => mul(g, add(mul(add(unary('erf', mul(x, Math.SQRT1_2)), 1), 0.5), mul(x, mul(exp(mul(mul(x, x), -0.5)), 0.3989422804014327)))),
  gelu_tanh: (x, _y, g) => {
    const inner = mul(add(x, mul(pow(x, 3), 0.044715)), SQRT_2_OVER_PI);
    const t = tanh(inner);
    const dinner = mul(add(mul(mul(x, x), 3 * 0.044715), 1), SQRT_2_OVER_PI);
    return mul(g, add(mul(add(t, 1), 0.5), mul(mul(mul(x, 0.5), sub(1, mul(t, t))), dinner)));
  },
  silu: (x, _y, g) => {
    const s = sigmoid(x);
    return mul(g, mul(s, add(1, mul(x, sub(1, s)))));
  },
  softplus: (x, _y, g) => mul(g, sigmoid(x)),
  sin: (x, _y, g) => mul(g, unary('cos', x)),
  cos: (x, _y, g) => neg(mul(g, unary('sin', x))),
  sign: null,
  square: (x, _y, g) => mul(g, mul(x, 2)),
  reciprocal: (_x, y, g) => neg(mul(g, mul(y, y))),
  erf: (x, _y, g) => mul(g, mul(exp(neg(mul(x, x))), 1.1283791670955126)),
  log1p: (x, _y, g) => div(g, add(x, 1)),
  floor: null,
  not: null,
};

export function unary(op: UnaryOp, x: Tensor): Tensor {
  x.assertAlive(op);
  const lowp = x.dtype === 'float16' || x.dtype === 'bfloat16';
  const intKeep = x.dtype === 'int32' && (op === 'neg' || op === 'abs' || op === 'sign' || op === 'square');
  const outDType: DType = op === 'not' ? 'bool' : intKeep ? 'int32' : 'float32';
  const input = op === 'not' || intKeep || x.dtype === 'float32' ? x : cast(x, 'float32');
  const out = alloc(x.shape, outDType, x);
  kernel(input, 'unary')(op, input.view(), out.view());
  const rule = UNARY_GRADS[op];
  const y = rule ? record(out, op, [x], (g) => [rule(x, out, g)]) : out;
  return lowp ? cast(y, x.dtype) : y;
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
  eq: null, ne: null, lt: null, le: null, gt: null, ge: null, and: null, or: null,
};

const COMPARISON = new Set<BinaryOp>(['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'and', 'or']);

/** wrap a JS number as a 0-d tensor matching the other operand's kind */
function scalarFor(v: number, other: Tensor): Tensor {
  const dtype: DType = other.dtype === 'int32' && Number.isInteger(v) ? 'int32' : other.dtype === 'bool' && (v === 0 || v === 1) ? 'bool' : 'float32';
  return fromValues([v], [], dtype);
}

function computeDType(op: BinaryOp, a: Tensor, b: Tensor): DType {
  if (op === 'and' || op === 'or') return 'bool';
  if (op === 'div' || op === 'pow') return 'float32';
  if (a.dtype === 'int32' && b.dtype === 'int32') return 'int32';
  return 'float32';
}

export function binary(op: BinaryOp, aIn: TensorLike, bIn: TensorLike): Tensor {
  if (typeof aIn === 'number' && typeof bIn === 'number') throw new Error(`${op}: at least one operand must be a tensor`);
  const a = typeof aIn === 'number' ? scalarFor(aIn, bIn as Tensor) : aIn;
  const b = typeof bIn === 'number' ? scalarFor(bIn, a) : bIn;
  sameBackend(op, a, b);
  const shape = broadcastShapes(a.shape, b.shape, op);
  const ct = computeDType(op, a, b);
  const lowp = !COMPARISON.has(op) && lowpOf(a, b);
  const ac = a.dtype === ct || (op === 'and' || op === 'or') ? a : cast(a, ct);
  const bc = b.dtype === ct || (op === 'and' || op === 'or') ? b : cast(b, ct);
  const out = alloc(shape, COMPARISON.has(op) ? 'bool' : ct, a);
  kernel(ac, 'binary')(op, broadcastView(ac, shape), broadcastView(bc, shape), out.view());
  const rule = BINARY_GRADS[op];
  const y = rule
    ? record(out, op, [a, b], (g) => {
        const [ga, gb] = rule(a, b, out, g);
        return [ga && a.requiresGrad ? sumTo(ga, a.shape) : null, gb && b.requiresGrad ? sumTo(gb, b.shape) : null];
      })
    : out;
  return lowp ? cast(y, lowp) : y;
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
  const a = typeof aIn === 'number' ? scalarFor(aIn, typeof bIn === 'number' ? cond : bIn) : aIn;
  const b = typeof bIn === 'number' ? scalarFor(bIn, a) : bIn;
  sameBackend('where', cond, a, b);
  const shape = broadcastShapes(broadcastShapes(cond.shape, a.shape, 'where'), b.shape, 'where');
  const dt: DType = a.dtype === b.dtype ? a.dtype : 'float32';
  const ac = a.dtype === dt ? a : cast(a, dt);
  const bc = b.dtype === dt ? b : cast(b, dt);
  const out = alloc(shape, dt, a);
  kernel(ac, 'where')(broadcastView(cond, shape), broadcastView(ac, shape), broadcastView(bc, shape), out.view());
  return record(out, 'where', [a, b], (g) => {
    const zero = fromValues([0], [], g.dtype);
    return [a.requiresGrad ? sumTo(where(cond, g, zero), a.shape) : null, b.requiresGrad ? sumTo(where(cond, zero, g), b.shape) : null];
  });
}
