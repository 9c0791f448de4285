// `lineage align` end to end on a tiny GPT-2 with a character tokenizer: every offline method runs and
// writes a loadable model, DPO moves the held-out preference margin, LoRA writes a PEFT adapter that
// `generate --lora` applies, --resume continues with identical losses, and bad data lines are named.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alignCommand } from '../../src/cli/commands/align.js';
import { generateCommand } from '../../src/cli/commands/generate.js';
import { evalCommand } from '../../src/cli/commands/eval.js';
import { createModel } from '../../src/models/registry.js';
import { loadModelDir, saveModelDir } from '../../src/infer/model-dir-node.js';
import { charTokenizer } from '../../src/tokenizers/simple.js';
import { parseMetricsJsonl } from '../../src/train/metrics.js';
import { tinyConfig } from '../models/decoder-helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'lineage-cli-align-'));
const modelDir = join(dir, 'base');
const jsonl = (name: string, rows: unknown[]) => {
  const f = join(dir, name);
  writeFileSync(f, rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n');
  return f;
};
const pref = jsonl(
  'pref.jsonl',
  Array.from({ length: 12 }, (_, i) => ({ prompt: `q${'ab'[i % 2]}:`, chosen: 'yes yes', rejected: 'no no' })),
);
const sft = jsonl(
  'sft.jsonl',
  Array.from({ length: 12 }, (_, i) => ({
    messages: [
      { role: 'user', content: `hi ${'ab'[i % 2]}` },
      { role: 'assistant', content: 'yes' },
    ],
  })),
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

const base = (method: string, data: string, out: string) => [
  method,
  '--model',
  modelDir,
  '--data',
  data,
  '--out',
  join(dir, out),
  '--batch-size',
  '4',
  '--quiet',
  '--json',
];
const losses = (out: string) =>
  parseMetricsJsonl(readFileSync(join(dir, out, 'metrics.jsonl'), 'utf8'))
    .filter((r) => r.kind === 'train')
    .map((r) => r.loss);

test('setup: a tiny GPT-2 model directory with a character tokenizer', async () => {
  const tok = charTokenizer('abcdefghijklmnopqrstuvwxyz :?.\nAEINORSTU');
  const cfg = tinyConfig('gpt2');
  const model = createModel(cfg, { seed: 1 });
  await saveModelDir(modelDir, cfg, model.namedParameters(), tok);
  model.dispose();
});

test('align dpo: held-out margin grows, outputs load as a model dir, metrics and plots written', async () => {
  const j = await capture([...base('dpo', pref, 'dpo'), '--steps', '6', '--lr', '1e-3', '--beta', '0.5']);
  const before = j.heldOutBefore as Record<string, number>;
  const after = j.heldOutAfter as Record<string, number>;
  assert.ok(Math.abs(before.margin!) < 1e-3, `margin at the reference is ~0, got ${before.margin}`);
  assert.ok(after.margin! > 0.1 && after.accuracy === 1, JSON.stringify(after));
  for (const f of [
    'model.safetensors',
    'config.json',
    'tokenizer.json',
    'metrics.jsonl',
    'loss-curve.svg',
    'dpo-metrics.svg',
    'checkpoint/trainer_state.json',
  ]) {
    assert.ok(existsSync(join(dir, 'dpo', f)), `${f} missing`);
  }
  (await loadModelDir(join(dir, 'dpo'))).model.dispose();
});

test('align: ipo, kto, orpo, simpo, reward and sft each run and lower their loss', async () => {
  const kto = jsonl(
    'kto.jsonl',
    Array.from({ length: 12 }, (_, i) => ({ prompt: 'q:', completion: i % 2 ? 'yes' : 'no', label: i % 2 === 1 })),
  );
  for (const [m, data] of [
    ['ipo', pref],
    ['kto', kto],
    ['orpo', pref],
    ['simpo', pref],
    ['reward', pref],
    ['sft', sft],
  ] as const) {
    await capture([...base(m, data, m), '--steps', '4', '--lr', '3e-3']);
    const l = losses(m);
    assert.equal(l.length, 4, m);
    assert.ok((l.at(-1) as number) < (l[0] as number), `${m}: loss ${l.join(' → ')}`);
  }
  assert.ok(existsSync(join(dir, 'reward', 'reward_head.safetensors')));
});

test('align sft --lora-r: a PEFT adapter directory that generate --lora applies', async () => {
  const j = await capture([
    ...base('sft', sft, 'lora'),
    '--steps',
    '3',
    '--lr',
    '1e-2',
    '--lora-r',
    '2',
    '--lora-alpha',
    '4',
    '--lora-targets',
    'c_attn',
  ]);
  assert.equal(j.lora, true);
  assert.ok((j.trainable as number) < (j.params as number) / 5, `trainable ${j.trainable} of ${j.params}`);
  assert.ok(
    existsSync(join(dir, 'lora', 'adapter_config.json')) && existsSync(join(dir, 'lora', 'adapter_model.safetensors')),
  );
  assert.ok(!existsSync(join(dir, 'lora', 'model.safetensors')), 'a LoRA run writes the adapter only');
  const g = await capture(
    [
      '--model',
      modelDir,
      '--lora',
      join(dir, 'lora'),
      '--prompt',
      'USER: hi a\n',
      '--max-tokens',
      '4',
      '--temperature',
      '0',
      '--json',
    ],
    generateCommand,
  );
  assert.equal((g.ids as number[]).length, 4);
  const text = jsonl('eval.txt', ['USER: hi a\nASSISTANT: yes\nUSER: hi b\nASSISTANT: yes'.repeat(4)]);
  const withLora = await capture(
    ['--model', modelDir, '--lora', join(dir, 'lora'), '--data', text, '--seq-len', '16', '--json'],
    evalCommand,
  );
  const without = await capture(['--model', modelDir, '--data', text, '--seq-len', '16', '--json'], evalCommand);
  assert.ok(
    (withLora.loss as number) < (without.loss as number),
    `eval --lora ${withLora.loss} vs base ${without.loss}`,
  );
});

test('align --resume continues a run with identical losses', async () => {
  await capture([...base('dpo', pref, 'straight'), '--steps', '4', '--lr', '1e-3']);
  await capture([...base('dpo', pref, 'resumed'), '--steps', '2', '--lr', '1e-3']);
  await capture([...base('dpo', pref, 'resumed'), '--steps', '4', '--lr', '1e-3', '--resume']);
  const [a, b] = [losses('straight'), losses('resumed')];
  assert.equal(b.length, 4);
  b.forEach((v, i) => assert.ok(Math.abs((v as number) - (a[i] as number)) < 1e-5, `step ${i}: ${v} vs ${a[i]}`));
});

test('align: bad data lines and flags are named', async () => {
  const bad = (rows: unknown[]) => jsonl('bad.jsonl', rows);
  const ok = { prompt: 'q:', chosen: 'yes', rejected: 'no' };
  await assert.rejects(
    capture([...base('dpo', bad([ok, { prompt: 'q:', rejected: 'no' }]), 'x'), '--steps', '1']),
    /bad\.jsonl:2: missing field 'chosen'/,
  );
  await assert.rejects(
    capture([...base('dpo', bad([ok, ok, { prompt: 'q:', chosen: ' ', rejected: 'no' }]), 'x'), '--steps', '1']),
    /bad\.jsonl:3: field 'chosen' is empty/,
  );
  await assert.rejects(capture([...base('dpo', bad(['{"prompt": ']), 'x'), '--steps', '1']), /bad\.jsonl:1: bad JSON/);
  await assert.rejects(
    capture([...base('kto', bad([{ prompt: 'q:', completion: 'yes' }]), 'x'), '--steps', '1']),
    /bad\.jsonl:1: missing field 'label'/,
  );
  await assert.rejects(
    capture([
      ...base(
        'sft',
        bad([
          {
            messages: [
              { role: 'user', content: 'hi' },
              { role: 'assistant', content: '' },
            ],
          },
        ]),
        'x',
      ),
    ]),
    /bad\.jsonl:1: messages\[1\]\.content is an empty response/,
  );
  await assert.rejects(capture(['rlhf', '--model', modelDir]), /unknown method "rlhf"/);
  await assert.rejects(
    capture([...base('sft', sft, 'x'), '--lora-r', '2', '--lora-targets', 'q_proj']),
    /'q_proj' matches no linear layer/,
  );
  await assert.rejects(capture([...base('sft', sft, 'x'), '--lora-alpha', '2']), /--lora-alpha needs --lora-r/);
});

test('align grpo: rollouts, group advantages and a reward metric', async () => {
  const words = ['one', 'two', 'six'];
  const data = jsonl(
    'grpo.jsonl',
    Array.from({ length: 6 }, (_, i) => ({ prompt: `say ${words[i % 3]}:`, answer: words[i % 3] })),
  );
  const j = await capture([
    ...base('grpo', data, 'grpo'),
    '--steps',
    '2',
    '--batch-size',
    '2',
    '--group-size',
    '3',
    '--max-new-tokens',
    '4',
    '--beta',
    '0.04',
  ]);
  const last = j.last as Record<string, number>;
  assert.equal(typeof last.reward, 'number');
  assert.equal(typeof last.kl, 'number');
  assert.equal(losses('grpo').length, 2);
});

test('align ppo: value head, KL to the reference, reward from functions or a reward model', async () => {
  const data = jsonl(
    'ppo.jsonl',
    Array.from({ length: 4 }, () => ({ prompt: 'say yes:', answer: 'yes' })),
  );
  const j = await capture([
    ...base('ppo', data, 'ppo'),
    '--steps',
    '4',
    '--batch-size',
    '2',
    '--group-size',
    '2',
    '--max-new-tokens',
    '4',
    '--reward',
    'format',
  ]);
  const last = j.last as Record<string, number>;
  for (const k of ['reward', 'kl', 'entropy', 'clip_fraction', 'value_loss']) assert.equal(typeof last[k], 'number', k);
  assert.ok(last.kl !== 0, 'the policy moved away from the reference after the first rollout');
  assert.ok(existsSync(join(dir, 'ppo', 'reward-vs-kl.svg')) && existsSync(join(dir, 'ppo', 'model.safetensors')));
  const rm = await capture([
    ...base('ppo', data, 'ppo-rm'),
    '--steps',
    '1',
    '--batch-size',
    '1',
    '--group-size',
    '2',
    '--max-new-tokens',
    '3',
    '--reward-model',
    join(dir, 'reward'),
  ]);
  assert.equal(typeof (rm.last as Record<string, number>).reward, 'number');
});
