// The Tensor: a strided view onto refcounted backend storage, with an optional autograd node.
// Methods are thin aliases of the functional ops in src/ops (so `x.add(y)` === `add(x, y)`).
import type { AnyArray, DType, View } from '../backend/backend.js';
import { readAs } from './dtype.js';
import { Storage, getBackend, registerTensorCheck, track } from './engine.js';
import { contiguousStrides, fmt, isContiguous, numel, type Shape } from './shape.js';
import * as ops from '../ops/index.js';
import { backward as runBackward } from '../autograd/backward.js';
import { formatTensor } from './print.js';

/** One recorded op: how to turn the gradient of its output into gradients of its inputs. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  backward: (g: Tensor) => (Tensor | null)[];
}

let nextId = 0;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  /** true for leaves whose gradient is wanted and for results of ops on them */
  requiresGrad = false;
  /** accumulated gradient (leaves only), kept alive outside scopes */
  grad: Tensor | null = null;
  /** optional name (parameters), used in error messages and checkpoints */
  name?: string;
  node: GradNode | null = null;
  private disposed = false;

  constructor(readonly storage: Storage, shape: Shape, dtype: DType, strides?: readonly number[], offset = 0) {
    this.shape = [...shape];
    this.strides = strides ? [...strides] : contiguousStrides(shape);
    this.offset = offset;
    this.dtype = dtype;
    storage.retain();
    track(this);
  }

  /** a new zero-filled tensor on the current backend */
  static empty(shape: Shape, dtype: DType = 'float32'): Tensor {
    return new Tensor(new Storage(getBackend().allocate(dtype, numel(shape))), shape, dtype);
  }

  get ndim(): number {
    return this.shape.length;
  }
  get size(): number {
    return numel(this.shape);
  }
  get isDisposed(): boolean {
    return this.disposed;
  }
  get isContiguous(): boolean {
    return isContiguous(this.shape, this.strides);
  }
  get backend() {
    return this.storage.buf.backend;
  }

  /** the kernel-facing description of this tensor */
  view(): View {
    this.assertAlive('view');
    return { buf: this.storage.buf, shape: this.shape, strides: this.strides, offset: this.offset };
  }

  assertAlive(op: string): void {
    if (this.disposed) throw new Error(`${op}: tensor ${fmt(this.shape)} ${this.dtype}${this.name ? ` '${this.name}'` : ''} was disposed`);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.node = null;
    this.storage.release();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  // ---- reading values ----
  /** contiguous copy of the elements in their storage representation (float16/bfloat16 decoded to float32) */
  data(): Float32Array | Int32Array | Uint8Array {
    this.assertAlive('data');
    const c = this.isContiguous ? this : ops.contiguous(this);
    const raw = c.backend.read(c.storage.buf, c.offset, c.size);
    if (c !== this) c.dispose();
    return decode(this.dtype, raw);
  }
  /** elements as a plain number array */
  toList(): number[] {
    return Array.from(this.data());
  }
  /** nested arrays following the shape */
  toArray(): unknown {
    const flat = this.toList();
    const build = (d: number, off: number): unknown => {
      if (d === this.ndim) return flat[off];
      const step = numel(this.shape.slice(d + 1));
      return Array.from({ length: this.shape[d]! }, (_, i) => build(d + 1, off + i * step));
    };
    return build(0, 0);
  }
  item(): number {
    if (this.size !== 1) throw new Error(`item: tensor has ${this.size} elements (shape ${fmt(this.shape)}), expected 1`);
    return this.toList()[0]!;
  }
  toString(): string {
    return formatTensor(this);
  }

  // ---- autograd ----
  /** Accumulate d(this)/d(leaf) into every leaf's `.grad`. `this` must be a scalar unless `grad` is given. */
  backward(grad?: Tensor): void {
    runBackward(this, grad);
  }
  /** same storage, no autograd history */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.dtype, this.strides, this.offset);
  }
  /** mark a leaf as requiring gradients (returns this) */
  requireGrad(on = true): this {
    if (this.node) throw new Error('requireGrad: only leaf tensors (not results of ops) can be marked');
    this.requiresGrad = on;
    return this;
  }
  zeroGrad(): void {
    this.grad?.dispose();
    this.grad = null;
  }

  // ---- ops (aliases of src/ops) ----
  add(b: Tensor | number) { return ops.add(this, b); }
  sub(b: Tensor | number) { return ops.sub(this, b); }
  mul(b: Tensor | number) { return ops.mul(this, b); }
  div(b: Tensor | number) { return ops.div(this, b); }
  pow(b: Tensor | number) { return ops.pow(this, b); }
  maximum(b: Tensor | number) { return ops.maximum(this, b); }
  minimum(b: Tensor | number) { return ops.minimum(this, b); }
  eq(b: Tensor | number) { return ops.eq(this, b); }
  ne(b: Tensor | number) { return ops.ne(this, b); }
  lt(b: Tensor | number) { return ops.lt(this, b); }
  le(b: Tensor | number) { return ops.le(this, b); }
  gt(b: Tensor | number) { return ops.gt(this, b); }
  ge(b: Tensor | number) { return ops.ge(this, b); }
  neg() { return ops.neg(this); }
  abs() { return ops.abs(this); }
  exp() { return ops.exp(this); }
  log() { return ops.log(this); }
  sqrt() { return ops.sqrt(this); }
  rsqrt() { return ops.rsqrt(this); }
  tanh() { return ops.tanh(this); }
  sigmoid() { return ops.sigmoid(this); }
  relu() { return ops.relu(this); }
  gelu(approximate: 'none' | 'tanh' = 'none') { return ops.gelu(this, approximate); }
  silu() { return ops.silu(this); }
  softplus() { return ops.softplus(this); }
  square() { return ops.square(this); }
  clamp(min: number | null, max: number | null) { return ops.clamp(this, min, max); }
  sum(axes?: number | number[], keepdim = false) { return ops.sum(this, axes, keepdim); }
  mean(axes?: number | number[], keepdim = false) { return ops.mean(this, axes, keepdim); }
  max(axes?: number | number[], keepdim = false) { return ops.max(this, axes, keepdim); }
  min(axes?: number | number[], keepdim = false) { return ops.min(this, axes, keepdim); }
  argmax(axis = -1, keepdim = false) { return ops.argmax(this, axis, keepdim); }
  argmin(axis = -1, keepdim = false) { return ops.argmin(this, axis, keepdim); }
  logsumexp(axes?: number | number[], keepdim = false) { return ops.logsumexp(this, axes, keepdim); }
  variance(axes?: number | number[], keepdim = false, correction = 0) { return ops.variance(this, axes, keepdim, correction); }
  matmul(b: Tensor) { return ops.matmul(this, b); }
  softmax(axis = -1) { return ops.softmax(this, axis); }
  logSoftmax(axis = -1) { return ops.logSoftmax(this, axis); }
  reshape(...shape: number[]) { return ops.reshape(this, shape); }
  permute(...axes: number[]) { return ops.permute(this, axes); }
  transpose(a = -2, b = -1) { return ops.transpose(this, a, b); }
  expand(...shape: number[]) { return ops.expand(this, shape); }
  squeeze(axis?: number) { return ops.squeeze(this, axis); }
  unsqueeze(axis: number) { return ops.unsqueeze(this, axis); }
  flatten(start = 0, end = -1) { return ops.flatten(this, start, end); }
  slice(axis: number, start: number, end?: number, step = 1) { return ops.slice(this, axis, start, end, step); }
  contiguous() { return ops.contiguous(this); }
  to(dtype: DType) { return ops.cast(this, dtype); }
  cumsum(axis = -1) { return ops.cumsum(this, axis); }
}

registerTensorCheck((v): v is Tensor => v instanceof Tensor);

function decode(dtype: DType, raw: AnyArray): Float32Array | Int32Array | Uint8Array {
  if (dtype !== 'float16' && dtype !== 'bfloat16') return raw as Float32Array | Int32Array | Uint8Array;
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = readAs(dtype, raw, i);
  return out;
}
