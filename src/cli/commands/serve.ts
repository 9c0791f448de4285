// `lineage serve`: an OpenAI-compatible HTTP server over one inference engine per loaded model.
import { existsSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { availableParallelism } from 'node:os';
import { EngineWorker } from '../../infer/engine/engine-node.js';
import { loadModelInfo } from '../../infer/model-dir-node.js';
import { contextLimitOf } from '../../infer/generate.js';
import { POOLINGS, defaultPooling, type Pooling } from '../../infer/embed.js';
import { createServer } from '../../serve/app.js';
import type { ServedModel } from '../../serve/models.js';
import { flagNumber, parseFlags } from '../flags.js';
import { checkKvDtype } from '../../infer/engine/kv-dtype.js';
import { checkMtpModel, parseSpeculative } from './speculative-flag.js';
import { draftContextNotice } from '../../infer/engine/drafter.js';

const HELP = `usage: lineage serve --model DIR [--model NAME=DIR ...] [options]

  --model DIR | NAME=DIR   a model directory to serve (repeatable); clients pass NAME (default: the
                           directory's name) as "model"; encoders (BERT) serve embeddings only
  --host H                 address to bind (default 127.0.0.1: loopback only)
  --port P                 port (default 8000; 0 picks a free one)
  --api-key KEY            accepted bearer key (repeatable; or LINEAGE_API_KEY); none = no auth
  --max-running N          sequences decoded together per model (default 64)
  --max-queue N            waiting requests per model before 429 (default 256)
  --kv-memory SIZE         KV-cache pool per model, e.g. 512MB, 2GB (default 256MB)
  --kv-dtype D             KV cache element type: float32 (default), float16, bfloat16, int8 (2x / ~4x
                           the tokens in the same --kv-memory; the narrower types also read fewer bytes
                           per step, which pays with many concurrent sequences)
  --draft-model DIR        speculative decoding with this smaller model (same tokenizer)
  --speculative mtp        speculative decoding with each model's own multi-token-prediction depths
                           (DeepSeek-V3 MTP) as drafter
  --lora DIR               apply a PEFT LoRA adapter (lineage align --lora-r ...) on top of the model
  --pooling cls|mean|last  how /v1/embeddings pools hidden states (default: the directory's
                           sentence-transformers 1_Pooling/config.json, else cls for encoders
                           such as BERT and mean for decoders)
  --max-tokens N           max_tokens when a request gives none (default 256)
  --metrics-auth           require the API key for /metrics too`;

export function parseSize(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?$/i.exec(s.trim());
  if (!m) throw new Error(`--${flag}: expected a size like 512MB or 2GB, got ${JSON.stringify(s)}`);
  const unit = (m[2] ?? 'B').toUpperCase();
  const mult: Record<string, number> = { B: 1, KB: 1e3, MB: 1e6, GB: 1e9, KIB: 1024, MIB: 1024 ** 2, GIB: 1024 ** 3 };
  return Math.floor(Number(m[1]) * mult[unit]!);
}

export async function serveCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) return void console.log(HELP);
  const f = parseFlags(
    'serve',
    argv,
    [
      'model',
      'host',
      'port',
      'api-key',
      'max-running',
      'max-queue',
      'kv-memory',
      'kv-dtype',
      'draft-model',
      'speculative',
      'max-tokens',
      'lora',
      'pooling',
    ],
    ['metrics-auth'],
  );
  const specs = f.values.get('model') ?? [];
  if (specs.length === 0) throw new Error(`--model DIR is required\n\n${HELP}`);
  const kvBytes = parseSize(f.values.get('kv-memory')?.at(-1) ?? '256MB', 'kv-memory');
  const kvDtype = checkKvDtype(f.values.get('kv-dtype')?.at(-1) ?? 'float32', '--kv-dtype');
  const maxRunning = flagNumber(f, 'max-running', { int: true, min: 1 }) ?? 64;
  const draftDir = f.values.get('draft-model')?.at(-1);
  const mtpDraft = parseSpeculative(f.values.get('speculative')?.at(-1));
  if (mtpDraft && draftDir) throw new Error('--speculative mtp and --draft-model: choose one drafter');
  const threads = Number(process.env.LINEAGE_THREADS) || availableParallelism();
  const lora = f.values.get('lora')?.at(-1);
  if (lora && specs.length > 1) throw new Error('--lora applies to one model: give a single --model with it');
  const poolingFlag = f.values.get('pooling')?.at(-1);
  if (poolingFlag !== undefined && !POOLINGS.includes(poolingFlag as Pooling))
    throw new Error(`--pooling: expected one of ${POOLINGS.join(', ')}, got ${JSON.stringify(poolingFlag)}`);
  const models: ServedModel[] = [];
  const workers: EngineWorker[] = [];
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const [name, dir] = eq > 0 ? [spec.slice(0, eq), spec.slice(eq + 1)] : [basename(resolve(spec)), spec];
    if (models.some((m) => m.name === name)) throw new Error(`--model: two models named '${name}' (use NAME=DIR)`);
    // the main thread reads config and tokenizer only (tokenization, chat templates, validation); the
    // weights live in the worker thread, which runs generation and embeddings off the event loop
    const { tokenizer, config } = loadModelInfo(dir);
    if (!tokenizer)
      throw new Error(
        `--model ${dir}: no tokenizer.json in the directory (the server needs one to read and write text)`,
      );
    if (config.arch !== 'decoder' && config.arch !== 'encoder')
      throw new Error(
        `--model ${dir}: ${config.family} is ${config.arch}; the server serves decoders (generation and ` +
          'embeddings) and encoders (embeddings)',
      );
    if (mtpDraft) checkMtpModel(config, dir);
    const short = draftDir ? draftContextNotice(config, loadModelInfo(draftDir).config) : null;
    if (short) console.error(`lineage serve: note: --draft-model ${draftDir}: ${short}`);
    const engine = await EngineWorker.start({
      modelDir: dir,
      draftModelDir: draftDir,
      ...(mtpDraft ? { mtpDraft } : {}),
      loraDir: lora,
      kvMemoryBytes: kvBytes,
      kvDtype,
      maxRunningSeqs: maxRunning,
      threads,
      prefaultKv: true, // a server's pool is resident from the start: no page faults inside its steps
    });
    workers.push(engine);
    const limit = contextLimitOf(config);
    models.push({
      name,
      config,
      tokenizer,
      engine,
      generates: config.arch === 'decoder',
      pooling: (poolingFlag as Pooling | undefined) ?? poolingOf(dir) ?? defaultPooling(config),
      contextLength: Number.isFinite(limit) ? limit : config.maxContext,
      created: Math.floor(Date.now() / 1000),
    });
  }
  const keys = [
    ...(f.values.get('api-key') ?? []),
    ...(process.env.LINEAGE_API_KEY ? [process.env.LINEAGE_API_KEY] : []),
  ];
  const app = createServer({
    models,
    apiKeys: keys,
    maxQueue: flagNumber(f, 'max-queue', { int: true, min: 1 }) ?? 256,
    defaultMaxTokens: flagNumber(f, 'max-tokens', { int: true, min: 1 }) ?? 256,
    metricsAuth: f.bools.has('metrics-auth'),
  });
  const host = f.values.get('host')?.at(-1) ?? '127.0.0.1';
  const port = flagNumber(f, 'port', { int: true, min: 0 }) ?? 8000;
  const address = await app.listen({ host, port });
  console.log(
    `lineage serve: ${models.map((m) => m.name).join(', ')} on ${address} (OpenAI API at ${address}/v1)${keys.length ? ', API key required' : ''}`,
  );
  await new Promise<void>((done) => {
    const stop = (sig: string) => {
      console.log(`lineage serve: ${sig}: no new requests; finishing the ones in flight (at most 30 s)`);
      const force = setTimeout(() => done(), 30_000);
      force.unref();
      void app.close().then(() => {
        clearTimeout(force);
        done();
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  await Promise.all(workers.map((w) => w.close()));
}

/** the pooling a sentence-transformers directory configures (1_Pooling/config.json), if any */
export function poolingOf(dir: string): Pooling | null {
  const file = join(dir, '1_Pooling', 'config.json');
  if (!existsSync(file)) return null;
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
  if (j.pooling_mode_cls_token) return 'cls';
  if (j.pooling_mode_lasttoken) return 'last';
  if (j.pooling_mode_mean_tokens) return 'mean';
  const modes = Object.keys(j).filter((k) => k.startsWith('pooling_mode_') && j[k]);
  throw new Error(`${file}: pooling ${modes.join(', ') || '(none set)'} is not supported (cls, mean or last)`);
}
