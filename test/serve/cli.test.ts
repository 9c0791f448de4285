// `lineage serve` end to end: a real process, the engine on a worker thread, the official client, and a
// graceful SIGTERM that lets an in-flight stream finish before exiting 0.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import OpenAI from 'openai';
import { startServe } from '../helpers/serve-process.js';

test('lineage serve: chat through the openai client, health answers during generation, SIGTERM drains and exits 0', async () => {
  const s = await startServe(['--model', 'bard=models/shakespeare-char', '--api-key', 'k1']);
  const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'k1', maxRetries: 0 });
  assert.deepEqual(
    (await client.models.list()).data.map((m) => m.id),
    ['bard'],
  );
  const r = await client.chat.completions.create({
    model: 'bard',
    messages: [{ role: 'user', content: 'speak' }],
    max_tokens: 8,
    temperature: 0,
  });
  assert.equal(r.usage!.completion_tokens, 8);
  // a long request in flight: the event loop keeps answering /health meanwhile
  let longDone = false;
  const long = client.completions
    .create({ model: 'bard', prompt: 'ROMEO:', max_tokens: 150, temperature: 0 })
    .then((x) => ((longDone = true), x));
  const health = await fetch(`${s.url}/health`);
  assert.equal(health.status, 200);
  assert.equal(longDone, false, '/health answered while the generation was still running');
  // SIGTERM with a stream in flight: it finishes, then the process exits 0
  const stream = await client.completions.create({
    model: 'bard',
    prompt: 'KING:',
    max_tokens: 40,
    temperature: 0,
    stream: true,
  });
  const exited = new Promise<number | null>((res) => s.proc.on('exit', res));
  s.proc.kill('SIGTERM');
  let tokens = 0;
  let finish: string | null = null;
  for await (const c of stream) {
    tokens += c.choices[0]!.text.length > 0 ? 1 : 0;
    finish = c.choices[0]!.finish_reason ?? finish;
  }
  assert.equal(finish, 'length', 'the in-flight stream ran to its end');
  assert.equal((await long).choices[0]!.finish_reason, 'length');
  assert.equal(await exited, 0, s.out());
  assert.match(s.out(), /SIGTERM: no new requests/);
});

test('lineage serve: bad flags and directories are clear errors', async () => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; out: string }>((res) => {
      const p = spawn(process.execPath, ['bin/lineage.js', 'serve', ...args]);
      let out = '';
      p.stderr.on('data', (d) => (out += d));
      p.on('exit', (code) => res({ code, out }));
    });
  let r = await run([]);
  assert.notEqual(r.code, 0);
  assert.match(r.out, /--model DIR is required/);
  r = await run(['--model', 'models/shakespeare-char', '--kv-memory', 'lots']);
  assert.match(r.out, /--kv-memory: expected a size like 512MB/);
  r = await run(['--model', 'no/such/dir']);
  assert.match(r.out, /no\/such\/dir/);
});

test('lineage chat: piped turns stream replies with their speed, /reset and /exit work', async () => {
  const p = spawn(
    process.execPath,
    [
      '--experimental-wasm-relaxed-simd',
      'bin/lineage.js',
      'chat',
      '--max-tokens',
      '6',
      '--seed',
      '1',
      '--system',
      'be brief',
    ],
    { env: { ...process.env, LINEAGE_THREADS: '1' } },
  );
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  p.stdin.end('who goes there\n/reset\nspeak\n/exit\nnever read\n');
  const code = await new Promise<number | null>((res) => p.on('exit', res));
  assert.equal(code, 0, out);
  assert.equal(out.match(/assistant>/g)?.length, 2, out);
  assert.match(out, /\[\d+ tokens, [\d.]+ tokens\/s, first token \d+ ms\]/);
});

test('lineage bench serve: a short run against its own server prints the figures', async () => {
  const p = spawn(process.execPath, [
    '--experimental-wasm-relaxed-simd',
    'bin/lineage.js',
    'bench',
    'serve',
    '--concurrency',
    '3',
    '--duration',
    '2',
    '--max-tokens',
    '4',
    '--threads',
    '1',
    '--json',
  ]);
  let out = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (out += d));
  assert.equal(await new Promise((res) => p.on('exit', res)), 0, out);
  const r = JSON.parse(out.trim().split('\n').pop()!) as Record<string, number>;
  assert.equal(r.errors, 0);
  assert.ok(r.requests > 0 && r.tokensPerSecond > 0 && r.ttftMsP50 > 0 && r.itlMsP50 > 0, out);
  assert.ok(r.rssStartBytes! > 0 && r.rssEndBytes! > 0);
});

test('lineage serve --lora: the adapter applies in the engine worker (same greedy text as generate --lora)', async () => {
  const { mkdtempSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { loadModelDir } = await import('../../src/infer/model-dir-node.js');
  const { applyLora, loraLayers } = await import('../../src/align/lora.js');
  const { saveAdapterDir } = await import('../../src/align/lora-node.js');
  const { randn } = await import('../../src/ops/index.js');
  const dir = mkdtempSync(join(tmpdir(), 'lineage-lora-'));
  try {
    const { model } = await loadModelDir('models/shakespeare-char');
    const c = { r: 4, alpha: 8, dropout: 0, targets: ['c_attn'] };
    applyLora(model, c, 1);
    for (const [, l] of loraLayers(model))
      l.loraB.setParameter('weight', randn(l.loraB.weight.shape as number[], { std: 0.2 }));
    saveAdapterDir(dir, model, c, 'models/shakespeare-char');
    const gen = (extra: string[]) =>
      new Promise<string>((res) => {
        const p = spawn(process.execPath, [
          '--experimental-wasm-relaxed-simd',
          'bin/lineage.js',
          'generate',
          '--prompt',
          'ROMEO:',
          '--max-tokens',
          '20',
          '--temperature',
          '0',
          '--json',
          ...extra,
        ]);
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('exit', () => res((JSON.parse(out.trim().split('\n').pop()!) as { text: string }).text));
      });
    const [plain, adapted] = [await gen([]), await gen(['--lora', dir])];
    assert.notEqual(adapted, plain, 'the adapter changes the output');
    const chat = (extra: string[]) =>
      new Promise<string>((res) => {
        const p = spawn(process.execPath, [
          '--experimental-wasm-relaxed-simd',
          'bin/lineage.js',
          'chat',
          '--max-tokens',
          '20',
          '--temperature',
          '0',
          ...extra,
        ]);
        let out = '';
        p.stdout.on('data', (d) => (out += d));
        p.on('exit', () => res(out));
        p.stdin.end('ROMEO:\n');
      });
    const reply = (out: string) => out.split('\n').find((l) => l.startsWith('assistant>'));
    const [chatPlain, chatAdapted] = [await chat([]), await chat(['--lora', dir])];
    assert.ok(reply(chatPlain) && reply(chatAdapted), `chat replied: ${chatPlain} / ${chatAdapted}`);
    assert.notEqual(reply(chatAdapted), reply(chatPlain), 'lineage chat --lora applies the adapter');
    const s = await startServe(['--model', 'models/shakespeare-char', '--lora', dir]);
    try {
      const client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'x', maxRetries: 0 });
      const r = await client.completions.create({
        model: 'shakespeare-char',
        prompt: 'ROMEO:',
        max_tokens: 20,
        temperature: 0,
      });
      assert.equal(r.choices[0]!.text, adapted);
    } finally {
      s.proc.kill('SIGTERM');
      await new Promise((r) => s.proc.on('exit', r));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
