// Op codes of asm/elementwise.ts's unary and binary kernels, shared by the separate kernel calls
// (backend.ts) and the fused program encoding (fused.ts). `satisfies` keeps every fused op covered.
import type { BinaryOp, UnaryOp } from '../backend.js';
import type { FusedBinaryOp, FusedUnaryOp } from '../fused.js';

export const UNARY_CODES = {
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
} satisfies { [K in FusedUnaryOp]: number } & Partial<Record<UnaryOp, number>>;

export const BINARY_CODES = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, minimum: 5 } satisfies {
  [K in FusedBinaryOp]: number;
} & Partial<Record<BinaryOp, number>>;
