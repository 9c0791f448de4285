// Creating tensors: from data, constants, ranges and seeded random numbers.
import type { AnyArray, DType } from '../backend/backend.js';
import { DTYPES, encodeAs, isFloat } from '../backend/dtype.js';
import { defaultRng, type Rng } from '../tensor/random.js';
import { checkShape, fmt, numel, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { alloc, checkDTypeName, describeValue } from './core.js';

type Nested = number | boolean | Nested[];

function inferShape(data: Nested): number[] {
  const shape: number[] = [];
  let d: Nested = data;
  while (Array.isArray(d)) {
    shape.push(d.length);
    d = d[0] as Nested;
  }
  return shape;
}

function firstLeaf(data: Nested): Nested {
  let d = data;
  while (Array.isArray(d)) d = d[0] as Nested;
  return d;
}

function flatten(data: Nested, shape: number[], depth = 0, out: number[] = []): number[] {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new Error(`tensor: ragged nested array (expected a number at depth ${depth})`);
    out.push(typeof data === 'boolean' ? Number(data) : data);
    return out;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new Error(`tensor: ragged nested array at depth ${depth} (expected length ${shape[depth]})`);
  }
  for (const x of data) flatten(x, shape, depth + 1, out);
  return out;
}

/** write host values into a fresh tensor, encoding them for the dtype */
export function fromValues(values: ArrayLike<number>, shape: Shape, dtype: DType): Tensor {
  const n = numel(shape);
  if (values.length !== n)
    throw new Error(`tensor: ${values.length} values do not fill shape ${fmt(shape)} (${n} elements)`);
  const t = alloc(checkShape(shape, 'tensor'), dtype);
  if (n === 0) return t;
  const host = t.backend.view(t.storage.buf);
  const target = host ?? new (arrayCtor(dtype))(n);
  if (dtype === 'float16' || dtype === 'bfloat16' || dtype === 'bool') {
    for (let i = 0; i < n; i++) target[i] = encodeAs(dtype, values[i]!);
  } else {
    (target as Float32Array).set(values as ArrayLike<number>);
  }
  if (!host) t.backend.write(t.storage.buf, target);
  return t;
}

function arrayCtor(dtype: DType): new (n: number) => AnyArray {
  return dtype === 'float32'
    ? Float32Array
    : dtype === 'int32'
      ? Int32Array
      : dtype === 'bool'
        ? Uint8Array
        : Uint16Array;
}

/**
 * Options of the creation functions (zeros, ones, full, arange, tensor, rand, randn). Each takes a dtype
 * string in their place too: `zeros([2], 'int32')` and `zeros([2], { dtype: 'int32' })` are the same.
 */
export interface CreationOptions {
  dtype?: DType;
  /** a leaf whose gradient is wanted (floating-point dtypes only) */
  requiresGrad?: boolean;
}

export interface TensorOptions extends CreationOptions {
  shape?: Shape;
}

/** a dtype string or an options object, checked: the options object with its dtype validated */
function creationOptions<O extends CreationOptions>(op: string, arg: DType | O | undefined, argNo: number): O {
  if (arg === undefined || arg === null) return {} as O;
  if (typeof arg === 'string') return { dtype: checkDTypeName(op, arg) } as O;
  if (typeof arg === 'object' && !Array.isArray(arg) && !ArrayBuffer.isView(arg)) {
    if (arg.dtype !== undefined) checkDTypeName(op, arg.dtype);
    return arg;
  }
  throw new Error(
    `${op}: argument ${argNo} must be a dtype (${DTYPES.join(', ')}) or options { dtype, requiresGrad }, got ${describeValue(arg)}`,
  );
}

function withGrad(op: string, t: Tensor, on?: boolean): Tensor {
  if (!on) return t;
  if (!isFloat(t.dtype)) {
    t.dispose();
    throw new Error(`${op}: only floating-point tensors can require gradients (dtype ${t.dtype})`);
  }
  t.requiresGrad = true;
  return t;
}

/** Create a tensor from nested arrays, a typed array (with `shape`) or a scalar. */
export function tensor(
  data: Nested | Float32Array | Int32Array | Uint8Array | Float64Array,
  options: TensorOptions | DType = {},
): Tensor {
  const opts = creationOptions('tensor', options, 2);
  let values: ArrayLike<number>;
  let shape: number[];
  let dtype = opts.dtype;
  if (ArrayBuffer.isView(data)) {
    values = data as ArrayLike<number>;
    shape = opts.shape ? [...opts.shape] : [data.length];
    dtype ??= data instanceof Int32Array ? 'int32' : data instanceof Uint8Array ? 'bool' : 'float32';
  } else {
    shape = inferShape(data);
    values = flatten(data, shape);
    if (opts.shape) shape = [...opts.shape];
    dtype ??= typeof firstLeaf(data) === 'boolean' ? 'bool' : 'float32';
  }
  if (opts.requiresGrad && !isFloat(dtype))
    throw new Error(`tensor: only floating-point tensors can require gradients (dtype ${dtype})`);
  return withGrad('tensor', fromValues(values, shape, dtype), opts.requiresGrad);
}

/** zero-filled (float32 unless a dtype is given) */
export function zeros(shape: Shape, dtype?: DType | CreationOptions): Tensor {
  const o = creationOptions('zeros', dtype, 2);
  return withGrad('zeros', alloc(checkShape(shape, 'zeros'), o.dtype ?? 'float32'), o.requiresGrad);
}

function filled(op: string, shape: Shape, value: number, dtype: DType | CreationOptions | undefined): Tensor {
  const o = creationOptions(op, dtype, op === 'full' ? 3 : 2);
  if (typeof value !== 'number') throw new Error(`${op}: value must be a number, got ${describeValue(value)}`);
  const n = numel(checkShape(shape, op));
  const vals = new Float64Array(n).fill(value);
  return withGrad(op, fromValues(vals, shape, o.dtype ?? 'float32'), o.requiresGrad);
}

/** every element `value` (float32 unless a dtype is given) */
export function full(shape: Shape, value: number, dtype?: DType | CreationOptions): Tensor {
  return filled('full', shape, value, dtype);
}

export function ones(shape: Shape, dtype?: DType | CreationOptions): Tensor {
  return filled('ones', shape, 1, dtype);
}

export function zerosLike(t: Tensor): Tensor {
  return alloc(t.shape, t.dtype, t);
}

export function onesLike(t: Tensor): Tensor {
  return fullLike(t, 1);
}

export function fullLike(t: Tensor, value: number): Tensor {
  const out = alloc(t.shape, t.dtype, t);
  const vals = new Float64Array(t.size).fill(value);
  const host = out.backend.view(out.storage.buf);
  if (host && t.dtype !== 'float16' && t.dtype !== 'bfloat16') (host as Float32Array).set(vals);
  else return fromValues(vals, t.shape, t.dtype);
  return out;
}

/** [start, end) with step; one argument means [0, n) */
export function arange(start: number, end?: number, step = 1, dtype?: DType | CreationOptions): Tensor {
  const o = creationOptions('arange', dtype, 4);
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error('arange: step must not be 0');
  const n = Math.max(0, Math.ceil((end - start) / step));
  const vals = new Float64Array(n);
  for (let i = 0; i < n; i++) vals[i] = start + i * step;
  return withGrad('arange', fromValues(vals, [n], o.dtype ?? 'int32'), o.requiresGrad);
}

export interface RandomOptions extends CreationOptions {
  rng?: Rng;
}

/** a floating-point dtype for random samples (integers: randint) */
function randomDType(op: string, o: CreationOptions, what: string): DType {
  const d = o.dtype ?? 'float32';
  if (!isFloat(d))
    throw new Error(`${op}: dtype ${d} is not floating-point (${what} are not integers; use randint for integers)`);
  return d;
}

/** uniform in [low, high), float32 unless a floating-point dtype is given */
export function rand(shape: Shape, options: (RandomOptions & { low?: number; high?: number }) | DType = {}): Tensor {
  const opts = creationOptions('rand', options, 2);
  const dtype = randomDType('rand', opts, 'uniform samples');
  const rng = opts.rng ?? defaultRng();
  const { low = 0, high = 1 } = opts;
  const vals = new Float64Array(numel(checkShape(shape, 'rand')));
  for (let i = 0; i < vals.length; i++) vals[i] = low + (high - low) * rng.uniform();
  return withGrad('rand', fromValues(vals, shape, dtype), opts.requiresGrad);
}

/** normal with the given mean and std, float32 unless a floating-point dtype is given */
export function randn(shape: Shape, options: (RandomOptions & { mean?: number; std?: number }) | DType = {}): Tensor {
  const opts = creationOptions('randn', options, 2);
  const dtype = randomDType('randn', opts, 'normal samples');
  const rng = opts.rng ?? defaultRng();
  const { mean = 0, std = 1 } = opts;
  const vals = new Float64Array(numel(checkShape(shape, 'randn')));
  for (let i = 0; i < vals.length; i++) vals[i] = mean + std * rng.normal();
  return withGrad('randn', fromValues(vals, shape, dtype), opts.requiresGrad);
}

/** uniform integers in [low, high) as int32 */
export function randint(low: number, high: number, shape: Shape, rng: Rng = defaultRng()): Tensor {
  const vals = new Float64Array(numel(checkShape(shape, 'randint')));
  for (let i = 0; i < vals.length; i++) vals[i] = low + rng.int(high - low);
  return fromValues(vals, shape, 'int32');
}
