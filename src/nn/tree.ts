// Registering a module under a dotted checkpoint path (BERT's `attention.output.dense`): the inner
// levels become parameterless Container nodes, shared by every path with the same prefix.
import { Module } from './module.js';

/** A parameterless node of the module tree. */
export class Container extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.child(name, m);
  }
}

/**
 * Registers `m` at `path` below a module whose own `child` method is `register`; `containers` (one map
 * per parent) remembers the inner nodes already made, keyed by their path prefix.
 */
export function registerAt<M extends Module>(
  register: (name: string, m: Module) => Module,
  path: string,
  m: M,
  containers: Map<string, Container>,
): M {
  const parts = path.split('.');
  let add: (name: string, child: Module) => Module = register;
  for (let i = 0; i < parts.length - 1; i++) {
    const prefix = parts.slice(0, i + 1).join('.');
    let c = containers.get(prefix);
    if (!c) {
      c = new Container();
      containers.set(prefix, c);
      add(parts[i]!, c);
    }
    const node = c;
    add = (name, child) => node.add(name, child);
  }
  return add(parts[parts.length - 1]!, m) as M;
}
