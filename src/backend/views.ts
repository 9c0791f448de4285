// Layout predicates on kernel views, shared by the fast backends (which layouts a kernel takes as is).
import type { View } from './backend.js';

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** row-major contiguous (dims of size 1 may have any stride) */
export function isContiguous(v: View): boolean {
  let s = 1;
  for (let d = v.shape.length - 1; d >= 0; d--) {
    const n = v.shape[d]!;
    if (n !== 1 && v.strides[d] !== s) return false;
    s *= n;
  }
  return true;
}

/** every axis of size > 1 has stride 0 */
export function isScalarBroadcast(v: View): boolean {
  return v.shape.every((n, d) => n === 1 || v.strides[d] === 0);
}

/** a last-axis row repeated over the leading axes: strides [0, ..., 0, 1] */
export function isRowBroadcast(v: View): boolean {
  const nd = v.shape.length;
  if (nd < 2) return false;
  if (v.shape[nd - 1]! > 1 && v.strides[nd - 1] !== 1) return false;
  for (let d = 0; d < nd - 1; d++) if (v.shape[d]! > 1 && v.strides[d] !== 0) return false;
  return true;
}
