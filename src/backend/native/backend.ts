// The native CPU backend: buffers are 64-byte-aligned blocks owned by the addon (no 4 GiB limit),
// visible to JS as external ArrayBuffers (zero-copy views), and kernels are C++ (AVX-512, AVX2+FMA
// or portable, chosen by cpuid) running on a native thread pool. Kernels receive addresses, never
// copies. Other dtypes (declared by `supports`) and layouts a kernel declines (it returns false: strided
// views, unusual broadcasts) run the reference kernels through view(); the op layer does that
// (src/backend/dispatch.ts), not this file.
//
// This file has no Node imports: the addon object is handed in (addon-node.ts loads it in Node).
import { isContiguous, isRowBroadcast, isScalarBroadcast, numel } from '../views.js';
import type {
  AnyArray,
  AttentionParams,
  Backend,
  FastKernels,
  BinaryOp,
  Buf,
  DType,
  KernelName,
  MatmulParams,
  NormParams,
  PagedAttentionParams,
  PagedScales,
  PagedWriteParams,
  QuantMatmulParams,
  UnaryOp,
  View,
} from '../backend.js';
import { bytesPerElement, codesOf } from '../backend.js';
import type { NativeAddon, NativeInfo } from './addon.js';
import { fusedLens, type FusedProgram } from '../fused.js';
import { encodeProgram } from './fused.js';

export interface NativeBackendOptions {
  /** threads including the caller (default: the addon pool's current size) */
  threads?: number;
  /** 'avx512' | 'avx2' | 'portable' (default: the best the CPU runs) */
  target?: string;
  /** split every kernel over all threads regardless of size (tests use it to exercise the parallel paths) */
  forceParallel?: boolean;
}

/** op codes of native/kernels.inc (enum Unary / Binary) */
export const NATIVE_UNARY: Partial<Record<UnaryOp, number>> = {
  neg: 0,
  abs: 1,
  exp: 2,
  sqrt: 3,
  rsqrt: 4,
  relu: 5,
  square: 6,
  reciprocal: 7,
  sigmoid: 8,
  silu: 9,
  tanh: 10,
  gelu_tanh: 11,
  log: 12,
  gelu: 13,
  erf: 14,
  softplus: 15,
  sin: 16,
  cos: 17,
  log1p: 18,
};
/** ops with a derivative kernel (unaryBackward), under their forward codes */
const NATIVE_UNARY_GRAD = codesOf<UnaryOp>(NATIVE_UNARY, [
  'neg', 'abs', 'exp', 'sqrt', 'rsqrt', 'relu', 'square', 'reciprocal', 'sigmoid', 'silu', 'tanh', 'gelu_tanh', 'log', 'gelu', 'erf',
]);
const NATIVE_BINARY: Partial<Record<BinaryOp, number>> = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5 };

/** Work sizes below which a kernel stays on the calling thread (a pool wake-up costs a few microseconds). */
const PAR_FLOPS = 2e6;
/** KV pool dtypes the native paged kernel reads, by its kvType code (native/common.h PagedArgs) */
const PAGED_KV_TYPE: Partial<Record<DType, number>> = { float32: 0, float16: 1, bfloat16: 2, int8: 3 };
const PAR_ELEMS = 1 << 16;
const PAR_ROW_ELEMS = 1 << 15;

class NativeBuf implements Buf {
  freed = false;
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    readonly length: number,
    readonly ptr: number,
    readonly bytes: number,
  ) {}
  /** external ArrayBuffer, made on the first view(); the memory never moves (unlike a growing wasm memory) */
  ab: ArrayBuffer | null = null;
  typed: AnyArray | null = null;
}





function newTyped(dtype: DType, src: number | ArrayBuffer, length?: number): AnyArray {
  const a = src as ArrayBuffer;
  switch (dtype) {
    case 'float32':
      return typeof src === 'number' ? new Float32Array(src) : new Float32Array(a, 0, length);
    case 'int32':
      return typeof src === 'number' ? new Int32Array(src) : new Int32Array(a, 0, length);
    case 'bool':
      return typeof src === 'number' ? new Uint8Array(src) : new Uint8Array(a, 0, length);
    case 'int8':
      return typeof src === 'number' ? new Int8Array(src) : new Int8Array(a, 0, length);
    case 'float16':
    case 'bfloat16':
      return typeof src === 'number' ? new Uint16Array(src) : new Uint16Array(a, 0, length);
    default:
      return dtype satisfies never;
  }
}

/** the target each addon's kernel table is switched to (setTarget is process-wide) */
const activeTarget = new WeakMap<NativeAddon, string>();

const f32 = (...vs: (View | null)[]): boolean => vs.every((v) => v === null || v.buf.dtype === 'float32');


export class NativeBackend implements Backend {
  readonly name: string;
  readonly kernels: FastKernels;
  readonly info: NativeInfo;
  private inUse = 0;
  private peak = 0;
  private readonly forceParallel: boolean;
  readonly threads: number;

  constructor(
    readonly addon: NativeAddon,
    opts: NativeBackendOptions = {},
  ) {
    if (opts.target) activeTarget.set(addon, addon.setTarget(opts.target));
    const current = addon.info().threads;
    const threads = opts.threads ?? current;
    if (!Number.isInteger(threads) || threads < 1)
      throw new Error(`native backend: threads must be a positive integer (got ${threads})`);
    // one pool per process, sized for the largest backend; each backend passes its own thread count per kernel
    if (threads > current) addon.setThreads(threads);
    this.threads = threads;
    this.info = addon.info();
    this.name = `native-${this.info.target}`;
    this.forceParallel = !!opts.forceParallel;
    this.kernels = this.onOwnTarget(this.makeKernels());
  }

  /**
   * The addon has one active kernel table per process; backends made for different targets (the tests
   * make one per target) switch it back to their own before each kernel, else the last one made wins.
   */
  private onOwnTarget(table: FastKernels): FastKernels {
    const target = this.info.target;
    const wrapped: Record<string, (...a: never[]) => void | false> = {};
    for (const [name, fn] of Object.entries(table) as [string, (...a: never[]) => void | false][]) {
      wrapped[name] = (...a) => {
        if (activeTarget.get(this.addon) !== target) activeTarget.set(this.addon, this.addon.setTarget(target));
        return fn(...a);
      };
    }
    return wrapped as FastKernels;
  }

  allocate(dtype: DType, length: number, zero = true): Buf {
    if (!Number.isInteger(length) || length < 0)
      throw new Error(`${this.name}.allocate: invalid length ${length} (${dtype})`);
    const bytes = length * bytesPerElement(dtype);
    const ptr = this.addon.alloc(bytes, zero);
    this.inUse += bytes;
    if (this.inUse > this.peak) this.peak = this.inUse;
    return new NativeBuf(this, dtype, length, ptr, bytes);
  }

  free(buf: Buf): void {
    const b = this.own(buf, 'free');
    b.freed = true;
    b.typed = null;
    this.inUse -= b.bytes;
    this.addon.free(b.ptr, b.bytes, b.ab);
    b.ab = null;
  }

  read(buf: Buf, offset = 0, length = buf.length - offset): AnyArray {
    const b = this.own(buf, 'read');
    this.checkRange(b, offset, length, 'read');
    const out = newTyped(b.dtype, length);
    if (length > 0) this.addon.copyOut(b.ptr + offset * bytesPerElement(b.dtype), out);
    return out;
  }

  write(buf: Buf, data: AnyArray, offset = 0): void {
    const b = this.own(buf, 'write');
    this.checkRange(b, offset, data.length, 'write');
    if (data.BYTES_PER_ELEMENT !== bytesPerElement(b.dtype)) {
      // another element type (converted element by element, like the other backends' write)
      (this.view(b) as Float32Array).set(data as Float32Array, offset);
    } else if (data.length > 0) this.addon.copyIn(b.ptr + offset * bytesPerElement(b.dtype), data);
  }

  view(buf: Buf): AnyArray {
    const b = this.own(buf, 'view');
    if (!b.typed) {
      if (b.bytes > 2 ** 32) {
        throw new Error(
          `${this.name}.view: a ${b.dtype} buffer of ${b.length} elements is over Node's 4 GiB limit for one ` +
            'ArrayBuffer; native kernels and read/write still reach it',
        );
      }
      b.ab ??= this.addon.wrap(b.ptr, b.bytes);
      b.typed = newTyped(b.dtype, b.ab, b.length);
    }
    return b.typed;
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
  /** nothing to stop: the native pool sleeps when idle and lives as long as the process */
  dispose(): void {}

  /** whether the native kernel (not the reference fallback) handles these dtypes */
  supports(name: KernelName, dtypes: readonly DType[]): boolean {
    if (!(name in this.kernels)) return false;
    if (name === 'copy') return dtypes.every((d) => d !== 'bool');
    if (name === 'gather') return dtypes.every((d) => d === 'float32' || d === 'int32');
    if (name === 'scatterAdd') return dtypes.every((d) => d === 'float32' || d === 'int32');
    if (name === 'crossEntropy' || name === 'crossEntropyBackward')
      return dtypes.every((d) => d === 'float32' || d === 'int32');
    if (name === 'attention' || name === 'attentionBackward')
      return dtypes.every((d) => d === 'float32' || d === 'int32');
    // (q, k, v, tables, seq, pos, out): K and V pools of one dtype, float32, float16, bfloat16 or int8 (with scales)
    if (name === 'pagedAttention')
      return dtypes.every((d, i) =>
        i === 1 || i === 2 ? d === dtypes[1] && d in PAGED_KV_TYPE : d === (i >= 3 && i <= 5 ? 'int32' : 'float32'),
      );
    // (src, slots, pool): a float32 source into a float32, float16, bfloat16 or int8 pool
    if (name === 'pagedWrite') return dtypes.every((d, i) => (i === 2 ? d in PAGED_KV_TYPE : d === (i === 1 ? 'int32' : 'float32')));
    if (name === 'quantMatmul') return dtypes.every((d, i) => d === (i === 1 ? 'int32' : 'float32'));
    return dtypes.every((d) => d === 'float32');
  }

  private own(buf: Buf, op: string): NativeBuf {
    if (buf.backend !== this || !(buf instanceof NativeBuf))
      throw new Error(`${this.name}.${op}: buffer belongs to backend '${buf.backend.name}'`);
    if (buf.freed)
      throw new Error(
        `${this.name}.${op}: buffer (${buf.dtype}, ${buf.length}) was already freed (tensor used after dispose)`,
      );
    return buf;
  }

  private checkRange(b: Buf, offset: number, length: number, op: string): void {
    if (offset < 0 || length < 0 || offset + length > b.length) {
      throw new Error(
        `${this.name}.${op}: range [${offset}, ${offset + length}) is outside a buffer of ${b.length} elements`,
      );
    }
  }

  /** address of a view's first element, after checking ownership, liveness and bounds */
  private addr(v: View, kernel: string, elems: number): number {
    const b = this.own(v.buf, kernel);
    if (v.offset < 0 || v.offset + elems > b.length) {
      throw new Error(
        `${this.name}.${kernel}: view [${v.offset}, ${v.offset + elems}) is outside a buffer of ${b.length} elements`,
      );
    }
    return b.ptr + v.offset * bytesPerElement(b.dtype);
  }

  private nth(work: number, threshold: number): number {
    return work >= threshold || this.forceParallel ? this.threads : 1;
  }

  private makeKernels(): FastKernels {
    return {
      matmul: (a, b, out, p) => this.matmul(a, b, out, p),
      copy: (x, out) => this.copy(x, out),
      unary: (op, x, out) => {
        const code = NATIVE_UNARY[op];
        if (code === undefined || !f32(x, out) || !isContiguous(x)) return false;
        const n = numel(x.shape);
        if (n === 0) return;
        this.addon.unary(code, this.addr(x, 'unary', n), this.addr(out, 'unary', n), n, this.nth(n, PAR_ELEMS));
      },
      unaryBackward: (op, x, y, dy, out) => {
        const code = NATIVE_UNARY_GRAD[op];
        if (code === undefined || !f32(x, y, dy, out)) return false;
        const n = numel(out.shape);
        if (n === 0) return;
        const k = 'unaryBackward';
        this.addon.unaryBackward(
          code,
          this.addr(x, k, n),
          this.addr(y, k, n),
          this.addr(dy, k, n),
          this.addr(out, k, n),
          n,
          this.nth(n, PAR_ELEMS),
        );
      },
      binary: (op, a, b, out) => this.binary(op, a, b, out),
      softmax: (x, out, rows, n, log) => {
        if (!f32(x, out)) return false;
        if (rows * n === 0) return;
        const k = 'softmax';
        this.addon.softmax(
          this.addr(x, k, rows * n),
          this.addr(out, k, rows * n),
          rows,
          n,
          log,
          this.nth(rows * n, PAR_ROW_ELEMS),
        );
      },
      softmaxBackward: (y, dy, dx, rows, n, log) => {
        if (!f32(y, dy, dx)) return false;
        if (rows * n === 0) return;
        const k = 'softmaxBackward';
        const e = rows * n;
        this.addon.softmaxBackward(
          this.addr(y, k, e),
          this.addr(dy, k, e),
          this.addr(dx, k, e),
          rows,
          n,
          log,
          this.nth(e, PAR_ROW_ELEMS),
        );
      },
      layerNorm: (x, w, b, out, mean, rstd, p) => {
        if (!f32(x, w, b, out, mean, rstd)) return false;
        this.norm(false, x, w, b, out, mean, rstd, p);
      },
      rmsNorm: (x, w, out, rstd, p) => {
        if (!f32(x, w, out, rstd)) return false;
        this.norm(true, x, w, null, out, null, rstd, p);
      },
      layerNormBackward: (x, w, mean, rstd, dy, dx, dw, db, p) => {
        if (!f32(x, w, mean, rstd, dy, dx, dw, db))
          return false;
        this.normBackward(false, x, w, mean, rstd, dy, dx, dw, db, p);
      },
      rmsNormBackward: (x, w, rstd, dy, dx, dw, p) => {
        if (!f32(x, w, rstd, dy, dx, dw)) return false;
        this.normBackward(true, x, w, null, rstd, dy, dx, dw, null, p);
      },
      attention: (q, k, v, out, lse, p) => {
        if (!this.attentionFast(q, k, v, out, lse, p)) return false;
        if (p.B * p.H * p.Tq === 0) return;
        const kn = 'attention';
        const flops = 4 * p.B * p.H * p.Tq * p.Tk * Math.max(p.Dk, p.Dv);
        this.addon.attention(
          ...this.attnArgs(q, k, v, p, kn),
          this.addr(out, kn, p.B * p.H * p.Tq * p.Dv),
          this.addr(lse, kn, p.B * p.H * p.Tq),
          this.nth(flops, PAR_FLOPS),
        );
      },
      attentionBackward: (q, k, v, out, lse, dout, dq, dk, dv, p) => {
        if (!this.attentionFast(q, k, v, out, lse, p) || !f32(dout, dq, dk, dv)) {
          return false;
        }
        if (p.B * p.H * p.Tq === 0 && p.B * p.Hkv * p.Tk === 0) return;
        const kn = 'attentionBackward';
        const rowsQ = p.B * p.H * p.Tq;
        const rowsK = p.B * p.Hkv * p.Tk;
        const flops = 8 * p.B * p.H * p.Tq * p.Tk * Math.max(p.Dk, p.Dv);
        this.addon.attentionBackward(
          ...this.attnArgs(q, k, v, p, kn),
          this.addr(out, kn, rowsQ * p.Dv),
          this.addr(lse, kn, rowsQ),
          this.addr(dout, kn, rowsQ * p.Dv),
          this.addr(dq, kn, rowsQ * p.Dk),
          this.addr(dk, kn, rowsK * p.Dk),
          this.addr(dv, kn, rowsK * p.Dv),
          this.nth(flops, PAR_FLOPS),
        );
      },
      pagedAttention: (q, k, v, tables, seq, pos, out, p, scales) =>
        this.pagedAttention(q, k, v, tables, seq, pos, out, p, scales),
      pagedWrite: (src, slots, pool, p, scale) => this.pagedWrite(src, slots, pool, p, scale),
      ropeHeads: (x, cos, sin, out, p) => {
        if (!f32(x, cos, sin, out) || ![x, cos, sin, out].every(isContiguous)) return false;
        const { T, H, D, half } = p;
        if (T * H * D === 0) return;
        if (!(half >= 0 && 2 * half <= D)) throw new Error(`${this.name}.ropeHeads: half ${half} outside [0, D / 2 = ${D / 2}]`);
        const kn = 'ropeHeads';
        this.addon.ropeHeads(
          this.addr(x, kn, T * H * D),
          this.addr(cos, kn, T * half),
          this.addr(sin, kn, T * half),
          this.addr(out, kn, H * T * D),
          T,
          H,
          D,
          half,
          this.nth(T * H * D * 8, PAR_FLOPS),
        );
      },
      quantMatmul: (x, w, out, p) => this.quantMatmul(x, w, out, p),
      fused: (program, inputs, out) => this.fused(program, inputs, out),
      crossEntropy: (logits, targets, loss, lse, p) => {
        if (!f32(logits, loss, lse) || targets.buf.dtype !== 'int32')
          return false;
        if (p.rows === 0) return;
        this.checkTargets(targets, p.rows, p.V, p.ignoreIndex);
        const k = 'crossEntropy';
        this.addon.crossEntropy(
          this.addr(logits, k, p.rows * p.V),
          this.addr(targets, k, p.rows),
          this.addr(loss, k, p.rows),
          this.addr(lse, k, p.rows),
          p.rows,
          p.V,
          p.ignoreIndex,
          p.labelSmoothing,
          this.nth(p.rows * p.V, PAR_ROW_ELEMS),
        );
      },
      crossEntropyBackward: (logits, targets, lse, dloss, dlogits, p) => {
        if (!f32(logits, lse, dloss, dlogits) || targets.buf.dtype !== 'int32') {
          return false;
        }
        if (p.rows === 0) return;
        this.checkTargets(targets, p.rows, p.V, p.ignoreIndex);
        const k = 'crossEntropyBackward';
        this.addon.crossEntropyBackward(
          this.addr(logits, k, p.rows * p.V),
          this.addr(targets, k, p.rows),
          this.addr(lse, k, p.rows),
          this.addr(dloss, k, p.rows),
          this.addr(dlogits, k, p.rows * p.V),
          p.rows,
          p.V,
          p.ignoreIndex,
          p.labelSmoothing,
          this.nth(p.rows * p.V, PAR_ROW_ELEMS),
        );
      },
      reduce: (op, x, outer, n, inner, out) => {
        const code = op === 'sum' ? 0 : op === 'max' ? 1 : op === 'min' ? 2 : -1;
        if (code < 0 || !f32(x, out) || n < 1) return false;
        if (outer * inner === 0) return;
        const k = 'reduce';
        this.addon.reduce(
          code,
          this.addr(x, k, outer * n * inner),
          this.addr(out, k, outer * inner),
          outer,
          n,
          inner,
          this.nth(outer * n * inner, PAR_ELEMS),
        );
      },
      gather: (x, idx, out, outer, n, inner, m) => {
        const d = x.buf.dtype;
        if (d !== out.buf.dtype || (d !== 'float32' && d !== 'int32') || idx.buf.dtype !== 'int32') {
          return false;
        }
        if (outer * m * inner === 0) return;
        const k = 'gather';
        this.addon.gather(
          this.addr(x, k, outer * n * inner),
          this.addr(idx, k, m),
          this.addr(out, k, outer * m * inner),
          outer,
          n,
          inner,
          m,
          this.nth(outer * m * inner, PAR_ELEMS),
        );
      },
      scatterAdd: (src, idx, out, outer, n, inner, m) => {
        if (!f32(src, out) || idx.buf.dtype !== 'int32')
          return false;
        if (outer * m * inner === 0) return;
        const k = 'scatterAdd';
        this.addon.scatterAdd(
          this.addr(src, k, outer * m * inner),
          this.addr(idx, k, m),
          this.addr(out, k, outer * n * inner),
          outer,
          n,
          inner,
          m,
          this.nth(outer * m * inner, PAR_ELEMS),
        );
      },
      adamw: (param, grad, m, v, p) => {
        if (!f32(param, grad, m, v)) return false;
        if (p.n === 0) return;
        const k = 'adamw';
        const bc1 = 1 - p.beta1 ** p.step;
        const bc2 = 1 - p.beta2 ** p.step;
        this.addon.adamw(
          this.addr(param, k, p.n),
          this.addr(grad, k, p.n),
          this.addr(m, k, p.n),
          this.addr(v, k, p.n),
          p.n,
          p.lr,
          p.beta1,
          p.beta2,
          p.eps,
          p.weightDecay,
          bc1,
          bc2,
          this.nth(p.n, PAR_ELEMS),
        );
      },
    };
  }

  private matmul(a: View, b: View, out: View, p: MatmulParams): void | false {
    if (!f32(a, b, out)) return false;
    const { batch, M, N, K } = p;
    if (batch * M * N === 0) return;
    const k = 'matmul';
    const o = this.addr(out, k, batch * M * N);
    if (K === 0) {
      this.view(out.buf).fill(0, out.offset, out.offset + batch * M * N);
      return;
    }
    // extent of each operand: the last batch matrix ends at (batch-1)*stride + M*K
    const ea = (batch - 1) * p.strideA + M * K;
    const eb = (batch - 1) * p.strideB + K * N;
    this.addon.gemm(
      this.addr(a, k, ea),
      this.addr(b, k, eb),
      o,
      batch,
      M,
      N,
      K,
      p.transA,
      p.transB,
      p.strideA,
      p.strideB,
      this.nth(2 * batch * M * N * K, PAR_FLOPS),
    );
  }

  /**
   * The engine's paged attention over a KV pool held in this backend's buffers (float32, float16, bfloat16
   * or int8 with its float32 row scales, K and V alike). Declines (reference) GQA groups over 64 heads (the
   * kernel's per-token head arrays) and mixed K / V dtypes. The caller (src/infer/engine) has checked that every visible position
   * has a block; here only the extents are checked.
   */
  private pagedAttention(
    q: View,
    k: View,
    v: View,
    tables: View,
    seq: View,
    pos: View,
    out: View,
    p: PagedAttentionParams,
    scales?: PagedScales,
  ): void | false {
    const { T, H, Hkv, Dk, Dv, blockSize, S, maxBlocks } = p;
    if (Hkv < 1 || H % Hkv !== 0 || H / Hkv > 64 || Dk < 1 || Dv < 1) return false;
    const kvType = PAGED_KV_TYPE[k.buf.dtype];
    if (kvType === undefined || v.buf.dtype !== k.buf.dtype) return false;
    if ((k.buf.dtype === 'int8') !== (scales !== undefined)) return false; // the reference names what is missing
    if (scales && !f32(scales.k, scales.v)) return false;
    if (T * H === 0) return;
    const kn = 'pagedAttention';
    let slotsK = Math.floor(((k.buf.length - k.offset) / (Hkv * Dk)) | 0);
    let slotsV = Math.floor(((v.buf.length - v.offset) / (Hkv * Dv)) | 0);
    if (scales) {
      // a row's scale must exist for every slot read
      slotsK = Math.min(slotsK, Math.floor((scales.k.buf.length - scales.k.offset) / Hkv));
      slotsV = Math.min(slotsV, Math.floor((scales.v.buf.length - scales.v.offset) / Hkv));
    }
    this.checkPaged(tables, seq, pos, p, Math.min(slotsK, slotsV));
    const work = 2 * T * H * (Dk + Dv) * Math.max(1, Math.min(p.window || Infinity, this.maxPos(pos, T) + 1));
    this.addon.pagedAttention(
      this.addr(q, kn, H * T * Dk),
      this.addr(k, kn, slotsK * Hkv * Dk),
      this.addr(v, kn, slotsV * Hkv * Dv),
      this.addr(out, kn, H * T * Dv),
      this.addr(tables, kn, S * maxBlocks),
      this.addr(seq, kn, T),
      this.addr(pos, kn, T),
      T,
      H,
      Hkv,
      Dk,
      Dv,
      blockSize,
      S,
      maxBlocks,
      p.window,
      p.scale,
      this.nth(work, PAR_FLOPS),
      kvType,
      ...(scales ? [this.addr(scales.k, kn, slotsK * Hkv), this.addr(scales.v, kn, slotsV * Hkv)] : []),
    );
  }

  /** the step's new keys or values into the pool, converted to its dtype; every slot is checked against the pool first */
  private pagedWrite(src: View, slots: View, pool: View, p: PagedWriteParams, scale?: View): void | false {
    const kvType = PAGED_KV_TYPE[pool.buf.dtype];
    if (kvType === undefined || !isContiguous(src) || !isContiguous(pool)) return false;
    if ((pool.buf.dtype === 'int8') !== (scale !== undefined) || (scale && !f32(scale))) return false; // the reference names it
    const { T, Hkv, D } = p;
    if (T * Hkv * D === 0) return;
    let rows = Math.floor((pool.buf.length - pool.offset) / (Hkv * D));
    if (scale) rows = Math.min(rows, Math.floor((scale.buf.length - scale.offset) / Hkv));
    const sl = this.view(slots.buf) as Int32Array;
    for (let t = 0; t < T; t++) {
      const s = sl[slots.offset + t]!;
      if (!(s >= 0 && s < rows))
        throw new Error(`${this.name}.pagedWrite: token ${t} writes slot ${s}, outside the pool of ${rows} slots`);
    }
    const kn = 'pagedWrite';
    this.addon.pagedWrite(
      this.addr(src, kn, Hkv * T * D),
      this.addr(slots, kn, T),
      this.addr(pool, kn, rows * Hkv * D),
      T,
      Hkv,
      D,
      kvType,
      this.nth(T * Hkv * D * 64, PAR_FLOPS),
      ...(scale ? [this.addr(scale, kn, rows * Hkv)] : []),
    );
  }

  private maxPos(pos: View, T: number): number {
    const a = this.view(pos.buf) as Int32Array;
    let m = 0;
    for (let t = 0; t < T; t++) m = Math.max(m, a[pos.offset + t]!);
    return m;
  }

  /** every block a token reads must be a slot range inside the pools: C++ would read out of bounds */
  private checkPaged(tables: View, seq: View, pos: View, p: PagedAttentionParams, slots: number): void {
    const [tab, sa, pa] = [tables, seq, pos].map((x) => this.view(x.buf) as Int32Array) as [Int32Array, Int32Array, Int32Array];
    const bs = p.blockSize;
    const blocks = Math.floor(slots / bs);
    for (let t = 0; t < p.T; t++) {
      const s = sa[seq.offset + t]!;
      const P = pa[pos.offset + t]!;
      if (s < 0 || s >= p.S || P < 0 || Math.floor(P / bs) >= p.maxBlocks)
        throw new Error(`${this.name}.pagedAttention: token ${t} (sequence ${s}, position ${P}) is outside the block tables [${p.S}, ${p.maxBlocks}]`);
      const lo = p.window > 0 ? Math.max(0, P - p.window + 1) : 0;
      for (let b = Math.floor(lo / bs); b <= Math.floor(P / bs); b++) {
        const id = tab[tables.offset + s * p.maxBlocks + b]!;
        if (id < 0 || id >= blocks)
          throw new Error(`${this.name}.pagedAttention: token ${t} (position ${P}) reads block ${id} (table entry ${b}), outside the pool of ${blocks} blocks`);
      }
    }
  }

  /** weight-only quantized x @ dequant(W)^T (native/quant.inc): integer block dots for few rows, dequantized panels else */
  /** fused elementwise chain; declines what the reference must reject (non-contiguous, other dtypes) */
  private fused(program: FusedProgram, inputs: readonly View[], out: View): void | false {
    const lens = this.addon.fused ? fusedLens(inputs, out) : null;
    if (!lens) return false;
    const { code, consts } = encodeProgram(program, inputs.length);
    const n = numel(out.shape);
    if (n === 0) return;
    const k = 'fused';
    const addrs = Float64Array.from(inputs, (v, i) => this.addr(v, k, lens[i]!));
    this.addon.fused!(code, consts, addrs, Float64Array.from(lens), this.addr(out, k, n), n, this.nth(n, PAR_ELEMS));
  }

  private quantMatmul(x: View, w: View, out: View, p: QuantMatmulParams): void | false {
    const { M, N, K, bits } = p;
    if (K % 32 !== 0 || (bits !== 8 && bits !== 4)) return false;
    if (M * N === 0) return;
    const kn = 'quantMatmul';
    const words = Math.ceil((N * (K / 32) * (bits === 8 ? 34 : 18)) / 4);
    this.addon.quantMatmul(
      bits,
      this.addr(x, kn, M * K),
      this.addr(w, kn, words),
      this.addr(out, kn, M * N),
      M,
      N,
      K,
      this.nth(2 * M * N * K, PAR_FLOPS),
    );
  }

  /** same-dtype copies from any strides into any strides; contiguous float32 <-> float16/bfloat16 conversions */
  private copy(x: View, out: View): void | false {
    const xd = x.buf.dtype;
    const od = out.buf.dtype;
    const n = numel(x.shape);
    if (n === 0) return;
    const k = 'copy';
    if (xd !== od) {
      const kind =
        xd === 'float32' && od === 'float16'
          ? 0
          : xd === 'float16' && od === 'float32'
            ? 1
            : xd === 'float32' && od === 'bfloat16'
              ? 2
              : xd === 'bfloat16' && od === 'float32'
                ? 3
                : -1;
      if (kind < 0 || !isContiguous(x) || !isContiguous(out)) return false;
      this.addon.convert(kind, this.addr(x, k, n), this.addr(out, k, n), n, this.nth(n, PAR_ELEMS));
      return;
    }
    const eb = bytesPerElement(xd);
    // the extent of a strided view: offset + sum (shape-1)*stride for positive strides; negative strides go to the reference
    const extent = (v: View): number => {
      let e = 1;
      for (let d = 0; d < v.shape.length; d++) {
        if (v.strides[d]! < 0) return -1;
        e += (v.shape[d]! - 1) * v.strides[d]!;
      }
      return e;
    };
    const ex = extent(x);
    const eo = extent(out);
    if (ex < 0 || eo < 0) return false;
    const xc = isContiguous(x) && isContiguous(out);
    this.addon.copyStrided(
      this.addr(x, k, ex),
      this.addr(out, k, eo),
      eb,
      xc ? [n] : x.shape,
      xc ? [1] : x.strides,
      xc ? [1] : out.strides,
      this.nth(n, PAR_ELEMS),
    );
  }

  private binary(op: BinaryOp, a: View, b: View, out: View): void | false {
    const code = NATIVE_BINARY[op];
    if (code === undefined || !f32(a, b, out) || !isContiguous(out)) return false;
    const n = numel(out.shape);
    const rowLen = out.shape.length ? out.shape[out.shape.length - 1]! : 1;
    const ac = isContiguous(a);
    const bc = isContiguous(b);
    let mode = -1;
    if (ac && bc) mode = 0;
    else if (ac && isScalarBroadcast(b)) mode = 1;
    else if (bc && isScalarBroadcast(a)) mode = 2;
    else if (ac && isRowBroadcast(b)) mode = 3;
    else if (bc && isRowBroadcast(a)) mode = 4;
    if (mode < 0) return false;
    if (n === 0) return;
    const k = 'binary';
    const ea = mode === 2 ? 1 : mode === 4 ? rowLen : n;
    const eb = mode === 1 ? 1 : mode === 3 ? rowLen : n;
    this.addon.binary(
      code,
      mode,
      this.addr(a, k, ea),
      this.addr(b, k, eb),
      this.addr(out, k, n),
      n,
      rowLen,
      this.nth(n, PAR_ELEMS),
    );
  }

  private norm(
    rms: boolean,
    x: View,
    w: View | null,
    b: View | null,
    out: View,
    mean: View | null,
    rstd: View,
    p: NormParams,
  ): void {
    const k = rms ? 'rmsNorm' : 'layerNorm';
    const { rows, n } = p;
    if (rows * n === 0) return;
    this.addon.norm(
      rms,
      this.addr(x, k, rows * n),
      w ? this.addr(w, k, n) : 0,
      b ? this.addr(b, k, n) : 0,
      this.addr(out, k, rows * n),
      mean ? this.addr(mean, k, rows) : 0,
      this.addr(rstd, k, rows),
      rows,
      n,
      p.eps,
      this.nth(rows * n, PAR_ROW_ELEMS),
    );
  }

  private normBackward(
    rms: boolean,
    x: View,
    w: View | null,
    mean: View | null,
    rstd: View,
    dy: View,
    dx: View,
    dw: View | null,
    db: View | null,
    p: NormParams,
  ): void {
    const k = rms ? 'rmsNormBackward' : 'layerNormBackward';
    const { rows, n } = p;
    if (n === 0) return;
    if (rows === 0) {
      if (dw) this.view(dw.buf).fill(0, dw.offset, dw.offset + n);
      if (db) this.view(db.buf).fill(0, db.offset, db.offset + n);
      return;
    }
    this.addon.normBackward(
      rms,
      this.addr(x, k, rows * n),
      w ? this.addr(w, k, n) : 0,
      mean ? this.addr(mean, k, rows) : 0,
      this.addr(rstd, k, rows),
      this.addr(dy, k, rows * n),
      this.addr(dx, k, rows * n),
      dw ? this.addr(dw, k, n) : 0,
      db ? this.addr(db, k, n) : 0,
      rows,
      n,
      this.nth(rows * n, PAR_ROW_ELEMS),
    );
  }

  /** a target outside [0, V) other than ignoreIndex would read out of bounds in C++: reject it by name */
  private checkTargets(targets: View, rows: number, V: number, ignore: number): void {
    const t = this.view(targets.buf) as Int32Array;
    for (let r = 0; r < rows; r++) {
      const v = t[targets.offset + r]!;
      if (v !== ignore && (v < 0 || v >= V))
        throw new Error(`${this.name}.crossEntropy: target ${v} at row ${r} is outside [0, ${V})`);
    }
  }

  /** fast path: float32 q/k/v/out/lse, int32 kvLen, float32 4-D bias with non-negative strides */
  private attentionFast(q: View, k: View, v: View, out: View, lse: View, p: AttentionParams): boolean {
    if (p.softcap) return false; // no soft-capped kernel: decline, the reference runs
    if (!f32(q, k, v, out, lse)) return false;
    if (p.kvLen && p.kvLen.buf.dtype !== 'int32') return false;
    if (p.bias && (p.bias.buf.dtype !== 'float32' || p.bias.strides.length !== 4 || p.bias.strides.some((s) => s < 0)))
      return false;
    if (p.Hkv < 1 || p.H % p.Hkv !== 0 || p.Dk < 1 || p.Dv < 1) return false;
    return true;
  }

  private attnArgs(q: View, k: View, v: View, p: AttentionParams, kn: string): (number | boolean)[] {
    const s = p.bias ? p.bias.strides : [0, 0, 0, 0];
    let biasAddr = 0;
    if (p.bias) {
      const extent = 1 + (p.B - 1) * s[0]! + (p.H - 1) * s[1]! + (p.Tq - 1) * s[2]! + (p.Tk - 1) * s[3]!;
      biasAddr = this.addr(p.bias, kn, extent);
    }
    return [
      this.addr(q, kn, p.B * p.H * p.Tq * p.Dk),
      this.addr(k, kn, p.B * p.Hkv * p.Tk * p.Dk),
      this.addr(v, kn, p.B * p.Hkv * p.Tk * p.Dv),
      p.B,
      p.H,
      p.Hkv,
      p.Tq,
      p.Tk,
      p.Dk,
      p.Dv,
      p.scale,
      p.causal,
      p.window,
      p.kvLen ? this.addr(p.kvLen, kn, p.B) : 0,
      biasAddr,
      s[0]!,
      s[1]!,
      s[2]!,
      s[3]!,
    ];
  }
}

export function createNativeBackend(addon: NativeAddon, opts: NativeBackendOptions = {}): NativeBackend {
  return new NativeBackend(addon, opts);
}
