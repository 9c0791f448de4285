// Regression tests for the CLI audit (/tmp/audit-cli/REPORT.md): each test fails without its fix.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { alignCommand } from '../../src/cli/commands/align.js';
import { trainCommand } from '../../src/cli/commands/train.js';
import { evalCommand } from '../../src/cli/commands/eval.js';
import { initCommand } from '../../src/cli/commands/init.js';
import { generateCommand } from '../../src/cli/commands/generate.js';
import { fitHistory } from '../../src/cli/commands/chat.js';
import { specialTokenList } from '../../src/cli/commands/tokenize.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { saveModelDir } from '../../src/infer/model-dir-node.js';
import { charTokenizer } from '../../src/tokenizers/simple.js';
import { vocabularyDifference } from '../../src/tokenizers/compare.js';
import { DEFAULT_CONFIG, validateTrainConfig } from '../../src/train/recipes.js';
import { createTask } from '../../src/train/family-objectives.js';
import { MemoryTokenFile } from '../../src/train/data/index.js';
import { quantizeModel } from '../../src/nn/quant.js';
import { parseAlignData } from '../../src/align/data.js';
import type { ChatMessage } from '../../src/tokenizers/tokenizer.js';
import { tinyConfig } from '../models/decoder-helpers.js';
import { lineageBin } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'lineage-audit-'));
const TEXT =
  'ROMEO:\nBut soft, what light through yonder window breaks?\n\nIt is the east, and Juliet is the sun.\n'.repeat(30);
const dataFile = join(dir, 'data.txt');
writeFileSync(dataFile, TEXT);

async function quiet(fn: (argv: string[]) => Promise<void>, argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  const [log, err] = [console.log, console.error];
  console.log = (...a: unknown[]) => void lines.push(a.map(String).join(' '));
  console.error = () => {};
  try {
    await fn(argv);
  } finally {
    [console.log, console.error] = [log, err];
  }
  return lines;
}

async function modelDir(name: string, chars: string): Promise<string> {
  const out = join(dir, name);
  const cfg = tinyConfig('gpt2');
  const model = createModel(cfg, { seed: 1 });
  await saveModelDir(out, cfg, model.namedParameters(), charTokenizer(chars));
  model.dispose();
  return out;
}

const pref = join(dir, 'pref.jsonl');
writeFileSync(
  pref,
  Array(4)
    .fill(JSON.stringify({ prompt: 'q:', chosen: 'yes', rejected: 'no' }))
    .join('\n') + '\n',
);

test('align: --out may not be --model or --ref-model; a non-empty --out needs --resume or --overwrite', async () => {
  const base = await modelDir('base', 'abcdefghijklmnopqrstuvwxyz :?.\n');
  const argv = (out: string, ...more: string[]) => [
    'dpo',
    '--model',
    base,
    '--data',
    pref,
    '--out',
    out,
    '--steps',
    '2',
    '--batch-size',
    '2',
    '--quiet',
    '--json',
    ...more,
  ];
  await assert.rejects(quiet(alignCommand, argv(join(base, '.'))), /--out .* is the --model directory/);
  await assert.rejects(
    quiet(alignCommand, argv(join(dir, 'a1'), '--ref-model', join(dir, 'a1'))),
    /is the --ref-model/,
  );
  const out = join(dir, 'a2');
  await quiet(alignCommand, argv(out, '--checkpoint-interval', '1'));
  await assert.rejects(quiet(alignCommand, argv(out)), /is not empty .* --overwrite/);
  // --overwrite clears the old checkpoint, so a later --resume cannot continue the wrong run
  mkdirSync(join(out, 'keep'));
  // (the fresh run fails at once, as a run killed before its first checkpoint)
  await assert.rejects(
    quiet(alignCommand, [...argv(out, '--overwrite'), '--data', join(dir, 'missing.jsonl')]),
    /no such file/,
  );
  assert.ok(!existsSync(join(out, 'checkpoint')));
  await assert.rejects(quiet(alignCommand, argv(out, '--resume', '--overwrite')), /give one of them/);
});

test('align: a reference or reward model with another vocabulary, and flags of other methods, are refused', async () => {
  const base = join(dir, 'base');
  const other = await modelDir('other', 'abcdefghijklmnopqrstuvwxyZ :?.\n');
  const argv = ['dpo', '--model', base, '--data', pref, '--out', join(dir, 'r1'), '--steps', '1', '--quiet', '--json'];
  await assert.rejects(
    quiet(alignCommand, [...argv, '--ref-model', other]),
    /--ref-model .*tokenizer differs .*id 5 is "a" vs "Z"/,
  );
  await assert.rejects(
    quiet(alignCommand, [...argv.slice(0, -4), '--out', join(dir, 'r2'), '--group-size', '8']),
    /--group-size does not apply to dpo/,
  );
  const sft = ['sft', ...argv.slice(1)];
  await assert.rejects(quiet(alignCommand, [...sft, '--beta', '0.3']), /--beta does not apply to sft/);
});

const TRAIN = [
  '--model',
  'tiny-gpt2',
  '--tokenizer',
  'char',
  '--batch-size',
  '2',
  '--block-size',
  '16',
  '--eval-batches',
  '1',
  '--quiet',
  '--json',
];

test('train --resume: a different model config or data is refused, naming each difference', async () => {
  const out = join(dir, 't1');
  await quiet(trainCommand, [...TRAIN, '--data', dataFile, '--out', out, '--steps', '2', '--checkpoint-interval', '1']);
  await assert.rejects(
    quiet(trainCommand, [...TRAIN, '--data', dataFile, '--out', out, '--steps', '3', '--resume', '--set', 'n_layer=1']),
    /config\.json n_layer: 2 in the checkpoint, 1 now/,
  );
  const swapped = join(dir, 'data2.txt');
  writeFileSync(swapped, TEXT.replace(/y/g, '~'));
  await assert.rejects(
    quiet(trainCommand, [...TRAIN, '--data', swapped, '--out', out, '--steps', '3', '--resume']),
    (e: Error) => /tokenizer: id \d+ is "y" vs "~"/.test(e.message) && /--data: .*the contents differ/.test(e.message),
  );
});

test('train: optimizer rates out of [0, 1) are refused by flag and by config field', async () => {
  const argv = [...TRAIN, '--data', dataFile, '--out', join(dir, 'b1'), '--steps', '1'];
  await assert.rejects(quiet(trainCommand, [...argv, '--beta1', '1.5']), /--beta1: expected a number in \[0, 1\)/);
  await assert.rejects(quiet(trainCommand, [...argv, '--optimizer', 'sgd', '--momentum', '5']), /--momentum/);
  const c = { ...structuredClone(DEFAULT_CONFIG), data: 'x', out: 'y' };
  c.optimizer.beta2 = 1;
  assert.throws(() => validateTrainConfig(c), /optimizer\.beta2 must be in \[0, 1\)/);
  c.optimizer.beta2 = 0.99;
  c.optimizer.eps = 0;
  assert.throws(() => validateTrainConfig(c), /optimizer\.eps must be > 0/);
});

test('MLM: objective needs the right family; char tokenizers get real special tokens; no NaN on empty masks', async () => {
  const ids = new MemoryTokenFile(Int32Array.from([...TEXT].map((c) => c.charCodeAt(0) % 64)));
  const data = {
    train: ids,
    val: ids,
    trainText: TEXT,
    valText: TEXT,
    encode: (s: string) => [...s].map((c) => c.charCodeAt(0) % 64),
  };
  const o = { batchSize: 1, blockSize: 8, seed: 1 };
  assert.throws(() => createTask('mlm', tinyConfig('gpt2'), data, o), /objective 'mlm' needs an encoder model/);
  assert.throws(() => createTask('span-corruption', tinyConfig('gpt2'), data, o), /needs an encoder-decoder model/);
  const tok = charTokenizer(TEXT);
  const bert = getPreset('tiny-bert');
  assert.throws(() => createTask('mlm', bert, data, o, tok), /no \[\w+\] token .* is the text character/);
  // `--tokenizer char` adds [PAD] [CLS] [SEP] [MASK] after the characters; tiny batches train without NaN
  const out = join(dir, 'bert');
  const r = JSON.parse(
    (
      await quiet(trainCommand, [
        ...TRAIN.slice(2),
        '--model',
        'tiny-bert',
        '--data',
        dataFile,
        '--out',
        out,
        '--steps',
        '2',
        '--batch-size',
        '1',
        '--block-size',
        '8',
        '--eval-batches',
        '4',
      ])
    ).at(-1)!,
  ) as { valLoss: number };
  assert.ok(Number.isFinite(r.valLoss), `val loss ${r.valLoss}`);
  const saved = JSON.parse(readFileSync(join(out, 'tokenizer.json'), 'utf8')) as {
    added_tokens: { content: string }[];
  };
  assert.deepEqual(
    saved.added_tokens.map((t) => t.content),
    ['[PAD]', '[CLS]', '[SEP]', '[MASK]'],
  );
});

test('eval --tokenizer: a vocabulary the model does not use is refused with the reason', async () => {
  const m = join(dir, 'base');
  await assert.rejects(
    quiet(evalCommand, ['--model', m, '--data', dataFile, '--tokenizer', 'bytes', '--quiet']),
    /--tokenizer bytes: the tokenizer uses ids up to 255/,
  );
  const a = charTokenizer('abc');
  assert.equal(vocabularyDifference(a, charTokenizer('cba')), null);
  assert.equal(vocabularyDifference(a, charTokenizer('abd')), 'id 2 is "c" vs "d"');
});

test('init: a non-empty --out needs --overwrite, which removes stale files', async () => {
  const out = join(dir, 'init');
  mkdirSync(out);
  writeFileSync(join(out, 'tokenizer.json'), '{}');
  writeFileSync(join(out, 'train_summary.json'), '{}');
  await assert.rejects(quiet(initCommand, ['--preset', 'tiny-gpt2', '--out', out]), /is not empty .* --overwrite/);
  await quiet(initCommand, ['--preset', 'tiny-gpt2', '--out', out, '--overwrite']);
  assert.ok(existsSync(join(out, 'model.safetensors')));
  assert.ok(!existsSync(join(out, 'tokenizer.json')) && !existsSync(join(out, 'train_summary.json')));
});

test('generate --regex applies --n through the engine; impossible combinations are refused before output', async () => {
  const lines = await quiet(generateCommand, [
    '--prompt',
    'x',
    '--max-tokens',
    '6',
    '--regex',
    '[a-z]{3}',
    '--n',
    '2',
    '--json',
  ]);
  const j = JSON.parse(lines.at(-1)!) as { choices: { text: string }[] };
  assert.equal(j.choices.length, 2);
  for (const c of j.choices) assert.match(c.text, /^[a-z]{3}$/);
  await assert.rejects(
    quiet(generateCommand, ['--regex', 'ab', '--beams', '2']),
    /--beams cannot be combined with --regex/,
  );
  await assert.rejects(quiet(generateCommand, ['--logprobs', '2']), /--logprobs needs --json/);
  await assert.rejects(quiet(generateCommand, ['--speculative-tokens', '2']), /--speculative-tokens needs a drafter/);
  const r = spawnSync(process.execPath, [lineageBin, 'generate', '--prompt', 'ROMEO:', '--repetition-penalty', '0'], {
    encoding: 'utf8',
  });
  assert.equal(r.stdout, '', 'nothing printed before the request is accepted');
  assert.match(r.stderr, /--repetition-penalty must be/);
});

test('chat: the current user turn is kept, older turns go first, then the system prompt; drops are reported', () => {
  const render = (h: ChatMessage[]) =>
    Array.from({ length: h.reduce((n, m) => n + String(m.content).length, 0) }, () => 0);
  const said: string[] = [];
  const say = (m: string) => void said.push(m);
  const sys: ChatMessage = { role: 'system', content: 'x'.repeat(10) };
  const turn = (n: number): ChatMessage[] => [
    { role: 'user', content: 'u'.repeat(n) },
    { role: 'assistant', content: 'a'.repeat(n) },
  ];
  const h = [sys, ...turn(10), ...turn(10), { role: 'user', content: 'q'.repeat(10) } as ChatMessage];
  const r = fitHistory(h, render, 45, say)!;
  assert.deepEqual(
    r.sent.map((m) => (m.content as string)[0]),
    ['x', 'u', 'a', 'q'],
  );
  assert.match(said[0]!, /dropped the 2 oldest message/);
  const r2 = fitHistory([sys, { role: 'user', content: 'q'.repeat(30) }], render, 35, say)!;
  assert.deepEqual(
    r2.sent.map((m) => m.role),
    ['user'],
  );
  assert.deepEqual(
    r2.kept.map((m) => m.role),
    ['system', 'user'],
  );
  assert.equal(fitHistory([{ role: 'user', content: 'q'.repeat(50) }], render, 35, say), null);
  assert.match(said.at(-1)!, /does not fit/);
  const c = spawnSync(process.execPath, [lineageBin, 'chat', '--top-p', '7'], { encoding: 'utf8', input: 'hi\n' });
  assert.equal(c.status, 1);
  assert.doesNotMatch(c.stdout, /assistant>/);
});

test('quantize --exclude with no match, duplicate special tokens, bad message fields are named', () => {
  const model = createModel(tinyConfig('llama'), { seed: 1 });
  assert.throws(
    () => quantizeModel(model, { bits: 8, exclude: ['model.layers.99.foo'] }),
    /"model\.layers\.99\.foo" matches no Linear/,
  );
  model.dispose();
  assert.throws(() => specialTokenList('<pad>,<eos>,<pad>'), /"<pad>" is given twice/);
  const row = (m: unknown) => JSON.stringify({ messages: [m, { role: 'assistant', content: 'ok' }] });
  assert.throws(
    () => parseAlignData(row({ role: 'user', content: 5 }), 'sft', 'f.jsonl'),
    /f\.jsonl:1: messages\[0\]\.content must be a string, got number/,
  );
  assert.throws(
    () => parseAlignData(row({ role: 'wizard', content: 'hi' }), 'sft', 'f.jsonl'),
    /messages\[0\]\.role "wizard" is not one of/,
  );
});
