// ViT patch embedding: the stride-P conv done as patchify + matmul equals a direct convolution, and a
// tiny vision-language decoder ([image tokens | text tokens] in one causal sequence) trains the patch
// projection end to end.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Rng, add, crossEntropy, randn, randint, reshape, slice, type Tensor } from '../../src/index.js';
import { Module } from '../../src/nn/module.js';
import { Embedding, Linear } from '../../src/nn/layers.js';
import { Attention } from '../../src/nn/attention.js';
import { PatchEmbedding, prependImageTokens } from '../../src/nn/vision.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';

test('patch projection equals a direct stride-P convolution (weight [D, C, P, P])', () => {
  const [B, C, S, P, D] = [2, 3, 4, 2, 5];
  const pe = new PatchEmbedding({ imageSize: S, patchSize: P, channels: C, hidden: D, rng: new Rng(1), std: 0.5 });
  const img = randn([B, C, S, S], { rng: new Rng(2) });
  const out = pe.patch_embeddings.projection.forward(img).data(); // (B, N, D)
  const [x, w] = [img.data(), pe.patch_embeddings.projection.namedParameters()[0]![1].data()];
  const n = S / P;
  for (let b = 0; b < B; b++)
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++)
        for (let d = 0; d < D; d++) {
          let s = 0;
          for (let c = 0; c < C; c++)
            for (let u = 0; u < P; u++)
              for (let v = 0; v < P; v++) {
                s += w[((d * C + c) * P + u) * P + v]! * x[((b * C + c) * S + i * P + u) * S + j * P + v]!;
              }
          const got = out[(b * n * n + i * n + j) * D + d]!;
          assert.ok(Math.abs(got - s) < 1e-5, `patch (${i}, ${j}) dim ${d}: ${got} vs ${s}`);
        }
});

/** tiny vision-language decoder: [image tokens | text tokens] -> one causal attention layer -> head */
class TinyVLM extends Module {
  readonly vision: PatchEmbedding;
  readonly embed: Embedding;
  readonly attn: Attention;
  readonly head: Linear;
  constructor(
    readonly V: number,
    readonly D: number,
    rng: Rng,
  ) {
    super();
    this.vision = this.child(
      'vision',
      new PatchEmbedding({ imageSize: 4, patchSize: 2, channels: 3, hidden: D, clsToken: true, rng, std: 0.3 }),
    );
    this.embed = this.child('embed', new Embedding(V, D, { rng, std: 0.3 }));
    this.attn = this.child(
      'attn',
      new Attention({
        dim: D,
        heads: 2,
        kvHeads: 2,
        headDim: D / 2,
        qkvBias: true,
        outBias: true,
        scale: null,
        names: { q: 'q', k: 'k', v: 'v', o: 'o' },
        rng,
        std: 0.3,
      }),
    );
    this.head = this.child('head', new Linear(D, V, { rng, std: 0.3 }));
  }
  /** logits of the text positions [B, T, V] */
  forward(images: Tensor, ids: Tensor): Tensor {
    const x = prependImageTokens(this.vision.forward(images), this.embed.forward(ids)); // (B, N+T, D)
    const h = add(
      x,
      this.attn.forward(x, { mask: { causal: true, window: { kind: 'full' }, padding: null }, qStart: 0 }),
    );
    return slice(this.head.forward(h), 1, this.vision.tokens); // (B, T, V)
  }
}

test('tiny vision-language decoder: image tokens condition the text and gradients reach the patch projection', () => {
  const rng = new Rng(3);
  const model = new TinyVLM(16, 8, rng);
  const img = randn([2, 3, 4, 4], { rng });
  const ids = randint(0, 16, [2, 5], rng);
  const logits = model.forward(img, ids);
  assert.deepEqual([...logits.shape], [2, 5, 16]);
  const other = model.forward(randn([2, 3, 4, 4], { rng }), ids);
  assert.ok(Math.abs(logits.data()[0]! - other.data()[0]!) > 1e-6, 'the image must influence the first text token');
  const loss = crossEntropy(reshape(slice(logits, 1, 0, 4), [8, 16]), reshape(slice(ids, 1, 1), [8]));
  loss.backward();
  const grads = new Map(model.namedParameters().map(([n, t]) => [n, t.grad]));
  for (const name of [
    'vision.patch_embeddings.projection.weight',
    'vision.patch_embeddings.projection.bias',
    'vision.position_embeddings',
    'vision.cls_token',
  ]) {
    const g = grads.get(name);
    assert.ok(g, `${name} has no gradient`);
    const norm = Array.from(g.data()).reduce((s, v) => s + v * v, 0);
    assert.ok(norm > 0 && Number.isFinite(norm), `${name} gradient norm ${norm}`);
  }
});

test('tiny-vlm preset (Llama decoder + PatchEmbedding): [image | text] logits; gradients reach the patch projection', () => {
  const model = createModel(getPreset('tiny-vlm'), { seed: 1 });
  const rng = new Rng(5);
  const V = model.config.vocabSize;
  const ids = randint(0, V, [2, 6], rng);
  const img = randn([2, 3, 32, 32], { rng });
  const { logits } = model.forward({ inputIds: ids, pixelValues: img });
  const N = 16; // (32 / 8)^2 patches
  assert.deepEqual([...logits.shape], [2, N + 6, V]);
  const text = slice(logits, 1, N); // (B, 6, V): text positions
  const loss = crossEntropy(reshape(slice(text, 1, 0, 5), [10, V]), reshape(slice(ids, 1, 1), [10]));
  loss.backward();
  const params = new Map(model.namedParameters());
  const proj = [...params.keys()].filter((n) => n.includes('patch_embeddings.projection'));
  assert.equal(proj.length, 2, `patch projection parameters: ${proj.join(', ')}`);
  for (const n of proj) {
    const g = params.get(n)!.grad;
    assert.ok(g, `${n} has no gradient`);
    const norm = Array.from(g.data()).reduce((s, v) => s + v * v, 0);
    assert.ok(norm > 0 && Number.isFinite(norm), `${n} gradient norm ${norm}`);
  }
});
