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
import { startServe } from '../helpers/serve-process.js';

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

/** one greedy completion from `lineage serve --speculative mtp` (a real process, stopped with SIGTERM) */
async function serveCompletion(model: string, prompt: string, maxTokens: number): Promise<string> {
  const s = await startServe(['--model', `v3=${model}`, '--speculative', 'mtp']);
  const exited = new Promise<number | null>((res) => s.proc.on('exit', res));
  try {
    const r = await fetch(`${s.url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'v3', prompt, max_tokens: maxTokens, temperature: 0 }),
    });
    assert.equal(r.status, 200, s.out());
    return ((await r.json()) as { choices: { text: string }[] }).choices[0]!.text;
  } finally {
    s.proc.kill('SIGTERM');
    await exited;
  }
}

test('generate / serve / bench decode --speculative mtp on a tiny DeepSeek-V3', async () => {
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
    const served = await serveCompletion(model, 'To be, or', 24);
    assert.equal(served, (json([...base, '--json']) as { text: string }).text);
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
