// Embeddings: padded batches equal one-at-a-time forwards for every pooling (encoder and decoder), an
// encoder is served for embeddings only (generation is a clear 400), and `lineage serve` reads a
// sentence-transformers pooling config and computes embeddings on its worker thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { tensor } from '../../src/ops/index.js';
import { noGrad } from '../../src/tensor/engine.js';
import type { LanguageModel } from '../../src/models/model.js';
import { bytesTokenizer } from '../../src/tokenizers/index.js';
import { embedTokens, type Pooling } from '../../src/infer/embed.js';
import { saveModel } from '../../src/models/load-node.js';
import { createServer } from '../../src/serve/app.js';
import { servedInProcess } from '../../src/serve/models.js';

/** reference: one unpadded forward per input, pooled and normalised by hand */
function oneByOne(model: LanguageModel, ids: number[], pooling: Pooling): number[] {
  model.eval();
  const h = noGrad(() =>
    model.forward({ inputIds: tensor(Int32Array.from(ids), { shape: [1, ids.length], dtype: 'int32' }) }),
  ).lastHiddenState!;
  const D = h.shape[2]!;
  const all = Array.from(h.data() as Float32Array);
  const row = (t: number) => all.slice(t * D, (t + 1) * D);
  let v: number[];
  if (pooling === 'cls') v = row(0);
  else if (pooling === 'last') v = row(ids.length - 1);
  else v = Array.from({ length: D }, (_, d) => ids.reduce((s, _x, t) => s + all[t * D + d]!, 0) / ids.length);
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

const INPUTS = [[5, 9, 2], [7], [3, 1, 4, 1, 5, 9, 2, 6], [8, 8]];

for (const [preset, poolings] of [
  ['tiny-bert', ['cls', 'mean']],
  ['tiny-llama', ['mean', 'last']],
] as const) {
  test(`embedTokens: ${preset} padded batches equal single forwards (${poolings.join(', ')})`, () => {
    const model = createModel(getPreset(preset), { seed: 3 });
    for (const pooling of poolings) {
      // a budget of 16 tokens splits the four inputs into several padded batches
      const got = embedTokens(model, INPUTS, { pooling, maxBatchTokens: 16 });
      INPUTS.forEach((ids, i) => {
        const want = oneByOne(model, ids, pooling);
        assert.equal(got[i]!.length, want.length);
        got[i]!.forEach((x, d) => assert.ok(Math.abs(x - want[d]!) < 1e-4, `${pooling} input ${i} dim ${d}`));
      });
    }
  });
}

test('embedTokens: an empty input is named', () => {
  const model = createModel(getPreset('tiny-llama'), { seed: 1 });
  assert.throws(() => embedTokens(model, [[1, 2], []]), /input\[1\] is empty/);
});

test('server: an encoder serves embeddings; completions on it are a 400 naming the model', async () => {
  const model = createModel(getPreset('tiny-bert'), { seed: 2 });
  const tok = bytesTokenizer();
  const app = createServer({ models: [servedInProcess('enc', model, tok, { pooling: 'mean' })] });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  try {
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
    const r = await client.embeddings.create({ model: 'enc', input: ['abc', 'de'] });
    const want = embedTokens(model, [tok.encode('abc'), tok.encode('de')], { pooling: 'mean' });
    r.data.forEach((d, i) => d.embedding.forEach((x, j) => assert.ok(Math.abs(x - want[i]![j]!) < 1e-5)));
    await assert.rejects(client.completions.create({ model: 'enc', prompt: 'hi' }), (e: Error & { status: number }) => {
      assert.equal(e.status, 400);
      assert.match(e.message, /encoder/);
      return true;
    });
  } finally {
    await app.close();
  }
});

test('lineage serve: a BERT directory with a sentence-transformers pooling config, embeddings on the worker', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-embed-'));
  const model = createModel(getPreset('tiny-bert'), { seed: 4 });
  const tok = bytesTokenizer();
  await saveModel(model, dir, { tokenizer: tok });
  mkdirSync(join(dir, '1_Pooling'));
  writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ pooling_mode_mean_tokens: true }));
  const proc = spawn(
    process.execPath,
    ['--experimental-wasm-relaxed-simd', 'bin/lineage.js', 'serve', '--port', '0', '--model', `enc=${dir}`],
    { env: { ...process.env, LINEAGE_THREADS: '1' } },
  );
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setInterval(() => {
        const m = /on (http:\/\/[^ ]+) /.exec(out);
        if (m) resolve((clearInterval(timer), m[1]!));
      }, 50);
      proc.on('exit', (code) => reject((clearInterval(timer), new Error(`serve exited ${code}:\n${out}`))));
    });
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'x', maxRetries: 0 });
    const r = await client.embeddings.create({ model: 'enc', input: 'to be or not' });
    const want = embedTokens(model, [tok.encode('to be or not')], { pooling: 'mean' })[0]!;
    r.data[0]!.embedding.forEach((x, j) => assert.ok(Math.abs(x - want[j]!) < 1e-4, `dim ${j}: ${x} vs ${want[j]}`));
    const c = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'enc', messages: [{ role: 'user', content: 'hi' }] }),
    });
    assert.equal(c.status, 400);
  } finally {
    proc.kill('SIGTERM');
    await new Promise((r) => proc.once('exit', r));
  }
});
