// `lineage generate` through the engine and `lineage bench decode`, end to end on the bundled model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');
const MODEL = join(root, 'models', 'shakespeare-char');

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

const base = ['generate', '--prompt', 'ROMEO:', '--max-tokens', '30', '--temperature', '0', '--json'];

test('generate: stop strings, logprobs, n samples, speculative decoding with the same greedy text', () => {
  const plain = json(base) as { text: string; ids: number[] };
  assert.equal(plain.ids.length, 30);
  const stop = plain.text.slice(8, 11);
  const stopped = json([...base, '--stop', stop, '--stop', 'zzz', '--logprobs', '2']) as {
    text: string;
    finishReason: string;
    logprobs: unknown[];
  };
  assert.equal(stopped.text, plain.text.slice(0, plain.text.indexOf(stop)));
  assert.equal(stopped.finishReason, 'stop');
  assert.ok(stopped.logprobs.length > 0);
  for (const extra of [['--prompt-lookup'], ['--draft-model', MODEL, '--speculative-tokens', '3']]) {
    const spec = json([...base, ...extra]) as { ids: number[]; acceptanceRate: number };
    assert.deepEqual(spec.ids, plain.ids);
    assert.ok(spec.acceptanceRate > 0);
  }
  const many = json([
    'generate',
    '--prompt',
    'ROMEO:',
    '--max-tokens',
    '10',
    '--n',
    '3',
    '--min-p',
    '0.05',
    '--repetition-penalty',
    '1.1',
    '--seed',
    '2',
    '--json',
  ]) as {
    choices: { ids: number[] }[];
  };
  assert.equal(many.choices.length, 3);
  for (const c of many.choices) assert.equal(c.ids.length, 10);
});

test('generate: a bad engine flag value is a clear error', () => {
  const r = lineage([...base, '--top-p', '1.5', '--n', '2']);
  assert.notEqual(r.code, 0);
  assert.match(r.err, /--top-p/);
});

test('bench decode prints one JSON object with the throughput and KV figures', () => {
  const r = json([
    'bench',
    'decode',
    '--concurrency',
    '4',
    '--prompt-tokens',
    '8',
    '--max-tokens',
    '8',
    '--threads',
    '1',
    '--json',
  ]);
  for (const k of [
    'tokensPerSecond',
    'singleStreamTokensPerSecond',
    'ttftMsP50',
    'itlMsP50',
    'kvBlocksPeak',
    'kvWastePercent',
  ]) {
    assert.equal(typeof r[k], 'number', k);
    assert.ok((r[k] as number) >= 0, k);
  }
  assert.ok((r.kvBlocksPeak as number) >= 4);
});
