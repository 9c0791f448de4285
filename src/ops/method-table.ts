// The Tensor method table (`x.add(y)` === `add(x, y)`), kept apart from the augmentation in ./methods.ts:
// in a file that also augments '../tensor/tensor.js', the declaration emitter prints the inferred `Tensor`
// return types without importing `Tensor`, and the published methods.d.ts typed every method `any`.
import type { DType } from '../backend/backend.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TensorLike } from './core.js';
import * as e from './elementwise.js';
import * as r from './reduce.js';
import * as m from './movement.js';
import * as l from './linalg.js';
import * as n from './nn.js';

type Axes = number | number[];

export const METHODS = {
  add(this: Tensor, b: TensorLike) {
    return e.add(this, b);
  },
  sub(this: Tensor, b: TensorLike) {
    return e.sub(this, b);
  },
  mul(this: Tensor, b: TensorLike) {
    return e.mul(this, b);
  },
  div(this: Tensor, b: TensorLike) {
    return e.div(this, b);
  },
  pow(this: Tensor, b: TensorLike) {
    return e.pow(this, b);
  },
  maximum(this: Tensor, b: TensorLike) {
    return e.maximum(this, b);
  },
  minimum(this: Tensor, b: TensorLike) {
    return e.minimum(this, b);
  },
  eq(this: Tensor, b: TensorLike) {
    return e.eq(this, b);
  },
  ne(this: Tensor, b: TensorLike) {
    return e.ne(this, b);
  },
  lt(this: Tensor, b: TensorLike) {
    return e.lt(this, b);
  },
  le(this: Tensor, b: TensorLike) {
    return e.le(this, b);
  },
  gt(this: Tensor, b: TensorLike) {
    return e.gt(this, b);
  },
  ge(this: Tensor, b: TensorLike) {
    return e.ge(this, b);
  },
  neg(this: Tensor) {
    return e.neg(this);
  },
  abs(this: Tensor) {
    return e.abs(this);
  },
  exp(this: Tensor) {
    return e.exp(this);
  },
  log(this: Tensor) {
    return e.log(this);
  },
  sqrt(this: Tensor) {
    return e.sqrt(this);
  },
  rsqrt(this: Tensor) {
    return e.rsqrt(this);
  },
  tanh(this: Tensor) {
    return e.tanh(this);
  },
  sigmoid(this: Tensor) {
    return e.sigmoid(this);
  },
  relu(this: Tensor) {
    return e.relu(this);
  },
  gelu(this: Tensor, approximate: 'none' | 'tanh' = 'none') {
    return e.gelu(this, approximate);
  },
  silu(this: Tensor) {
    return e.silu(this);
  },
  softplus(this: Tensor) {
    return e.softplus(this);
  },
  square(this: Tensor) {
    return e.square(this);
  },
  clamp(this: Tensor, min: number | null, max: number | null) {
    return e.clamp(this, min, max);
  },
  sum(this: Tensor, axes?: Axes, keepdim = false) {
    return r.sum(this, axes, keepdim);
  },
  mean(this: Tensor, axes?: Axes, keepdim = false) {
    return r.mean(this, axes, keepdim);
  },
  max(this: Tensor, axes?: Axes, keepdim = false) {
    return r.max(this, axes, keepdim);
  },
  min(this: Tensor, axes?: Axes, keepdim = false) {
    return r.min(this, axes, keepdim);
  },
  argmax(this: Tensor, axis = -1, keepdim = false) {
    return r.argmax(this, axis, keepdim);
  },
  argmin(this: Tensor, axis = -1, keepdim = false) {
    return r.argmin(this, axis, keepdim);
  },
  logsumexp(this: Tensor, axes?: Axes, keepdim = false) {
    return r.logsumexp(this, axes, keepdim);
  },
  variance(this: Tensor, axes?: Axes, keepdim = false, correction = 0) {
    return r.variance(this, axes, keepdim, correction);
  },
  matmul(this: Tensor, b: Tensor) {
    return l.matmul(this, b);
  },
  softmax(this: Tensor, axis = -1) {
    return n.softmax(this, axis);
  },
  logSoftmax(this: Tensor, axis = -1) {
    return n.logSoftmax(this, axis);
  },
  reshape(this: Tensor, ...shape: number[]) {
    return m.reshape(this, shape);
  },
  permute(this: Tensor, ...axes: number[]) {
    return m.permute(this, axes);
  },
  transpose(this: Tensor, a = -2, b = -1) {
    return m.transpose(this, a, b);
  },
  expand(this: Tensor, ...shape: number[]) {
    return m.expand(this, shape);
  },
  squeeze(this: Tensor, axis?: number) {
    return m.squeeze(this, axis);
  },
  unsqueeze(this: Tensor, axis: number) {
    return m.unsqueeze(this, axis);
  },
  flatten(this: Tensor, start = 0, end = -1) {
    return m.flatten(this, start, end);
  },
  slice(this: Tensor, axis: number, start: number, end?: number, step = 1) {
    return m.slice(this, axis, start, end, step);
  },
  contiguous(this: Tensor) {
    return m.contiguous(this);
  },
  to(this: Tensor, dtype: DType) {
    return m.cast(this, dtype);
  },
  cumsum(this: Tensor, axis = -1) {
    return n.cumsum(this, axis);
  },
};

/** The methods as they appear on a tensor (`this` bound). */
export type OpMethods = { [K in keyof typeof METHODS]: OmitThisParameter<(typeof METHODS)[K]> };
