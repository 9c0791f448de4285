// Contiguous float32 elementwise kernels. Memory-bound on large arrays: one pass, v128 loads.
import { EXPC, part, vexp, vexpNeg, vfma } from './common';

// unary op codes (host: src/backend/wasm/backend.ts UNARY_CODES)
const NEG = 0, ABS = 1, EXP = 2, SQRT = 3, RSQRT = 4, RELU = 5, SQUARE = 6, RECIP = 7, SIGMOID = 8, SILU = 9, TANH = 10,
  GELU_TANH = 11, LOG = 12, GELU = 13, ERF = 14;

@inline function vsigmoid(x: v128): v128 {
  const one = v128.load32_splat(EXPC, 48);
  return f32x4.div(one, f32x4.add(one, vexp(f32x4.neg(x))));
}
@inline function vtanh(x: v128): v128 {
  // tanh = sign(x) (1 - e) / (1 + e), e = exp(-2|x|): never overflows
  const one = v128.load32_splat(EXPC, 48);
  const ax = f32x4.abs(x);
  const e = vexp(f32x4.mul(f32x4.splat(-2), ax));
  const t = f32x4.div(f32x4.sub(one, e), f32x4.add(one, e));
  return v128.or(t, v128.and(x, i32x4.splat(0x80000000)));
}

/** erfc(a) for a >= 0: Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7), no cancellation in the tail */
@inline function verfcPos(a: v128): v128 {
  const one = v128.load32_splat(EXPC, 48);
  const t = f32x4.div(one, vfma(f32x4.splat(0.3275911), a, one));
  let p = vfma(f32x4.splat(1.061405429), t, f32x4.splat(-1.453152027));
  p = vfma(p, t, f32x4.splat(1.421413741));
  p = vfma(p, t, f32x4.splat(-0.284496736));
  p = vfma(p, t, f32x4.splat(0.254829592));
  return f32x4.mul(f32x4.mul(p, t), vexp(f32x4.neg(f32x4.mul(a, a))));
}

@inline function unaryV(op: i32, x: v128): v128 {
  switch (op) {
    case NEG: return f32x4.neg(x);
    case ABS: return f32x4.abs(x);
    case EXP: return vexp(x);
    case SQRT: return f32x4.sqrt(x);
    case RSQRT: return f32x4.div(v128.load32_splat(EXPC, 48), f32x4.sqrt(x));
    case RELU: return f32x4.pmax(f32x4.splat(0), x); // x > 0 ? x : 0 (NaN -> 0, like the reference)
    case SQUARE: return f32x4.mul(x, x);
    case RECIP: return f32x4.div(v128.load32_splat(EXPC, 48), x);
    case SIGMOID: return vsigmoid(x);
    case SILU: return f32x4.mul(x, vsigmoid(x));
    case TANH: return vtanh(x);
    case GELU_TANH: {
      // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
      const x3 = f32x4.mul(f32x4.mul(x, x), x);
      const inner = f32x4.mul(f32x4.splat(0.7978845608028654), f32x4.add(x, f32x4.mul(f32x4.splat(0.044715), x3)));
      return f32x4.mul(f32x4.mul(f32x4.splat(0.5), x), f32x4.add(f32x4.splat(1), vtanh(inner)));
    }
    case GELU: {
      // 0.5 x (1 + erf(x / sqrt 2)); 1 + erf(z) = erfc(-z) keeps precision for negative x
      const z = f32x4.mul(x, f32x4.splat(0.7071067811865476));
      const q = verfcPos(f32x4.abs(z));
      const onePlusErf = v128.bitselect(f32x4.sub(f32x4.splat(2), q), q, f32x4.ge(z, f32x4.splat(0)));
      return f32x4.mul(f32x4.mul(f32x4.splat(0.5), x), onePlusErf);
    }
    case ERF: {
      const one = v128.load32_splat(EXPC, 48);
      const e = f32x4.sub(one, verfcPos(f32x4.abs(x)));
      const big = v128.or(e, v128.and(x, i32x4.splat(0x80000000)));
      // |x| < 0.5: Maclaurin series (1 - erfc would lose the relative precision near 0)
      const x2 = f32x4.mul(x, x);
      let p = vfma(f32x4.splat(-1.0 / 1320), x2, f32x4.splat(1.0 / 216));
      p = vfma(p, x2, f32x4.splat(-1.0 / 42));
      p = vfma(p, x2, f32x4.splat(1.0 / 10));
      p = vfma(p, x2, f32x4.splat(-1.0 / 3));
      p = vfma(p, x2, one);
      const small = f32x4.mul(f32x4.mul(x, f32x4.splat(1.1283791670955126)), p);
      return v128.bitselect(small, big, f32x4.lt(f32x4.abs(x), f32x4.splat(0.5)));
    }
    default: {
      // LOG: scalar libm per lane
      return f32x4.replace_lane(f32x4.replace_lane(f32x4.replace_lane(f32x4.splat(Mathf.log(f32x4.extract_lane(x, 0))),
        1, Mathf.log(f32x4.extract_lane(x, 1))), 2, Mathf.log(f32x4.extract_lane(x, 2))), 3, Mathf.log(f32x4.extract_lane(x, 3)));
    }
  }
}

export function unaryRange(op: i32, x: usize, out: usize, i0: i32, i1: i32): void {
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, unaryV(op, v128.load(x + o)));
  }
  for (; i < i1; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, f32x4.extract_lane(unaryV(op, f32x4.splat(load<f32>(x + o))), 0));
  }
}

/** exp with the constants loaded once (faster than the generic path) */
export function expRange(x: usize, out: usize, i0: i32, i1: i32): void {
  const lo = v128.load32_splat(EXPC);
  const hi = v128.load32_splat(EXPC, 4);
  const log2e = v128.load32_splat(EXPC, 8);
  const magic = v128.load32_splat(EXPC, 12);
  const nc1 = f32x4.neg(v128.load32_splat(EXPC, 16));
  const nc2 = f32x4.neg(v128.load32_splat(EXPC, 20));
  const c2 = v128.load32_splat(EXPC, 88);
  const c3 = v128.load32_splat(EXPC, 92);
  const c4 = v128.load32_splat(EXPC, 96);
  const c5 = v128.load32_splat(EXPC, 100);
  const one = v128.load32_splat(EXPC, 48);
  const inf = v128.load32_splat(EXPC, 52);
  let i = i0;
  // two independent vectors per iteration: the polynomial is a long dependency chain
  for (; i + 8 <= i1; i += 8) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    const w = v128.load(x + o, 16);
    const y = vexpNeg(f32x4.pmin(v, hi), lo, log2e, magic, nc1, nc2, c2, c3, c4, c5, one);
    const z = vexpNeg(f32x4.pmin(w, hi), lo, log2e, magic, nc1, nc2, c2, c3, c4, c5, one);
    v128.store(out + o, v128.bitselect(inf, y, f32x4.gt(v, hi)));
    v128.store(out + o, v128.bitselect(inf, z, f32x4.gt(w, hi)), 16);
  }
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    const y = vexpNeg(f32x4.pmin(v, hi), lo, log2e, magic, nc1, nc2, c2, c3, c4, c5, one);
    v128.store(out + o, v128.bitselect(inf, y, f32x4.gt(v, hi)));
  }
  if (i < i1) unaryRange(EXP, x, out, i, i1);
}

/** out[i] = op(x[i]), i in [0, n); thread tid of nth takes a 16-element aligned share */
export function unary(tid: i32, nth: i32, op: i32, x: usize, out: usize, n: i32): void {
  const blocks = (n + 15) >> 4;
  const i0 = part(blocks, nth, tid) << 4;
  const i1 = min(n, part(blocks, nth, tid + 1) << 4);
  if (i0 >= i1) return;
  if (op == EXP) expRange(x, out, i0, i1);
  else unaryRange(op, x, out, i0, i1);
}

const ADD = 0, SUB = 1, MUL = 2, DIV = 3, MAX = 4, MIN = 5;

@inline function binV(op: i32, a: v128, b: v128): v128 {
  switch (op) {
    case ADD: return f32x4.add(a, b);
    case SUB: return f32x4.sub(a, b);
    case MUL: return f32x4.mul(a, b);
    case DIV: return f32x4.div(a, b);
    case MAX: return f32x4.max(a, b);
    default: return f32x4.min(a, b);
  }
}
@inline function binS(op: i32, a: f32, b: f32): f32 {
  return f32x4.extract_lane(binV(op, f32x4.splat(a), f32x4.splat(b)), 0);
}

// modes: 0 same shape, 1 b scalar, 2 a scalar, 3 b is one row of rowLen repeated, 4 a is that row
export function binRange(op: i32, mode: i32, a: usize, b: usize, out: usize, i0: i32, i1: i32): void {
  let i = i0;
  if (mode == 0) {
    for (; i + 4 <= i1; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, binV(op, v128.load(a + o), v128.load(b + o)));
    }
    for (; i < i1; i++) {
      const o = <usize>i << 2;
      store<f32>(out + o, binS(op, load<f32>(a + o), load<f32>(b + o)));
    }
  } else if (mode == 1) {
    const bs = load<f32>(b);
    const bv = f32x4.splat(bs);
    for (; i + 4 <= i1; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, binV(op, v128.load(a + o), bv));
    }
    for (; i < i1; i++) store<f32>(out + (<usize>i << 2), binS(op, load<f32>(a + (<usize>i << 2)), bs));
  } else {
    const as = load<f32>(a);
    const av = f32x4.splat(as);
    for (; i + 4 <= i1; i += 4) {
      const o = <usize>i << 2;
      v128.store(out + o, binV(op, av, v128.load(b + o)));
    }
    for (; i < i1; i++) store<f32>(out + (<usize>i << 2), binS(op, as, load<f32>(b + (<usize>i << 2))));
  }
}

export function binary(tid: i32, nth: i32, op: i32, mode: i32, a: usize, b: usize, out: usize, n: i32, rowLen: i32): void {
  if (mode <= 2) {
    const blocks = (n + 15) >> 4;
    const i0 = part(blocks, nth, tid) << 4;
    const i1 = min(n, part(blocks, nth, tid + 1) << 4);
    if (i0 < i1) binRange(op, mode, a, b, out, i0, i1);
    return;
  }
  const rows = n / rowLen;
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  const rb = <usize>rowLen << 2;
  for (let r = r0; r < r1; r++) {
    const off = <usize>r * rb;
    if (mode == 3) binRange(op, 0, a + off, b, out + off, 0, rowLen);
    else binRange(op, 0, a, b + off, out + off, 0, rowLen);
  }
}


@inline function unaryGradV(op: i32, x: v128, y: v128, g: v128): v128 {
  const one = v128.load32_splat(EXPC, 48);
  switch (op) {
    case NEG: return f32x4.neg(g);
    case EXP: return f32x4.mul(g, y);
    case SQRT: return f32x4.div(f32x4.mul(f32x4.splat(0.5), g), y);
    case RSQRT: return f32x4.mul(g, f32x4.mul(f32x4.splat(-0.5), f32x4.mul(y, f32x4.mul(y, y))));
    case RELU: return v128.and(g, f32x4.gt(x, f32x4.splat(0)));
    case SQUARE: return f32x4.mul(g, f32x4.add(x, x));
    case RECIP: return f32x4.neg(f32x4.mul(g, f32x4.mul(y, y)));
    case SIGMOID: return f32x4.mul(g, f32x4.mul(y, f32x4.sub(one, y)));
    case SILU: {
      const s = vsigmoid(x);
      return f32x4.mul(g, f32x4.mul(s, f32x4.add(one, f32x4.mul(x, f32x4.sub(one, s)))));
    }
    case TANH: return f32x4.mul(g, f32x4.sub(one, f32x4.mul(y, y)));
    case GELU_TANH: {
      const k = f32x4.splat(0.7978845608028654);
      const c = f32x4.splat(0.044715);
      const x2 = f32x4.mul(x, x);
      const t = vtanh(f32x4.mul(k, f32x4.add(x, f32x4.mul(c, f32x4.mul(x2, x)))));
      const half = f32x4.splat(0.5);
      const a = f32x4.mul(half, f32x4.add(one, t));
      const b = f32x4.mul(f32x4.mul(f32x4.mul(half, x), f32x4.sub(one, f32x4.mul(t, t))),
        f32x4.mul(k, f32x4.add(one, f32x4.mul(f32x4.splat(3 * 0.044715), x2))));
      return f32x4.mul(g, f32x4.add(a, b));
    }
    case GELU: {
      // Phi(x) + x phi(x), with Phi(x) = y / x away from 0
      const c = f32x4.splat(0.3989422804014327);
      const phi = f32x4.mul(vexp(f32x4.mul(f32x4.splat(-0.5), f32x4.mul(x, x))), c);
      const big = f32x4.gt(f32x4.abs(x), f32x4.splat(1e-3));
      const Phi = v128.bitselect(f32x4.div(y, x), f32x4.add(f32x4.splat(0.5), f32x4.mul(x, c)), big);
      return f32x4.mul(g, f32x4.add(Phi, f32x4.mul(x, phi)));
    }
    default: return f32x4.div(g, x); // LOG
  }
}

/** out = dy * op'(x) (y = op(x)); contiguous float32; 16-element aligned shares per thread */
export function unaryBackward(tid: i32, nth: i32, op: i32, x: usize, y: usize, dy: usize, out: usize, n: i32): void {
  const blocks = (n + 15) >> 4;
  const i0 = part(blocks, nth, tid) << 4;
  const i1 = min(n, part(blocks, nth, tid + 1) << 4);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, unaryGradV(op, v128.load(x + o), v128.load(y + o), v128.load(dy + o)));
  }
  for (; i < i1; i++) {
    const o = <usize>i << 2;
    const r = unaryGradV(op, f32x4.splat(load<f32>(x + o)), f32x4.splat(load<f32>(y + o)), f32x4.splat(load<f32>(dy + o)));
    store<f32>(out + o, f32x4.extract_lane(r, 0));
  }
}
