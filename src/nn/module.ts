// Module: a named tree of parameters and submodules. Parameter names are dotted paths
// (`transformer.h.0.attn.c_attn.weight`), so a module tree written with Hugging Face's attribute
// names produces checkpoint-compatible names for free. Modules read their parameters through
// `this.p(name)` at call time (never cache them), so loading a checkpoint can swap tensors.
import '../autograd/index.js'; // modules are trained: make sure Tensor.backward is installed
import { keep, noGrad } from '../tensor/engine.js';
import { fmt } from '../tensor/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { cast, rand, randn, zeros, full } from '../ops/index.js';
import type { Rng } from '../tensor/random.js';
import type { DType } from '../backend/backend.js';

export abstract class Module {
  training = true;
  private readonly _params = new Map<string, Tensor | null>();
  private readonly _children = new Map<string, Module | null>();

  /** register a parameter (kept out of memory scopes; requires grad unless frozen later) */
  protected param(name: string, t: Tensor): Tensor {
    t.requiresGrad = true;
    t.name = name;
    this._params.set(name, keep(t));
    return t;
  }

  /** register an optional parameter slot that is absent (e.g. no bias) */
  protected noParam(name: string): null {
    this._params.set(name, null);
    return null;
  }

  protected child<M extends Module>(name: string, m: M): M {
    this._children.set(name, m);
    return m;
  }

  /** [dotted name, tensor] for every parameter, depth first, in registration order */
  namedParameters(prefix = ''): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, t] of this._params) if (t) out.push([prefix + n, t]);
    for (const [n, m] of this._children) if (m) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, m] of this._children) if (m) out.push(...m.namedModules(`${prefix}${n}.`));
    return out;
  }

  numParameters(): number {
    return this.parameters().reduce((s, t) => s + t.size, 0);
  }

  train(on = true): this {
    for (const [, m] of this.namedModules()) m.training = on;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** replace parameter values by name (shapes must match); returns names not found */
  loadStateDict(
    state: Map<string, Tensor> | Record<string, Tensor>,
    opts: { strict?: boolean } = {},
  ): { missing: string[]; unexpected: string[] } {
    const src = state instanceof Map ? state : new Map(Object.entries(state));
    const own = new Map(this.namedParameters());
    const missing = [...own.keys()].filter((k) => !src.has(k));
    const unexpected = [...src.keys()].filter((k) => !own.has(k));
    if (opts.strict !== false && (missing.length || unexpected.length)) {
      throw new Error(
        `loadStateDict: ${missing.length ? `missing parameters: ${missing.slice(0, 8).join(', ')}${missing.length > 8 ? ', ...' : ''}` : ''}${missing.length && unexpected.length ? '; ' : ''}${unexpected.length ? `unexpected parameters: ${unexpected.slice(0, 8).join(', ')}${unexpected.length > 8 ? ', ...' : ''}` : ''}`,
      );
    }
    for (const [name, t] of own) {
      const v = src.get(name);
      if (!v) continue;
      if (v.ndim !== t.ndim || v.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(
          `loadStateDict: parameter '${name}' has shape ${fmt(t.shape)} but the checkpoint has ${fmt(v.shape)}`,
        );
      }
      this.setParameter(name, v);
    }
    return { missing, unexpected };
  }

  /** swap in a new tensor for the parameter at a dotted path (disposes the old one); the value is cast
   * to the old parameter's dtype unless `keepDType` is false */
  setParameter(path: string, value: Tensor, keepDType = true): void {
    const dot = path.indexOf('.');
    if (dot >= 0 && this._children.has(path.slice(0, dot))) {
      this._children.get(path.slice(0, dot))!.setParameter(path.slice(dot + 1), value, keepDType);
      return;
    }
    const old = this._params.get(path);
    if (old === undefined) throw new Error(`setParameter: no parameter '${path}'`);
    const target = keepDType ? (old?.dtype ?? value.dtype) : value.dtype;
    const t = noGrad(() => (value.dtype === target ? value.detach() : cast(value, target)));
    t.requiresGrad = old?.requiresGrad ?? true;
    t.name = path.split('.').pop();
    old?.dispose();
    this._params.set(path, keep(t));
  }

  /** the submodule at a dotted path (`model.layers.0.self_attn.q_proj`) */
  getModule(path: string): Module {
    let m: Module = this;
    for (const part of path.split('.')) {
      const next = m._children.get(part);
      if (!next)
        throw new Error(
          `getModule: no submodule '${part}' in '${path}' (${m.constructor.name} has: ${[...m._children.keys()].join(', ') || 'none'})`,
        );
      m = next;
    }
    return m;
  }

  /**
   * Swap the submodule at a dotted path for another that accepts the same calls (a LoRA or quantized
   * linear in place of a Linear) and return the old one. Blocks keep typed references to their
   * children (fields, arrays, maps; sometimes to grandchildren below a Container), so every such
   * reference held anywhere in this tree is repointed too: after `replace`, no module can still call
   * the old child. Parameter names follow the new module's own names below `path`.
   */
  replace<M extends Module>(path: string, m: M): Module {
    const dot = path.lastIndexOf('.');
    const parent = dot < 0 ? this : this.getModule(path.slice(0, dot));
    const name = path.slice(dot + 1);
    const old = parent._children.get(name);
    if (!old) throw new Error(`replace: no submodule '${path}'`);
    if (
      typeof (old as unknown as { forward?: unknown }).forward === 'function' &&
      typeof (m as unknown as { forward?: unknown }).forward !== 'function'
    ) {
      throw new Error(
        `replace: '${path}' is called with forward(), but the replacement ${m.constructor.name} has none`,
      );
    }
    // the replacement may wrap the old module (LoRA's base_layer): leave its own subtree alone
    const inside = new Set(m.namedModules().map(([, x]) => x));
    parent._children.set(name, m);
    for (const [, owner] of this.namedModules()) if (!inside.has(owner)) repoint(owner, old, m);
    return old;
  }

  /** look up a registered parameter of this module (not children) */
  protected p(name: string): Tensor {
    const t = this._params.get(name);
    if (!t) throw new Error(`${this.constructor.name}: parameter '${name}' is not set`);
    return t;
  }

  protected pOpt(name: string): Tensor | null {
    return this._params.get(name) ?? null;
  }

  /** cast every parameter to dtype (e.g. bfloat16 storage) */
  toDType(dtype: DType): this {
    for (const [name, t] of this.namedParameters()) {
      if (t.dtype === dtype) continue;
      const cast = noGrad(() => t.to(dtype));
      this.setParameter(name, cast, false); // keeps a view of `cast`'s storage
      cast.dispose(); // (leaked one model's worth of storage per call before)
    }
    return this;
  }

  dispose(): void {
    for (const t of this.parameters()) t.dispose();
  }
}

/** an ordered list of modules named "0", "1", ... (nn.ModuleList) */
export class ModuleList<M extends Module> extends Module {
  readonly items: M[];
  constructor(items: M[]) {
    super();
    this.items = items.map((m, i) => this.child(String(i), m));
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): M {
    return this.items[i]!;
  }
}

/** replace references to `from` by `to` in owner's own fields, arrays and maps (one level deep) */
function repoint(owner: Module, from: Module, to: Module): void {
  const rec = owner as unknown as Record<string, unknown>;
  for (const key of Object.keys(rec)) {
    const v = rec[key];
    if (v === from) rec[key] = to;
    else if (Array.isArray(v)) for (let i = 0; i < v.length; i++) v[i] === from && (v[i] = to);
    else if (v instanceof Map) for (const [k, x] of v) x === from && v.set(k, to);
  }
}

// ---- initialisers (all seeded) ----
// Building a model whose weights are about to be overwritten (a checkpoint load) runs under
// `withoutInit`: every random initialiser below then allocates zeros and draws nothing, like
// transformers' `no_init_weights` context. Scoped like `noGrad`, so an exception cannot leak the mode.
let initSkipDepth = 0;

/** runs `fn` with random initialisation off (parameters are zero-filled, no random numbers drawn) */
export function withoutInit<T>(fn: () => T): T {
  initSkipDepth++;
  try {
    return fn();
  } finally {
    initSkipDepth--;
  }
}

/** true inside `withoutInit` */
export function initSkipped(): boolean {
  return initSkipDepth > 0;
}

export function initNormal(shape: number[], std: number, rng: Rng): Tensor {
  return initSkipped() ? zeros(shape) : randn(shape, { std, rng });
}
/** U(low, high), e.g. torch's default Linear / Conv / RNN init */
export function initUniform(shape: number[], low: number, high: number, rng: Rng): Tensor {
  return initSkipped() ? zeros(shape) : rand(shape, { low, high, rng });
}
export function initZeros(shape: number[]): Tensor {
  return zeros(shape);
}
export function initOnes(shape: number[]): Tensor {
  return full(shape, 1);
}
