// The train / eval / generate / logits command handlers end to end on tiny-gpt2 with the bytes tokenizer
// (reference backend), including a real kill -9 of a training process and its --resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { resolveTrainConfig, trainCommand } from '../../src/cli/commands/train.js';
import { parseFlags } from '../../src/cli/flags.js';
import { evalCommand } from '../../src/cli/commands/eval.js';
import { generateCommand } from '../../src/cli/commands/generate.js';
import { logitsCommand } from '../../src/cli/commands/logits.js';
import { parseMetricsJsonl } from '../../src/train/metrics.js';

const TEXT =
  'ROMEO:\nBut soft, what light through yonder window breaks?\nIt is the east, and Juliet is the sun.\n'.repeat(40);
const dir = mkdtempSync(join(tmpdir(), 'lineage-cli-train-'));
const dataFile = join(dir, 'data.txt');
writeFileSync(dataFile, TEXT);
const TINY = [
  '--model',
  'tiny-gpt2',
  '--tokenizer',
  'bytes',
  '--data',
  dataFile,
  '--batch-size',
  '4',
  '--block-size',
  '16',
  '--eval-batches',
  '2',
  '--quiet',
];

/** runs a handler, returning what it printed with console.log */
async function capture(fn: (argv: string[]) => Promise<void>, argv: string[]): Promise<string[]> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.map(String).join(' '));
  try {
    await fn(argv);
  } finally {
    console.log = orig;
  }
  return lines;
}

const lastJson = (lines: string[]) => JSON.parse(lines.at(-1)!) as Record<string, unknown>;
const trainLosses = (out: string) =>
  parseMetricsJsonl(readFileSync(join(out, 'metrics.jsonl'), 'utf8'))
    .filter((r) => r.kind === 'train')
    .map((r) => [r.step, r.loss]);

test('train --json: last stdout line has valLoss, trainLoss, steps, seconds; OUT is an HF model dir with a loss curve', async () => {
  const out = join(dir, 'run-a');
  const j = lastJson(
    await capture(trainCommand, [...TINY, '--out', out, '--steps', '6', '--eval-interval', '3', '--json']),
  );
  for (const k of ['valLoss', 'trainLoss', 'steps', 'seconds']) assert.equal(typeof j[k], 'number', `${k} missing`);
  assert.equal(j.steps, 6);
  for (const f of [
    'config.json',
    'model.safetensors',
    'tokenizer.json',
    'metrics.jsonl',
    'loss-curve.svg',
    'checkpoint/trainer_state.json',
    'checkpoint/optimizer.safetensors',
  ]) {
    assert.ok(existsSync(join(out, f)), `${f} missing`);
  }
  assert.match(readFileSync(join(out, 'loss-curve.svg'), 'utf8'), /<svg[\s\S]*<\/svg>/);
  assert.equal(trainLosses(out).length, 6);
  // same command + seed → same curve
  const out2 = join(dir, 'run-a2');
  await capture(trainCommand, [...TINY, '--out', out2, '--steps', '6', '--eval-interval', '3', '--json']);
  assert.deepEqual(trainLosses(out2), trainLosses(out));
});

test('eval --json: mean next-token loss over non-overlapping windows; generate and logits read the trained dir', async () => {
  const out = join(dir, 'run-a');
  const e = lastJson(await capture(evalCommand, ['--model', out, '--data', dataFile, '--seq-len', '32', '--json']));
  const n = new TextEncoder().encode(TEXT).length;
  assert.equal(e.tokens, Math.floor((n - 1) / 32) * 32);
  assert.ok(Math.abs(Math.exp(e.loss as number) - (e.perplexity as number)) < 1e-6 * (e.perplexity as number));
  const g = lastJson(
    await capture(generateCommand, [
      '--model',
      out,
      '--prompt',
      'ROMEO:',
      '--max-tokens',
      '12',
      '--temperature',
      '0',
      '--json',
    ]),
  );
  const g2 = lastJson(
    await capture(generateCommand, [
      '--model',
      out,
      '--prompt',
      'ROMEO:',
      '--max-tokens',
      '12',
      '--temperature',
      '0',
      '--json',
    ]),
  );
  assert.deepEqual(g, g2);
  assert.equal((g.ids as number[]).length, 12);
  assert.equal(g.text, Buffer.from(g.ids as number[]).toString('utf8'));
  const l = lastJson(await capture(logitsCommand, ['--model', out, '--ids', '82,79,77', '--json']));
  const logits = l.logits as number[][];
  assert.equal(logits.length, 3);
  assert.equal(logits[0]!.length, 256);
});

test('bad input gives clear errors', async () => {
  await assert.rejects(trainCommand(['--bogus']), /unknown option --bogus/);
  await assert.rejects(trainCommand(['--model', 'tiny-gpt2', '--out', join(dir, 'x')]), /--data FILE is required/);
  await assert.rejects(
    trainCommand(['--recipe', 'nope', '--data', dataFile, '--out', join(dir, 'x')]),
    /unknown recipe "nope"/,
  );
  await assert.rejects(
    trainCommand([...TINY, '--out', join(dir, 'x'), '--block-size', '4096']),
    /exceeds the model's context of 128/,
  );
  await assert.rejects(
    trainCommand([...TINY, '--out', join(dir, 'x'), '--steps', 'ten']),
    /--steps: expected an integer/,
  );
  await assert.rejects(evalCommand(['--model', join(dir, 'nothing'), '--data', dataFile]), /not a model directory/);
  await assert.rejects(
    logitsCommand(['--model', join(dir, 'run-a'), '--ids', '1,999']),
    /--ids: expected comma-separated integers in \[0, 256\)/,
  );
});

test("--recipe shakespeare-char-cpu resolves to nanoGPT's CPU recipe", () => {
  const c = resolveTrainConfig(
    parseFlags(
      'train',
      ['--recipe', 'shakespeare-char-cpu', '--data', 'x', '--out', 'y'],
      ['recipe', 'data', 'out'],
      [],
    ),
  );
  assert.equal(c.tokenizer, 'char');
  assert.deepEqual(
    [c.batchSize, c.blockSize, c.steps, c.evalInterval, c.evalBatches, c.gradClip],
    [12, 64, 2000, 250, 20, 1],
  );
  assert.deepEqual(c.set.slice(0, 4), ['n_layer=4', 'n_head=4', 'n_embd=128', 'n_positions=64']);
  assert.deepEqual(c.tweaks, { bias: false, dropout: 0, activation: 'gelu' });
  assert.deepEqual(c.schedule, { kind: 'cosine', lr: 1e-3, minLr: 1e-4, warmup: 100, decaySteps: 2000 });
  assert.equal(c.optimizer.beta2, 0.99);
  assert.equal(c.optimizer.weightDecay, 0.1);
  assert.equal(c.optimizer.decay, 'matrices');
});

/** trainCommand in a child process (reference backend), so it can be killed */
function spawnTrain(args: string[]) {
  const mod = fileURLToPath(new URL('../../src/cli/commands/train.js', import.meta.url));
  const code = `import(${JSON.stringify(mod)}).then((m) => m.trainCommand(${JSON.stringify(args)})).catch((e) => { console.error(e); process.exit(1); })`;
  return spawn(process.execPath, ['--input-type=module', '-e', code], {
    env: { ...process.env, LINEAGE_BACKEND: 'reference' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
}

test('kill -9 during training, then --resume: the loss curve equals an uninterrupted run exactly', async () => {
  const args = (out: string) => [
    ...TINY,
    '--out',
    out,
    '--steps',
    '30',
    '--eval-interval',
    '10',
    '--checkpoint-interval',
    '5',
    '--dropout',
    '0.1',
  ];
  const whole = join(dir, 'whole');
  await capture(trainCommand, args(whole));
  const killed = join(dir, 'killed');
  const child = spawnTrain(args(killed));
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let trainedWhenKilled = -1;
  for (let i = 0; i < 3000 && child.exitCode === null; i++) {
    await new Promise((r) => setTimeout(r, 10));
    const m = existsSync(join(killed, 'metrics.jsonl'))
      ? parseMetricsJsonl(readFileSync(join(killed, 'metrics.jsonl'), 'utf8'))
      : [];
    if (m.some((r) => r.kind === 'checkpoint' && r.step >= 5)) {
      trainedWhenKilled = m.filter((r) => r.kind === 'train').length;
      child.kill('SIGKILL');
      break;
    }
  }
  await exited;
  assert.ok(
    trainedWhenKilled >= 5 && trainedWhenKilled < 30,
    `the child should be killed mid-run (had ${trainedWhenKilled} steps; stderr: ${stderr})`,
  );
  const r = lastJson(await capture(trainCommand, [...args(killed), '--resume', '--json']));
  assert.ok((r.resumedFrom as number) >= 5);
  assert.deepEqual(trainLosses(killed), trainLosses(whole));
  const evals = (out: string) =>
    parseMetricsJsonl(readFileSync(join(out, 'metrics.jsonl'), 'utf8'))
      .filter((x) => x.kind === 'eval')
      .map((x) => [x.step, x.val_loss]);
  assert.deepEqual(evals(killed), evals(whole));
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
