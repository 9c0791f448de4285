// Shape arithmetic: sizes, contiguous strides, axis normalisation, broadcasting.

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function isContiguous(shape: Shape, strides: readonly number[]): boolean {
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== acc) return false;
    acc *= shape[i]!;
  }
  return true;
}

export function fmt(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

/** normalise a possibly-negative axis; throws naming the op */
export function normAxis(axis: number, ndim: number, op: string): number {
  const a = axis < 0 ? axis + ndim : axis;
  if (!Number.isInteger(a) || a < 0 || a >= ndim) {
    throw new Error(`${op}: axis ${axis} is out of range for a tensor with ${ndim} dimension(s)`);
  }
  return a;
}

export function normAxes(axes: number | readonly number[] | undefined, ndim: number, op: string): number[] {
  if (axes === undefined) return [...Array(ndim).keys()];
  const list = typeof axes === 'number' ? [axes] : axes;
  const out = [...new Set(list.map((a) => normAxis(a, ndim, op)))];
  if (out.length !== list.length) throw new Error(`${op}: repeated axis in ${fmt(list)}`);
  return out.sort((a, b) => a - b);
}

/** numpy broadcasting of two shapes */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`${op}: shapes ${fmt(a)} and ${fmt(b)} cannot be broadcast together (dim ${i}: ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

export function checkShape(shape: Shape, op: string): number[] {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0)
      throw new Error(`${op}: invalid shape ${fmt(shape)} (dimensions must be non-negative integers)`);
  }
  return [...shape];
}

/** resolve one -1 in a reshape target */
export function resolveReshape(from: Shape, to: readonly number[], op: string): number[] {
  const n = numel(from);
  const minus = to.filter((d) => d === -1).length;
  if (minus > 1) throw new Error(`${op}: only one -1 allowed in ${fmt(to)}`);
  const known = to.reduce((p, d) => (d === -1 ? p : p * d), 1);
  const out = to.map((d) => (d === -1 ? (known === 0 ? 0 : n / known) : d));
  if (numel(out) !== n || out.some((d) => !Number.isInteger(d) || d < 0)) {
    throw new Error(`${op}: cannot reshape ${fmt(from)} (${n} elements) to ${fmt(to)}`);
  }
  return out;
}

/**
 * Strides for viewing a strided tensor with a new shape without copying, or null when impossible
 * (the torch `view` rule: merged dims must be stride-compatible).
 */
export function viewStrides(shape: Shape, strides: readonly number[], to: Shape): number[] | null {
  if (numel(shape) === 0) return contiguousStrides(to);
  const dims: number[] = [];
  const strs: number[] = [];
  shape.forEach((d, i) => {
    if (d !== 1) {
      dims.push(d);
      strs.push(strides[i]!);
    }
  });
  const out = new Array<number>(to.length).fill(0);
  let i = 0; // index into old non-1 dims
  let j = 0; // index into new dims
  while (j < to.length) {
    if (to[j] === 1) {
      out[j] = 1;
      j++;
      continue;
    }
    if (i >= dims.length) return null;
    // take a chunk of old dims that must be mutually contiguous, matching a chunk of new dims
    let oldSize = dims[i]!;
    let newSize = to[j]!;
    const j0 = j;
    while (oldSize !== newSize) {
      if (oldSize < newSize) {
        i++;
        if (i >= dims.length) return null;
        if (strs[i - 1] !== strs[i]! * dims[i]!) return null;
        oldSize *= dims[i]!;
      } else {
        j++;
        if (j >= to.length) return null;
        newSize *= to[j]!;
      }
    }
    // assign strides to new dims j0..j from the innermost stride of old chunk
    let st = strs[i]!;
    for (let k = j; k >= j0; k--) {
      out[k] = st;
      st *= to[k]!;
    }
    i++;
    j++;
  }
  return i === dims.length ? out : null;
}
