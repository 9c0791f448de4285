// The `lineage` command as a user meets it when things go wrong: an earlier run in --out, Ctrl-C, a
// diverging learning rate, a broken model, damaged files, bad flags, --help everywhere. Every test runs
// the real CLI (bin/lineage.js) in a child process on tiny models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseMetricsJsonl, type MetricRecord } from '../../src/train/metrics.js';
import { readSafetensorsFile } from '../../src/io/checkpoint-node.js';
import { serializeSafetensors } from '../../src/io/safetensors.js';

const root = fileURLToPath(new URL('../../../', import.meta.url)); // dist/test/cli -> package root
const bin = join(root, 'bin', 'lineage.js');
const ENV = { ...process.env, LINEAGE_THREADS: '1' };
const dir = mkdtempSync(join(tmpdir(), 'lineage-cli-robust-'));
const data = join(dir, 'data.txt');
writeFileSync(
  data,
  'ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n'.repeat(30),
);
const TINY = [
  '--model',
  'tiny-gpt2',
  '--tokenizer',
  'bytes',
  '--data',
  data,
  '--batch-size',
  '2',
  '--block-size',
  '16',
  '--eval-batches',
  '1',
  '--quiet',
];

function lineage(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', env: ENV, timeout: 120_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

const metrics = (out: string): MetricRecord[] => parseMetricsJsonl(readFileSync(join(out, 'metrics.jsonl'), 'utf8'));
const trainRecords = (out: string) => metrics(out).filter((r) => r.kind === 'train');
const state = (out: string) =>
  JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')) as { step: number };

test('--version prints the version in package.json', () => {
  const r = lineage(['--version']);
  assert.equal(r.code, 0, r.err);
  assert.equal(
    r.out.trim(),
    (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version,
  );
});

test('every command and subcommand answers --help with its usage', () => {
  const cmds = [
    ['init'],
    ['inspect'],
    ['logits'],
    ['eval'],
    ['train'],
    ['generate'],
    ['tokenize'],
    ['tokenizer'],
    ['tokenizer', 'train'],
    ['bench'],
    ['bench', 'gemm'],
  ];
  for (const c of cmds) {
    const r = lineage([...c, '--help']);
    assert.equal(r.code, 0, `lineage ${c.join(' ')} --help: ${r.err}`);
    assert.match(r.out, /usage/, `lineage ${c.join(' ')} --help printed no usage`);
  }
});

test('flag errors name the flag and what it expects, with one "lineage <command>:" prefix', () => {
  const cases: [string[], RegExp][] = [
    [['tokenizer', 'frob'], /^lineage tokenizer: unknown subcommand 'frob' \(expected: train\)/],
    [['tokenize', '--tokenizer'], /^lineage tokenize: --tokenizer: expected a value/],
    [['tokenize', '--bogus'], /^lineage tokenize: unknown option --bogus/],
    [['train', '--steps', 'ten'], /^lineage train: --steps: expected an integer >= 0, got "ten"/],
    [
      ['init', '--preset', 'tiny-gpt2', '--seed', '1.5', '--out', join(dir, 'x')],
      /^lineage init: --seed: expected an integer, got "1.5"/,
    ],
    [
      ['eval', '--model', dir, '--data', data, '--batch-size', '0'],
      /^lineage eval: --batch-size: expected an integer >= 1, got "0"/,
    ],
    [
      ['inspect', 'tiny-gpt2', '--dtype', 'int4'],
      /^lineage inspect: --dtype: expected float32 \| float16 \| bfloat16 \| int8, got "int4"/,
    ],
    [['bench', 'gemm', '--m', 'x'], /^lineage bench: --m: expected an integer >= 1, got "x"/],
    [
      ['tokenizer', 'train', '--type', 'bpe', '--vocab-size', '-3'],
      /^lineage tokenizer: --vocab-size: expected an integer >= 1, got "-3"/,
    ],
    [['train', '--out', '--steps', '3'], /^lineage train: --out: expected a value, got the option --steps/],
  ];
  for (const [args, re] of cases) {
    const r = lineage(args);
    assert.equal(r.code, 1, `lineage ${args.join(' ')} should fail`);
    assert.match(r.err, re);
  }
});

test('train --out DIR holding an earlier run is refused unless --resume or --overwrite', () => {
  const out = join(dir, 'twice');
  assert.equal(lineage(['train', ...TINY, '--out', out, '--steps', '4']).code, 0);
  const before = readFileSync(join(out, 'metrics.jsonl'), 'utf8');
  const again = lineage(['train', ...TINY, '--out', out, '--steps', '2']);
  assert.equal(again.code, 1);
  assert.match(
    again.err,
    /--out .*twice holds an earlier run \(metrics\.jsonl, checkpoint.*\): pass --resume to continue it, --overwrite to replace it/,
  );
  assert.equal(
    readFileSync(join(out, 'metrics.jsonl'), 'utf8'),
    before,
    'the refused run must not touch the earlier one',
  );
  const both = lineage(['train', ...TINY, '--out', out, '--steps', '2', '--resume', '--overwrite']);
  assert.match(both.err, /give one of them/);
  const over = lineage(['train', ...TINY, '--out', out, '--steps', '2', '--overwrite']);
  assert.equal(over.code, 0, over.err);
  assert.equal(trainRecords(out).length, 2);
  assert.equal(state(out).step, 2);
});

/** `lineage train` in a child that we signal once it has logged `after` training steps */
async function trainUntilSignal(args: string[], out: string, sig: NodeJS.Signals, after: number) {
  const child = spawn(process.execPath, [bin, 'train', ...args], { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let sent = false;
  for (let i = 0; i < 6000 && child.exitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 10));
    if (existsSync(join(out, 'metrics.jsonl')) && trainRecords(out).length >= after) {
      child.kill(sig);
      sent = true;
      break;
    }
  }
  const code = await exited;
  assert.ok(sent, `training ended before the signal: ${err}`);
  return { code, err };
}

for (const [sig, status] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
] as const) {
  test(`${sig} with --checkpoint-interval 0 stops at the next step, writes a checkpoint, prints the resume command, exits ${status}`, async () => {
    const out = join(dir, `signal-${sig}`);
    const args = [...TINY, '--out', out, '--steps', '100000', '--checkpoint-interval', '0', '--eval-interval', '0'];
    const { code, err } = await trainUntilSignal(args, out, sig, 3);
    assert.equal(code, status, err);
    const m = /Resume with:\n {2}lineage train (.*)\n/.exec(err);
    assert.ok(m, `no resume command in: ${err}`);
    assert.match(err, new RegExp(`interrupted by ${sig} at step \\d+ of 100000`));
    const steps = trainRecords(out).length;
    assert.equal(state(out).step, steps, 'the checkpoint holds every step taken');
    assert.ok(existsSync(join(out, 'checkpoint', 'model.safetensors')));
    assert.ok(!existsSync(join(out, 'model.safetensors')), 'an interrupted run is not a finished model');
    // the printed command resumes (with fewer steps, so that it ends)
    const resumeArgs = m[1]!.split(' ').map((a) => a.replace(/^'(.*)'$/, '$1'));
    assert.ok(resumeArgs.includes('--resume'));
    resumeArgs[resumeArgs.indexOf('--steps') + 1] = String(steps + 2);
    const r = lineage(['train', ...resumeArgs]);
    assert.equal(r.code, 0, r.err);
    assert.equal(trainRecords(out).length, steps + 2);
  });
}

test('a diverging run (--lr 1e10) stops with an error and keeps the last good checkpoint', () => {
  const out = join(dir, 'diverge');
  const fresh = lineage(['train', ...TINY, '--out', out, '--steps', '5', '--lr', '1e10']);
  assert.equal(fresh.code, 1);
  assert.match(
    fresh.err,
    /training stopped at step \d: the loss is NaN \(not finite\).*lower --lr.*No checkpoint was written/,
  );
  assert.ok(!existsSync(join(out, 'model.safetensors')));
  const good = join(dir, 'diverge-later');
  assert.equal(lineage(['train', ...TINY, '--out', good, '--steps', '3']).code, 0);
  const weights = readFileSync(join(good, 'checkpoint', 'model.safetensors'));
  // the run's cosine schedule ended at step 3 (its final lr is --min-lr): raise both
  const later = lineage([
    'train',
    ...TINY,
    '--out',
    good,
    '--steps',
    '8',
    '--resume',
    '--lr',
    '1e10',
    '--min-lr',
    '1e10',
  ]);
  assert.equal(later.code, 1, later.err);
  assert.match(later.err, /learning-rate schedule changed by --lr --min-lr/);
  assert.match(later.err, /not finite.*The last good checkpoint \(step 3\) is kept/);
  assert.equal(state(good).step, 3);
  assert.deepEqual(readFileSync(join(good, 'checkpoint', 'model.safetensors')), weights);
});

test('eval of a model whose loss is not finite exits 1 with a clear message', async () => {
  const model = join(dir, 'overflow');
  assert.equal(lineage(['init', '--preset', 'tiny-gpt2', '--tokenizer', 'bytes', '--out', model]).code, 0);
  // a final LayerNorm gain of 3e38 overflows the logits to ±Inf: finite weights, non-finite loss
  const file = join(model, 'model.safetensors');
  const st = await readSafetensorsFile(file);
  const tensors = st.tensors.map((t) =>
    t.name.endsWith('ln_f.weight') ? { ...t, data: new Float32Array(t.data.length).fill(3e38) } : t,
  );
  assert.ok(tensors.some((t) => t.name.endsWith('ln_f.weight')));
  writeFileSync(file, serializeSafetensors(tensors as Parameters<typeof serializeSafetensors>[0]));
  const r = lineage(['eval', '--model', model, '--data', data, '--seq-len', '16', '--json']);
  assert.equal(r.code, 1, r.out);
  assert.match(r.err, /gives a non-finite loss \(NaN\)/);
  assert.equal(r.out, '');
});

test("resume with a different --steps keeps the run's schedule and says so; metrics time continues", () => {
  const out = join(dir, 'sched');
  const args = (steps: number) => [
    'train',
    ...TINY,
    '--out',
    out,
    '--steps',
    String(steps),
    '--warmup',
    '2',
    '--lr',
    '1e-3',
    '--min-lr',
    '1e-4',
  ];
  assert.equal(lineage(args(6)).code, 0);
  const elapsed = (
    JSON.parse(readFileSync(join(out, 'checkpoint', 'trainer_state.json'), 'utf8')) as { elapsed: number }
  ).elapsed;
  assert.ok(elapsed > 0);
  // no schedule flag on the resumed command: the run's cosine to step 6 is kept, then the final lr
  const r = lineage(['train', ...TINY, '--out', out, '--steps', '10', '--resume']);
  assert.equal(r.code, 0, r.err);
  assert.match(
    r.err,
    /--steps changed from 6 to 10; keeping the run's learning-rate schedule \(cosine .*decaySteps=6\)/,
  );
  const resumed = trainRecords(out).filter((x) => x.step >= 6);
  assert.deepEqual(
    resumed.map((x) => x.step),
    [6, 7, 8, 9],
  );
  for (const x of resumed) assert.equal(x.lr, 1e-4, `lr at step ${x.step}`);
  for (const x of resumed) assert.ok((x.time ?? 0) >= elapsed, `time ${x.time} restarted below the run's ${elapsed} s`);
  // asking for a change is obeyed and reported
  const d = lineage(['train', ...TINY, '--out', out, '--steps', '12', '--resume', '--decay-steps', '12']);
  assert.equal(d.code, 0, d.err);
  assert.match(d.err, /learning-rate schedule changed by --decay-steps from \(.*decaySteps=6\) to \(.*decaySteps=12\)/);
  assert.ok((trainRecords(out).find((x) => x.step === 10)!.lr as number) > 1e-4);
});

test('damaged files and directories are reported by name, with invisible characters made visible', () => {
  const out = join(dir, 'damaged');
  assert.equal(lineage(['train', ...TINY, '--out', out, '--steps', '2']).code, 0);
  writeFileSync(
    join(out, 'checkpoint', 'trainer_state.json'),
    Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0x00]),
  );
  const r = lineage(['train', ...TINY, '--out', out, '--steps', '4', '--resume']);
  assert.equal(r.code, 1);
  assert.match(r.err, /checkpoint\/trainer_state\.json: not valid JSON .*the checkpoint is damaged/);
  assert.match(r.err, /\\u\{7F\}ELF/);
  assert.doesNotMatch(r.err, /[\u0000-\u0008\u007f]/);
  const folder = join(dir, 'a-folder');
  mkdirSync(folder, { recursive: true });
  const e = lineage(['eval', '--model', out, '--data', folder]);
  assert.match(e.err, /--data .*a-folder: is a directory, expected a text file/);
  const broken = join(dir, 'weights-folder');
  mkdirSync(join(broken, 'model.safetensors'), { recursive: true });
  writeFileSync(join(broken, 'config.json'), readFileSync(join(out, 'config.json')));
  for (const args of [
    ['eval', '--model', broken, '--data', data],
    ['logits', '--model', broken, '--ids', '1'],
  ]) {
    assert.match(
      lineage(args).err,
      /--model .*weights-folder: .*weights-folder\/model\.safetensors is a directory, expected a file/,
    );
  }
  const t = lineage(['train', ...TINY.slice(0, 4), '--data', join(dir, 'nope.txt'), '--out', join(dir, 'nope-out')]);
  assert.match(t.err, /--data .*nope\.txt: no such file/);
});

test('inspect --set hidden_size=-5 blames hidden_size', () => {
  for (const [preset, field] of [
    ['tiny-llama', 'hidden_size'],
    ['bert-base-uncased', 'hidden_size'],
    ['mamba-130m', 'hidden_size'],
    ['t5-small', 'd_model'],
  ]) {
    const r = lineage(['inspect', preset, '--set', `${field}=-5`]);
    assert.equal(r.code, 1);
    assert.match(r.err, new RegExp(`field "${field}" must be a positive integer, got -5`), `${preset}: ${r.err}`);
  }
});

test('init --tokenizer bytes: vocabulary 256, special-token ids cleared unless --set', () => {
  for (const preset of ['gpt2', 'qwen2-0.5b', 'deepseek-v2-lite']) {
    const out = join(dir, `bytes-${preset}`);
    const layers = preset === 'gpt2' ? 'n_layer=1' : 'num_hidden_layers=1';
    const extra =
      preset === 'deepseek-v2-lite'
        ? ['--set', 'first_k_dense_replace=0', '--set', 'hidden_size=64']
        : ['--set', preset === 'gpt2' ? 'n_embd=96' : 'hidden_size=112'];
    const r = lineage(['init', '--preset', preset, '--tokenizer', 'bytes', '--set', layers, ...extra, '--out', out]);
    assert.equal(r.code, 0, `${preset}: ${r.err}`);
    const c = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(c.vocab_size, 256, preset);
    for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'])
      assert.ok(c[k] === null || c[k] === undefined, `${preset}: ${k} = ${c[k]}`);
  }
  const out = join(dir, 'bytes-eos');
  assert.equal(
    lineage([
      'init',
      '--preset',
      'gpt2',
      '--tokenizer',
      'bytes',
      '--set',
      'n_layer=1',
      '--set',
      'n_embd=96',
      '--set',
      'eos_token_id=10',
      '--out',
      out,
    ]).code,
    0,
  );
  assert.equal(
    (JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>).eos_token_id,
    10,
  );
});

test('an override carries to the fields derived from it (Mamba intermediate_size) unless they are set too', () => {
  const out = join(dir, 'mamba64');
  const r = lineage([
    'init',
    '--preset',
    'mamba-130m',
    '--set',
    'hidden_size=64',
    '--set',
    'num_hidden_layers=1',
    '--set',
    'vocab_size=256',
    '--out',
    out,
  ]);
  assert.equal(r.code, 0, r.err);
  const c = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(c.intermediate_size, 128);
  assert.equal(c.time_step_rank, 4);
  const both = lineage(['inspect', 'mamba-130m', '--set', 'hidden_size=64', '--set', 'intermediate_size=100']);
  assert.match(both.err, /field "intermediate_size" must equal expand \* hidden_size \(128\), got 100/);
});

test('logits on a headless encoder prints last_hidden_state and says which architectures give a head', () => {
  const out = join(dir, 'bert');
  const sets = ['num_hidden_layers=1', 'hidden_size=32', 'num_attention_heads=2', 'intermediate_size=32'].flatMap(
    (s) => ['--set', s],
  );
  assert.equal(
    lineage(['init', '--preset', 'bert-base-uncased', '--tokenizer', 'bytes', ...sets, '--out', out]).code,
    0,
  );
  const r = lineage(['logits', '--model', out, '--ids', '1,2,3', '--json']);
  assert.equal(r.code, 0, r.err);
  const j = JSON.parse(r.out) as Record<string, number[][]>;
  assert.equal(j.logits, undefined);
  assert.equal(j.last_hidden_state!.length, 3);
  assert.equal(j.last_hidden_state![0]!.length, 32);
  assert.match(r.err, /no head .*BertForMaskedLM/);
  // eval and train need logits: refused with the same advice instead of failing inside crossEntropy
  const e = lineage(['eval', '--model', out, '--data', data]);
  assert.equal(e.code, 1);
  assert.match(e.err, /^lineage eval: eval needs a model with a head; .*BertForMaskedLM/);
  const t = lineage([
    'train',
    '--model',
    'bert-base-uncased',
    '--tokenizer',
    'bytes',
    ...sets,
    '--data',
    data,
    '--out',
    join(dir, 'bert-run'),
  ]);
  assert.equal(t.code, 1);
  assert.match(t.err, /^lineage train: training needs a model with a head; .*tiny-bert/);
});

test('generate / eval / logits given a preset name say that they want a directory and how to make one', () => {
  for (const cmd of [
    ['generate', '--model', 'tiny-gpt2'],
    ['eval', '--model', 'tiny-gpt2', '--data', data],
    ['logits', '--model', 'tiny-gpt2', '--ids', '1'],
  ]) {
    const r = lineage(cmd);
    assert.equal(r.code, 1);
    assert.match(
      r.err,
      /'tiny-gpt2' is a preset name, but this command needs a model directory; make one with 'lineage init --preset tiny-gpt2 --out DIR'/,
    );
  }
});

test('eval shows progress on stderr (not with --quiet)', () => {
  const model = join(dir, 'twice'); // trained above
  const r = lineage(['eval', '--model', model, '--data', data, '--seq-len', '16', '--batch-size', '4']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /^eval \[=+\] 100\.0% (\d+)\/\1 /m);
  const q = lineage(['eval', '--model', model, '--data', data, '--seq-len', '16', '--batch-size', '4', '--quiet']);
  assert.equal(q.err, '');
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
