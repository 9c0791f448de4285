// GPT-1/GPT-2 "Conv1D": a linear layer whose weight is stored [in, out] (transposed vs nn.Linear), as
// transformers' pytorch_utils.Conv1D does. Kept as its own layer so checkpoints load without transposes.
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../tensor/random.js';
import { linear, transpose } from '../ops/index.js';
import { Module, initNormal, initZeros } from './module.js';

export class Conv1D extends Module {
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: { bias?: boolean; std?: number; rng?: Rng } = {}) {
    super();
    this.param('weight', initNormal([inFeatures, outFeatures], opts.std ?? 0.02, opts.rng ?? new Rng(0)));
    if (opts.bias ?? true) this.param('bias', initZeros([outFeatures]));
    else this.noParam('bias');
  }
  /** x [..., in] -> [..., out]; transposing the [in, out] weight is a free view */
  forward(x: Tensor): Tensor {
    return linear(x, transpose(this.p('weight')), this.pOpt('bias'));
  }
}

/** Anything mapping [..., in] -> [..., out] (Linear or Conv1D). */
export interface Projection extends Module {
  forward(x: Tensor): Tensor;
}

/** A parameterless node of the module tree, for checkpoint paths with extra levels (BERT `output.dense`). */
export class Container extends Module {
  add<M extends Module>(name: string, m: M): M {
    return this.child(name, m);
  }
}

/**
 * Registers `m` under a dotted path below `parent` (creating containers for the inner levels), through
 * `register`, which is the parent's own `child` method.
 */
export function registerAt<M extends Module>(register: (name: string, m: Module) => Module, path: string, m: M, containers: Map<string, Container>): M {
  const parts = path.split('.');
  if (parts.length === 1) return register(path, m) as M;
  let c = containers.get(parts[0]!);
  if (!c) {
    c = new Container();
    containers.set(parts[0]!, c);
    register(parts[0]!, c);
  }
  let node: Container = c;
  for (const p of parts.slice(1, -1)) {
    const next = new Container();
    node.add(p, next);
    node = next;
  }
  return node.add(parts[parts.length - 1]!, m);
}
