// Reference kernels: the simple, obviously-correct path every fast kernel is tested against.
// They reach any host-visible buffer through `backend.view()`, so a fast backend can fall back
// to them for anything it does not implement. Scratch space is Float64Array so the same code
// serves the float64 gradient-check backend.
import type {
  AdamWParams,
  AnyArray,
  AttentionParams,
  BinaryOp,
  CrossEntropyParams,
  KernelTable,
  NormParams,
  ReduceOp,
  ScanParams,
  UnaryOp,
  View,
} from '../backend.js';
import { encodeAs, f16ToF32, readAs } from '../dtype.js';
import { erf } from './math.js';
import { quantMatmul } from './quant.js';
import { pagedAttention, pagedWrite } from './paged.js';
import { ropeHeads } from './rope.js';
import { makeFusedKernel } from './fused.js';

function arr(v: View): AnyArray {
  const a = v.buf.backend.view(v.buf);
  if (!a) throw new Error(`reference kernels: backend '${v.buf.backend.name}' has no host-visible memory`);
  return a;
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Calls f(outIndex, offA, offB, offC) for every element of `shape`, walking up to three strided views. */
function walk(
  shape: readonly number[],
  views: readonly View[],
  f: (i: number, a: number, b: number, c: number) => void,
): void {
  const nd = shape.length;
  const n = numel(shape);
  if (n === 0) return;
  const st = views.map((v) => v.strides);
  const offs = views.map((v) => v.offset);
  while (offs.length < 3) offs.push(0);
  const idx = new Array<number>(nd).fill(0);
  const inner = nd === 0 ? 1 : shape[nd - 1]!;
  const sIn = views.map((v) => (nd === 0 ? 0 : v.strides[nd - 1]!));
  while (sIn.length < 3) sIn.push(0);
  for (let i = 0; i < n; i += inner) {
    let a = offs[0]!;
    let b = offs[1]!;
    let c = offs[2]!;
    for (let k = 0; k < inner; k++) {
      f(i + k, a, b, c);
      a += sIn[0]!;
      b += sIn[1]!;
      c += sIn[2]!;
    }
    // advance the outer multi-index (odometer), updating offsets
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]!++;
      for (let v = 0; v < st.length; v++) offs[v]! += st[v]![d]!;
      if (idx[d]! < shape[d]!) break;
      for (let v = 0; v < st.length; v++) offs[v]! -= st[v]![d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

export const UNARY_FNS: { [K in UnaryOp]: (x: number) => number } = {
  neg: (x) => -x,
  abs: Math.abs,
  exp: Math.exp,
  log: Math.log,
  sqrt: Math.sqrt,
  rsqrt: (x) => 1 / Math.sqrt(x),
  tanh: Math.tanh,
  sigmoid: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  relu: (x) => (x > 0 ? x : 0),
  gelu: (x) => 0.5 * x * (1 + erf(x / Math.SQRT2)),
  gelu_tanh: (x) => 0.5 * x * (1 + Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))),
  silu: (x) => x / (1 + Math.exp(-x)),
  softplus: (x) => (x > 20 ? x : Math.log1p(Math.exp(x))),
  sin: Math.sin,
  cos: Math.cos,
  sign: Math.sign,
  square: (x) => x * x,
  reciprocal: (x) => 1 / x,
  erf,
  log1p: Math.log1p,
  floor: Math.floor,
  not: (x) => (x ? 0 : 1),
};

const INV_SQRT_2PI = 0.3989422804014327;

/** d op(x) / dx given x and y = op(x); null for ops without a gradient */
export const UNARY_DERIVS: { [K in UnaryOp]: ((x: number, y: number) => number) | null } = {
  neg: () => -1,
  abs: (x) => Math.sign(x),
  exp: (_x, y) => y,
  log: (x) => 1 / x,
  sqrt: (_x, y) => 0.5 / y,
  rsqrt: (_x, y) => -0.5 * y * y * y,
  tanh: (_x, y) => 1 - y * y,
  sigmoid: (_x, y) => y * (1 - y),
  relu: (x) => (x > 0 ? 1 : 0),
  // Φ(x) + x φ(x), with Φ(x) = y / x away from 0 (no erf needed)
  gelu: (x, y) => (Math.abs(x) > 1e-3 ? y / x : 0.5 + x * INV_SQRT_2PI) + x * Math.exp(-0.5 * x * x) * INV_SQRT_2PI,
  gelu_tanh: (x) => {
    const t = Math.tanh(0.7978845608028654 * (x + 0.044715 * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * x * x);
  },
  silu: (x) => {
    const s = x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
    return s * (1 + x * (1 - s));
  },
  softplus: (x) => (x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x))),
  sin: (x) => Math.cos(x),
  cos: (x) => -Math.sin(x),
  sign: null,
  square: (x) => 2 * x,
  reciprocal: (_x, y) => -y * y,
  erf: (x) => 1.1283791670955126 * Math.exp(-x * x),
  log1p: (x) => 1 / (1 + x),
  floor: null,
  not: null,
};

function unaryBackward(op: UnaryOp, x: View, y: View, dy: View, out: View): void {
  const d = UNARY_DERIVS[op];
  if (!d) throw new Error(`unaryBackward: '${op}' has no derivative`);
  const [xa, ya, ga, oa] = [arr(x), arr(y), arr(dy), arr(out)];
  const n = numel(out.shape);
  for (let i = 0; i < n; i++) oa[out.offset + i] = ga[dy.offset + i]! * d(xa[x.offset + i]!, ya[y.offset + i]!);
}

export const BINARY_FNS: { [K in BinaryOp]: (a: number, b: number) => number } = {
  add: (a, b) => a + b,
  sub: (a, b) => a - b,
  mul: (a, b) => a * b,
  div: (a, b) => a / b,
  pow: Math.pow,
  maximum: (a, b) => (a > b || Number.isNaN(a) ? a : b),
  minimum: (a, b) => (a < b || Number.isNaN(a) ? a : b),
  eq: (a, b) => (a === b ? 1 : 0),
  ne: (a, b) => (a !== b ? 1 : 0),
  lt: (a, b) => (a < b ? 1 : 0),
  le: (a, b) => (a <= b ? 1 : 0),
  gt: (a, b) => (a > b ? 1 : 0),
  ge: (a, b) => (a >= b ? 1 : 0),
  and: (a, b) => (a && b ? 1 : 0),
  or: (a, b) => (a || b ? 1 : 0),
};

/** calls f(offX, offOut, inner) for every innermost row of `shape` (offsets walk both strided views) */
function rows(shape: readonly number[], x: View, out: View, f: (a: number, o: number, inner: number) => void): void {
  const nd = shape.length;
  const n = numel(shape);
  if (n === 0) return;
  const inner = nd === 0 ? 1 : shape[nd - 1]!;
  const idx = new Array<number>(nd).fill(0);
  let a = x.offset;
  let o = out.offset;
  for (let i = 0; i < n; i += inner) {
    f(a, o, inner);
    for (let d = nd - 2; d >= 0; d--) {
      idx[d]!++;
      a += x.strides[d]!;
      o += out.strides[d]!;
      if (idx[d]! < shape[d]!) break;
      a -= x.strides[d]! * shape[d]!;
      o -= out.strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

let F16_TABLE: Float32Array | null = null;
/** all 65536 float16 values decoded once (256 KiB): decoding becomes one table load */
function f16Table(): Float32Array {
  if (!F16_TABLE) {
    F16_TABLE = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) F16_TABLE[h] = f16ToF32(h);
  }
  return F16_TABLE;
}

/** float32 bit pattern -> float16 bits, round to nearest even (same rules as dtype.ts f32ToF16) */
function f32BitsToF16(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 112; // rebias 127 -> 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const rest = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && h & 1)) h++;
    return sign | h;
  }
  const rest = mant & 0x1fff;
  let h = sign | (e << 10) | (mant >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && h & 1)) h++;
  return h;
}

/** contiguous float32 <-> bfloat16 / float16 conversion in tight loops (mixed-precision casts) */
function convertContiguous(
  xa: AnyArray,
  xo: number,
  xd: string,
  oa: AnyArray,
  oo: number,
  od: string,
  n: number,
): boolean {
  if (!(xa instanceof Float32Array || oa instanceof Float32Array)) return false;
  if (xd === 'float32' && od === 'bfloat16') {
    const bits = new Uint32Array(xa.buffer, xa.byteOffset + xo * 4, n);
    for (let i = 0; i < n; i++) {
      const b = bits[i]!;
      oa[oo + i] =
        (b & 0x7fffffff) > 0x7f800000
          ? ((b >>> 16) | 0x40) & 0xffff
          : ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
    }
    return true;
  }
  if (xd === 'bfloat16' && od === 'float32') {
    const bits = new Uint32Array(oa.buffer, oa.byteOffset + oo * 4, n);
    for (let i = 0; i < n; i++) bits[i] = xa[xo + i]! << 16;
    return true;
  }
  if (xd === 'float32' && od === 'float16') {
    const bits = new Uint32Array(xa.buffer, xa.byteOffset + xo * 4, n);
    for (let i = 0; i < n; i++) oa[oo + i] = f32BitsToF16(bits[i]!);
    return true;
  }
  if (xd === 'float16' && od === 'float32') {
    const table = f16Table();
    for (let i = 0; i < n; i++) oa[oo + i] = table[xa[xo + i]!]!;
    return true;
  }
  return false;
}

function isDense(v: View): boolean {
  let acc = 1;
  for (let i = v.shape.length - 1; i >= 0; i--) {
    if (v.shape[i] !== 1 && v.strides[i] !== acc) return false;
    acc *= v.shape[i]!;
  }
  return true;
}

function copy(x: View, out: View): void {
  const xa = arr(x);
  const oa = arr(out);
  const xd = x.buf.dtype;
  const od = out.buf.dtype;
  if (
    xd !== od &&
    isDense(x) &&
    isDense(out) &&
    convertContiguous(xa, x.offset, xd, oa, out.offset, od, numel(x.shape))
  )
    return;
  const nd = x.shape.length;
  const unitRows = nd > 0 && x.strides[nd - 1] === 1 && out.strides[nd - 1] === 1;
  if (xd === od && unitRows && xa.constructor === oa.constructor) {
    rows(x.shape, x, out, (a, o, inner) => (oa as Float32Array).set((xa as Float32Array).subarray(a, a + inner), o));
  } else if (
    xd === od ||
    (xd !== 'float16' && xd !== 'bfloat16' && od !== 'float16' && od !== 'bfloat16' && od !== 'bool')
  ) {
    walk(x.shape, [x, out], (_i, a, o) => {
      oa[o] = xa[a]!;
    });
  } else {
    walk(x.shape, [x, out], (_i, a, o) => {
      oa[o] = encodeAs(od, readAs(xd, xa, a));
    });
  }
}

function unary(op: UnaryOp, x: View, out: View): void {
  const f = UNARY_FNS[op];
  const xa = arr(x);
  const oa = arr(out);
  const o0 = out.offset;
  walk(x.shape, [x], (i, a) => {
    oa[o0 + i] = f(xa[a]!);
  });
}

function binary(op: BinaryOp, a: View, b: View, out: View): void {
  const f = BINARY_FNS[op];
  const aa = arr(a);
  const ba = arr(b);
  const oa = arr(out);
  const o0 = out.offset;
  walk(out.shape, [a, b], (i, ia, ib) => {
    oa[o0 + i] = f(aa[ia]!, ba[ib]!);
  });
}

function where(c: View, a: View, b: View, out: View): void {
  const ca = arr(c);
  const aa = arr(a);
  const ba = arr(b);
  const oa = arr(out);
  const o0 = out.offset;
  walk(out.shape, [c, a, b], (i, ic, ia, ib) => {
    oa[o0 + i] = ca[ic] ? aa[ia]! : ba[ib]!;
  });
}

function reduce(op: ReduceOp, x: View, outer: number, n: number, inner: number, out: View): void {
  if (n === 0 && op !== 'sum') throw new Error(`reduce ${op}: cannot reduce an empty axis`);
  const xa = arr(x);
  const oa = arr(out);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = x.offset + o * n * inner + i;
      let acc = op === 'sum' ? 0 : xa[base]!;
      let best = 0;
      for (let k = op === 'sum' ? 0 : 1; k < n; k++) {
        const v = xa[base + k * inner]!;
        if (op === 'sum') acc += v;
        else if (
          op === 'max' || op === 'argmax'
            ? v > acc || (Number.isNaN(v) && !Number.isNaN(acc))
            : v < acc || (Number.isNaN(v) && !Number.isNaN(acc))
        ) {
          acc = v;
          best = k;
        }
      }
      oa[out.offset + o * inner + i] = op === 'argmax' || op === 'argmin' ? best : acc;
    }
  }
}

function matmul(
  a: View,
  b: View,
  out: View,
  p: {
    batch: number;
    M: number;
    N: number;
    K: number;
    transA: boolean;
    transB: boolean;
    strideA: number;
    strideB: number;
  },
): void {
  const { batch, M, N, K, transA, transB, strideA, strideB } = p;
  const aa = arr(a);
  const ba = arr(b);
  const oa = arr(out);
  const row = new Float64Array(N);
  for (let z = 0; z < batch; z++) {
    const ao = a.offset + z * strideA;
    const bo = b.offset + z * strideB;
    const oo = out.offset + z * M * N;
    for (let m = 0; m < M; m++) {
      row.fill(0);
      for (let k = 0; k < K; k++) {
        const av = aa[transA ? ao + k * M + m : ao + m * K + k]!;
        if (av === 0) continue;
        if (transB) for (let n = 0; n < N; n++) row[n]! += av * ba[bo + n * K + k]!;
        else for (let n = 0; n < N; n++) row[n]! += av * ba[bo + k * N + n]!;
      }
      for (let n = 0; n < N; n++) oa[oo + m * N + n] = row[n]!;
    }
  }
}

function softmax(x: View, out: View, rows: number, n: number, log: boolean): void {
  const xa = arr(x);
  const oa = arr(out);
  for (let r = 0; r < rows; r++) {
    const xo = x.offset + r * n;
    const oo = out.offset + r * n;
    let mx = -Infinity;
    for (let i = 0; i < n; i++) mx = Math.max(mx, xa[xo + i]!);
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.exp(xa[xo + i]! - mx);
    const lse = mx + Math.log(s);
    for (let i = 0; i < n; i++) oa[oo + i] = log ? xa[xo + i]! - lse : Math.exp(xa[xo + i]! - lse);
  }
}

function softmaxBackward(y: View, dy: View, dx: View, rows: number, n: number, log: boolean): void {
  const ya = arr(y);
  const ga = arr(dy);
  const oa = arr(dx);
  for (let r = 0; r < rows; r++) {
    const yo = y.offset + r * n;
    const go = dy.offset + r * n;
    const oo = dx.offset + r * n;
    let s = 0;
    for (let i = 0; i < n; i++) s += log ? ga[go + i]! : ga[go + i]! * ya[yo + i]!;
    for (let i = 0; i < n; i++) {
      oa[oo + i] = log ? ga[go + i]! - Math.exp(ya[yo + i]!) * s : ya[yo + i]! * (ga[go + i]! - s);
    }
  }
}

function layerNorm(x: View, w: View | null, b: View | null, out: View, mean: View, rstd: View, p: NormParams): void {
  const { rows, n, eps } = p;
  const xa = arr(x);
  const oa = arr(out);
  const wa = w && arr(w);
  const ba = b && arr(b);
  const ma = arr(mean);
  const ra = arr(rstd);
  for (let r = 0; r < rows; r++) {
    const xo = x.offset + r * n;
    let mu = 0;
    for (let i = 0; i < n; i++) mu += xa[xo + i]!;
    mu /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (xa[xo + i]! - mu) ** 2;
    const rs = 1 / Math.sqrt(v / n + eps);
    ma[mean.offset + r] = mu;
    ra[rstd.offset + r] = rs;
    for (let i = 0; i < n; i++) {
      const xh = (xa[xo + i]! - mu) * rs;
      oa[out.offset + r * n + i] = xh * (wa ? wa[w!.offset + i]! : 1) + (ba ? ba[b!.offset + i]! : 0);
    }
  }
}

function layerNormBackward(
  x: View,
  w: View | null,
  mean: View,
  rstd: View,
  dy: View,
  dx: View,
  dw: View | null,
  db: View | null,
  p: NormParams,
): void {
  const { rows, n } = p;
  const xa = arr(x);
  const wa = w && arr(w);
  const ma = arr(mean);
  const ra = arr(rstd);
  const ga = arr(dy);
  const dxa = arr(dx);
  const dwAcc = new Float64Array(n);
  const dbAcc = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const mu = ma[mean.offset + r]!;
    const rs = ra[rstd.offset + r]!;
    let s1 = 0;
    let s2 = 0;
    for (let i = 0; i < n; i++) {
      const xh = (xa[x.offset + r * n + i]! - mu) * rs;
      const g = ga[dy.offset + r * n + i]!;
      const gx = g * (wa ? wa[w!.offset + i]! : 1);
      s1 += gx;
      s2 += gx * xh;
      dwAcc[i]! += g * xh;
      dbAcc[i]! += g;
    }
    s1 /= n;
    s2 /= n;
    for (let i = 0; i < n; i++) {
      const xh = (xa[x.offset + r * n + i]! - mu) * rs;
      const gx = ga[dy.offset + r * n + i]! * (wa ? wa[w!.offset + i]! : 1);
      dxa[dx.offset + r * n + i] = rs * (gx - s1 - xh * s2);
    }
  }
  if (dw) arr(dw).set(dwAcc as unknown as Float32Array, dw.offset);
  if (db) arr(db).set(dbAcc as unknown as Float32Array, db.offset);
}

function rmsNorm(x: View, w: View | null, out: View, rstd: View, p: NormParams): void {
  const { rows, n, eps } = p;
  const xa = arr(x);
  const oa = arr(out);
  const wa = w && arr(w);
  const ra = arr(rstd);
  for (let r = 0; r < rows; r++) {
    const xo = x.offset + r * n;
    let ss = 0;
    for (let i = 0; i < n; i++) ss += xa[xo + i]! ** 2;
    const rs = 1 / Math.sqrt(ss / n + eps);
    ra[rstd.offset + r] = rs;
    for (let i = 0; i < n; i++) oa[out.offset + r * n + i] = xa[xo + i]! * rs * (wa ? wa[w!.offset + i]! : 1);
  }
}

function rmsNormBackward(
  x: View,
  w: View | null,
  rstd: View,
  dy: View,
  dx: View,
  dw: View | null,
  p: NormParams,
): void {
  const { rows, n } = p;
  const xa = arr(x);
  const wa = w && arr(w);
  const ra = arr(rstd);
  const ga = arr(dy);
  const dxa = arr(dx);
  const dwAcc = new Float64Array(n);
  for (let r = 0; r < rows; r++) {
    const rs = ra[rstd.offset + r]!;
    let s = 0;
    for (let i = 0; i < n; i++) {
      const xh = xa[x.offset + r * n + i]! * rs;
      const g = ga[dy.offset + r * n + i]!;
      s += g * (wa ? wa[w!.offset + i]! : 1) * xh;
      dwAcc[i]! += g * xh;
    }
    s /= n;
    for (let i = 0; i < n; i++) {
      const xh = xa[x.offset + r * n + i]! * rs;
      const gx = ga[dy.offset + r * n + i]! * (wa ? wa[w!.offset + i]! : 1);
      dxa[dx.offset + r * n + i] = rs * (gx - xh * s);
    }
  }
  if (dw) arr(dw).set(dwAcc as unknown as Float32Array, dw.offset);
}

/** which keys query row i of batch b may see */
function attnVisible(p: AttentionParams, kvLen: AnyArray | null, b: number, i: number, j: number): boolean {
  const pos = i + (p.Tk - p.Tq);
  if (p.causal && j > pos) return false;
  if (p.window > 0 && pos - j >= p.window) return false;
  if (kvLen && j >= kvLen[p.kvLen!.offset + b]!) return false;
  return true;
}

function biasAt(bias: View | null, ba: AnyArray | null, b: number, h: number, i: number, j: number): number {
  if (!bias || !ba) return 0;
  const s = bias.strides;
  return ba[bias.offset + b * s[0]! + h * s[1]! + i * s[2]! + j * s[3]!]!;
}

/** scores of one query row, masked entries = -Infinity */
function attnScores(
  p: AttentionParams,
  qa: AnyArray,
  ka: AnyArray,
  q: View,
  k: View,
  kvl: AnyArray | null,
  ba: AnyArray | null,
  b: number,
  h: number,
  i: number,
  s: Float64Array,
  capGrad: Float64Array | null = null,
): void {
  const g = (p.H / p.Hkv) | 0;
  const qo = q.offset + ((b * p.H + h) * p.Tq + i) * p.Dk;
  const cap = p.softcap ?? 0;
  for (let j = 0; j < p.Tk; j++) {
    if (!attnVisible(p, kvl, b, i, j)) {
      s[j] = -Infinity;
      continue;
    }
    const ko = k.offset + ((b * p.Hkv + ((h / g) | 0)) * p.Tk + j) * p.Dk;
    let d = 0;
    for (let c = 0; c < p.Dk; c++) d += qa[qo + c]! * ka[ko + c]!;
    d *= p.scale;
    if (cap > 0) {
      // soft-cap: cap * tanh(d / cap); its derivative 1 - tanh² feeds the backward pass
      const t = Math.tanh(d / cap);
      d = cap * t;
      if (capGrad) capGrad[j] = 1 - t * t;
    }
    s[j] = d + biasAt(p.bias, ba, b, h, i, j);
  }
}

function attention(q: View, k: View, v: View, out: View, lse: View, p: AttentionParams): void {
  const [qa, ka, va, oa, la] = [arr(q), arr(k), arr(v), arr(out), arr(lse)];
  const kvl = p.kvLen ? arr(p.kvLen) : null;
  const ba = p.bias ? arr(p.bias) : null;
  const g = (p.H / p.Hkv) | 0;
  const s = new Float64Array(p.Tk);
  const acc = new Float64Array(p.Dv);
  for (let b = 0; b < p.B; b++) {
    for (let h = 0; h < p.H; h++) {
      for (let i = 0; i < p.Tq; i++) {
        attnScores(p, qa, ka, q, k, kvl, ba, b, h, i, s);
        let mx = -Infinity;
        for (let j = 0; j < p.Tk; j++) mx = Math.max(mx, s[j]!);
        acc.fill(0);
        let sum = 0;
        if (mx !== -Infinity) {
          for (let j = 0; j < p.Tk; j++) {
            const e = Math.exp(s[j]! - mx);
            if (e === 0) continue;
            sum += e;
            const vo = v.offset + ((b * p.Hkv + ((h / g) | 0)) * p.Tk + j) * p.Dv;
            for (let c = 0; c < p.Dv; c++) acc[c]! += e * va[vo + c]!;
          }
        }
        const row = (b * p.H + h) * p.Tq + i;
        for (let c = 0; c < p.Dv; c++) oa[out.offset + row * p.Dv + c] = sum > 0 ? acc[c]! / sum : 0;
        la[lse.offset + row] = sum > 0 ? mx + Math.log(sum) : -Infinity;
      }
    }
  }
}

function attentionBackward(
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
  const [qa, ka, va, oa, la, ga] = [arr(q), arr(k), arr(v), arr(out), arr(lse), arr(dout)];
  const [dqa, dka, dva] = [arr(dq), arr(dk), arr(dv)];
  const kvl = p.kvLen ? arr(p.kvLen) : null;
  const ba = p.bias ? arr(p.bias) : null;
  const g = (p.H / p.Hkv) | 0;
  const s = new Float64Array(p.Tk);
  const dK = new Float64Array(p.B * p.Hkv * p.Tk * p.Dk);
  const dV = new Float64Array(p.B * p.Hkv * p.Tk * p.Dv);
  const dQrow = new Float64Array(p.Dk);
  const capGrad = p.softcap ? new Float64Array(p.Tk) : null;
  for (let b = 0; b < p.B; b++) {
    for (let h = 0; h < p.H; h++) {
      const hk = (h / g) | 0;
      for (let i = 0; i < p.Tq; i++) {
        const row = (b * p.H + h) * p.Tq + i;
        const L = la[lse.offset + row]!;
        dQrow.fill(0);
        if (L !== -Infinity) {
          attnScores(p, qa, ka, q, k, kvl, ba, b, h, i, s, capGrad);
          const go = dout.offset + row * p.Dv;
          let delta = 0; // dO · O
          for (let c = 0; c < p.Dv; c++) delta += ga[go + c]! * oa[out.offset + row * p.Dv + c]!;
          for (let j = 0; j < p.Tk; j++) {
            const pj = Math.exp(s[j]! - L);
            if (pj === 0) continue;
            const kv = (b * p.Hkv + hk) * p.Tk + j;
            let dp = 0;
            for (let c = 0; c < p.Dv; c++) {
              dp += ga[go + c]! * va[v.offset + kv * p.Dv + c]!;
              dV[kv * p.Dv + c]! += pj * ga[go + c]!;
            }
            const ds = pj * (dp - delta) * p.scale * (capGrad ? capGrad[j]! : 1);
            const qo = q.offset + row * p.Dk;
            for (let c = 0; c < p.Dk; c++) {
              dQrow[c]! += ds * ka[k.offset + kv * p.Dk + c]!;
              dK[kv * p.Dk + c]! += ds * qa[qo + c]!;
            }
          }
        }
        for (let c = 0; c < p.Dk; c++) dqa[dq.offset + row * p.Dk + c] = dQrow[c]!;
      }
    }
  }
  for (let i = 0; i < dK.length; i++) dka[dk.offset + i] = dK[i]!;
  for (let i = 0; i < dV.length; i++) dva[dv.offset + i] = dV[i]!;
}

function crossEntropy(logits: View, targets: View, loss: View, lse: View, p: CrossEntropyParams): void {
  const [za, ta, la, sa] = [arr(logits), arr(targets), arr(loss), arr(lse)];
  const { rows, V, ignoreIndex, labelSmoothing: eps } = p;
  for (let r = 0; r < rows; r++) {
    const zo = logits.offset + r * V;
    let mx = -Infinity;
    let sum = 0;
    for (let j = 0; j < V; j++) mx = Math.max(mx, za[zo + j]!);
    for (let j = 0; j < V; j++) sum += za[zo + j]!;
    let se = 0;
    for (let j = 0; j < V; j++) se += Math.exp(za[zo + j]! - mx);
    const L = mx + Math.log(se);
    sa[lse.offset + r] = L;
    const t = ta[targets.offset + r]!;
    la[loss.offset + r] = t === ignoreIndex ? 0 : L - (1 - eps) * za[zo + t]! - (eps * sum) / V;
  }
}

function crossEntropyBackward(
  logits: View,
  targets: View,
  lse: View,
  dloss: View,
  dlogits: View,
  p: CrossEntropyParams,
): void {
  const [za, ta, sa, ga, da] = [arr(logits), arr(targets), arr(lse), arr(dloss), arr(dlogits)];
  const { rows, V, ignoreIndex, labelSmoothing: eps } = p;
  for (let r = 0; r < rows; r++) {
    const t = ta[targets.offset + r]!;
    const g = ga[dloss.offset + r]!;
    const L = sa[lse.offset + r]!;
    for (let j = 0; j < V; j++) {
      const i = r * V + j;
      da[dlogits.offset + i] =
        t === ignoreIndex ? 0 : g * (Math.exp(za[logits.offset + i]! - L) - (j === t ? 1 - eps : 0) - eps / V);
    }
  }
}

function gather(x: View, idx: View, out: View, outer: number, n: number, inner: number, m: number): void {
  const [xa, ia, oa] = [arr(x), arr(idx), arr(out)];
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      const src = x.offset + (o * n + ia[idx.offset + i]!) * inner;
      const dst = out.offset + (o * m + i) * inner;
      for (let c = 0; c < inner; c++) oa[dst + c] = xa[src + c]!;
    }
  }
}

function scatterAdd(src: View, idx: View, out: View, outer: number, n: number, inner: number, m: number): void {
  const [sa, ia, oa] = [arr(src), arr(idx), arr(out)];
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < m; i++) {
      const from = src.offset + (o * m + i) * inner;
      const to = out.offset + (o * n + ia[idx.offset + i]!) * inner;
      for (let c = 0; c < inner; c++) oa[to + c]! += sa[from + c]!;
    }
  }
}

function cumsum(x: View, out: View, outer: number, n: number, inner: number, reverse: boolean): void {
  const [xa, oa] = [arr(x), arr(out)];
  for (let o = 0; o < outer; o++) {
    for (let c = 0; c < inner; c++) {
      let acc = 0;
      for (let s = 0; s < n; s++) {
        const k = reverse ? n - 1 - s : s;
        acc += xa[x.offset + (o * n + k) * inner + c]!;
        oa[out.offset + (o * n + k) * inner + c] = acc;
      }
    }
  }
}

function topk(x: View, values: View, indices: View, rows: number, n: number, k: number): void {
  const [xa, va, ia] = [arr(x), arr(values), arr(indices)];
  const order = new Array<number>(n);
  for (let r = 0; r < rows; r++) {
    const xo = x.offset + r * n;
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => xa[xo + b]! - xa[xo + a]! || a - b);
    for (let i = 0; i < k; i++) {
      va[values.offset + r * k + i] = xa[xo + order[i]!]!;
      ia[indices.offset + r * k + i] = order[i]!;
    }
  }
}

function conv1d(x: View, w: View, bias: View | null, out: View, B: number, C: number, T: number, K: number): void {
  const [xa, wa, oa] = [arr(x), arr(w), arr(out)];
  const ba = bias && arr(bias);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const xo = x.offset + (b * C + c) * T;
      for (let t = 0; t < T; t++) {
        let acc = ba ? ba[bias!.offset + c]! : 0;
        for (let j = 0; j < K; j++) {
          const s = t - K + 1 + j;
          if (s >= 0) acc += wa[w.offset + c * K + j]! * xa[xo + s]!;
        }
        oa[out.offset + (b * C + c) * T + t] = acc;
      }
    }
  }
}

function conv1dBackward(
  x: View,
  w: View,
  dy: View,
  dx: View,
  dw: View,
  db: View | null,
  B: number,
  C: number,
  T: number,
  K: number,
): void {
  const [xa, wa, ga, dxa, dwa] = [arr(x), arr(w), arr(dy), arr(dx), arr(dw)];
  const dba = db && arr(db);
  const dW = new Float64Array(C * K);
  const dB = new Float64Array(C);
  const dX = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const xo = x.offset + (b * C + c) * T;
      const go = dy.offset + (b * C + c) * T;
      dX.fill(0);
      for (let t = 0; t < T; t++) {
        const g = ga[go + t]!;
        dB[c]! += g;
        for (let j = 0; j < K; j++) {
          const s = t - K + 1 + j;
          if (s < 0) continue;
          dX[s]! += wa[w.offset + c * K + j]! * g;
          dW[c * K + j]! += g * xa[xo + s]!;
        }
      }
      for (let t = 0; t < T; t++) dxa[dx.offset + (b * C + c) * T + t] = dX[t]!;
    }
  }
  for (let i = 0; i < C * K; i++) dwa[dw.offset + i] = dW[i]!;
  if (dba) for (let i = 0; i < C; i++) dba[db!.offset + i] = dB[i]!;
}

function scan(
  x: View,
  delta: View,
  A: View,
  Bm: View,
  Cm: View,
  D: View | null,
  h0: View | null,
  y: View,
  hT: View,
  p: ScanParams,
): void {
  const [xa, da, Aa, Ba, Ca, ya, ha] = [arr(x), arr(delta), arr(A), arr(Bm), arr(Cm), arr(y), arr(hT)];
  const Da = D && arr(D);
  const h0a = h0 && arr(h0);
  const { B, T, C, N } = p;
  const h = new Float64Array(N);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let n = 0; n < N; n++) h[n] = h0a ? h0a[h0!.offset + (b * C + c) * N + n]! : 0;
      for (let t = 0; t < T; t++) {
        const bt = b * T + t;
        const xv = xa[x.offset + bt * C + c]!;
        const dt = da[delta.offset + bt * C + c]!;
        let acc = 0;
        for (let n = 0; n < N; n++) {
          h[n] = Math.exp(dt * Aa[A.offset + c * N + n]!) * h[n]! + dt * Ba[Bm.offset + bt * N + n]! * xv;
          acc += Ca[Cm.offset + bt * N + n]! * h[n]!;
        }
        ya[y.offset + bt * C + c] = acc + (Da ? Da[D!.offset + c]! * xv : 0);
      }
      for (let n = 0; n < N; n++) ha[hT.offset + (b * C + c) * N + n] = h[n]!;
    }
  }
}

function scanBackward(
  x: View,
  delta: View,
  A: View,
  Bm: View,
  Cm: View,
  D: View | null,
  h0: View | null,
  dy: View,
  dhT: View | null,
  dx: View,
  ddelta: View,
  dA: View,
  dB: View,
  dC: View,
  dD: View | null,
  dh0: View | null,
  p: ScanParams,
): void {
  const [xa, da, Aa, Ba, Ca, ga] = [arr(x), arr(delta), arr(A), arr(Bm), arr(Cm), arr(dy)];
  const Da = D && arr(D);
  const h0a = h0 && arr(h0);
  const dhTa = dhT && arr(dhT);
  const { B, T, C, N } = p;
  const hs = new Float64Array((T + 1) * N); // states h_0..h_T of one (b, c)
  const dh = new Float64Array(N);
  const gdA = new Float64Array(C * N);
  const gdB = new Float64Array(B * T * N);
  const gdC = new Float64Array(B * T * N);
  const gdD = new Float64Array(C);
  const [dxa, dda] = [arr(dx), arr(ddelta)];
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let n = 0; n < N; n++) hs[n] = h0a ? h0a[h0!.offset + (b * C + c) * N + n]! : 0;
      for (let t = 0; t < T; t++) {
        const bt = b * T + t;
        const xv = xa[x.offset + bt * C + c]!;
        const dt = da[delta.offset + bt * C + c]!;
        for (let n = 0; n < N; n++) {
          hs[(t + 1) * N + n] =
            Math.exp(dt * Aa[A.offset + c * N + n]!) * hs[t * N + n]! + dt * Ba[Bm.offset + bt * N + n]! * xv;
        }
      }
      for (let n = 0; n < N; n++) dh[n] = dhTa ? dhTa[dhT!.offset + (b * C + c) * N + n]! : 0;
      for (let t = T - 1; t >= 0; t--) {
        const bt = b * T + t;
        const xv = xa[x.offset + bt * C + c]!;
        const dt = da[delta.offset + bt * C + c]!;
        const g = ga[dy.offset + bt * C + c]!;
        let gx = Da ? g * Da[D!.offset + c]! : 0;
        if (Da) gdD[c]! += g * xv;
        let gdt = 0;
        for (let n = 0; n < N; n++) {
          const a = Aa[A.offset + c * N + n]!;
          const Bv = Ba[Bm.offset + bt * N + n]!;
          gdC[bt * N + n]! += g * hs[(t + 1) * N + n]!;
          const dhn = dh[n]! + g * Ca[Cm.offset + bt * N + n]!;
          const decay = Math.exp(dt * a);
          const hPrev = hs[t * N + n]!;
          gdt += dhn * (a * decay * hPrev + Bv * xv);
          gdA[c * N + n]! += dhn * decay * dt * hPrev;
          gdB[bt * N + n]! += dhn * dt * xv;
          gx += dhn * dt * Bv;
          dh[n] = dhn * decay;
        }
        dxa[dx.offset + bt * C + c] = gx;
        dda[ddelta.offset + bt * C + c] = gdt;
      }
      if (dh0) for (let n = 0; n < N; n++) arr(dh0)[dh0.offset + (b * C + c) * N + n] = dh[n]!;
    }
  }
  arr(dA).set(gdA as unknown as Float32Array, dA.offset);
  arr(dB).set(gdB as unknown as Float32Array, dB.offset);
  arr(dC).set(gdC as unknown as Float32Array, dC.offset);
  if (dD) arr(dD).set(gdD as unknown as Float32Array, dD.offset);
}

function adamw(param: View, grad: View, m: View, v: View, p: AdamWParams): void {
  const [pa, ga, ma, va] = [arr(param), arr(grad), arr(m), arr(v)];
  const bc1 = 1 - p.beta1 ** p.step;
  const bc2 = 1 - p.beta2 ** p.step;
  for (let i = 0; i < p.n; i++) {
    const g = ga[grad.offset + i]!;
    let w = pa[param.offset + i]! * (1 - p.lr * p.weightDecay);
    const mi = p.beta1 * ma[m.offset + i]! + (1 - p.beta1) * g;
    const vi = p.beta2 * va[v.offset + i]! + (1 - p.beta2) * g * g;
    ma[m.offset + i] = mi;
    va[v.offset + i] = vi;
    w -= (p.lr * (mi / bc1)) / (Math.sqrt(vi / bc2) + p.eps);
    pa[param.offset + i] = w;
  }
}

export const referenceKernels: KernelTable = {
  copy,
  unary,
  unaryBackward,
  binary,
  where,
  reduce,
  matmul,
  softmax,
  softmaxBackward,
  layerNorm,
  layerNormBackward,
  rmsNorm,
  rmsNormBackward,
  attention,
  attentionBackward,
  pagedAttention,
  pagedWrite,
  ropeHeads,
  crossEntropy,
  crossEntropyBackward,
  gather,
  scatterAdd,
  cumsum,
  topk,
  conv1d,
  conv1dBackward,
  scan,
  scanBackward,
  adamw,
  quantMatmul,
  fused: makeFusedKernel(UNARY_FNS, BINARY_FNS),
};
