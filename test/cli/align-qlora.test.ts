// `lineage align` with QLoRA and PPO's adaptive KL controller, end to end on a tiny GPT-2 (n_embd 32, so
// every projection quantizes): `quantize` → `align sft --model QUANTIZED --lora-r` trains adapters whose
// base stays int8 / int4, the adapter loads on the quantized and on the float base (generate / eval
// --lora); a quantized model without --lora-r is refused; PPO with --kl-target logs kl_coef, follows
// the controller's rule rollout by rollout, and resumes with the same coefficient and losses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alignCommand } from '../../src/cli/commands/align.js';
import { quantizeCommand } from '../../src/cli/commands/quantize.js';
import { evalCommand } from '../../src/cli/commands/eval.js';
import { createModel } from '../../src/models/registry.js';
import { saveModelDir } from '../../src/infer/model-dir-node.js';
import { charTokenizer } from '../../src/tokenizers/simple.js';
import { parseMetricsJsonl } from '../../src/train/metrics.js';
import { updateKlCoef } from '../../src/align/kl-controller.js';
import { TINY_HF } from '../models/decoder-helpers.js';
import { fromHFConfig } from '../../src/models/hf-config.js';

const dir = mkdtempSync(join(tmpdir(), 'lineage-cli-qlora-'));
const floatDir = join(dir, 'base');
const jsonl = (name: string, rows: unknown[]) => {
  const f = join(dir, name);
  writeFileSync(f, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return f;
};
const sft = jsonl(
  'sft.jsonl',
  Array.from({ length: 12 }, (_, i) => ({ prompt: `hi ${'ab'[i % 2]}:`, completion: ' yes yes' })),
);

async function capture(argv: string[], fn = alignCommand): Promise<Record<string, unknown>> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.map(String).join(' '));
  try {
    await fn(argv);
  } finally {
    console.log = orig;
  }
  return JSON.parse(lines.at(-1)!) as Record<string, unknown>;
}
const records = (out: string) =>
  parseMetricsJsonl(readFileSync(join(dir, out, 'metrics.jsonl'), 'utf8')).filter((r) => r.kind === 'train');

test('setup: a tiny GPT-2 (n_embd 32) and its int8 / int4 quantizations', async () => {
  const tok = charTokenizer('abcdefghijklmnopqrstuvwxyz :?.\nAEINORSTU');
  const cfg = fromHFConfig({ ...TINY_HF.gpt2, n_embd: 32 });
  const model = createModel(cfg, { seed: 1 });
  await saveModelDir(floatDir, cfg, model.namedParameters(), tok);
  model.dispose();
  for (const bits of ['8', '4'])
    await capture(['--model', floatDir, '--bits', bits, '--out', join(dir, `q${bits}`), '--json'], quantizeCommand);
  const qc = JSON.parse(readFileSync(join(dir, 'q4', 'config.json'), 'utf8')).quantization_config;
  assert.ok(qc.modules.length >= 4, `quantized modules: ${qc.modules}`);
});

test('align sft over a quantized model: QLoRA adapters train, both bases load them', async () => {
  const text = join(dir, 'eval.txt');
  writeFileSync(text, 'hi a: yes yes\nhi b: yes yes\n'.repeat(6));
  const evalLoss = async (model: string, lora?: string) =>
    (
      await capture(
        ['--model', model, ...(lora ? ['--lora', lora] : []), '--data', text, '--seq-len', '16', '--json'],
        evalCommand,
      )
    ).loss as number;
  for (const bits of ['8', '4']) {
    const out = `qlora${bits}`;
    const j = await capture([
      'sft',
      '--model',
      join(dir, `q${bits}`),
      '--data',
      sft,
      '--out',
      join(dir, out),
      '--batch-size',
      '4',
      '--steps',
      '8',
      '--lr',
      '2e-2',
      '--lora-r',
      '4',
      '--lora-targets',
      'c_attn,c_fc',
      '--quiet',
      '--json',
    ]);
    assert.deepEqual(j.quantizedBits, [Number(bits)]);
    assert.equal(j.lora, true);
    const losses = records(out).map((r) => r.loss as number);
    assert.ok(losses.at(-1)! < losses[0]!, `q${bits}: loss ${losses[0]} -> ${losses.at(-1)}`);
    const cfg = JSON.parse(readFileSync(join(dir, out, 'adapter_config.json'), 'utf8'));
    assert.equal(cfg.fan_in_fan_out, true, 'GPT-2 Conv1D layers, quantized from [in, out]');
    assert.ok(!existsSync(join(dir, out, 'model.safetensors')));
    const adapter = join(dir, out);
    const [qBase, qAdapted] = [await evalLoss(join(dir, `q${bits}`)), await evalLoss(join(dir, `q${bits}`), adapter)];
    const [fBase, fAdapted] = [await evalLoss(floatDir), await evalLoss(floatDir, adapter)];
    assert.ok(qAdapted < qBase, `q${bits} base: eval loss ${qBase} -> ${qAdapted} with the adapter`);
    assert.ok(fAdapted < fBase, `float base: eval loss ${fBase} -> ${fAdapted} with the q${bits} adapter`);
  }
  await assert.rejects(
    capture(['sft', '--model', join(dir, 'q8'), '--data', sft, '--out', join(dir, 'nope'), '--json']),
    /the model is quantized \(int8\); train LoRA adapters over it \(QLoRA\) with --lora-r/,
  );
});

const ppo = (out: string, steps: number, extra: string[] = []) => [
  'ppo',
  '--model',
  floatDir,
  '--data',
  jsonl(
    'ppo.jsonl',
    Array.from({ length: 4 }, () => ({ prompt: 'say yes:', answer: 'yes' })),
  ),
  '--out',
  join(dir, out),
  '--steps',
  String(steps),
  '--batch-size',
  '2',
  '--group-size',
  '2',
  '--max-new-tokens',
  '4',
  '--reward',
  'format',
  '--lr',
  '1e-2',
  '--beta',
  '0.1',
  '--kl-target',
  '0.5',
  '--kl-horizon',
  '10',
  '--ppo-epochs',
  '2',
  '--quiet',
  '--json',
  ...extra,
];

test('align ppo --kl-target: kl_coef follows the adaptive rule per rollout and survives --resume', async () => {
  await capture(ppo('kl', 8));
  const r = records('kl');
  assert.equal(r.length, 8);
  // a rollout's 2 steps share its β; rollout k+1's β is the rule applied to rollout k's (β, KL), n = 4 rows
  for (let k = 0; k < 4; k++) assert.equal(r[2 * k]!.kl_coef, r[2 * k + 1]!.kl_coef, `rollout ${k}`);
  assert.equal(r[0]!.kl_coef, 0.1);
  for (let k = 0; k + 1 < 4; k++) {
    const [b, kl] = [r[2 * k]!.kl_coef as number, r[2 * k]!.kl as number];
    const want = updateKlCoef({ kind: 'adaptive', coef: 0.1, target: 0.5, horizon: 10 }, b, kl, 4);
    assert.ok(Math.abs((r[2 * k + 2]!.kl_coef as number) - want) < 1e-9, `rollout ${k + 1}: β ${want}`);
  }
  assert.ok(new Set(r.map((x) => x.kl_coef)).size > 1, 'β moved');
  await capture(ppo('kl-resumed', 4));
  await capture(ppo('kl-resumed', 8, ['--resume']));
  const s = records('kl-resumed');
  assert.equal(s.length, 8);
  s.forEach((x, i) => {
    assert.ok(Math.abs((x.kl_coef as number) - (r[i]!.kl_coef as number)) < 1e-7, `step ${i}: β`);
    assert.ok(Math.abs((x.loss as number) - (r[i]!.loss as number)) < 1e-5, `step ${i}: ${x.loss} vs ${r[i]!.loss}`);
  });
  await assert.rejects(
    capture(['dpo', ...ppo('x', 1).slice(1)]),
    /--[a-z-]+ does not apply to dpo \(it is used by [a-z, ]*ppo\)/,
  );
});
