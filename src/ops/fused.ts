// Fused elementwise ops: the model's hot elementwise chains (SwiGLU / GeGLU, bias + activation,
// residual sums) as one pass of the `fused` kernel (src/backend/fused.ts) forward, and their
// backward passes as fused programs too. Each op keeps its composed form beside it (MLX style): a
// backend without a `fused` kernel (its separate fast unary / binary kernels would beat the reference
// program), non-float32 inputs, or `setFusion(false)` run the composed ops instead.
import type { FusedNode, FusedProgram, FusedUnaryOp } from '../backend/fused.js';
import { FUSED_MAX_INPUTS, validateProgram } from '../backend/fused.js';
import { broadcastShapes, contiguousStrides, fmt, numel, type Shape } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { aliasView, allocOut, broadcastView, contig, kernel, record, sameBackend } from './core.js';
import { add, mul, unary } from './elementwise.js';
import { sumTo } from './reduce.js';

// ---- the primitive as an op ---------------------------------------------------------------------------

let fusionOn = true;
/** Turns the fused paths off (composed ops everywhere) or back on; for before / after measurements. */
export function setFusion(on: boolean): void {
  fusionOn = on;
}

/** whether these tensors take the fused kernel (else the op's composed form runs) */
export function fusable(...ts: Tensor[]): boolean {
  return fusionOn && ts[0]!.backend.kernels.fused !== undefined && ts.every((t) => t.dtype === 'float32');
}

/**
 * out = program(inputs) in one pass, without autograd. Inputs broadcast to a common shape (numpy
 * rules); each is read in place when it is contiguous and either full-size, one element, or a block of
 * trailing axes repeated over the leading ones; any other layout is first materialised (a copy).
 */
export function elementwise(program: FusedProgram, inputs: readonly Tensor[]): Tensor {
  if (inputs.length === 0) throw new Error('elementwise: at least one input tensor');
  sameBackend('elementwise', ...inputs);
  validateProgram(program, inputs.length);
  for (const [i, t] of inputs.entries())
    if (t.dtype !== 'float32') throw new Error(`elementwise: input ${i} has dtype ${t.dtype}, expected float32`);
  const shape = inputs.reduce<Shape>((s, t) => broadcastShapes(s, t.shape, 'elementwise'), []);
  return runProgram(program, inputs, shape);
}

function runProgram(program: FusedProgram, inputs: readonly Tensor[], shape: Shape): Tensor {
  const ready = inputs.map((t) => readable(t, shape));
  const out = allocOut(shape, 'float32', inputs[0]!);
  kernel(out, 'fused')(
    program,
    ready.map((t) => t.view()),
    out.view(),
  );
  ready.forEach((t, i) => t !== inputs[i] && t.dispose());
  return out;
}

/** t itself when the kernel reads it in place, else a contiguous (and, if needed, expanded) copy */
function readable(t: Tensor, shape: Shape): Tensor {
  const block = repeatedBlock(t);
  if (block) return block;
  const n = t.size;
  let k = t.ndim;
  while (k > 0 && t.shape[t.ndim - k] === 1) k--; // the shape without its leading 1s
  const trailing = k <= shape.length && t.shape.slice(t.ndim - k).every((d, i) => d === shape[shape.length - k + i]);
  if (n === numel(shape) || n === 1 || trailing) return contig(t);
  const out = allocOut(shape, t.dtype, t); // e.g. [B, 1, C] against [B, T, C]
  kernel(t, 'copy')(broadcastView(t, shape), out.view());
  return out;
}

/**
 * An expanded view (stride 0 on leading axes, e.g. the ones-gradient of a sum, or a bias broadcast by
 * expand) as an alias of the block it repeats, so the kernel reads the block instead of a full copy.
 */
function repeatedBlock(t: Tensor): Tensor | null {
  let k = 0;
  while (k < t.ndim && (t.strides[k] === 0 || t.shape[k] === 1)) k++;
  if (k === 0) return null;
  const tail = t.shape.slice(k);
  let s = 1;
  for (let d = t.ndim - 1; d >= k; d--) {
    if (t.shape[d] !== 1 && t.strides[d] !== s) return null;
    s *= t.shape[d]!;
  }
  return tail.length ? aliasView(t, tail, contiguousStrides(tail), t.offset) : aliasView(t, [1], [1], t.offset);
}

// ---- programs ------------------------------------------------------------------------------------------

/** builds a program node by node; each method returns the new node's index */
class Builder {
  readonly nodes: FusedNode[] = [];
  private push(n: FusedNode): number {
    return this.nodes.push(n) - 1;
  }
  input(index: number): number {
    return this.push({ op: 'input', index });
  }
  c(value: number): number {
    return this.push({ op: 'const', value });
  }
  u(op: FusedUnaryOp, a: number): number {
    return this.push({ op, a });
  }
  add(a: number, b: number): number {
    return this.push({ op: 'add', a, b });
  }
  sub(a: number, b: number): number {
    return this.push({ op: 'sub', a, b });
  }
  mul(a: number, b: number): number {
    return this.push({ op: 'mul', a, b });
  }
}

/** activations with a fused forward and derivative */
export type FusedActivation = 'silu' | 'gelu' | 'gelu_tanh';
export const FUSED_ACTIVATIONS: readonly FusedActivation[] = ['silu', 'gelu', 'gelu_tanh'];

const INV_SQRT_2PI = 0.3989422804014327;
const GELU_K = 0.7978845608028654; // sqrt(2 / pi)

/** act'(x) as program nodes over node x; the compiler keeps the table complete */
const DERIVS: { [A in FusedActivation]: (p: Builder, x: number) => number } = {
  // s (1 + x (1 - s)), s = sigmoid(x)
  silu: (p, x) => {
    const s = p.u('sigmoid', x);
    const one = p.c(1);
    return p.mul(s, p.add(one, p.mul(x, p.sub(one, s))));
  },
  // Phi(x) + x phi(x) = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
  gelu: (p, x) => {
    const Phi = p.mul(p.c(0.5), p.add(p.c(1), p.u('erf', p.mul(x, p.c(Math.SQRT1_2)))));
    const phi = p.mul(p.u('exp', p.mul(p.c(-0.5), p.u('square', x))), p.c(INV_SQRT_2PI));
    return p.add(Phi, p.mul(x, phi));
  },
  // 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 c x^2), t = tanh(k (x + c x^3))
  gelu_tanh: (p, x) => {
    const x2 = p.u('square', x);
    const t = p.u('tanh', p.mul(p.c(GELU_K), p.add(x, p.mul(p.c(0.044715), p.mul(x2, x)))));
    const one = p.c(1);
    const left = p.mul(p.c(0.5), p.add(one, t));
    const dInner = p.mul(p.c(GELU_K), p.add(one, p.mul(p.c(3 * 0.044715), x2)));
    return p.add(left, p.mul(p.mul(p.c(0.5), x), p.mul(p.sub(one, p.u('square', t)), dInner)));
  },
};

/** programs are built once per (kind, activation) and reused (the native backend caches their encoding) */
const programs = new Map<string, FusedProgram>();
function program(key: string, build: (p: Builder) => void): FusedProgram {
  let prog = programs.get(key);
  if (!prog) {
    const p = new Builder();
    build(p);
    programs.set(key, (prog = p.nodes));
  }
  return prog;
}

/** inputs (x, b?) -> act(x [+ b]) */
const actProgram = (act: FusedActivation, bias: boolean) =>
  program(`act ${act} ${bias}`, (p) => {
    const x = bias ? p.add(p.input(0), p.input(1)) : p.input(0);
    p.u(act, x);
  });
/** inputs (x, b?, g) -> g act'(x [+ b]) */
const actGradProgram = (act: FusedActivation, bias: boolean) =>
  program(`dact ${act} ${bias}`, (p) => {
    const x = bias ? p.add(p.input(0), p.input(1)) : p.input(0);
    const g = p.input(bias ? 2 : 1);
    p.mul(g, DERIVS[act](p, x));
  });
/** inputs (gate, up) -> act(gate) up */
const gluProgram = (act: FusedActivation) =>
  program(`glu ${act}`, (p) => {
    const gate = p.input(0);
    p.mul(p.u(act, gate), p.input(1));
  });
/** inputs (gate, up, g) -> g up act'(gate) */
const gluGateGradProgram = (act: FusedActivation) =>
  program(`dglu ${act}`, (p) => {
    const gate = p.input(0);
    p.mul(p.mul(p.input(2), p.input(1)), DERIVS[act](p, gate));
  });
/** inputs (x0 .. x{n-1}) -> their sum */
const sumProgram = (n: number) =>
  program(`sum ${n}`, (p) => {
    let s = p.input(0);
    for (let i = 1; i < n; i++) s = p.add(s, p.input(i));
  });

// ---- ops with gradients --------------------------------------------------------------------------------

/** act(gate) * up (SwiGLU with silu, GeGLU with gelu / gelu_tanh): one pass forward, one per gradient */
export function gluActivation(gate: Tensor, up: Tensor, act: FusedActivation): Tensor {
  sameBackend('gluActivation', gate, up);
  if (!fusable(gate, up)) return mul(unary(act, gate), up);
  const shape = broadcastShapes(gate.shape, up.shape, 'gluActivation');
  const y = runProgram(gluProgram(act), [gate, up], shape);
  return record(y, `glu_${act}`, [gate, up], (g) => [
    gate.requiresGrad ? sumTo(runProgram(gluGateGradProgram(act), [gate, up, g], shape), gate.shape) : null,
    up.requiresGrad ? sumTo(runProgram(gluProgram(act), [gate, g], shape), up.shape) : null,
  ]);
}

/** act(x + bias), bias [C] over x [..., C] (bias null: act(x)); the sum is never stored */
export function biasActivation(x: Tensor, bias: Tensor | null, act: FusedActivation): Tensor {
  const ins = bias ? [x, bias] : [x];
  sameBackend('biasActivation', ...ins);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== x.shape[x.ndim - 1]))
    throw new Error(`biasActivation: bias ${fmt(bias.shape)} does not match the last axis of x ${fmt(x.shape)}`);
  if (!fusable(...ins)) return unary(act, bias ? add(x, bias) : x);
  const y = runProgram(actProgram(act, !!bias), ins, x.shape);
  return record(y, `bias_${act}`, ins, (g) => {
    const dx = runProgram(actGradProgram(act, !!bias), [...ins, g], x.shape);
    const db = bias?.requiresGrad ? sumTo(dx, bias.shape) : null;
    return bias ? [x.requiresGrad ? dx : null, db] : [dx];
  });
}

/** x0 + x1 + ... (residual streams), broadcasting, in one pass */
export function addN(...xs: Tensor[]): Tensor {
  if (xs.length === 0) throw new Error('addN: at least one tensor');
  if (xs.length > FUSED_MAX_INPUTS)
    return add(addN(...xs.slice(0, FUSED_MAX_INPUTS)), addN(...xs.slice(FUSED_MAX_INPUTS)));
  sameBackend('addN', ...xs);
  if (xs.length === 1) return xs[0]!;
  if (!fusable(...xs)) return xs.slice(1).reduce((s, x) => add(s, x), xs[0]!);
  const shape = xs.reduce<Shape>((s, t) => broadcastShapes(s, t.shape, 'addN'), []);
  const y = runProgram(sumProgram(xs.length), xs, shape);
  return record(y, 'addN', xs, (g) => xs.map((x) => (x.requiresGrad ? sumTo(g, x.shape) : null)));
}
