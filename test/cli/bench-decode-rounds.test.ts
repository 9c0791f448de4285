// `lineage bench decode` with a drafter: interleaved single-stream rounds, their per-round ratios, the CPU-time
// ratio, the greedy-identity check, and a single-stream pass larger than the batched one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');
const MODEL = join(root, 'models', 'shakespeare-char');

function bench(extra: string[]): Record<string, unknown> {
  const args = ['bench', 'decode', '--model', MODEL, '--prompt-tokens', '8', '--max-tokens', '6', '--threads', '1'];
  const r = spawnSync(process.execPath, [bin, ...args, ...extra, '--json'], {
    encoding: 'utf8',
    env: { ...process.env, LINEAGE_THREADS: '1' },
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `bench decode failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim()) as Record<string, unknown>;
}

test('bench decode --draft-model: rounds, per-round ratios, CPU ratio, identical output, single-requests > concurrency', () => {
  // the bundled model drafting for itself: every draft is accepted and the output must be identical
  const r = bench(['--draft-model', MODEL, '--concurrency', '1', '--single-requests', '3', '--rounds', '2']);
  assert.equal(r.speculative, true);
  assert.equal(r.singleRequests, 3);
  assert.equal(r.rounds, 2);
  const rounds = r.speculativeSpeedupRounds as number[];
  assert.equal(rounds.length, 2);
  for (const x of rounds) assert.ok(Number.isFinite(x) && x > 0, `round ratio ${x}`);
  const [lo, hi] = [Math.min(...rounds), Math.max(...rounds)];
  const s = r.speculativeSpeedup as number;
  assert.ok(s >= lo && s <= hi, `median ${s} within the rounds [${lo}, ${hi}]`);
  assert.ok(Number.isFinite(r.speculativeSpeedupCpu as number) && (r.speculativeSpeedupCpu as number) > 0);
  assert.equal(r.identicalOutput, true);
  assert.equal(r.singleStreamAcceptanceRate, 1);
  for (const k of ['tokensPerSecond', 'singleStreamTokensPerSecond', 'plainSingleStreamTokensPerSecond'])
    assert.ok((r[k] as number) > 0, k);
});

test('bench decode without a drafter: one round by default, no speculative fields; bad --rounds is an error', () => {
  const r = bench(['--concurrency', '2']);
  assert.equal(r.rounds, 1);
  assert.equal(r.singleRequests, 2);
  assert.equal(r.speculativeSpeedup, undefined);
  const bad = spawnSync(
    process.execPath,
    [
      bin,
      'bench',
      'decode',
      '--model',
      MODEL,
      '--concurrency',
      '1',
      '--prompt-tokens',
      '4',
      '--max-tokens',
      '2',
      '--rounds',
      '0',
    ],
    { encoding: 'utf8', env: { ...process.env, LINEAGE_THREADS: '1' }, timeout: 120_000 },
  );
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /rounds/);
});
