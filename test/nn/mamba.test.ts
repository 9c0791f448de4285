// The Mamba mixer: HF parameter names/layouts, chunked and step-by-step runs equal one pass (conv window
// and SSM state carried), and analytic gradients against central finite differences.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, concat, mul, noGrad, randn, slice, sum, type Tensor } from '../../src/index.js';
import { MambaMixer } from '../../src/nn/mamba.js';

const OPTS = { hidden: 4, inner: 6, dState: 3, dConv: 3, dtRank: 2, convBias: true, projBias: false, initStd: 0.5 };

test('MambaMixer: transformers parameter names and shapes (conv1d.weight [I, 1, K])', () => {
  const names = new MambaMixer(OPTS)
    .namedParameters()
    .map(([n, t]) => `${n}:${t.shape.join('x')}`)
    .sort();
  assert.deepEqual(names, [
    'A_log:6x3',
    'D:6',
    'conv1d.bias:6',
    'conv1d.weight:6x1x3',
    'dt_proj.bias:6',
    'dt_proj.weight:6x2',
    'in_proj.weight:12x4',
    'out_proj.weight:4x6',
    'x_proj.weight:8x6',
  ]);
});

test('MambaMixer: one pass == chunks == one token at a time', () => {
  const m = new MambaMixer({ ...OPTS, rng: new Rng(1) });
  const x = randn([2, 7, 4], { rng: new Rng(2) });
  noGrad(() => {
    const whole = m.forward(x).y;
    const diff = (a: Tensor) => Math.max(...a.sub(whole).abs().toList());
    const a = m.forward(slice(x, 1, 0, 1)); // shorter than the conv window
    const b = m.forward(slice(x, 1, 1, 5), a.state);
    const c = m.forward(slice(x, 1, 5), b.state);
    assert.ok(diff(concat([a.y, b.y, c.y], 1)) < 1e-5);
    let s = null;
    const steps: Tensor[] = [];
    for (let t = 0; t < 7; t++) {
      const r = m.forward(slice(x, 1, t, t + 1), s);
      s = r.state;
      steps.push(r.y);
    }
    assert.ok(diff(concat(steps, 1)) < 1e-5);
  });
});

function numericGrad(f: () => Tensor, p: Tensor, i: number, eps = 1e-2): number {
  const host = p.backend.view(p.storage.buf)!;
  const at = p.offset + i;
  const v = host[at]!;
  host[at] = v + eps;
  const up = noGrad(() => f().item());
  host[at] = v - eps;
  const down = noGrad(() => f().item());
  host[at] = v;
  return (up - down) / (2 * eps);
}

test('MambaMixer: gradients of every parameter match central finite differences', () => {
  const m = new MambaMixer({ ...OPTS, rng: new Rng(3) });
  const x = randn([1, 5, 4], { rng: new Rng(4) });
  const w = randn([1, 5, 4], { rng: new Rng(5) });
  const loss = () => sum(mul(m.forward(x).y, w));
  loss().backward();
  for (const [name, p] of m.namedParameters()) {
    const g = p.grad!.data();
    for (const i of [0, Math.floor(p.size / 2), p.size - 1]) {
      const num = numericGrad(loss, p, i);
      assert.ok(
        Math.abs(num - g[i]!) < 2e-3 + 3e-2 * Math.abs(num),
        `${name}[${i}]: analytic ${g[i]} vs numeric ${num}`,
      );
    }
  }
});
