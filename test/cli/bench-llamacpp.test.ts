// `lineage bench llamacpp` end to end on a tiny shape: Lineage (wasm, 1 thread) and llama.cpp on the same GGUF.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');

function lineage(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const tiny = ['--hidden', '32', '--layers', '1', '--heads', '4', '--kv-heads', '2', '--ffn', '48', '--vocab', '260'];
const small = [...tiny, '--max-tokens', '4', '--prompt-tokens', '3', '--rounds', '1', '--threads', '1'];

test('bench llamacpp: tokens/s of both engines and their ratio (llama.cpp when node-llama-cpp loads)', () => {
  const r = lineage(['bench', 'llamacpp', ...small, '--backends', 'wasm', '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out.trim()) as {
    tokensPerSecond: Record<string, number>;
    ratios: Record<string, number>;
    llamaCpp: { version: string } | null;
    llamaCppError?: string;
  };
  assert.ok(j.tokensPerSecond['lineage-wasm t=1']! > 0);
  if (j.llamaCpp === null) {
    assert.match(j.llamaCppError!, /node-llama-cpp/);
    return;
  }
  assert.ok(j.tokensPerSecond['llama.cpp t=1']! > 0);
  assert.ok(j.ratios['lineage-wasm t=1 / llama.cpp t=1']! > 0);
});

test('bench llamacpp: bad flags name themselves', () => {
  const r = lineage(['bench', 'llamacpp', ...tiny, '--backends', 'gpu']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--backends: 'gpu' is not native or wasm/);
  const t = lineage(['bench', 'llamacpp', ...tiny, '--threads', '1,x']);
  assert.notEqual(t.code, 0);
  assert.match(t.err, /--threads/);
});
