// The `lineage` command end to end, as other tooling calls it (exact JSON interfaces).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');

function lineage(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LINEAGE_THREADS: '1', ...env },
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function json(args: string[]): Record<string, unknown> {
  const r = lineage(args);
  assert.equal(r.code, 0, `lineage ${args.join(' ')} failed: ${r.err}`);
  const text = r.out.trim();
  try {
    return JSON.parse(text) as Record<string, unknown>; // one (possibly pretty-printed) object
  } catch {
    return JSON.parse(text.split('\n').at(-1)!) as Record<string, unknown>; // progress lines, then the object
  }
}

test('help and unknown commands', () => {
  const h = lineage(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.out, /usage: lineage <command>/);
  const u = lineage(['frobnicate']);
  assert.equal(u.code, 2);
  assert.match(u.err, /unknown command 'frobnicate'/);
});

test('init -> inspect -> logits -> eval on a tiny LLaMA with the bytes tokenizer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-cli-'));
  try {
    const model = join(dir, 'm');
    const r = lineage([
      'init',
      '--preset',
      'tiny-llama',
      '--set',
      'num_hidden_layers=1',
      '--tokenizer',
      'bytes',
      '--seed',
      '7',
      '--out',
      model,
    ]);
    assert.equal(r.code, 0, r.err);
    const info = json(['inspect', model, '--json']);
    assert.equal(info.params, info.activeParams);
    const logits = json(['logits', '--model', model, '--ids', '1,2,3', '--json']).logits as number[][];
    assert.equal(logits.length, 3);
    assert.equal(logits[0]!.length, 256);
    const again = json(['logits', '--model', model, '--ids', '1,2,3', '--json']).logits as number[][];
    assert.deepEqual(again, logits);
    const text = join(dir, 'data.txt');
    writeFileSync(text, 'To be, or not to be, that is the question. '.repeat(20));
    const ev = json(['eval', '--model', model, '--data', text, '--seq-len', '32', '--json']);
    assert.ok(Number.isFinite(ev.loss as number) && (ev.loss as number) > 0);
    assert.ok((ev.tokens as number) > 0);
    const bad = lineage(['init', '--preset', 'no-such-preset', '--out', join(dir, 'x')]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /no-such-preset/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('inspect reproduces published parameter counts instantly', () => {
  assert.equal(json(['inspect', 'gpt2', '--json']).params, 124_439_808);
  const mixtral = json(['inspect', 'mixtral-8x7b', '--json']);
  assert.equal(mixtral.params, 46_702_792_704);
  assert.ok((mixtral.activeParams as number) < (mixtral.params as number) / 3);
  const qwen = json(['inspect', 'qwen3-30b-a3b', '--json']);
  assert.equal(qwen.params, 30_532_122_624);
  assert.equal(qwen.activeParams, 3_353_032_704);
  assert.match(qwen.source as string, /Qwen\/Qwen3-30B-A3B\/blob\/main\/config\.json/); // where the figures come from
});

test('generate uses the bundled model; greedy decoding is deterministic', () => {
  const a = json(['generate', '--prompt', 'ROMEO:', '--max-tokens', '20', '--temperature', '0', '--json']);
  const b = json(['generate', '--prompt', 'ROMEO:', '--max-tokens', '20', '--temperature', '0', '--json']);
  assert.equal(typeof a.text, 'string');
  assert.ok((a.text as string).length > 0); // the continuation (the prompt is not repeated)
  assert.equal((a.ids as number[]).length, 20);
  assert.deepEqual(a.ids, b.ids);
});

test('tokenize with the bytes tokenizer', () => {
  assert.deepEqual(json(['tokenize', '--tokenizer', 'bytes', '--text', 'hé', '--json']).ids, [104, 195, 169]);
});

test('bench gemm / attention print the JSON fields other tooling reads', () => {
  const g = json(['bench', 'gemm', '--m', '64', '--n', '48', '--k', '32', '--threads', '1', '--json']);
  assert.ok((g.gflops as number) > 0);
  const a = json([
    'bench',
    'attention',
    '--batch-heads',
    '2',
    '--seq',
    '64',
    '--head-dim',
    '16',
    '--causal',
    '--threads',
    '1',
    '--json',
  ]);
  assert.ok((a.gflops as number) > 0);
  assert.ok(typeof a.peakBytes === 'number');
  assert.equal(a.backward, false);
  const ab = json([
    'bench',
    'attention',
    '--batch-heads',
    '2',
    '--seq',
    '64',
    '--head-dim',
    '16',
    '--backward',
    '--json',
  ]);
  assert.equal(ab.backward, true);
  assert.ok((ab.gflops as number) > 0);
});
