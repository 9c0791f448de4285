// The WebAssembly SIMD backend: one shared WebAssembly.Memory, a TypeScript allocator over it, a
// pool of worker threads running the same kernels on the same memory, and fast kernels for the hot
// paths. Other dtypes (declared by `supports`) and layouts a kernel declines (it returns false:
// non-contiguous views, unusual broadcasts) run the reference kernels through view(), which reads
// this memory directly; the op layer does that (src/backend/dispatch.ts), not this file.
import { fusedLens, type FusedProgram } from '../fused.js';
import { encodeWasmProgram } from './fused.js';
import { BINARY_CODES as BINARY_TABLE, UNARY_CODES as UNARY_TABLE } from './codes.js';
import { isContiguous, isRowBroadcast, isScalarBroadcast, numel } from '../views.js';
import type {
  AdamWParams,
  AnyArray,
  AttentionParams,
  Backend,
  BinaryOp,
  Buf,
  CrossEntropyParams,
  DType,
  FastKernels,
  KernelName,
  MatmulParams,
  NormParams,
  QuantMatmulParams,
  ReduceOp,
  UnaryOp,
  View,
} from '../backend.js';
import { bytesPerElement, codesOf } from '../backend.js';
import { WasmAllocator } from './allocator.js';
import { loadKernelModule, type WasmVariant } from './module.js';
import { Pool, type SpawnWorker } from './pool.js';
import { browserCores, webWorkerSpawner, webWorkersAvailable } from './pool-browser.js';

export interface WasmBackendOptions {
  /** total threads including the caller; default: number of cores (1 where workers are unavailable) */
  threads?: number;
  /** which build to load; default 'auto' (relaxed SIMD when the engine accepts it) */
  variant?: WasmVariant | 'auto';
  /** how to start a worker; default: worker_threads in Node, module Web Workers in cross-origin-isolated pages */
  spawn?: SpawnWorker | null;
  /** split every kernel over all threads regardless of size (tests use it to exercise the parallel paths) */
  forceParallel?: boolean;
}

export interface WasmBackend extends Backend {
  readonly variant: WasmVariant;
  readonly threads: number;
  readonly memory: WebAssembly.Memory;
  /** always host-visible */
  view(buf: Buf): AnyArray;
  /** high-water mark of bytesInUse() since the last resetPeak() (benchmarks, memory tests) */
  peakBytes(): number;
  /** the wasm memory ever handed out (the allocator's high-water extent: what stays resident) */
  touchedBytes(): number;
  resetPeak(): void;
  /** kernel calls split over more than one thread so far (shows that the workers really run) */
  readonly parallelJobs: number;
  /** terminates the worker threads; kernels keep working on the calling thread afterwards */
  dispose(): Promise<void>;
}

/** most rows of A for the small-M matmul (asm/gemm.ts gemmSmallM); measured even with gemm at 12-16 */
const SMALL_M_MAX = 8;

/** exported kernel functions the pool may dispatch */
const FNS = [
  'gemm',
  'attention',
  'attentionBackward',
  'unary',
  'unaryBackward',
  'binary',
  'softmax',
  'softmaxBackward',
  'norm',
  'normBackward',
  'crossEntropy',
  'crossEntropyBackward',
  'adamw',
  'copyStrided',
  'reduce',
  'gemv',
  'gemmSmallM',
  'gather',
  'scatterAdd',
  'qgemv',
  'fused',
] as const;
type Fn = (typeof FNS)[number];

/** ops with a fast derivative kernel (unaryBackward), under their forward codes */
const UNARY_GRAD_CODES = codesOf<UnaryOp>(UNARY_TABLE, [
  'neg',
  'exp',
  'sqrt',
  'rsqrt',
  'relu',
  'square',
  'reciprocal',
  'sigmoid',
  'silu',
  'tanh',
  'gelu_tanh',
  'log',
  'gelu',
]);
const UNARY_CODES: Partial<Record<UnaryOp, number>> = UNARY_TABLE;
const BINARY_CODES: Partial<Record<BinaryOp, number>> = BINARY_TABLE;
const REDUCE_CODES: Partial<Record<ReduceOp, number>> = { sum: 0, max: 1, min: 2 };

/** Work sizes below which a kernel stays on the calling thread (dispatch costs ~10-50 us). */
const allF32 = (d: readonly DType[]) => d.every((x) => x === 'float32');
/** int32 indices at position i, float32 everywhere else */
const f32Index = (i: number) => (d: readonly DType[]) => d.every((x, j) => x === (j === i ? 'int32' : 'float32'));
const sameWord = (d: readonly DType[]) => d.every((x) => x === d[0]) && (d[0] === 'float32' || d[0] === 'int32');

/** what each fast kernel takes, by the dtypes of its view arguments in order (nulls skipped) */
const WASM_DTYPES: { [K in KernelName]?: (d: readonly DType[]) => boolean } = {
  copy: sameWord,
  unary: allF32,
  unaryBackward: allF32,
  binary: allF32,
  reduce: allF32,
  matmul: allF32,
  softmax: allF32,
  softmaxBackward: allF32,
  layerNorm: allF32,
  layerNormBackward: allF32,
  rmsNorm: allF32,
  rmsNormBackward: allF32,
  attention: allF32,
  attentionBackward: allF32,
  crossEntropy: f32Index(1),
  crossEntropyBackward: f32Index(1),
  gather: (d) => d[1] === 'int32' && sameWord([d[0]!, d[2]!]),
  scatterAdd: f32Index(1),
  adamw: allF32,
  fused: allF32,
  quantMatmul: f32Index(1),
};

const PAR_FLOPS = 4e6;
const PAR_ELEMS = 1 << 18;
const PAR_ROW_ELEMS = 1 << 16;

class WasmBuf implements Buf {
  freed = false;
  constructor(
    readonly backend: Backend,
    readonly dtype: DType,
    readonly length: number,
    readonly ptr: number,
  ) {}
}

interface Exports {
  heapBase(): number;
  gemmScratchBytes(): number;
  attentionScratchBytes(Tk: number, Dk: number, Dv: number, bwd: number): number;
  fusedScratchBytes(nodes: number): number;
  sumPartials(partials: number, nth: number, stride: number, n: number, dst: number): void;
}

function shapeStr(v: View | null): string {
  return v ? `[${v.shape.join(', ')}]` : 'null';
}

export async function createWasmBackend(opts: WasmBackendOptions = {}): Promise<WasmBackend> {
  if (typeof SharedArrayBuffer === 'undefined') {
    throw new Error(
      'wasm backend: SharedArrayBuffer is unavailable (browsers need a cross-origin-isolated page: COOP/COEP headers)',
    );
  }
  const { module, variant } = await loadKernelModule(opts.variant ?? 'auto');
  const { memory, maxPages } = createSharedMemory();
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const ex = instance.exports as unknown as Exports & Record<string, unknown>;

  let spawn = opts.spawn;
  let cores = 1;
  const isNode =
    typeof (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node === 'string';
  if (isNode) {
    // Node-only adapter (worker_threads), imported lazily through a variable specifier so browsers and
    // bundlers never load it
    const spec = './pool-node.js';
    const nodePool = (await import(/* @vite-ignore */ spec)) as typeof import('./pool-node.js');
    cores = nodePool.nodeCores();
    if (spawn === undefined) spawn = nodePool.spawnNodeWorker;
  } else {
    cores = browserCores();
    if (spawn === undefined) spawn = webWorkersAvailable() ? webWorkerSpawner() : null;
  }
  const threads = Math.max(1, Math.floor(opts.threads ?? cores));
  const pool = await Pool.create(module, memory, ex, FNS, spawn ? threads - 1 : 0, spawn ?? null);
  return new WasmBackendImpl(memory, maxPages, ex, pool, variant, !!opts.forceParallel);
}

/** 4 GiB address space when the engine can reserve it (64-bit hosts), else smaller (32-bit browsers) */
function createSharedMemory(): { memory: WebAssembly.Memory; maxPages: number } {
  let err: unknown;
  for (const maxPages of [65536, 32768, 16384, 4096]) {
    try {
      return { memory: new WebAssembly.Memory({ initial: 64, maximum: maxPages, shared: true }), maxPages };
    } catch (e) {
      err = e;
    }
  }
  throw new Error(
    `wasm backend: cannot create a shared WebAssembly.Memory: ${err instanceof Error ? err.message : String(err)}`,
  );
}

class WasmBackendImpl implements WasmBackend {
  readonly name: string;
  readonly kernels: FastKernels;
  private readonly alloc: WasmAllocator;
  private readonly counter: number;

  constructor(
    readonly memory: WebAssembly.Memory,
    maxPages: number,
    private readonly ex: Exports & Record<string, unknown>,
    private readonly pool: Pool,
    readonly variant: WasmVariant,
    private readonly forceParallel: boolean,
  ) {
    this.name = `wasm-${variant}`;
    this.alloc = new WasmAllocator(memory, Math.max(65536, ex.heapBase()), maxPages);
    // work counter of the dynamically balanced kernels (own cache line, outside the allocator's books)
    this.counter = Math.ceil(ex.heapBase() / 64) * 64;
    if (this.counter + 64 > 65536) throw new Error('wasm backend: kernel static data overlaps the heap');
    this.kernels = this.makeKernels();
  }

  get threads(): number {
    return this.pool.threads;
  }

  get parallelJobs(): number {
    return this.pool.parallelJobs;
  }

  allocate(dtype: DType, length: number, zero = true): Buf {
    if (!Number.isInteger(length) || length < 0)
      throw new Error(`${this.name}.allocate: invalid length ${length} (${dtype})`);
    const ptr = this.alloc.alloc(length * bytesPerElement(dtype), zero, `allocate(${dtype}, ${length})`);
    return new WasmBuf(this, dtype, length, ptr);
  }

  free(buf: Buf): void {
    const b = this.own(buf, 'free');
    this.alloc.release(b.ptr, `free(${b.dtype}, ${b.length})`);
    b.freed = true;
  }

  read(buf: Buf, offset = 0, length = buf.length - offset): AnyArray {
    const b = this.own(buf, 'read');
    this.checkRange(b, offset, length, 'read');
    return this.typed(b.dtype, b.ptr + offset * bytesPerElement(b.dtype), length).slice();
  }

  write(buf: Buf, data: AnyArray, offset = 0): void {
    const b = this.own(buf, 'write');
    this.checkRange(b, offset, data.length, 'write');
    (this.typed(b.dtype, b.ptr + offset * bytesPerElement(b.dtype), data.length) as Float32Array).set(
      data as Float32Array,
    );
  }

  /** a fresh typed array each call: memory.buffer changes when the memory grows */
  view(buf: Buf): AnyArray {
    const b = this.own(buf, 'view');
    return this.typed(b.dtype, b.ptr, b.length);
  }

  bytesInUse(): number {
    return this.alloc.bytesInUse();
  }
  peakBytes(): number {
    return this.alloc.peakBytes();
  }
  /** the wasm memory ever handed out (the allocator's high-water extent) */
  touchedBytes(): number {
    return this.alloc.touchedBytes();
  }
  peakBytesInUse(): number {
    return this.alloc.peakBytes();
  }
  resetPeak(): void {
    this.alloc.resetPeak();
  }
  dispose(): Promise<void> {
    return this.pool.dispose();
  }

  private typed(dtype: DType, ptr: number, length: number): AnyArray {
    const buf = this.memory.buffer;
    switch (dtype) {
      case 'float32':
        return new Float32Array(buf, ptr, length);
      case 'int32':
        return new Int32Array(buf, ptr, length);
      case 'bool':
        return new Uint8Array(buf, ptr, length);
      case 'int8':
        return new Int8Array(buf, ptr, length);
      case 'float16':
      case 'bfloat16':
        return new Uint16Array(buf, ptr, length);
      default:
        return dtype satisfies never;
    }
  }

  private own(buf: Buf, op: string): WasmBuf {
    if (buf.backend !== this || !(buf instanceof WasmBuf))
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

  /** byte address of a view's first element, after checking ownership */
  private addr(v: View, kernel: string): number {
    this.own(v.buf, kernel);
    return v.buf.ptr + v.offset * bytesPerElement(v.buf.dtype);
  }

  /** dtype combinations the fast kernels take; the op layer runs the reference kernel for the rest */
  supports(name: KernelName, dtypes: readonly DType[]): boolean {
    return WASM_DTYPES[name]?.(dtypes) ?? false;
  }

  /** zeroes the shared work counter and returns its address (kernels claim items from it) */
  private workCounter(): number {
    new Int32Array(this.memory.buffer, this.counter, 1)[0] = 0;
    return this.counter;
  }

  private nth(work: number, threshold: number): number {
    return work >= threshold || this.forceParallel ? this.pool.threads : 1;
  }

  /** runs a kernel on nth threads with scratchPer bytes of scratch each; errors name the kernel and shapes */
  private run(fn: Fn, nth: number, args: (number | boolean)[], scratchPer: number, describe: () => string): void {
    let scratch = 0;
    const a = args.map(Number);
    if (scratchPer > 0) {
      scratchPer = Math.ceil(scratchPer / 64) * 64;
      scratch = this.alloc.alloc(scratchPer * nth, false, `${fn} scratch`);
      a.push(scratch, scratchPer);
    }
    try {
      this.pool.run(fn, nth, a);
    } catch (e) {
      throw new Error(`${this.name}.${fn}(${describe()}) failed: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      if (scratch) this.alloc.release(scratch, `${fn} scratch`);
    }
  }

  private makeKernels(): FastKernels {
    return {
      matmul: (a, b, out, p) => this.matmul(a, b, out, p),
      quantMatmul: (x, w, out, p) => this.quantMatmul(x, w, out, p),
      fused: (program, inputs, out) => this.fused(program, inputs, out),
      unary: (op, x, out) => {
        const code = UNARY_CODES[op];
        if (code === undefined || !isContiguous(x)) return false;
        const n = numel(x.shape);
        if (n === 0) return;
        this.run(
          'unary',
          this.nth(n, PAR_ELEMS),
          [code, this.addr(x, 'unary'), this.addr(out, 'unary'), n],
          0,
          () => `${op}, ${shapeStr(x)}`,
        );
      },
      unaryBackward: (op, x, y, dy, out) => {
        const code = UNARY_GRAD_CODES[op];
        if (code === undefined) return false;
        const n = numel(out.shape);
        if (n === 0) return;
        const k = 'unaryBackward';
        this.run(
          k,
          this.nth(n, PAR_ELEMS),
          [code, this.addr(x, k), this.addr(y, k), this.addr(dy, k), this.addr(out, k), n],
          0,
          () => `${op}, ${shapeStr(out)}`,
        );
      },
      binary: (op, a, b, out) => this.binary(op, a, b, out),
      copy: (x, out) => this.copy(x, out),
      gather: (x, idx, out, outer, n, inner, m) => {
        if (outer * m * inner === 0) return;
        const k = 'gather';
        this.run(
          k,
          this.nth(outer * m * inner, PAR_ELEMS),
          [this.addr(x, k), this.addr(idx, k), this.addr(out, k), outer, n, inner, m],
          0,
          () => `outer=${outer}, n=${n}, inner=${inner}, m=${m}`,
        );
      },
      scatterAdd: (src, idx, out, outer, n, inner, m) => {
        if (outer * m * inner === 0) return;
        const k = 'scatterAdd';
        this.run(
          k,
          this.nth(outer * m * inner, PAR_ELEMS),
          [this.addr(src, k), this.addr(idx, k), this.addr(out, k), outer, n, inner, m],
          0,
          () => `outer=${outer}, n=${n}, inner=${inner}, m=${m}`,
        );
      },
      reduce: (op, x, outer, n, inner, out) => {
        const code = REDUCE_CODES[op];
        if (code === undefined || n < 1) return false;
        if (outer * inner === 0) return;
        const k = 'reduce';
        this.run(
          k,
          this.nth(outer * n * inner, PAR_ELEMS),
          [code, this.addr(x, k), this.addr(out, k), outer, n, inner],
          0,
          () => `${op}, outer=${outer}, n=${n}, inner=${inner}`,
        );
      },
      softmax: (x, out, rows, n, log) => {
        if (rows * n === 0) return;
        this.run(
          'softmax',
          this.nth(rows * n, PAR_ROW_ELEMS),
          [this.addr(x, 'softmax'), this.addr(out, 'softmax'), rows, n, log],
          0,
          () => `rows=${rows}, n=${n}`,
        );
      },
      softmaxBackward: (y, dy, dx, rows, n, log) => {
        if (rows * n === 0) return;
        const k = 'softmaxBackward';
        this.run(
          k,
          this.nth(rows * n, PAR_ROW_ELEMS),
          [this.addr(y, k), this.addr(dy, k), this.addr(dx, k), rows, n, log],
          0,
          () => `rows=${rows}, n=${n}`,
        );
      },
      layerNorm: (x, w, b, out, mean, rstd, p) => {
        this.norm(false, x, w, b, out, mean, rstd, p);
      },
      rmsNorm: (x, w, out, rstd, p) => {
        this.norm(true, x, w, null, out, null, rstd, p);
      },
      layerNormBackward: (x, w, mean, rstd, dy, dx, dw, db, p) => {
        this.normBackward(false, x, w, mean, rstd, dy, dx, dw, db, p);
      },
      rmsNormBackward: (x, w, rstd, dy, dx, dw, p) => {
        this.normBackward(true, x, w, null, rstd, dy, dx, dw, null, p);
      },
      attention: (q, k, v, out, lse, p) => {
        if (!this.attentionFast(q, k, v, out, lse, p)) return false;
        this.attention(q, k, v, out, lse, p);
      },
      attentionBackward: (q, k, v, out, lse, dout, dq, dk, dv, p) => {
        if (!this.attentionFast(q, k, v, out, lse, p)) return false;
        this.attentionBackward(q, k, v, out, lse, dout, dq, dk, dv, p);
      },
      crossEntropy: (logits, targets, loss, lse, p) => {
        this.crossEntropy(logits, targets, loss, lse, p);
      },
      crossEntropyBackward: (logits, targets, lse, dloss, dlogits, p) => {
        this.crossEntropyBackward(logits, targets, lse, dloss, dlogits, p);
      },
      adamw: (param, grad, m, v, p) => {
        this.adamw(param, grad, m, v, p);
      },
    };
  }

  /**
   * weight-only quantized x @ dequant(W)^T (asm/quant.ts): qgemv for every M, so that a row's result is the same
   * whatever else is in the call (the engine's batch composition, prefill chunking, speculative verify rows)
   */
  private quantMatmul(x: View, w: View, out: View, p: QuantMatmulParams): void | false {
    const { M, N, K, bits } = p;
    if (M * N === 0) return;
    if (K % 32 !== 0) return false;
    const k = 'quantMatmul';
    const nth = this.nth(2 * M * N * K, PAR_FLOPS);
    const describe = () => `q${bits}: M=${M}, N=${N}, K=${K}`;
    return this.run('qgemv', nth, [bits, this.addr(x, k), this.addr(w, k), this.addr(out, k), M, N, K], 0, describe);
  }

  private matmul(a: View, b: View, out: View, p: MatmulParams): void | false {
    const { batch, M, N, K } = p;
    if (batch * M * N === 0) return;
    const k = 'matmul';
    if (K === 0) {
      this.view(out.buf).fill(0, out.offset, out.offset + batch * M * N);
      return;
    }
    const flops = 2 * batch * M * N * K;
    if (M === 1) {
      // one row (decoding): memory-bound matrix-vector product, no packing
      this.run(
        'gemv',
        this.nth(flops, PAR_FLOPS),
        [this.addr(a, k), this.addr(b, k), this.addr(out, k), batch, N, K, p.transB, p.strideA, p.strideB],
        0,
        () => `gemv: batch=${batch}, N=${N}, K=${K}, transB=${p.transB}, strideA=${p.strideA}, strideB=${p.strideB}`,
      );
      return;
    }
    if (!p.transA && M <= SMALL_M_MAX) {
      // a few rows (speculative verification, small batches): each weight row read once for all rows
      this.run(
        'gemmSmallM',
        this.nth(flops, PAR_FLOPS),
        [this.addr(a, k), this.addr(b, k), this.addr(out, k), batch, M, N, K, p.transB, p.strideA, p.strideB],
        0,
        () => `batch=${batch}, M=${M}, N=${N}, K=${K}, transB=${p.transB}, strideA=${p.strideA}, strideB=${p.strideB}`,
      );
      return;
    }
    this.run(
      'gemm',
      this.nth(flops, PAR_FLOPS),
      [
        this.addr(a, k),
        this.addr(b, k),
        this.addr(out, k),
        batch,
        M,
        N,
        K,
        p.transA,
        p.transB,
        p.strideA,
        p.strideB,
        this.workCounter(),
      ],
      this.ex.gemmScratchBytes(),
      () =>
        `batch=${batch}, M=${M}, N=${N}, K=${K}, transA=${p.transA}, transB=${p.transB}, strideA=${p.strideA}, strideB=${p.strideB}`,
    );
  }

  /** same-dtype copy of 4-byte elements (float32, int32) from any strides; other cases: reference */
  private copy(x: View, out: View): void | false {
    const d = x.buf.dtype;
    if (!isContiguous(out)) return false;
    const n = numel(x.shape);
    if (n === 0) return;
    const contiguous = isContiguous(x);
    const shape = contiguous ? [n] : x.shape;
    const strides = contiguous ? [1] : x.strides;
    const rank = Math.max(1, shape.length);
    const meta = this.alloc.alloc(rank * 8, false, 'copy shape');
    try {
      const m = new Int32Array(this.memory.buffer, meta, 2 * rank);
      if (shape.length === 0) m.set([1, 1]);
      else {
        m.set(shape, 0);
        m.set(strides, rank);
      }
      const k = 'copy';
      this.run(
        'copyStrided',
        this.nth(n, PAR_ELEMS),
        [this.addr(x, k), this.addr(out, k), rank, meta, n],
        0,
        () => `${d}, shape ${shapeStr(x)}, strides [${x.strides.join(', ')}]`,
      );
    } finally {
      this.alloc.release(meta, 'copy shape');
    }
  }

  /** fused elementwise chain (asm/fused.ts); the program and input table are copied into wasm memory */
  private fused(program: FusedProgram, inputs: readonly View[], out: View): void | false {
    const lens = fusedLens(inputs, out);
    if (!lens) return false;
    const { code, consts } = encodeWasmProgram(program, inputs.length);
    const n = numel(out.shape);
    if (n === 0) return;
    const k = 'fused';
    const addrs = inputs.map((v) => this.addr(v, k));
    const words = code.length + consts.length + 2 * inputs.length;
    const meta = this.alloc.alloc(4 * words, false, 'fused program');
    try {
      const i32 = new Int32Array(this.memory.buffer, meta, words);
      i32.set(code);
      new Float32Array(this.memory.buffer, meta + 4 * code.length, consts.length).set(consts);
      const insAt = code.length + consts.length;
      i32.set(addrs, insAt);
      i32.set(lens, insAt + inputs.length);
      this.run(
        'fused',
        this.nth(n, PAR_ELEMS),
        [
          program.length,
          meta,
          meta + 4 * code.length,
          meta + 4 * insAt,
          meta + 4 * (insAt + inputs.length),
          this.addr(out, k),
          n,
        ],
        this.ex.fusedScratchBytes(program.length),
        () => `${program.length} nodes, ${inputs.length} inputs, out ${shapeStr(out)}`,
      );
    } finally {
      this.alloc.release(meta, 'fused program');
    }
  }

  private binary(op: BinaryOp, a: View, b: View, out: View): void | false {
    const code = BINARY_CODES[op];
    const n = numel(out.shape);
    if (code === undefined || !isContiguous(out)) return false;
    let mode = -1;
    const rowLen = out.shape.length ? out.shape[out.shape.length - 1]! : 1;
    const ac = isContiguous(a);
    const bc = isContiguous(b);
    if (ac && bc) mode = 0;
    else if (ac && isScalarBroadcast(b)) mode = 1;
    else if (bc && isScalarBroadcast(a)) mode = 2;
    else if (ac && isRowBroadcast(b)) mode = 3;
    else if (bc && isRowBroadcast(a)) mode = 4;
    if (mode < 0) return false;
    if (n === 0) return;
    const k = 'binary';
    this.run(
      'binary',
      this.nth(n, PAR_ELEMS),
      [code, mode, this.addr(a, k), this.addr(b, k), this.addr(out, k), n, rowLen],
      0,
      () => `${op}, a=${shapeStr(a)}, b=${shapeStr(b)}, out=${shapeStr(out)}`,
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
    if (p.rows * p.n === 0) return;
    this.run(
      'norm',
      this.nth(p.rows * p.n, PAR_ROW_ELEMS),
      [
        rms,
        this.addr(x, k),
        w ? this.addr(w, k) : 0,
        b ? this.addr(b, k) : 0,
        this.addr(out, k),
        mean ? this.addr(mean, k) : 0,
        this.addr(rstd, k),
        p.rows,
        p.n,
        p.eps,
      ],
      0,
      () => `${k}: rows=${p.rows}, n=${p.n}`,
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
    const nth = this.nth(rows * n, PAR_ROW_ELEMS);
    const wantParams = !!(dw || db);
    const partials = wantParams ? this.alloc.alloc(nth * 2 * n * 4, false, `${k} partial sums`) : 0;
    try {
      this.run(
        'normBackward',
        nth,
        [
          rms,
          this.addr(x, k),
          w ? this.addr(w, k) : 0,
          mean ? this.addr(mean, k) : 0,
          this.addr(rstd, k),
          this.addr(dy, k),
          this.addr(dx, k),
          partials,
          rows,
          n,
        ],
        0,
        () => `${k}: rows=${rows}, n=${n}`,
      );
      if (dw) this.ex.sumPartials(partials, nth, 2 * n, n, this.addr(dw, k));
      if (db) this.ex.sumPartials(partials + n * 4, nth, 2 * n, n, this.addr(db, k));
    } finally {
      if (partials) this.alloc.release(partials, `${k} partial sums`);
    }
  }

  /** fast path: float32 q/k/v/out/lse, int32 kvLen, float32 4-D bias (any strides) */
  private attentionFast(q: View, k: View, v: View, out: View, lse: View, p: AttentionParams): boolean {
    if (p.softcap) return false; // no soft-capped kernel: decline, the reference runs
    if (p.kvLen && p.kvLen.buf.dtype !== 'int32') return false;
    if (p.bias && (p.bias.buf.dtype !== 'float32' || p.bias.strides.length !== 4)) return false;
    if (p.H % p.Hkv !== 0 || p.Dk < 1 || p.Dv < 1) return false;
    return true;
  }

  private attnArgs(p: AttentionParams, kern: string): number[] {
    const s = p.bias ? p.bias.strides : [0, 0, 0, 0];
    return [
      p.B,
      p.H,
      p.Hkv,
      p.Tq,
      p.Tk,
      p.Dk,
      p.Dv,
      p.scale,
      p.causal ? 1 : 0,
      p.window,
      p.kvLen ? this.addr(p.kvLen, kern) : 0,
      p.bias ? this.addr(p.bias, kern) : 0,
      s[0]!,
      s[1]!,
      s[2]!,
      s[3]!,
    ];
  }

  private describeAttn(p: AttentionParams): string {
    return (
      `B=${p.B}, H=${p.H}, Hkv=${p.Hkv}, Tq=${p.Tq}, Tk=${p.Tk}, Dk=${p.Dk}, Dv=${p.Dv}, causal=${p.causal}, window=${p.window}, ` +
      `kvLen=${p.kvLen ? 'yes' : 'no'}, bias=${shapeStr(p.bias)}`
    );
  }

  private attention(q: View, k: View, v: View, out: View, lse: View, p: AttentionParams): void {
    const kn = 'attention';
    if (p.B * p.H * p.Tq === 0) return;
    const flops = 4 * p.B * p.H * p.Tq * p.Tk * Math.max(p.Dk, p.Dv);
    const items = p.B * p.H * Math.ceil(p.Tq / 64);
    this.run(
      'attention',
      Math.min(items, this.nth(flops, PAR_FLOPS)),
      [
        this.addr(q, kn),
        this.addr(k, kn),
        this.addr(v, kn),
        this.addr(out, kn),
        this.addr(lse, kn),
        ...this.attnArgs(p, kn),
        this.workCounter(),
      ],
      this.ex.attentionScratchBytes(p.Tk, p.Dk, p.Dv, 0),
      () => this.describeAttn(p),
    );
  }

  private attentionBackward(
    q: View,
    k: View,
    v: View,
    out: View,
    lse: View,
    dout: View,
    dq: View,
    dk: View,
    dv: View,
    p: AttentionParams,
  ): void {
    const kn = 'attentionBackward';
    if (p.B * p.Hkv * p.Tk === 0 && p.B * p.H * p.Tq === 0) return;
    const flops = 8 * p.B * p.H * p.Tq * p.Tk * Math.max(p.Dk, p.Dv);
    this.run(
      'attentionBackward',
      Math.min(p.B * p.Hkv, this.nth(flops, PAR_FLOPS)),
      [
        this.addr(q, kn),
        this.addr(k, kn),
        this.addr(v, kn),
        this.addr(out, kn),
        this.addr(lse, kn),
        this.addr(dout, kn),
        this.addr(dq, kn),
        this.addr(dk, kn),
        this.addr(dv, kn),
        ...this.attnArgs(p, kn),
        this.workCounter(),
      ],
      this.ex.attentionScratchBytes(p.Tk, p.Dk, p.Dv, 1),
      () => this.describeAttn(p),
    );
  }

  private crossEntropy(logits: View, targets: View, loss: View, lse: View, p: CrossEntropyParams): void {
    const k = 'crossEntropy';
    if (p.rows === 0) return;
    this.run(
      'crossEntropy',
      this.nth(p.rows * p.V, PAR_ROW_ELEMS),
      [
        this.addr(logits, k),
        this.addr(targets, k),
        this.addr(loss, k),
        this.addr(lse, k),
        p.rows,
        p.V,
        p.ignoreIndex,
        p.labelSmoothing,
      ],
      0,
      () => `rows=${p.rows}, V=${p.V}`,
    );
  }

  private crossEntropyBackward(
    logits: View,
    targets: View,
    lse: View,
    dloss: View,
    dlogits: View,
    p: CrossEntropyParams,
  ): void {
    const k = 'crossEntropyBackward';
    if (p.rows === 0) return;
    this.run(
      'crossEntropyBackward',
      this.nth(p.rows * p.V, PAR_ROW_ELEMS),
      [
        this.addr(logits, k),
        this.addr(targets, k),
        this.addr(lse, k),
        this.addr(dloss, k),
        this.addr(dlogits, k),
        p.rows,
        p.V,
        p.ignoreIndex,
        p.labelSmoothing,
      ],
      0,
      () => `rows=${p.rows}, V=${p.V}`,
    );
  }

  private adamw(param: View, grad: View, m: View, v: View, p: AdamWParams): void {
    const k = 'adamw';
    if (p.n === 0) return;
    const bc1 = 1 - p.beta1 ** p.step;
    const bc2 = 1 - p.beta2 ** p.step;
    this.run(
      'adamw',
      this.nth(p.n, PAR_ELEMS),
      [
        this.addr(param, k),
        this.addr(grad, k),
        this.addr(m, k),
        this.addr(v, k),
        p.n,
        p.lr,
        p.beta1,
        p.beta2,
        p.eps,
        p.weightDecay,
        bc1,
        bc2,
      ],
      0,
      () => `n=${p.n}`,
    );
  }
}
