// The Lineage side of the benchmarks: GEMM, fused attention, elementwise, on the wasm backend or
// the native one (`backend: 'native'`).
import type { Backend, View } from '../src/backend/backend.js';
import type { FusedProgram } from '../src/backend/fused.js';
import { createWasmBackend, type WasmBackendOptions } from '../src/backend/wasm/backend.js';
import { fillRandom, timeIt, type Timing } from './harness.js';

export interface GemmResult {
  bench: 'gemm';
  m: number;
  n: number;
  k: number;
  threads: number;
  variant: string;
  gflops: number;
  medianMs: number;
  reps: number;
  /** CPU time per run over all threads (ms): close to medianMs * threads when the cores were free */
  cpuMs: number;
}
export interface AttentionResult {
  bench: 'attention';
  batchHeads: number;
  seq: number;
  headDim: number;
  causal: boolean;
  /** timed a training step's attention: forward then backward (dq, dk, dv from the saved out / lse) */
  backward: boolean;
  threads: number;
  variant: string;
  /** 4*BH*T^2*D per forward pass (also for causal, as the task defines it); with backward 3x that (its 4 matmuls) */
  gflops: number;
  medianMs: number;
  reps: number;
  /** CPU time per run over all threads (ms) */
  cpuMs: number;
  /** extra memory the kernel used: allocator high-water mark minus the inputs and outputs */
  peakBytes: number;
  /** what a composed implementation materialises for the scores: BH*T^2*4 bytes */
  scoresBytes: number;
}
/** single ops, and the chains the fused kernel exists for: silu(a) * b, gelu(x + bias[ROW]) */
export const ELEMENTWISE_OPS = ['add', 'exp', 'gelu', 'swiglu', 'bias-gelu'] as const;
export type ElementwiseOp = (typeof ELEMENTWISE_OPS)[number];
/** 'kernels': one unary / binary kernel per op (a chain writes and re-reads a temporary); 'fused': one program */
export type ElementwisePath = 'kernels' | 'fused';
/** the bias row of bias-gelu (an FFN width), as in bench/torch_ref.py */
export const BIAS_ROW = 4096;

export interface ElementwiseResult {
  bench: 'elementwise';
  op: ElementwiseOp;
  path: ElementwisePath;
  size: number;
  threads: number;
  variant: string;
  /** bytes read + written per second */
  gbps: number;
  medianMs: number;
  reps: number;
  /** CPU time per run over all threads (ms): close to medianMs * threads when the cores were free */
  cpuMs: number;
}

export interface BenchOpts {
  threads: number;
  variant?: WasmBackendOptions['variant'];
  minSeconds?: number;
  /** default 'wasm' */
  backend?: 'native' | 'wasm';
}

/** what the benchmarks need from a backend (wasm and native both provide it) */
interface BenchBackend extends Backend {
  readonly threads: number;
  /** reported as the result's `variant`: the wasm build, or native-<cpu target> */
  readonly variant: string;
  resetPeak(): void;
  dispose(): void | Promise<void>;
}

async function makeBackend(o: BenchOpts): Promise<BenchBackend> {
  if (o.backend === 'native') {
    const { loadNativeAddon } = await import('../src/backend/native/addon-node.js');
    const { addon, error } = loadNativeAddon();
    if (!addon) throw new Error(`bench --backend native: ${error}`);
    const { createNativeBackend } = await import('../src/backend/native/backend.js');
    const be = createNativeBackend(addon, { threads: o.threads });
    return Object.assign(be, { variant: be.name });
  }
  return createWasmBackend({ threads: o.threads, variant: o.variant ?? 'auto' });
}

function view(be: BenchBackend, shape: number[], seed: number | null): View {
  const n = shape.reduce((a, b) => a * b, 1);
  const buf = be.allocate('float32', n);
  if (seed !== null) fillRandom(be.view(buf) as Float32Array, seed);
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  return { buf, shape, strides, offset: 0 };
}

async function withBackend<T>(o: BenchOpts, f: (be: BenchBackend) => T): Promise<T> {
  const be = await makeBackend(o);
  try {
    return f(be);
  } finally {
    await be.dispose();
  }
}

function ms(t: Timing): number {
  return +(t.seconds * 1000).toFixed(3);
}

export function benchGemm(m: number, n: number, k: number, o: BenchOpts): Promise<GemmResult> {
  return withBackend(o, (be) => {
    const a = view(be, [m, k], 1);
    const b = view(be, [k, n], 2);
    const c = view(be, [m, n], null);
    const p = { batch: 1, M: m, N: n, K: k, transA: false, transB: false, strideA: 0, strideB: 0 };
    const t = timeIt(() => be.kernels.matmul!(a, b, c, p), { minSeconds: o.minSeconds });
    return {
      bench: 'gemm',
      m,
      n,
      k,
      threads: be.threads,
      variant: be.variant,
      gflops: +((2 * m * n * k) / t.seconds / 1e9).toFixed(2),
      medianMs: ms(t),
      reps: t.reps,
      cpuMs: +(t.cpuSeconds * 1000).toFixed(3),
    };
  });
}

export function benchAttention(
  bh: number,
  seq: number,
  d: number,
  causal: boolean,
  o: BenchOpts,
  backward = false,
): Promise<AttentionResult> {
  return withBackend(o, (be) => {
    const q = view(be, [1, bh, seq, d], 1);
    const k = view(be, [1, bh, seq, d], 2);
    const v = view(be, [1, bh, seq, d], 3);
    const out = view(be, [1, bh, seq, d], null);
    const lse = view(be, [1, bh, seq], null);
    const p = {
      B: 1,
      H: bh,
      Hkv: bh,
      Tq: seq,
      Tk: seq,
      Dk: d,
      Dv: d,
      scale: 1 / Math.sqrt(d),
      causal,
      window: 0,
      kvLen: null,
      bias: null,
    };
    // backward inputs and gradients (allocated only when timed, so the forward-only peak stays comparable)
    const grads = backward
      ? [view(be, [1, bh, seq, d], 4), ...[0, 1, 2].map(() => view(be, [1, bh, seq, d], null))]
      : [];
    const step = (): void => {
      be.kernels.attention!(q, k, v, out, lse, p);
      if (backward) be.kernels.attentionBackward!(q, k, v, out, lse, grads[0]!, grads[1]!, grads[2]!, grads[3]!, p);
    };
    const base = be.bytesInUse();
    be.resetPeak();
    step();
    const peakBytes = (be.peakBytesInUse?.() ?? 0) - base;
    const t = timeIt(step, { minSeconds: o.minSeconds });
    return {
      bench: 'attention',
      batchHeads: bh,
      seq,
      headDim: d,
      causal,
      backward,
      threads: be.threads,
      variant: be.variant,
      gflops: +(((backward ? 12 : 4) * bh * seq * seq * d) / t.seconds / 1e9).toFixed(2),
      medianMs: ms(t),
      reps: t.reps,
      cpuMs: +(t.cpuSeconds * 1000).toFixed(3),
      peakBytes,
      scoresBytes: bh * seq * seq * 4,
    };
  });
}

/** bytes of each op's inputs + output per element (a chain's temporaries not counted: the work, not the traffic) */
const ELEMENTWISE_BYTES: { [O in ElementwiseOp]: number } = { add: 12, exp: 8, gelu: 8, swiglu: 12, 'bias-gelu': 8 };

const input = (index: number) => ({ op: 'input' as const, index });
/** each op as one fused program over (a, b) */
const ELEMENTWISE_PROGRAMS: { [O in ElementwiseOp]: FusedProgram } = {
  add: [input(0), input(1), { op: 'add', a: 0, b: 1 }],
  exp: [input(0), { op: 'exp', a: 0 }],
  gelu: [input(0), { op: 'gelu', a: 0 }],
  swiglu: [input(0), input(1), { op: 'silu', a: 0 }, { op: 'mul', a: 2, b: 1 }],
  'bias-gelu': [input(0), input(1), { op: 'add', a: 0, b: 1 }, { op: 'gelu', a: 2 }],
};

/** each op as separate backend kernels; tmp holds a chain's intermediate */
function elementwiseKernels(be: Backend, op: ElementwiseOp, a: View, b: View, tmp: View, out: View): () => void {
  const k = be.kernels;
  const rows = a.shape[0]! / BIAS_ROW;
  const row: View = { buf: b.buf, shape: [rows, BIAS_ROW], strides: [0, 1], offset: 0 };
  const as2 = (v: View): View => ({ ...v, shape: [rows, BIAS_ROW], strides: [BIAS_ROW, 1] });
  const table: { [O in ElementwiseOp]: () => void } = {
    add: () => k.binary!('add', a, b, out),
    exp: () => k.unary!('exp', a, out),
    gelu: () => k.unary!('gelu', a, out),
    swiglu: () => {
      k.unary!('silu', a, tmp);
      k.binary!('mul', tmp, b, out);
    },
    'bias-gelu': () => {
      k.binary!('add', as2(a), row, as2(tmp));
      k.unary!('gelu', tmp, out);
    },
  };
  return table[op];
}

export function benchElementwise(
  op: ElementwiseOp,
  size: number,
  o: BenchOpts,
  path: ElementwisePath = 'kernels',
): Promise<ElementwiseResult> {
  if (op === 'bias-gelu' && size % BIAS_ROW !== 0)
    throw new Error(`elementwise bias-gelu: --size ${size} must be a multiple of the bias row ${BIAS_ROW}`);
  return withBackend(o, (be) => {
    const a = view(be, [size], 1);
    const b = op === 'bias-gelu' ? view(be, [BIAS_ROW], 2) : view(be, [size], 2);
    const out = view(be, [size], null);
    const tmp = view(be, [path === 'kernels' && (op === 'swiglu' || op === 'bias-gelu') ? size : 1], null);
    const prog = ELEMENTWISE_PROGRAMS[op];
    const ins = prog.some((n) => n.op === 'input' && n.index === 1) ? [a, b] : [a];
    if (path === 'fused' && !be.kernels.fused)
      throw new Error(`elementwise --path fused: backend ${be.variant} has no fused kernel`);
    const f = path === 'fused' ? () => be.kernels.fused!(prog, ins, out) : elementwiseKernels(be, op, a, b, tmp, out);
    const t = timeIt(f, { minSeconds: o.minSeconds });
    return {
      bench: 'elementwise',
      op,
      path,
      size,
      threads: be.threads,
      variant: be.variant,
      gbps: +((ELEMENTWISE_BYTES[op] * size) / t.seconds / 1e9).toFixed(2),
      medianMs: ms(t),
      reps: t.reps,
      cpuMs: +(t.cpuSeconds * 1000).toFixed(3),
    };
  });
}
