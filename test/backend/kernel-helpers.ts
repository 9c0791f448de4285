// Shared by the backend test suites: a seeded generator, views on a backend's buffers, and a
// relative-error check against the reference kernels.
import assert from 'node:assert/strict';
import type { AnyArray, Backend, Buf, DType, KernelTable, View } from '../../src/backend/backend.js';
import { referenceKernels as ref } from '../../src/backend/reference/kernels.js';
import { kernelFor } from '../../src/backend/dispatch.js';

/** a backend whose memory is host-visible (view never returns null) */
export interface FastBackend extends Omit<Backend, 'view'> {
  view(buf: Buf): AnyArray;
  dispose?(): void | Promise<void>;
}
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296 - 0.5;
  };
}

export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    s[d] = acc;
    acc *= shape[d]!;
  }
  return s;
}
export const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

export class Ctx {
  bufs: Buf[] = [];
  constructor(readonly be: FastBackend) {}
  /** every kernel as the op layer runs it (src/backend/dispatch.ts): the backend's fast kernel, or the
   * reference where the backend lacks it, does not support the dtypes, or declines the layout */
  get k(): KernelTable {
    const names = Object.keys(ref) as (keyof KernelTable)[];
    return Object.fromEntries(names.map((n) => [n, kernelFor(this.be, n)])) as unknown as KernelTable;
  }
  /** contiguous view; `pad` extra elements before the data exercise View.offset */
  t(shape: number[], r: (() => number) | null, dtype: DType = 'float32', pad = 0): View {
    const n = numel(shape);
    const buf = this.be.allocate(dtype, n + pad);
    this.bufs.push(buf);
    if (r) {
      const a = this.be.view(buf);
      for (let i = 0; i < n; i++) a[pad + i] = r();
    }
    return { buf, shape, strides: strides(shape), offset: pad };
  }
  ints(shape: number[], vals: number[]): View {
    const v = this.t(shape, null, 'int32');
    (this.be.view(v.buf) as Int32Array).set(vals);
    return v;
  }
  arr(v: View): Float32Array {
    return (this.be.view(v.buf) as Float32Array).slice(v.offset, v.offset + numel(v.shape));
  }
  done(): void {
    for (const b of this.bufs) if (!b.freed) this.be.free(b);
    this.bufs = [];
  }
}

export function close(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!;
    const w = want[i]!;
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (w === g) continue;
    const err = Math.abs(g - w) / (1 + Math.abs(w));
    if (!(err <= worst)) {
      worst = err;
      at = i;
    }
  }
  assert.ok(worst <= tol, `${what}: max rel err ${worst} at ${at} (got ${got[at]}, want ${want[at]})`);
}
