// The fused elementwise primitive: a short program over a few float32 input buffers, evaluated in one
// pass into one output (docs/FUSION.md). A program is a list of nodes in SSA order; each node reads
// earlier nodes only, and the last node is the output. The op set is closed and small (tinygrad /
// ggml style): a backend implements `FUSED_UNARY` and `FUSED_BINARY` once and every chain the op
// layer builds (SwiGLU, bias + GELU, their backward passes, residual sums) runs in one kernel.
//
// Input broadcasting is by element count: an input of out's numel is read elementwise, one of 1
// element is a scalar, and one whose count R divides out's (R > 1) is a trailing block [.., R]
// repeated over the leading axes (a bias row, out index i reads element i % R).
import type { View } from './backend.js';
import { isContiguous, numel } from './views.js';

export const FUSED_UNARY = [
  'exp',
  'log',
  'tanh',
  'erf',
  'sigmoid',
  'silu',
  'gelu',
  'gelu_tanh',
  'neg',
  'sqrt',
  'rsqrt',
  'relu',
  'abs',
  'square',
  'reciprocal',
] as const;
export type FusedUnaryOp = (typeof FUSED_UNARY)[number];

export const FUSED_BINARY = ['add', 'sub', 'mul', 'div', 'maximum'] as const;
export type FusedBinaryOp = (typeof FUSED_BINARY)[number];

export type FusedNode =
  | { op: 'input'; index: number }
  | { op: 'const'; value: number }
  | { op: FusedUnaryOp; a: number }
  | { op: FusedBinaryOp; a: number; b: number };
export type FusedOp = FusedNode['op'];

/** a program: nodes in order, node k reads nodes < k, the last node is the output */
export type FusedProgram = readonly FusedNode[];

/** the most nodes a program may have (native kernels keep one tile per node on the stack) */
export const FUSED_MAX_NODES = 32;
/** the most input buffers of one program */
export const FUSED_MAX_INPUTS = 8;

/** every op's operand count; the compiler keeps it complete */
export const FUSED_ARITY: { [K in FusedOp]: 0 | 1 | 2 } = {
  input: 0,
  const: 0,
  exp: 1,
  log: 1,
  tanh: 1,
  erf: 1,
  sigmoid: 1,
  silu: 1,
  gelu: 1,
  gelu_tanh: 1,
  neg: 1,
  sqrt: 1,
  rsqrt: 1,
  relu: 1,
  abs: 1,
  square: 1,
  reciprocal: 1,
  add: 2,
  sub: 2,
  mul: 2,
  div: 2,
  maximum: 2,
};

/** Throws a clear error (naming the node) unless `program` is well formed for `inputs` buffers. */
export function validateProgram(program: FusedProgram, inputs: number): void {
  if (program.length === 0) throw new Error('fused: empty program');
  if (program.length > FUSED_MAX_NODES)
    throw new Error(`fused: program has ${program.length} nodes, at most ${FUSED_MAX_NODES}`);
  if (inputs > FUSED_MAX_INPUTS) throw new Error(`fused: ${inputs} inputs, at most ${FUSED_MAX_INPUTS}`);
  program.forEach((n, k) => {
    const arity = FUSED_ARITY[n.op];
    if (arity === undefined) throw new Error(`fused: node ${k} has unknown op ${JSON.stringify(n.op)}`);
    if (n.op === 'input' && !(Number.isInteger(n.index) && n.index >= 0 && n.index < inputs))
      throw new Error(`fused: node ${k} reads input ${n.index}, the program has ${inputs} inputs`);
    if (n.op === 'const' && typeof n.value !== 'number') throw new Error(`fused: node ${k} const is not a number`);
    const operands =
      arity === 2 ? [(n as { a: number }).a, (n as { b: number }).b] : arity === 1 ? [(n as { a: number }).a] : [];
    for (const a of operands)
      if (!(Number.isInteger(a) && a >= 0 && a < k))
        throw new Error(`fused: node ${k} (${n.op}) reads node ${a}; operands must be earlier nodes (0..${k - 1})`);
  });
}

/** how an input is read: 'full' (elementwise), 'scalar', or 'row' (block of R repeated) */
export type FusedRead = 'full' | 'scalar' | 'row';

/** each input's element count (n, 1 or a divisor of n), or null when a fast kernel must decline: the
 * reference kernel then raises the error fusedReads names */
export function fusedLens(inputs: readonly View[], out: View): number[] | null {
  try {
    fusedReads(inputs, out);
  } catch {
    return null;
  }
  return inputs.map((v) => numel(v.shape));
}

/** Checks inputs against out (float32, contiguous, element counts) and says how each is read. */
export function fusedReads(inputs: readonly View[], out: View): FusedRead[] {
  const n = numel(out.shape);
  if (out.buf.dtype !== 'float32') throw new Error(`fused: output must be float32, got ${out.buf.dtype}`);
  if (!isContiguous(out)) throw new Error('fused: output must be contiguous');
  return inputs.map((v, i) => {
    const m = numel(v.shape);
    if (v.buf.dtype !== 'float32') throw new Error(`fused: input ${i} must be float32, got ${v.buf.dtype}`);
    if (!isContiguous(v))
      throw new Error(`fused: input ${i} (shape [${v.shape.join(', ')}]) is not contiguous; materialise it first`);
    if (m === n) return 'full';
    if (m === 1) return 'scalar';
    if (m > 1 && n % m === 0) return 'row';
    throw new Error(`fused: input ${i} has ${m} elements, which neither equals nor divides the output's ${n}`);
  });
}
