// The Tensor: a strided view onto refcounted backend storage, with an optional autograd node.
// The op methods (`x.add(y)` === `add(x, y)`) are installed by the op layer (src/ops/methods.ts) and
// `backward()` by src/autograd, so this file depends on nothing above it.
import type { AnyArray, DType, View } from '../backend/backend.js';
import { kernelFor } from '../backend/dispatch.js';
import { readAs } from '../backend/dtype.js';
import { Storage, TENSOR_BRAND, getBackend, track } from './engine.js';
import { contiguousStrides, fmt, isContiguous, numel, type Shape } from './shape.js';
import { formatTensor } from './print.js';

/** One recorded op: how to turn the gradient of its output into gradients of its inputs. */
export interface GradNode {
  op: string;
  inputs: Tensor[];
  backward: (g: Tensor) => (Tensor | null)[];
}

// `[Symbol.dispose]` (below) needs TypeScript's lib esnext.disposable. Declared here as well, the way
// @types/node does, so the published declarations compile in a project without it (lib es2022 + dom);
// the declaration is identical to the lib's, so the two merge.
declare global {
  interface SymbolConstructor {
    readonly dispose: unique symbol;
  }
}

let nextId = 0;

export class Tensor {
  readonly [TENSOR_BRAND] = true;
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

  constructor(
    readonly storage: Storage,
    shape: Shape,
    dtype: DType,
    strides?: readonly number[],
    offset = 0,
  ) {
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
    if (this.disposed)
      throw new Error(
        `${op}: tensor ${fmt(this.shape)} ${this.dtype}${this.name ? ` '${this.name}'` : ''} was disposed`,
      );
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
    const raw = this.isContiguous ? this.backend.read(this.storage.buf, this.offset, this.size) : this.packed();
    return decode(this.dtype, raw);
  }
  /** a contiguous copy of a strided view's elements, read back to the host */
  private packed(): AnyArray {
    const buf = this.backend.allocate(this.dtype, this.size, false);
    try {
      kernelFor(this.backend, 'copy')(this.view(), {
        buf,
        shape: this.shape,
        strides: contiguousStrides(this.shape),
        offset: 0,
      });
      return this.backend.read(buf, 0, this.size);
    } finally {
      this.backend.free(buf);
    }
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
    if (this.size !== 1)
      throw new Error(`item: tensor has ${this.size} elements (shape ${fmt(this.shape)}), expected 1`);
    return this.toList()[0]!;
  }
  toString(): string {
    return formatTensor(this);
  }

  // ---- autograd ----
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
}

function decode(dtype: DType, raw: AnyArray): Float32Array | Int32Array | Uint8Array {
  if (dtype !== 'float16' && dtype !== 'bfloat16') return raw as Float32Array | Int32Array | Uint8Array;
  const out = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = readAs(dtype, raw, i);
  return out;
}
