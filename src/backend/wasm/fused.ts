// The WebAssembly backend's side of the fused elementwise primitive (src/backend/fused.ts): the node
// encoding asm/fused.ts interprets, 4 int32 per node [kind, op, a, b], with the unary / binary op codes
// of asm/elementwise.ts (the same kernels the separate unary / binary calls run).
import type { View } from '../backend.js';
import { fusedReads, validateProgram, type FusedBinaryOp, type FusedProgram, type FusedUnaryOp } from '../fused.js';
import { numel } from '../views.js';

/** asm/elementwise.ts unary codes */
const UNARY: { [K in FusedUnaryOp]: number } = {
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
};
/** asm/elementwise.ts binary codes */
const BINARY: { [K in FusedBinaryOp]: number } = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4 };

export interface WasmProgram {
  code: Int32Array;
  consts: Float32Array;
}

const cache = new WeakMap<FusedProgram, WasmProgram>();
/** validated program -> its encoding (cached per program object) */
export function encodeWasmProgram(program: FusedProgram, inputs: number): WasmProgram {
  validateProgram(program, inputs);
  const hit = cache.get(program);
  if (hit) return hit;
  const code = new Int32Array(4 * program.length);
  const consts: number[] = [];
  program.forEach((n, k) => {
    const row =
      n.op === 'input'
        ? [0, 0, n.index, 0]
        : n.op === 'const'
          ? [1, 0, consts.push(n.value) - 1, 0]
          : 'b' in n
            ? [3, BINARY[n.op], n.a, n.b]
            : [2, UNARY[n.op], n.a, 0];
    code.set(row, 4 * k);
  });
  const enc = { code, consts: new Float32Array(consts) };
  cache.set(program, enc);
  return enc;
}

/** each input's element count, or null when the kernel declines (the reference then reports the error) */
export function wasmFusedLens(inputs: readonly View[], out: View): number[] | null {
  try {
    fusedReads(inputs, out);
  } catch {
    return null;
  }
  return inputs.map((v) => numel(v.shape));
}
