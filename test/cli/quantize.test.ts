// `lineage quantize` end to end on a tiny LLaMA: quantize -> eval -> generate, the written format, and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSafetensors } from '../../src/io/safetensors.js';

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
  return JSON.parse(r.out.trim().split('\n').at(-1)!) as Record<string, unknown>;
}

test('quantize --bits 8 and 4 -> eval -> generate on a tiny LLaMA', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-quant-'));
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
      '3',
      '--out',
      model,
    ]);
    assert.equal(r.code, 0, r.err);
    const text = join(dir, 'text.txt');
    writeFileSync(text, 'To be, or not to be, that is the question. '.repeat(8));
    const base = json(['eval', '--model', model, '--data', text, '--seq-len', '32', '--json']);
    for (const bits of [8, 4]) {
      const out = join(dir, `q${bits}`);
      const s = json(['quantize', '--model', model, '--bits', String(bits), '--out', out, '--json']);
      assert.equal(s.quantized, 7); // q, k, v, o, gate, up, down
      assert.equal(s.format, bits === 8 ? 'q8_0' : 'q4_0');
      assert.ok((s.outBytes as number) < (s.sourceBytes as number));
      const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
      assert.equal(cfg.quantization_config.bits, bits);
      assert.equal(cfg.quantization_config.group_size, 32);
      assert.ok(existsSync(join(out, 'tokenizer.json')));
      const file = readFileSync(join(out, 'model.safetensors'));
      parseSafetensors(file); // a valid file
      const header = JSON.parse(file.subarray(8, 8 + file.readUInt32LE(0)).toString('utf8'));
      const q = header['model.layers.0.self_attn.q_proj.weight'];
      assert.equal(q.dtype, 'U8');
      assert.deepEqual(q.shape, [64, 2 * (bits === 8 ? 34 : 18)]); // 64 outputs, 64 inputs = 2 blocks per row
      const ev = json(['eval', '--model', out, '--data', text, '--seq-len', '32', '--json']);
      const rel = Math.abs((ev.loss as number) - (base.loss as number)) / (base.loss as number);
      assert.ok(rel < (bits === 8 ? 0.001 : 0.02), `q${bits}: loss ${ev.loss} vs float ${base.loss}`);
      const g = json([
        'generate',
        '--model',
        out,
        '--prompt',
        'To be',
        '--max-tokens',
        '8',
        '--temperature',
        '0',
        '--json',
      ]);
      assert.equal((g.ids as number[]).length, 8);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('quantize: bad --bits, --group-size and inputs are clear errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-quant-'));
  try {
    const model = join(dir, 'm');
    assert.equal(
      lineage([
        'init',
        '--preset',
        'tiny-llama',
        '--set',
        'num_hidden_layers=1',
        '--tokenizer',
        'bytes',
        '--out',
        model,
      ]).code,
      0,
    );
    const bad = lineage(['quantize', '--model', model, '--bits', '3', '--out', join(dir, 'x')]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /lineage quantize: --bits must be 8 \(q8_0\) or 4 \(q4_0\), got "3"/);
    const gs = lineage(['quantize', '--model', model, '--bits', '4', '--group-size', '64', '--out', join(dir, 'x')]);
    assert.match(gs.err, /--group-size must be 32/);
    assert.match(lineage(['quantize', '--model', model, '--out', join(dir, 'x')]).err, /--bits is required/);
    assert.match(
      lineage(['quantize', '--model', join(dir, 'nope'), '--bits', '8', '--out', join(dir, 'x')]).err,
      /no such directory/,
    );
    const q = join(dir, 'q');
    assert.equal(lineage(['quantize', '--model', model, '--bits', '8', '--out', q]).code, 0);
    assert.match(lineage(['quantize', '--model', q, '--bits', '4', '--out', join(dir, 'y')]).err, /already quantized/);
    assert.ok(!existsSync(join(dir, 'x')), 'no output directory after an error');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
