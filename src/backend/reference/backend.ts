// The reference backend: plain typed arrays in the JS heap. Always available, in every runtime.
// With `{ float64: true }` float32 tensors are held in Float64Array: the same kernels then run in
// double precision, which is what the finite-difference gradient checks use.
import type { AnyArray, Backend, Buf, DType } from '../backend.js';
import { bytesPerElement } from '../backend.js';
import { newArray } from '../dtype.js';
import { referenceKernels } from './kernels.js';

export class ReferenceBuf implements Buf {
  freed = false;
  readonly ptr = 0;
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    readonly length: number,
    public data: AnyArray,
  ) {}
}

export class ReferenceBackend implements Backend {
  readonly name: string;
  readonly kernels = referenceKernels;
  private inUse = 0;
  private peak = 0;
  constructor(readonly opts: { float64?: boolean } = {}) {
    this.name = opts.float64 ? 'reference-f64' : 'reference';
  }

  allocate(dtype: DType, length: number, _zero = true): Buf {
    const data =
      dtype === 'float32' && this.opts.float64
        ? (new Float64Array(length) as unknown as Float32Array)
        : newArray(dtype, length);
    this.inUse += length * bytesPerElement(dtype);
    this.peak = Math.max(this.peak, this.inUse);
    return new ReferenceBuf(this, dtype, length, data);
  }

  free(buf: Buf): void {
    const b = this.own(buf, 'free');
    b.freed = true;
    this.inUse -= b.length * bytesPerElement(b.dtype);
    b.data = newArray(b.dtype, 0);
  }

  read(buf: Buf, offset = 0, length = buf.length - offset): AnyArray {
    const b = this.own(buf, 'read');
    checkRange(b, offset, length, 'read');
    return b.data.slice(offset, offset + length); // keeps Float64Array in float64 mode
  }

  write(buf: Buf, data: AnyArray, offset = 0): void {
    const b = this.own(buf, 'write');
    checkRange(b, offset, data.length, 'write');
    (b.data as Float32Array).set(data as Float32Array, offset);
  }

  view(buf: Buf): AnyArray {
    return this.own(buf, 'view').data;
  }

  bytesInUse(): number {
    return this.inUse;
  }

  peakBytesInUse(): number {
    return this.peak;
  }

  resetPeak(): void {
    this.peak = this.inUse;
  }

  private own(buf: Buf, op: string): ReferenceBuf {
    if (buf.backend !== this || !(buf instanceof ReferenceBuf))
      throw new Error(`${this.name}.${op}: buffer belongs to backend '${buf.backend.name}'`);
    if (buf.freed) throw new Error(`${this.name}.${op}: buffer was already freed (tensor used after dispose)`);
    return buf;
  }
}

function checkRange(b: Buf, offset: number, length: number, op: string): void {
  if (offset < 0 || length < 0 || offset + length > b.length) {
    throw new Error(
      `reference.${op}: range [${offset}, ${offset + length}) is outside a buffer of ${b.length} elements`,
    );
  }
}
