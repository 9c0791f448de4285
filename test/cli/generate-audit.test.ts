// `lineage generate` / `bench decode` / `quantize` fixes of the inference audit: one sampler for both
// paths (a seed's sample does not depend on --max-tokens), no-op flags change nothing, context limits are
// stated, ids/logprobs match the text a stop string leaves, request errors name flags, recurrent and
// encoder-decoder models through the engine, bench decode's ITL with speculation and its flag checks,
// and quantize keeping unquantized tensors in their source dtype.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensorsHeader, readHeaderLength } from '../../src/io/safetensors.js';
import { packageRoot as root, runLineage } from '../helpers/cli.js';

const CHAR = join(root, 'models', 'shakespeare-char');
const LLAMA = join(root, 'models', 'shakespeare-llama');

const lineage = (args: string[]) => runLineage(args, {}, 180_000);

function json(args: string[]): Record<string, unknown> & { err: string } {
  const r = lineage(args);
  assert.equal(r.code, 0, `lineage ${args.join(' ')} failed: ${r.err}`);
  return { ...(JSON.parse(r.out.trim()) as Record<string, unknown>), err: r.err };
}

const gen = (...a: string[]) => ['generate', '--model', CHAR, '--prompt', 'ROMEO:', ...a];

test('generate: a seed gives the same sample whatever --max-tokens (engine and sliding plain loop agree)', () => {
  const short = json(gen('--max-tokens', '40', '--seed', '1', '--json')); // fits the context: engine
  const long = json(gen('--max-tokens', '100', '--seed', '1', '--json')); // past it: the window slides
  assert.equal((long.ids as number[]).length, 100);
  assert.deepEqual((long.ids as number[]).slice(0, 40), short.ids);
  assert.equal(long.finishReason, 'length');
});

test('generate: --n 1 changes nothing; an engine flag past the context says it stops there', () => {
  const plain = json(gen('--max-tokens', '100', '--temperature', '0', '--json'));
  const n1 = json(gen('--max-tokens', '100', '--temperature', '0', '--json', '--n', '1', '--kv-dtype', 'float32'));
  assert.deepEqual(n1.ids, plain.ids);
  const lp = json(gen('--max-tokens', '100', '--temperature', '0', '--json', '--logprobs', '0'));
  assert.equal((lp.ids as number[]).length, 58); // context 64 - prompt 6
  assert.equal(lp.finishReason, 'length');
  assert.match(lp.err, /note: gpt2's context is 64 positions: generation stops after at most 58 new tokens/);
  assert.deepEqual(lp.ids, (plain.ids as number[]).slice(0, 58));
});

test('generate: a RoPE model stops at its context with a note instead of running past it', () => {
  const prompt = readFileSync(join(root, 'data', 'tinyshakespeare.txt'), 'utf8').slice(0, 250);
  const r = json([
    'generate',
    '--model',
    LLAMA,
    '--prompt',
    prompt,
    '--max-tokens',
    '20',
    '--temperature',
    '0',
    '--json',
  ]);
  assert.ok((r.ids as number[]).length < 20);
  assert.equal(r.finishReason, 'length');
  assert.match(r.err, /note: llama's context is 256 positions/);
  const over = lineage(['generate', '--model', LLAMA, '--prompt', prompt + prompt, '--max-tokens', '2']);
  assert.notEqual(over.code, 0);
  assert.match(over.err, /--prompt: the prompt has \d+ tokens; the model's context is 256/);
});

test('generate --json --stop: ids and logprobs are the tokens behind the text', () => {
  const plain = json(gen('--max-tokens', '30', '--temperature', '0', '--json'));
  const stop = (plain.text as string).slice(10, 14);
  const r = json(gen('--max-tokens', '30', '--temperature', '0', '--json', '--stop', stop, '--logprobs', '1'));
  const text = r.text as string;
  assert.equal(text, (plain.text as string).slice(0, (plain.text as string).indexOf(stop)));
  // a character model: one token per character
  assert.equal((r.ids as number[]).length, text.length);
  assert.equal((r.logprobs as unknown[]).length, text.length);
  assert.deepEqual(r.ids, (plain.ids as number[]).slice(0, text.length));
});

test('generate: request errors name the CLI flag', () => {
  const empty = lineage(gen('--stop', ''));
  assert.notEqual(empty.code, 0);
  assert.match(empty.err, /--stop: every stop string must be a non-empty string/);
  const zero = json(gen('--max-tokens', '0', '--n', '2', '--json'));
  assert.equal((zero.choices as unknown[]).length, 2);
});

test('generate: Mamba / LSTM take the engine flags; speculative decoding and beams are refused by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-gen-audit-'));
  try {
    for (const preset of ['tiny-mamba', 'tiny-lstm']) {
      const out = join(dir, preset);
      const init = lineage(['init', '--preset', preset, '--tokenizer', 'bytes', '--out', out]);
      assert.equal(init.code, 0, init.err);
      const base = ['generate', '--model', out, '--prompt', 'ROMEO:', '--max-tokens', '6', '--json'];
      const many = json([...base, '--n', '2', '--stop', 'zz', '--logprobs', '1', '--seed', '3']);
      assert.equal((many.choices as unknown[]).length, 2);
      const one = json([...base, '--seed', '3']);
      assert.deepEqual((many.choices as { ids: number[] }[])[0]!.ids.slice(0, 1), (one.ids as number[]).slice(0, 1));
      const spec = lineage([...base, '--prompt-lookup']);
      assert.match(spec.err, /--prompt-lookup: speculative decoding needs a decoder-only transformer target/);
      const beams = lineage([...base, '--beams', '2']);
      assert.match(beams.err, /--beams: beam search needs a paged KV cache/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate: BART stops at its decoder context instead of failing after it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-gen-bart-'));
  try {
    const out = join(dir, 'bart');
    assert.equal(lineage(['init', '--preset', 'tiny-bart', '--tokenizer', 'bytes', '--out', out]).code, 0);
    const r = json([
      'generate',
      '--model',
      out,
      '--prompt',
      'hello',
      '--max-tokens',
      '150',
      '--temperature',
      '0',
      '--json',
    ]);
    assert.ok((r.ids as number[]).length <= 128);
    if ((r.ids as number[]).length === 128) assert.match(r.err, /decoder context is 128 positions/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const bench = ['bench', 'decode', '--model', CHAR, '--concurrency', '2', '--prompt-tokens', '8', '--threads', '1'];

test('bench decode: flags checked; ITL per token with speculation; null ITL at one token; exact KV bytes', () => {
  const foo = lineage([...bench, '--max-tokens', '4', '--prompts', 'foo', '--json']);
  assert.match(foo.err, /--prompts: expected text or random, got 'foo'/);
  const k = lineage([...bench, '--max-tokens', '4', '--speculative-tokens', '3', '--json']);
  assert.match(k.err, /--speculative-tokens needs a drafter/);
  const t = lineage([...bench.slice(0, -1), '999', '--max-tokens', '4', '--json']);
  assert.match(t.err, /--threads: at most this machine's \d+ cores, got 999/);
  const one = json([...bench, '--max-tokens', '1', '--json']);
  assert.equal(one.itlMsP50, null);
  assert.equal(one.kvBytesPerToken, 4 * 4 * 32 * 2 * 4); // layers x heads x head dim x (K, V) x float32
  const spec = json([
    ...bench,
    '--max-tokens',
    '16',
    '--draft-model',
    CHAR,
    '--rounds',
    '1',
    '--single-requests',
    '1',
    '--json',
  ]);
  // every draft is accepted (the drafter is the target): per-token ITL near TPOT, not ~0 for tokens of one step
  assert.ok((spec.acceptanceRate as number) > 0.5);
  assert.ok((spec.itlMsP50 as number) > (spec.tpotMsP50 as number) / 10, `${spec.itlMsP50} vs ${spec.tpotMsP50}`);
});

test('quantize keeps embeddings, norms and head in the source dtype (BF16 stays BF16)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-q-dtype-'));
  try {
    const out = join(dir, 'q8');
    assert.equal(lineage(['quantize', '--model', LLAMA, '--bits', '8', '--out', out]).code, 0);
    const dtypes = (file: string) => {
      const b = new Uint8Array(readFileSync(file));
      const n = readHeaderLength(b.subarray(0, 8), b.length);
      const h = parseSafetensorsHeader(b.subarray(8, 8 + n), b.length - 8 - n);
      return new Map(h.entries.map((e) => [e.name, e.dtype]));
    };
    const src = dtypes(join(LLAMA, 'model.safetensors'));
    const q = dtypes(join(out, 'model.safetensors'));
    let kept = 0;
    for (const [name, dtype] of q) {
      if (dtype === 'U8') continue;
      assert.equal(dtype, src.get(name), name);
      kept++;
    }
    assert.ok(kept > 0 && q.get('model.embed_tokens.weight') === src.get('model.embed_tokens.weight'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
