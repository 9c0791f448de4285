// RNN / LSTM / GRU layers: torch parameter names and shapes, chunked == whole-sequence runs, and
// analytic gradients against central finite differences.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, concat, mul, noGrad, randn, slice, sum, type Tensor } from '../../src/index.js';
import { RNN, RNN_GATES, type RnnCellKind } from '../../src/nn/rnn.js';

const CELLS: RnnCellKind[] = ['rnn', 'lstm', 'gru'];

test('RNN layers: torch parameter names and shapes; bias: false drops the biases', () => {
  for (const kind of CELLS) {
    const G = RNN_GATES[kind];
    const names = new RNN(kind, 5, 7, 2).namedParameters().map(([n, t]) => `${n}:${t.shape.join('x')}`);
    assert.deepEqual(names, [
      `weight_ih_l0:${G * 7}x5`,
      `weight_hh_l0:${G * 7}x7`,
      `bias_ih_l0:${G * 7}`,
      `bias_hh_l0:${G * 7}`,
      `weight_ih_l1:${G * 7}x7`,
      `weight_hh_l1:${G * 7}x7`,
      `bias_ih_l1:${G * 7}`,
      `bias_hh_l1:${G * 7}`,
    ]);
    assert.equal(new RNN(kind, 5, 7, 1, { bias: false }).namedParameters().length, 2);
  }
});

test('RNN layers: running in chunks with the carried state equals one pass', () => {
  for (const kind of CELLS) {
    const rnn = new RNN(kind, 3, 4, 2, { rng: new Rng(1) });
    const x = randn([2, 5, 3], { rng: new Rng(2) });
    noGrad(() => {
      const whole = rnn.forward(x);
      const a = rnn.forward(slice(x, 1, 0, 2));
      const b = rnn.forward(slice(x, 1, 2), a.state);
      const d = Math.max(...concat([a.output, b.output], 1).sub(whole.output).abs().toList());
      assert.ok(d < 1e-6, `${kind}: chunked vs whole ${d}`);
      for (let l = 0; l < 2; l++) assert.ok(Math.max(...b.state[l]!.h.sub(whole.state[l]!.h).abs().toList()) < 1e-6);
    });
  }
});

/** d(sum(out * w))/d(param[i]) by central differences, in float64 arithmetic on float32 values */
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

test('RNN layers: gradients match central finite differences (every tensor, a few entries each)', () => {
  for (const kind of CELLS) {
    const rnn = new RNN(kind, 2, 3, 2, { rng: new Rng(3) });
    const x = randn([2, 4, 2], { rng: new Rng(4) });
    const w = randn([2, 4, 3], { rng: new Rng(5) });
    const h0 = rnn
      .initialState(2)
      .map((s) => ({ h: randn([2, 3], { rng: new Rng(6) }), c: s.c ? randn([2, 3], { rng: new Rng(7) }) : null }));
    const loss = () => sum(mul(rnn.forward(x, h0).output, w));
    loss().backward();
    for (const [name, p] of rnn.namedParameters()) {
      const g = p.grad!.data();
      for (const i of [0, Math.floor(p.size / 2), p.size - 1]) {
        const num = numericGrad(loss, p, i);
        assert.ok(
          Math.abs(num - g[i]!) < 2e-3 + 2e-2 * Math.abs(num),
          `${kind} ${name}[${i}]: analytic ${g[i]} vs numeric ${num}`,
        );
      }
    }
  }
});
