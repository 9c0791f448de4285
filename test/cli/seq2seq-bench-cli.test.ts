// `lineage bench decode` on an encoder-decoder model directory (a tiny random T5): the source and the decoder
// each have the model's whole context (a prompt + output longer than it is accepted), and the JSON carries
// the batched and single-stream throughput and the KV figures of the paged pool.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLineage } from '../helpers/cli.js';

const lineage = (args: string[]) => runLineage(args);

test('bench decode runs a T5 model directory through the batched engine', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-s2s-bench-'));
  try {
    const model = join(dir, 't5');
    const init = lineage(['init', '--preset', 'tiny-t5', '--tokenizer', 'bytes', '--out', model]);
    assert.equal(init.code, 0, init.err);
    // 100 source tokens + 40 decoder steps: more than the 128-position context in all, each part within it
    const args = ['bench', 'decode', '--model', model, '--concurrency', '4', '--prompt-tokens', '100'];
    const r = lineage([...args, '--max-tokens', '40', '--prompts', 'random', '--threads', '1', '--json']);
    assert.equal(r.code, 0, r.err);
    const out = JSON.parse(r.out.trim()) as Record<string, number>;
    for (const k of ['tokensPerSecond', 'singleStreamTokensPerSecond', 'speedup', 'kvBlocksPeak', 'kvWastePercent'])
      assert.ok(typeof out[k] === 'number' && out[k]! >= 0, k);
    // four streams of 140 tokens in blocks of 16 at the peak
    assert.ok(out.kvBlocksPeak! >= 4 * 9, `kvBlocksPeak ${out.kvBlocksPeak}`);
    const tooLong = lineage([...args, '--max-tokens', '129', '--prompts', 'random', '--json']);
    assert.notEqual(tooLong.code, 0);
    assert.match(tooLong.err, /--max-tokens must each be at most the model's context 128/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
