// `--kv-dtype` on `lineage generate` and `lineage bench decode`, and `generate --beams`, end to end on the bundled model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');

function lineage(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LINEAGE_THREADS: '1' },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function json(args: string[]): Record<string, unknown> {
  const r = lineage(args);
  assert.equal(r.code, 0, `lineage ${args.join(' ')} failed: ${r.err}`);
  return JSON.parse(r.out.trim()) as Record<string, unknown>;
}

const base = ['generate', '--prompt', 'ROMEO:', '--max-tokens', '24', '--temperature', '0', '--json'];

test('generate --kv-dtype: float16 gives the float32 greedy text; a bad dtype is named', () => {
  const plain = json(base) as { ids: number[] };
  const half = json([...base, '--kv-dtype', 'float16']) as { ids: number[] };
  assert.deepEqual(half.ids, plain.ids);
  const bad = lineage([...base, '--kv-dtype', 'fp4']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /--kv-dtype.*float32, float16, bfloat16, int8/);
});

test('bench decode --kv-dtype int8 reports the dtype and its bytes per token', () => {
  const args = ['bench', 'decode', '--concurrency', '2', '--prompt-tokens', '8', '--max-tokens', '6', '--threads', '1'];
  const f32 = json([...args, '--json']);
  const i8 = json([...args, '--kv-dtype', 'int8', '--json']);
  assert.equal(i8.kvDtype, 'int8');
  assert.equal(f32.kvDtype, 'float32');
  assert.ok((i8.kvBytesPerToken as number) < (f32.kvBytesPerToken as number) / 3);
  assert.equal(typeof i8.tokensPerSecond, 'number');
});

test('generate --beams B --n K: the K best beam hypotheses with scores; bad combinations are refused', () => {
  const beam = ['generate', '--prompt', 'ROMEO:', '--json', '--beams', '3', '--max-tokens', '10'];
  const r = json([...beam, '--n', '2']) as { choices: { ids: number[]; score: number; finishReason: string }[] };
  assert.equal(r.choices.length, 2);
  for (const c of r.choices) [assert.equal(c.ids.length, 10), assert.equal(c.finishReason, 'length')];
  assert.notDeepEqual(r.choices[0]!.ids, r.choices[1]!.ids);
  assert.ok(r.choices[0]!.score >= r.choices[1]!.score, 'best first');
  assert.ok(r.choices[1]!.score < 0, 'a mean log-probability');
  // deterministic: the single best is the first of the two best (the default temperature does not apply)
  const one = json(beam) as { ids: number[]; score: number };
  assert.deepEqual(one.ids, r.choices[0]!.ids);
  assert.equal(one.score, r.choices[0]!.score);
  const text = lineage(['generate', '--prompt', 'ROMEO:', '--beams', '2', '--n', '2', '--max-tokens', '4']);
  assert.equal(text.code, 0, text.err);
  assert.match(text.out, /--- beam 0 \(length, score -\d+\.\d{4}\) ---/);
  const bad = lineage([...base, '--beams', '2', '--n', '3']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /n \(3\) must be at most beams \(2\)/);
  const sampled = lineage(['generate', '--prompt', 'ROMEO:', '--beams', '2', '--temperature', '0.7']);
  assert.notEqual(sampled.code, 0);
  assert.match(sampled.err, /temperature is not supported with beam search/);
});
