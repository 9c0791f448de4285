// `--speculative mtp` end to end: a tiny DeepSeek-V3 (random weights, byte tokenizer) gives the same greedy
// text with its own MTP depths drafting as without, through `generate` and `bench decode`; a model
// without MTP depths and a wrong flag value are clear errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');
const BUNDLED = join(root, 'models', 'shakespeare-char');

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
  return JSON.parse(r.out.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

test('generate / bench decode --speculative mtp on a tiny DeepSeek-V3', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-mtp-'));
  try {
    const model = join(dir, 'v3');
    const init = lineage([
      'init',
      '--preset',
      'tiny-deepseek-v3',
      '--tokenizer',
      'bytes',
      '--seed',
      '3',
      '--out',
      model,
    ]);
    assert.equal(init.code, 0, init.err);
    const base = ['generate', '--model', model, '--prompt', 'To be, or', '--max-tokens', '24', '--temperature', '0'];
    const plain = json([...base, '--json']) as { ids: number[] };
    const spec = json([...base, '--speculative', 'mtp', '--speculative-tokens', '3', '--json']) as {
      ids: number[];
      acceptanceRate: number;
    };
    assert.deepEqual(spec.ids, plain.ids);
    assert.ok(spec.acceptanceRate >= 0 && spec.acceptanceRate <= 1);
    const bench = json([
      'bench',
      'decode',
      '--model',
      model,
      '--speculative',
      'mtp',
      '--concurrency',
      '2',
      '--prompt-tokens',
      '8',
      '--max-tokens',
      '8',
      '--threads',
      '1',
      '--json',
    ]);
    assert.equal(bench.speculative, true);
    assert.ok((bench.speculativeSpeedup as number) > 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--speculative mtp: a model without MTP depths and a wrong value are clear errors', () => {
  const none = lineage(['generate', '--model', BUNDLED, '--prompt', 'A', '--speculative', 'mtp']);
  assert.notEqual(none.code, 0);
  assert.match(none.err, /--speculative mtp: .* has no multi-token-prediction depths/);
  const bad = lineage(['generate', '--model', BUNDLED, '--prompt', 'A', '--speculative', 'eagle']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.err, /--speculative: expected "mtp"/);
});
