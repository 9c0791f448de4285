// Row-wise kernels (softmax, norms, cross-entropy) and AdamW. Parallel over rows.
import { EXPC, hmax, hsum, part, sexp, vexp } from './common';

@inline function rowMax(x: usize, n: i32): f32 {
  let i = 0;
  let m: f32 = -Infinity;
  if (n >= 4) {
    let mv = v128.load32_splat(EXPC, 60);
    for (; i + 4 <= n; i += 4) mv = f32x4.max(mv, v128.load(x + (<usize>i << 2)));
    m = hmax(mv);
  }
  for (; i < n; i++) m = Mathf.max(m, load<f32>(x + (<usize>i << 2)));
  return m;
}

@inline function rowSum(x: usize, n: i32): f32 {
  let i = 0;
  let acc = f32x4.splat(0);
  for (; i + 4 <= n; i += 4) acc = f32x4.add(acc, v128.load(x + (<usize>i << 2)));
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(x + (<usize>i << 2));
  return s;
}

/** writes exp(x - m) to out (if out != 0) and returns its sum */
@inline function expSum(x: usize, out: usize, n: i32, m: f32): f32 {
  let i = 0;
  const mv = f32x4.splat(m);
  let acc = f32x4.splat(0);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    const e = vexp(f32x4.sub(v128.load(x + o), mv));
    if (out != 0) v128.store(out + o, e);
    acc = f32x4.add(acc, e);
  }
  let s = hsum(acc);
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const e = sexp(load<f32>(x + o) - m);
    if (out != 0) store<f32>(out + o, e);
    s += e;
  }
  return s;
}

@inline function scaleAdd(x: usize, out: usize, n: i32, mul: f32, add: f32): void {
  let i = 0;
  const mv = f32x4.splat(mul);
  const av = f32x4.splat(add);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(f32x4.mul(v128.load(x + o), mv), av));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(x + o) * mul + add);
  }
}

export function softmax(tid: i32, nth: i32, x: usize, out: usize, rows: i32, n: i32, log: i32): void {
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  const rb = <usize>n << 2;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rb;
    const or = out + <usize>r * rb;
    const m = rowMax(xr, n);
    if (log) {
      const s = expSum(xr, 0, n, m);
      scaleAdd(xr, or, n, 1, -(m + Mathf.log(s)));
    } else {
      const s = expSum(xr, or, n, m);
      scaleAdd(or, or, n, 1 / s, 0);
    }
  }
}

@inline function dot(a: usize, b: usize, n: i32): f32 {
  let i = 0;
  let acc = f32x4.splat(0);
  for (; i + 4 <= n; i += 4) {
    const o = <usize>i << 2;
    acc = f32x4.add(acc, f32x4.mul(v128.load(a + o), v128.load(b + o)));
  }
  let s = hsum(acc);
  for (; i < n; i++) s += load<f32>(a + (<usize>i << 2)) * load<f32>(b + (<usize>i << 2));
  return s;
}

export function softmaxBackward(tid: i32, nth: i32, y: usize, dy: usize, dx: usize, rows: i32, n: i32, log: i32): void {
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  const rb = <usize>n << 2;
  for (let r = r0; r < r1; r++) {
    const yr = y + <usize>r * rb;
    const dyr = dy + <usize>r * rb;
    const dxr = dx + <usize>r * rb;
    if (log) {
      // dx = dy - exp(y) * sum(dy)
      const s = f32x4.splat(rowSum(dyr, n));
      let i = 0;
      for (; i + 4 <= n; i += 4) {
        const o = <usize>i << 2;
        v128.store(dxr + o, f32x4.sub(v128.load(dyr + o), f32x4.mul(vexp(v128.load(yr + o)), s)));
      }
      const ss = f32x4.extract_lane(s, 0);
      for (; i < n; i++) {
        const o = <usize>i << 2;
        store<f32>(dxr + o, load<f32>(dyr + o) - sexp(load<f32>(yr + o)) * ss);
      }
    } else {
      // dx = y * (dy - sum(dy * y))
      const s = dot(dyr, yr, n);
      const sv = f32x4.splat(s);
      let i = 0;
      for (; i + 4 <= n; i += 4) {
        const o = <usize>i << 2;
        v128.store(dxr + o, f32x4.mul(v128.load(yr + o), f32x4.sub(v128.load(dyr + o), sv)));
      }
      for (; i < n; i++) {
        const o = <usize>i << 2;
        store<f32>(dxr + o, load<f32>(yr + o) * (load<f32>(dyr + o) - s));
      }
    }
  }
}

/** layerNorm (rms = 0) or rmsNorm (rms = 1). w, b may be 0 (absent). mean may be 0 for rms. */
export function norm(
  tid: i32, nth: i32, rms: i32, x: usize, w: usize, b: usize, out: usize, mean: usize, rstd: usize, rows: i32, n: i32, eps: f32,
): void {
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  const rb = <usize>n << 2;
  const invN: f32 = 1 / <f32>n;
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rb;
    const or = out + <usize>r * rb;
    let mu: f32 = 0;
    if (!rms) mu = rowSum(xr, n) * invN;
    // second pass for the variance (about mu) keeps precision on large offsets
    const muv = f32x4.splat(mu);
    let acc = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const d = f32x4.sub(v128.load(xr + (<usize>i << 2)), muv);
      acc = f32x4.add(acc, f32x4.mul(d, d));
    }
    let ss = hsum(acc);
    for (; i < n; i++) {
      const d = load<f32>(xr + (<usize>i << 2)) - mu;
      ss += d * d;
    }
    const rs: f32 = 1 / Mathf.sqrt(ss * invN + eps);
    if (!rms) store<f32>(mean + (<usize>r << 2), mu);
    store<f32>(rstd + (<usize>r << 2), rs);
    const rsv = f32x4.splat(rs);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      let y = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      if (w != 0) y = f32x4.mul(y, v128.load(w + o));
      if (b != 0) y = f32x4.add(y, v128.load(b + o));
      v128.store(or + o, y);
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      let y = (load<f32>(xr + o) - mu) * rs;
      if (w != 0) y *= load<f32>(w + o);
      if (b != 0) y += load<f32>(b + o);
      store<f32>(or + o, y);
    }
  }
}

/**
 * Backward of norm. dw/db partial sums of this thread go to part + tid*2n floats ([dw | db]); the host
 * sums the partials afterwards (sumPartials). `part` may be 0 when neither dw nor db is wanted.
 */
export function normBackward(
  tid: i32, nth: i32, rms: i32, x: usize, w: usize, mean: usize, rstd: usize, dy: usize, dx: usize, partials: usize, rows: i32, n: i32,
): void {
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  const rb = <usize>n << 2;
  const invN: f32 = 1 / <f32>n;
  const pw = partials != 0 ? partials + <usize>tid * 2 * rb : 0;
  const pb = pw + rb;
  if (pw != 0) memory.fill(pw, 0, 2 * rb);
  for (let r = r0; r < r1; r++) {
    const xr = x + <usize>r * rb;
    const dyr = dy + <usize>r * rb;
    const dxr = dx + <usize>r * rb;
    const mu: f32 = rms ? 0 : load<f32>(mean + (<usize>r << 2));
    const rs = load<f32>(rstd + (<usize>r << 2));
    const muv = f32x4.splat(mu);
    const rsv = f32x4.splat(rs);
    // sums of g and g * xhat, g = dy * w
    let sg = f32x4.splat(0);
    let sgx = f32x4.splat(0);
    let i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      const d = v128.load(dyr + o);
      const g = w != 0 ? f32x4.mul(d, v128.load(w + o)) : d;
      sg = f32x4.add(sg, g);
      sgx = f32x4.add(sgx, f32x4.mul(g, xh));
      if (pw != 0) {
        v128.store(pw + o, f32x4.add(v128.load(pw + o), f32x4.mul(d, xh)));
        v128.store(pb + o, f32x4.add(v128.load(pb + o), d));
      }
    }
    let sgs = hsum(sg);
    let sgxs = hsum(sgx);
    for (; i < n; i++) {
      const o = <usize>i << 2;
      const xh = (load<f32>(xr + o) - mu) * rs;
      const d = load<f32>(dyr + o);
      const g = w != 0 ? d * load<f32>(w + o) : d;
      sgs += g;
      sgxs += g * xh;
      if (pw != 0) {
        store<f32>(pw + o, load<f32>(pw + o) + d * xh);
        store<f32>(pb + o, load<f32>(pb + o) + d);
      }
    }
    const mg: f32 = rms ? 0 : sgs * invN;
    const mgx = sgxs * invN;
    const mgv = f32x4.splat(mg);
    const mgxv = f32x4.splat(mgx);
    i = 0;
    for (; i + 4 <= n; i += 4) {
      const o = <usize>i << 2;
      const xh = f32x4.mul(f32x4.sub(v128.load(xr + o), muv), rsv);
      const d = v128.load(dyr + o);
      const g = w != 0 ? f32x4.mul(d, v128.load(w + o)) : d;
      v128.store(dxr + o, f32x4.mul(rsv, f32x4.sub(f32x4.sub(g, mgv), f32x4.mul(xh, mgxv))));
    }
    for (; i < n; i++) {
      const o = <usize>i << 2;
      const xh = (load<f32>(xr + o) - mu) * rs;
      const d = load<f32>(dyr + o);
      const g = w != 0 ? d * load<f32>(w + o) : d;
      store<f32>(dxr + o, rs * (g - mg - xh * mgx));
    }
  }
}

/** dst[i] = sum over t < nth of partials[t*stride + i], i < n (single-threaded) */
export function sumPartials(partials: usize, nth: i32, stride: i32, n: i32, dst: usize): void {
  for (let i = 0; i < n; i++) {
    let s: f32 = 0;
    for (let t = 0; t < nth; t++) s += load<f32>(partials + ((<usize>t * <usize>stride + <usize>i) << 2));
    store<f32>(dst + (<usize>i << 2), s);
  }
}

export function crossEntropy(
  tid: i32, nth: i32, logits: usize, targets: usize, loss: usize, lse: usize, rows: i32, V: i32, ignoreIndex: i32, ls: f32,
): void {
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  const rb = <usize>V << 2;
  for (let r = r0; r < r1; r++) {
    const xr = logits + <usize>r * rb;
    const m = rowMax(xr, V);
    const l = m + Mathf.log(expSum(xr, 0, V, m));
    store<f32>(lse + (<usize>r << 2), l);
    const t = load<i32>(targets + (<usize>r << 2));
    let lo: f32 = 0;
    if (t != ignoreIndex) {
      lo = l - (1 - ls) * load<f32>(xr + (<usize>t << 2));
      if (ls != 0) lo -= ls * rowSum(xr, V) / <f32>V;
    }
    store<f32>(loss + (<usize>r << 2), lo);
  }
}

export function crossEntropyBackward(
  tid: i32, nth: i32, logits: usize, targets: usize, lse: usize, dloss: usize, dlogits: usize, rows: i32, V: i32, ignoreIndex: i32, ls: f32,
): void {
  const r0 = part(rows, nth, tid);
  const r1 = part(rows, nth, tid + 1);
  const rb = <usize>V << 2;
  for (let r = r0; r < r1; r++) {
    const xr = logits + <usize>r * rb;
    const dr = dlogits + <usize>r * rb;
    const t = load<i32>(targets + (<usize>r << 2));
    if (t == ignoreIndex) {
      memory.fill(dr, 0, rb);
      continue;
    }
    const g = load<f32>(dloss + (<usize>r << 2));
    const l = load<f32>(lse + (<usize>r << 2));
    const off: f32 = ls / <f32>V;
    const lv = f32x4.splat(l);
    const gv = f32x4.splat(g);
    const ov = f32x4.splat(off);
    let i = 0;
    for (; i + 4 <= V; i += 4) {
      const o = <usize>i << 2;
      v128.store(dr + o, f32x4.mul(gv, f32x4.sub(vexp(f32x4.sub(v128.load(xr + o), lv)), ov)));
    }
    for (; i < V; i++) {
      const o = <usize>i << 2;
      store<f32>(dr + o, g * (sexp(load<f32>(xr + o) - l) - off));
    }
    const to = <usize>t << 2;
    store<f32>(dr + to, load<f32>(dr + to) - g * (1 - ls));
  }
}

/** PyTorch AdamW: p *= 1 - lr*wd; m, v updated; p -= lr/bc1 * m / (sqrt(v)/sqrt(bc2) + eps) */
export function adamw(
  tid: i32, nth: i32, p: usize, g: usize, m: usize, v: usize, n: i32,
  lr: f32, b1: f32, b2: f32, eps: f32, wd: f32, bc1: f32, bc2: f32,
): void {
  const blocks = (n + 15) >> 4;
  const i0 = part(blocks, nth, tid) << 4;
  const i1 = min(n, part(blocks, nth, tid + 1) << 4);
  const decay: f32 = 1 - lr * wd;
  const step: f32 = lr / bc1;
  const isb2: f32 = 1 / Mathf.sqrt(bc2);
  const dv = f32x4.splat(decay), b1v = f32x4.splat(b1), b2v = f32x4.splat(b2);
  const c1 = f32x4.splat(1 - b1), c2 = f32x4.splat(1 - b2), sv = f32x4.splat(step), iv = f32x4.splat(isb2), ev = f32x4.splat(eps);
  let i = i0;
  for (; i + 4 <= i1; i += 4) {
    const o = <usize>i << 2;
    const gg = v128.load(g + o);
    const mm = f32x4.add(f32x4.mul(b1v, v128.load(m + o)), f32x4.mul(c1, gg));
    const vv = f32x4.add(f32x4.mul(b2v, v128.load(v + o)), f32x4.mul(c2, f32x4.mul(gg, gg)));
    v128.store(m + o, mm);
    v128.store(v + o, vv);
    const den = f32x4.add(f32x4.mul(f32x4.sqrt(vv), iv), ev);
    v128.store(p + o, f32x4.sub(f32x4.mul(v128.load(p + o), dv), f32x4.mul(sv, f32x4.div(mm, den))));
  }
  for (; i < i1; i++) {
    const o = <usize>i << 2;
    const gg = load<f32>(g + o);
    const mm = b1 * load<f32>(m + o) + (1 - b1) * gg;
    const vv = b2 * load<f32>(v + o) + (1 - b2) * gg * gg;
    store<f32>(m + o, mm);
    store<f32>(v + o, vv);
    store<f32>(p + o, load<f32>(p + o) * decay - step * (mm / (Mathf.sqrt(vv) * isb2 + eps)));
  }
}
