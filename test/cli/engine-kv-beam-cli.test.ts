// `--kv-dtype` on `lineage generate` and `lineage bench decode`, end to end on the bundled model.
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
