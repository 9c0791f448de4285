// `lineage generate` runs T5 / BART on the inference engine when an engine flag asks for it: the engine's
// greedy output equals the plain single-sequence path, and --beams returns scored hypotheses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runLineage } from '../helpers/cli.js';

const lineage = (args: string[]) => runLineage(args);

function json(args: string[]): Record<string, unknown> {
  const r = lineage(args);
  assert.equal(r.code, 0, `lineage ${args.join(' ')} failed: ${r.err}`);
  return JSON.parse(r.out.trim()) as Record<string, unknown>;
}

for (const preset of ['tiny-t5', 'tiny-bart']) {
  test(`generate on the engine (${preset}): greedy equals the plain path; --beams gives scored hypotheses`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'lineage-seq2seq-'));
    try {
      const model = join(dir, 'm');
      const init = lineage(['init', '--preset', preset, '--tokenizer', 'bytes', '--seed', '5', '--out', model]);
      assert.equal(init.code, 0, init.err);
      const base = ['generate', '--model', model, '--prompt', 'hello there', '--max-tokens', '8', '--json'];
      const plain = json([...base, '--temperature', '0']) as { ids: number[] };
      // --logprobs is an engine flag: the same request goes through the engine
      const engine = json([...base, '--temperature', '0', '--logprobs', '1']) as { ids: number[]; logprobs: unknown[] };
      assert.equal(engine.ids.length, 8);
      assert.deepEqual(engine.ids, plain.ids);
      assert.equal(engine.logprobs.length, engine.ids.length);
      const beams = json([...base, '--beams', '3', '--n', '2']) as { choices: { ids: number[]; score: number }[] };
      assert.equal(beams.choices.length, 2);
      assert.ok(beams.choices[0]!.score >= beams.choices[1]!.score, 'best first');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
