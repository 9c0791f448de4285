// Reverse-mode autograd: walk the recorded graph from the output in reverse topological order,
// summing gradients per tensor and accumulating into `.grad` of leaves that require grad.
// Gradient rules run with recording off (no higher-order gradients) and live next to each op.
import { Tensor } from '../tensor/tensor.js';
import { keep, noGrad } from '../tensor/engine.js';
import { fmt } from '../tensor/shape.js';
import * as ops from '../ops/index.js';

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  const stack: [Tensor, number][] = [[root, 0]];
  // iterative DFS (graphs of deep models overflow recursion)
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (i === 0) {
      if (seen.has(t.id)) {
        stack.pop();
        continue;
      }
      seen.add(t.id);
    }
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1] = i + 1;
      const next = inputs[i]!;
      if (next.requiresGrad && !seen.has(next.id)) stack.push([next, 0]);
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order.reverse();
}

export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad)
    throw new Error('backward: tensor does not require grad (no parameter with requiresGrad contributed to it)');
  if (!grad && root.size !== 1)
    throw new Error(`backward: output has shape ${fmt(root.shape)}; pass a gradient or reduce it to a scalar first`);
  noGrad(() => {
    const grads = new Map<number, Tensor>();
    grads.set(root.id, grad ?? ops.onesLike(root));
    for (const t of topoOrder(root)) {
      const g = grads.get(t.id);
      if (!g) continue;
      grads.delete(t.id);
      if (!t.node) {
        accumulateLeaf(t, g);
        continue;
      }
      const inGrads = t.node.backward(g);
      t.node.inputs.forEach((x, i) => {
        const gi = inGrads[i];
        if (!gi || !x.requiresGrad) return;
        checkGradShape(t.node!.op, x, gi);
        const prev = grads.get(x.id);
        grads.set(x.id, prev ? ops.add(prev, gi) : gi);
      });
    }
  });
}

function checkGradShape(op: string, x: Tensor, g: Tensor): void {
  if (g.shape.length !== x.shape.length || g.shape.some((d, i) => d !== x.shape[i])) {
    throw new Error(
      `backward of ${op}: gradient shape ${fmt(g.shape)} does not match input shape ${fmt(x.shape)} (internal error)`,
    );
  }
}

function accumulateLeaf(t: Tensor, g: Tensor): void {
  const gf = g.dtype === t.dtype ? g : ops.cast(g, t.dtype);
  // always a fresh tensor: one gradient object may flow to several leaves (e.g. add's backward)
  const next = t.grad ? ops.add(t.grad, gf) : ops.clone(gf);
  t.grad?.dispose();
  t.grad = keep(next);
}

declare module '../tensor/tensor.js' {
  interface Tensor {
    /** Accumulate d(this)/d(leaf) into every leaf's `.grad`. `this` must be a scalar unless `grad` is given. */
    backward(grad?: Tensor): void;
  }
}

Object.defineProperty(Tensor.prototype, 'backward', {
  value: function (this: Tensor, grad?: Tensor): void {
    backward(this, grad);
  },
  writable: true,
  configurable: true,
});
