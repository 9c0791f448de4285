// Reference kernel of the fused elementwise primitive (src/backend/fused.ts): node by node over whole
// arrays, each node's values stored in the buffers' own precision (float32, or float64 on the float64
// reference backend that gradient checks use) like the separate unary / binary kernels it replaces,
// so a program equals its composed reference ops exactly. The scalar functions are the reference
// unary / binary tables (handed in by reference/kernels.ts, which owns them).
import type { View } from '../backend.js';
import {
  fusedReads,
  validateProgram,
  type FusedBinaryOp,
  type FusedNode,
  type FusedProgram,
  type FusedUnaryOp,
} from '../fused.js';
import { numel } from '../views.js';

type Fn1 = (x: number) => number;
type Fn2 = (a: number, b: number) => number;
/** a node's value: a whole array, or one number (constants, scalar inputs and what derives only from them) */
type Value = Float32Array | number;
/** the storage of intermediate values and the rounding of scalar ones */
interface Prec {
  make: (n: number) => Float32Array;
  round: (x: number) => number;
}

export function makeFusedKernel(
  unaryFns: { readonly [K in FusedUnaryOp]: Fn1 },
  binaryFns: { readonly [K in FusedBinaryOp]: Fn2 },
): (program: FusedProgram, inputs: readonly View[], out: View) => void {
  return (program, inputs, out) => {
    validateProgram(program, inputs.length);
    const reads = fusedReads(inputs, out);
    const n = numel(out.shape);
    const o = out.buf.backend.view(out.buf) as Float32Array;
    const f64 = o instanceof Float64Array;
    const prec: Prec = {
      make: (len) => (f64 ? (new Float64Array(len) as unknown as Float32Array) : new Float32Array(len)),
      round: f64 ? (x) => x : Math.fround,
    };
    const vals: Value[] = [];
    for (const node of program) vals.push(evalNode(node, vals, inputs, reads, n, prec, unaryFns, binaryFns));
    const last = vals[vals.length - 1]!;
    if (typeof last === 'number') o.fill(last, out.offset, out.offset + n);
    else o.set(last, out.offset);
  };
}

function evalNode(
  node: FusedNode,
  vals: readonly Value[],
  inputs: readonly View[],
  reads: readonly string[],
  n: number,
  prec: Prec,
  unaryFns: { readonly [K in FusedUnaryOp]: Fn1 },
  binaryFns: { readonly [K in FusedBinaryOp]: Fn2 },
): Value {
  switch (node.op) {
    case 'input':
      return readInput(inputs[node.index]!, reads[node.index]!, n, prec);
    case 'const':
      return prec.round(node.value);
    case 'add':
    case 'sub':
    case 'mul':
    case 'div':
    case 'maximum':
      return map2(binaryFns[node.op], vals[node.a]!, vals[node.b]!, n, prec);
    default:
      return map1(unaryFns[node.op], vals[node.a]!, n, prec);
  }
}

/** the input as a full array (rows repeated) or its one value */
function readInput(v: View, read: string, n: number, prec: Prec): Value {
  const a = v.buf.backend.view(v.buf) as Float32Array;
  if (read === 'scalar') return a[v.offset]!;
  const r = numel(v.shape);
  if (read === 'full') return a.slice(v.offset, v.offset + n);
  const out = prec.make(n); // (n / R, R): the block repeated
  const row = a.subarray(v.offset, v.offset + r);
  for (let i = 0; i < n; i += r) out.set(row, i);
  return out;
}

function map1(f: Fn1, x: Value, n: number, prec: Prec): Value {
  if (typeof x === 'number') return prec.round(f(x));
  const out = prec.make(n);
  for (let i = 0; i < n; i++) out[i] = f(x[i]!);
  return out;
}

function map2(f: Fn2, a: Value, b: Value, n: number, prec: Prec): Value {
  if (typeof a === 'number' && typeof b === 'number') return prec.round(f(a, b));
  const out = prec.make(n);
  if (typeof a === 'number') for (let i = 0; i < n; i++) out[i] = f(a, (b as Float32Array)[i]!);
  else if (typeof b === 'number') for (let i = 0; i < n; i++) out[i] = f(a[i]!, b);
  else for (let i = 0; i < n; i++) out[i] = f(a[i]!, b[i]!);
  return out;
}
