// Engine state: the current backend, grad mode and memory scopes.
//
// Memory ownership model (see README "Memory"):
//  - Every tensor owns a reference to a Storage (refcounted: views share it). `t.dispose()` (or
//    `using t = ...`) releases the reference; the buffer is freed when the last view goes.
//  - `tidy(fn)` opens a scope: every tensor created inside is disposed when fn returns, except
//    the tensors it returns (in an array/object too) and those passed to `keep()`. Tensors that
//    escape move to the enclosing scope. Training steps run inside `tidy`, so a 10,000-step
//    loop runs in flat memory.
//  - Parameters, optimizer state and `.grad` are created outside scopes or `keep()`-ed.
//  - A FinalizationRegistry frees buffers of storages that become unreachable, as a safety net
//    only: wasm memory is not watched by the JS garbage collector's heuristics, so rely on scopes.
import type { Backend, Buf } from '../backend/backend.js';
import { ReferenceBackend } from '../backend/reference/backend.js';
import type { Tensor } from './tensor.js';

let current: Backend = new ReferenceBackend();

export function getBackend(): Backend {
  return current;
}

/** Make `b` the backend for newly created tensors. Existing tensors stay where they are. */
export function setBackend(b: Backend): void {
  current = b;
}

// ---- storage ----
const registry =
  typeof FinalizationRegistry === 'undefined'
    ? null
    : new FinalizationRegistry<Buf>((buf) => {
        if (!buf.freed) buf.backend.free(buf);
      });

export class Storage {
  refs = 0;
  constructor(readonly buf: Buf) {
    registry?.register(this, buf, this);
  }
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs > 0 || this.buf.freed) return;
    registry?.unregister(this);
    this.buf.backend.free(this.buf);
  }
}

// ---- grad mode ----
let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Run fn with gradient recording off (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Run fn with gradient recording on (used by gradient checkpointing's recomputation). */
export function withGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

// ---- scopes ----
type Scope = Set<Tensor>;
const scopes: Scope[] = [];

export function track(t: Tensor): void {
  scopes[scopes.length - 1]?.add(t);
}

/** Exempt tensors from the enclosing scopes' cleanup. Returns its argument. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

/** brand carried by every Tensor, so scopes recognise tensors without importing the class */
export const TENSOR_BRAND: unique symbol = Symbol.for('lineage.tensor');
const isTensor = (v: object): v is Tensor => (v as { [TENSOR_BRAND]?: boolean })[TENSOR_BRAND] === true;

function collect(x: unknown, out: Set<Tensor>, depth = 0): void {
  if (depth > 4 || x === null || typeof x !== 'object') return;
  if (isTensor(x)) {
    out.add(x);
    return;
  }
  const values = Array.isArray(x) ? x : x instanceof Map ? [...x.values()] : Object.values(x);
  for (const v of values) collect(v, out, depth + 1);
}

/**
 * Run fn in a memory scope: tensors created inside are disposed at the end, except those
 * returned (directly or inside arrays / plain objects / Maps) and those kept with `keep()`.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = new Set();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) throw new Error('tidy: fn must be synchronous (it returned a Promise)');
  const escaping = new Set<Tensor>();
  collect(result, escaping);
  for (const t of scope) {
    if (escaping.has(t)) track(t);
    else t.dispose();
  }
  return result;
}

/** The live (not disposed) tensors of the innermost open scope (diagnostics: what holds memory). */
export function scopeTensors(): Tensor[] {
  return [...(scopes[scopes.length - 1] ?? [])].filter((t) => !t.isDisposed);
}

/** Number of open scopes (diagnostics). */
export function scopeDepth(): number {
  return scopes.length;
}
