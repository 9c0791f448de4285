// The WebAssembly backend's side of the fused elementwise primitive (src/backend/fused.ts): the node
// encoding asm/fused.ts interprets, 4 int32 per node [kind, op, a, b], with the unary / binary op codes
// of asm/elementwise.ts (the same kernels the separate unary / binary calls run).
import { validateProgram, type FusedProgram } from '../fused.js';
import { BINARY_CODES as BINARY, UNARY_CODES as UNARY } from './codes.js';

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
