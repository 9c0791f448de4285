// Movement ops: views without copies where the strides allow (reshape, permute, expand, slice,
// squeeze/unsqueeze), and the copying ones (contiguous, cast, pad, concat, stack).
import type { DType, View } from '../backend/backend.js';
import { isFloat } from '../backend/dtype.js';
import { contiguousStrides, fmt, normAxis, resolveReshape, viewStrides, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { alloc, allocOut, aliasView, checkDTypeName, copyTo, kernel, record, sameBackend } from './core.js';
import { zeros } from './creation.js';
import { sumTo } from './reduce.js';

export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const to = resolveReshape(x.shape, shape, 'reshape');
  const strides = viewStrides(x.shape, x.strides, to);
  const out = strides
    ? aliasView(x, to, strides, x.offset)
    : aliasView(copyTo(x, x.dtype), to, contiguousStrides(to), 0);
  return record(out, 'reshape', [x], (g) => [reshape(g, x.shape)]);
}

export function permute(x: Tensor, axes: readonly number[]): Tensor {
  if (axes.length !== x.ndim) throw new Error(`permute: got ${axes.length} axes for a tensor of shape ${fmt(x.shape)}`);
  const ax = axes.map((a) => normAxis(a, x.ndim, 'permute'));
  if (new Set(ax).size !== ax.length) throw new Error(`permute: repeated axis in ${fmt(axes)}`);
  const out = aliasView(
    x,
    ax.map((a) => x.shape[a]!),
    ax.map((a) => x.strides[a]!),
    x.offset,
  );
  const inv = new Array<number>(ax.length);
  ax.forEach((a, i) => (inv[a] = i));
  return record(out, 'permute', [x], (g) => [permute(g, inv)]);
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const axes = [...Array(x.ndim).keys()];
  const i = normAxis(a, x.ndim, 'transpose');
  const j = normAxis(b, x.ndim, 'transpose');
  [axes[i], axes[j]] = [axes[j]!, axes[i]!];
  return permute(x, axes);
}

/** broadcast to `shape` without copying (-1 keeps a dimension) */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  const lead = shape.length - x.ndim;
  if (lead < 0) throw new Error(`expand: cannot expand shape ${fmt(x.shape)} to fewer dimensions ${fmt(shape)}`);
  const to = shape.map((d, i) => (d === -1 ? x.shape[i - lead]! : d));
  const strides = to.map((d, i) => {
    const j = i - lead;
    if (j < 0) return 0;
    if (x.shape[j] === d) return x.strides[j]!;
    if (x.shape[j] === 1) return 0;
    throw new Error(`expand: cannot expand shape ${fmt(x.shape)} to ${fmt(shape)} (dim ${i}: ${x.shape[j]} vs ${d})`);
  });
  const out = aliasView(x, to, strides, x.offset);
  return record(out, 'expand', [x], (g) => [sumTo(g, x.shape)]);
}

export function squeeze(x: Tensor, axis?: number): Tensor {
  if (axis === undefined)
    return reshape(
      x,
      x.shape.filter((d) => d !== 1),
    );
  const a = normAxis(axis, x.ndim, 'squeeze');
  if (x.shape[a] !== 1) throw new Error(`squeeze: dimension ${axis} of shape ${fmt(x.shape)} is not 1`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== a),
  );
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.ndim + 1, 'unsqueeze');
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

export function flatten(x: Tensor, start = 0, end = -1): Tensor {
  if (x.ndim === 0) return reshape(x, [1]);
  const s = normAxis(start, x.ndim, 'flatten');
  const e = normAxis(end, x.ndim, 'flatten');
  const mid = x.shape.slice(s, e + 1).reduce((p, d) => p * d, 1);
  return reshape(x, [...x.shape.slice(0, s), mid, ...x.shape.slice(e + 1)]);
}

/** x[..., start:end:step, ...] along one axis, as a view; negative start/end count from the end */
export function slice(x: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const a = normAxis(axis, x.ndim, 'slice');
  const n = x.shape[a]!;
  if (!Number.isInteger(step) || step < 1) throw new Error(`slice: step must be a positive integer, got ${step}`);
  const clampIdx = (i: number) => Math.min(Math.max(i < 0 ? i + n : i, 0), n);
  const s = clampIdx(start);
  const e = clampIdx(end ?? n);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const shape = [...x.shape];
  shape[a] = len;
  const strides = [...x.strides];
  strides[a] = x.strides[a]! * step;
  const out = aliasView(x, shape, strides, x.offset + s * x.strides[a]!);
  return record(out, 'slice', [x], (g) => [sliceBackward(g, x.shape, a, s, step)]);
}

/** zeros of the input's shape with g written into the sliced window */
function sliceBackward(g: Tensor, shape: Shape, axis: number, start: number, step: number): Tensor {
  const out = zeros(shape, g.dtype);
  const st = contiguousStrides(shape);
  const win: View = {
    buf: out.storage.buf,
    shape: g.shape,
    strides: st.map((s, i) => (i === axis ? s * step : s)),
    offset: start * st[axis]!,
  };
  kernel(g, 'copy')(g.view(), win);
  return out;
}

/** contiguous tensor (a cheap alias when already contiguous) */
export function contiguous(x: Tensor): Tensor {
  if (x.isContiguous) return aliasView(x, x.shape, x.strides, x.offset);
  return record(copyTo(x, x.dtype), 'contiguous', [x], (g) => [g]);
}

/** always a fresh copy */
export function clone(x: Tensor): Tensor {
  return record(copyTo(x, x.dtype), 'clone', [x], (g) => [g]);
}

export function cast(x: Tensor, dtype: DType): Tensor {
  checkDTypeName('cast', dtype);
  if (x.dtype === dtype) return aliasView(x, x.shape, x.strides, x.offset);
  const out = copyTo(x, dtype);
  if (!isFloat(dtype) || !isFloat(x.dtype)) return out;
  return record(out, 'cast', [x], (g) => [cast(g, x.dtype)]);
}

/** pad with a constant; widths[i] = [before, after] for axis i (missing trailing axes: no padding) */
export function pad(x: Tensor, widths: readonly (readonly [number, number])[], value = 0): Tensor {
  if (widths.length > x.ndim) throw new Error(`pad: ${widths.length} pad widths for a tensor of shape ${fmt(x.shape)}`);
  const w = x.shape.map((_, i) => widths[i] ?? ([0, 0] as const));
  if (w.some(([a, b]) => a < 0 || b < 0 || !Number.isInteger(a) || !Number.isInteger(b)))
    throw new Error('pad: widths must be non-negative integers');
  const shape = x.shape.map((d, i) => d + w[i]![0] + w[i]![1]);
  const out = value === 0 ? alloc(shape, x.dtype, x) : fillLike(shape, x, value);
  const st = contiguousStrides(shape);
  const win: View = {
    buf: out.storage.buf,
    shape: x.shape,
    strides: st,
    offset: w.reduce((o, [a], i) => o + a * st[i]!, 0),
  };
  kernel(x, 'copy')(x.view(), win);
  return record(out, 'pad', [x], (g) => [w.reduce((t: Tensor, [a], i) => slice(t, i, a, a + x.shape[i]!), g)]);
}

function fillLike(shape: Shape, like: Tensor, value: number): Tensor {
  const out = allocOut(shape, like.dtype, like);
  const host = out.backend.view(out.storage.buf);
  if (!host || like.dtype === 'float16' || like.dtype === 'bfloat16')
    throw new Error(`pad: non-zero pad value needs a host-visible float32/int32 tensor`);
  host.fill(value);
  return out;
}

export function concat(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('concat: needs at least one tensor');
  sameBackend('concat', ...xs);
  const first = xs[0]!;
  const a = normAxis(axis, first.ndim, 'concat');
  for (const [i, t] of xs.entries()) {
    if (t.ndim !== first.ndim || t.shape.some((d, j) => j !== a && d !== first.shape[j]) || t.dtype !== first.dtype) {
      throw new Error(
        `concat: tensor ${i} has shape ${fmt(t.shape)} ${t.dtype}, incompatible with ${fmt(first.shape)} ${first.dtype} along axis ${a}`,
      );
    }
  }
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, t) => s + t.shape[a]!, 0);
  const out = allocOut(shape, first.dtype, first);
  const st = contiguousStrides(shape);
  let at = 0;
  const starts: number[] = [];
  for (const t of xs) {
    starts.push(at);
    kernel(t, 'copy')(t.view(), { buf: out.storage.buf, shape: t.shape, strides: st, offset: at * st[a]! });
    at += t.shape[a]!;
  }
  return record(out, 'concat', [...xs], (g) => xs.map((t, i) => slice(g, a, starts[i]!, starts[i]! + t.shape[a]!)));
}

export function stack(xs: readonly Tensor[], axis = 0): Tensor {
  if (xs.length === 0) throw new Error('stack: needs at least one tensor');
  const a = normAxis(axis, xs[0]!.ndim + 1, 'stack');
  return concat(
    xs.map((t) => unsqueeze(t, a)),
    a,
  );
}

/** split into pieces of the given sizes (or `n` equal pieces) along axis, as views */
export function split(x: Tensor, sizes: number | readonly number[], axis = 0): Tensor[] {
  const a = normAxis(axis, x.ndim, 'split');
  const n = x.shape[a]!;
  const list = typeof sizes === 'number' ? splitEven(n, sizes) : sizes;
  if (list.reduce((s, d) => s + d, 0) !== n)
    throw new Error(`split: sizes ${fmt(list)} do not add up to ${n} (axis ${a} of ${fmt(x.shape)})`);
  let at = 0;
  return list.map((d) => slice(x, a, at, (at += d)));
}

function splitEven(n: number, parts: number): number[] {
  if (n % parts !== 0) throw new Error(`split: axis of size ${n} cannot be split into ${parts} equal parts`);
  return new Array<number>(parts).fill(n / parts);
}
