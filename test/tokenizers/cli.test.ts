// CLI handlers (called directly: bin/lineage.js needs the lead's main) and the shared progress bar.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { tokenizeCommand, tokenizerTrainCommand } from '../../src/cli/commands/tokenize.js';
import { ProgressBar, formatDuration, formatCount } from '../../src/cli/progress.js';
import { loadTokenizer, saveTokenizer } from '../../src/tokenizers/load-node.js';
import { capture, gpt2Tokenizer, shakespeare } from './helpers.js';
import { getEncoding } from 'js-tiktoken';

const corpus = shakespeare(40_000) ?? 'First Citizen:\nBefore we proceed any further, hear me speak.\n'.repeat(400);

test('tokenize --tokenizer bytes --text ... --json prints {"ids": [...]}', async () => {
  const { stdout } = await capture(() => tokenizeCommand(['--tokenizer', 'bytes', '--text', 'hé!', '--json']));
  assert.equal(stdout, '{"ids":[104,195,169,33]}\n');
  assert.deepEqual(JSON.parse(stdout), { ids: [104, 195, 169, 33] });
});

test('tokenize with a tokenizer.json file and a model directory (GPT-2 ids)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'lineage-cli-'));
  try {
    saveTokenizer(gpt2Tokenizer(), join(dir, 'tokenizer.json'));
    const text = "Hello world, it's 2024! 🤗";
    const expected = getEncoding('gpt2').encode(text);
    for (const where of [join(dir, 'tokenizer.json'), dir]) {
      const { stdout } = await capture(() => tokenizeCommand(['--tokenizer', where, '--text', text, '--json']));
      assert.deepEqual(JSON.parse(stdout), { ids: expected });
    }
    const human = await capture(() => tokenizeCommand(['--tokenizer', dir, '--text', 'Hello world']));
    assert.match(human.stdout, /^2 tokens: \[15496,995\]\n/);
    assert.match(human.stdout, /995 {2}"Ġworld"/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenize: missing or unknown flags are one-line errors', async () => {
  await assert.rejects(
    tokenizeCommand(['--text', 'x']),
    /--tokenizer FILE\|MODEL_DIR\|bytes is required\nusage: lineage tokenize/,
  );
  await assert.rejects(tokenizeCommand(['--tokenizer', 'bytes']), /--text TEXT is required/);
  await assert.rejects(
    tokenizeCommand(['--tokenizer', 'bytes', '--text', 'x', '--bogus']),
    /unknown option --bogus \(options of 'lineage tokenize': /,
  );
  await assert.rejects(tokenizeCommand(['--tokenizer', '/nonexistent/tok.json', '--text', 'x']), /does not exist/);
});

for (const type of ['bpe', 'wordpiece', 'unigram']) {
  test(`tokenizer train --type ${type} writes a loadable tokenizer.json and reports progress on stderr`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lineage-cli-'));
    try {
      const data = join(dir, 'data.txt');
      writeFileSync(data, corpus);
      const out = join(dir, 'tokenizer.json');
      const size = type === 'bpe' ? 600 : 700;
      const { stdout, stderr } = await capture(() =>
        tokenizerTrainCommand(['--type', type, '--vocab-size', String(size), '--data', data, '--out', out]),
      );
      assert.equal(stdout, '');
      assert.match(
        stderr,
        new RegExp(`wrote ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${type} tokenizer, vocab ${size}`),
      );
      assert.match(stderr, /100\.0%/);
      assert.ok(existsSync(out));
      const tok = loadTokenizer(out);
      assert.equal(tok.vocabSize, size);
      const { stdout: json } = await capture(() =>
        tokenizeCommand(['--tokenizer', out, '--text', 'Before we proceed', '--json']),
      );
      assert.deepEqual(JSON.parse(json).ids, tok.encode('Before we proceed'));
      assert.equal(
        JSON.parse(readFileSync(out, 'utf8')).model.type,
        type === 'bpe' ? 'BPE' : type === 'wordpiece' ? 'WordPiece' : 'Unigram',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('tokenizer train: clear errors for bad flags', async () => {
  await assert.rejects(
    tokenizerTrainCommand(['--vocab-size', '100', '--data', 'x', '--out', 'y']),
    /--type bpe\|wordpiece\|unigram is required\nusage: lineage tokenizer train/,
  );
  await assert.rejects(
    tokenizerTrainCommand(['--type', 'sentencepiece', '--vocab-size', '100', '--data', 'x', '--out', 'y']),
    /--type: expected bpe \| wordpiece \| unigram, got "sentencepiece"/,
  );
  await assert.rejects(
    tokenizerTrainCommand(['--type', 'bpe', '--vocab-size', 'lots', '--data', 'x', '--out', 'y']),
    /--vocab-size: expected an integer >= 1, got "lots"/,
  );
  await assert.rejects(
    tokenizerTrainCommand(['--type', 'bpe', '--vocab-size', '1000', '--out', 'y']),
    /--data FILE is required/,
  );
  await assert.rejects(
    tokenizerTrainCommand(['--type', 'bpe', '--vocab-size', '1000', '--data', '/nonexistent/data.txt', '--out', 'y']),
    /--data \/nonexistent\/data\.txt: no such file/,
  );
});

function fakeStream(isTTY: boolean, columns = 100) {
  const writes: string[] = [];
  return {
    writes,
    stream: {
      isTTY,
      columns,
      write: (s: string) => {
        writes.push(s);
        return true;
      },
    },
  };
}

test('ProgressBar (TTY): throttled in-place redraws with rate, ETA and fields', () => {
  let now = 0;
  const { writes, stream } = fakeStream(true);
  const bar = new ProgressBar({ total: 200, label: 'train', stream, now: () => now, unit: 'step' });
  now = 1000;
  bar.update(50, { loss: 2.34567, 'tok/s': 12345 });
  now = 1050;
  bar.update(60); // within 100 ms: no redraw
  now = 2000;
  bar.update(100, { loss: 1.5 });
  assert.equal(writes.length, 2);
  assert.ok(writes.every((w) => w.startsWith('\r') && w.endsWith('\x1b[K')));
  assert.match(writes[0], /^\rtrain \[=+>? *\]  25\.0% 50\/200 50 step\/s ETA 0:03 loss=2\.346 tok\/s=12\.3k/);
  assert.match(writes[1], / 50\.0% 100\/200 50 step\/s ETA 0:02 loss=1\.500/);
  now = 4000;
  bar.update(200);
  bar.done();
  assert.match(writes[writes.length - 2], /100\.0% 200\/200 50 step\/s 0:04/);
  assert.equal(writes[writes.length - 1], '\n');
  const n = writes.length;
  bar.done();
  bar.update(10);
  assert.equal(writes.length, n, 'done() is final and idempotent');
});

test('ProgressBar (not a TTY): plain lines, less often', () => {
  let now = 0;
  const { writes, stream } = fakeStream(false);
  const bar = new ProgressBar({ total: 10, stream, now: () => now });
  for (let i = 1; i <= 9; i++) {
    now = i * 500;
    bar.update(i);
  }
  bar.update(10);
  bar.done();
  assert.ok(writes.every((w) => !w.includes('\r') && w.endsWith('\n')));
  assert.ok(writes.length >= 3 && writes.length <= 6, `${writes.length} lines`);
  assert.match(writes[writes.length - 1], /100\.0% 10\/10/);
});

test('progress formatting helpers', () => {
  assert.equal(formatDuration(5), '0:05');
  assert.equal(formatDuration(125), '2:05');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(NaN), '?');
  assert.equal(formatCount(999), '999');
  assert.equal(formatCount(12345), '12.3k');
  assert.equal(formatCount(2_500_000), '2.50M');
});

test('ProgressBar fields: losses, rates and learning rates read well', () => {
  const { writes, stream } = fakeStream(false);
  const bar = new ProgressBar({ total: 10, stream, now: () => 0 });
  bar.update(10, { loss: 2.123456, 'tok/s': 12345.6, lr: 3e-4, note: 'warmup' });
  assert.match(writes[0], /loss=2\.123 tok\/s=12\.3k lr=3\.00e-4 note=warmup\n$/);
});
