// The native backend's side of the fused elementwise primitive (src/backend/fused.ts): op codes of
// native/fused.inc and the encoding the addon takes ([op, a, b] per node, constants apart).
import type { View } from '../backend.js';
import { FUSED_ARITY, validateProgram, type FusedOp, type FusedProgram } from '../fused.js';

/** enum FusedCode in native/fused.inc; binary ops are the codes from `add` on */
export const FUSED_CODES: { [K in FusedOp]: number } = {
  input: 0,
  const: 1,
  exp: 2,
  log: 3,
  tanh: 4,
  erf: 5,
  sigmoid: 6,
  silu: 7,
  gelu: 8,
  gelu_tanh: 9,
  neg: 10,
  sqrt: 11,
  rsqrt: 12,
  relu: 13,
  abs: 14,
  square: 15,
  reciprocal: 16,
  add: 17,
  sub: 18,
  mul: 19,
  div: 20,
  maximum: 21,
};

export interface EncodedProgram {
  code: Int32Array;
  consts: Float32Array;
}

/** validated program -> the addon's arrays (encodings are cached per program object) */
const cache = new WeakMap<FusedProgram, EncodedProgram>();
export function encodeProgram(program: FusedProgram, inputs: number): EncodedProgram {
  validateProgram(program, inputs);
  const hit = cache.get(program);
  if (hit) return hit;
  const code = new Int32Array(3 * program.length);
  const consts: number[] = [];
  program.forEach((n, k) => {
    code[3 * k] = FUSED_CODES[n.op];
    if (n.op === 'input') code[3 * k + 1] = n.index;
    else if (n.op === 'const') code[3 * k + 1] = consts.push(n.value) - 1;
    else {
      code[3 * k + 1] = n.a;
      if (FUSED_ARITY[n.op] === 2) code[3 * k + 2] = (n as { b: number }).b;
    }
  });
  const enc = { code, consts: new Float32Array(consts) };
  cache.set(program, enc);
  return enc;
}

