// `lineage` command-line entry: dispatches to one handler per command. Handlers are loaded
// lazily so `lineage inspect` stays instant and never starts worker threads.
type Handler = (argv: string[]) => Promise<void>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Handler> }> = {
  init: {
    summary: 'create a randomly initialised model directory from a preset',
    load: async () => (await import('./commands/init.js')).initCommand,
  },
  inspect: {
    summary: 'parameters, FLOPs and KV-cache size of a preset or model dir',
    load: async () => (await import('./commands/inspect.js')).inspectCommand,
  },
  logits: {
    summary: 'one forward pass, print logits (debugging aid)',
    load: async () => (await import('./commands/logits.js')).logitsCommand,
  },
  eval: {
    summary: 'loss / perplexity of a model on a text file',
    load: async () => (await import('./commands/eval.js')).evalCommand,
  },
  train: {
    summary: 'train a model (recipes, presets, model dirs)',
    load: async () => (await import('./commands/train.js')).trainCommand,
  },
  align: {
    summary: 'post-training: sft, reward, dpo, ipo, kto, orpo, simpo, grpo (LoRA with --lora-r)',
    load: async () => (await import('./commands/align.js')).alignCommand,
  },
  generate: {
    summary: 'sample text from a model (default: the bundled Shakespeare model)',
    load: async () => (await import('./commands/generate.js')).generateCommand,
  },
  quantize: {
    summary: 'weight-only int8 / int4 quantization (GGUF q8_0 / q4_0 blocks)',
    load: async () => (await import('./commands/quantize.js')).quantizeCommand,
  },
  tokenize: {
    summary: 'encode text with a tokenizer',
    load: async () => (await import('./commands/tokenize.js')).tokenizeCommand,
  },
  tokenizer: { summary: 'tokenizer train --type bpe|wordpiece|unigram ...', load: async () => tokenizerSub },
  chat: {
    summary: 'interactive chat in the terminal (streams tokens, keeps the conversation)',
    load: async () => (await import('./commands/chat.js')).chatCommand,
  },
  serve: {
    summary: 'OpenAI-compatible HTTP server (completions, chat, embeddings, streaming)',
    load: async () => (await import('./commands/serve.js')).serveCommand,
  },
  bench: {
    summary: 'benchmarks: gemm, attention, elementwise, all',
    load: async () => (await import('./bench.js')).benchCommand,
  },
};

/** commands that run models: they get the WebAssembly backend (bench picks its own threads) */
const COMPUTE = new Set(['init', 'logits', 'eval', 'train', 'generate', 'serve', 'chat', 'align']);

const TOKENIZER_USAGE = `usage: lineage tokenizer <subcommand> [options]

subcommands:
  train      train a BPE, WordPiece or Unigram vocabulary on a text file

Run 'lineage tokenizer train --help' for its options.`;

async function tokenizerSub(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') return void console.log(TOKENIZER_USAGE);
  // main adds the "lineage tokenizer: " prefix
  if (sub !== 'train') throw new Error(`unknown subcommand '${sub}' (expected: train)\n${TOKENIZER_USAGE}`);
  await (await import('./commands/tokenize.js')).tokenizerTrainCommand(rest);
}

/** the version in package.json (this file is dist/src/cli/main.js) */
async function version(): Promise<string> {
  const { readFileSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  };
  return pkg.version;
}

/** Control and zero-width characters (a binary file's bytes quoted by JSON.parse) made visible as \u{..}. */
export function visible(msg: string): string {
  return msg.replace(
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/gu,
    (ch) => `\\u{${ch.codePointAt(0)!.toString(16).toUpperCase()}}`,
  );
}

/** an error that carries its own exit status (130 after SIGINT, 143 after SIGTERM) */
interface ExitError extends Error {
  exitCode?: number;
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return `usage: lineage <command> [options]\n       lineage --version\n\ncommands:\n${lines.join('\n')}\n\nRun 'lineage <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<void> {
  // global --backend native|wasm|reference (src/cli/backend-node.ts)
  if (argv.some((a) => a === '--backend' || a.startsWith('--backend='))) {
    try {
      argv = (await import('./backend-node.js')).takeBackendFlag(argv);
    } catch (e) {
      console.error(`lineage: ${(e as Error).message}`);
      process.exitCode = 2;
      return;
    }
  }
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === 'version') {
    console.log(await version());
    return;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    console.error(`lineage: unknown command '${cmd}'\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  try {
    const help = rest.includes('--help') || rest.includes('-h');
    if (COMPUTE.has(cmd) && !help) await (await import('./backend-node.js')).useFastBackend();
    await (
      await entry.load()
    )(rest);
  } catch (e) {
    const err = e as ExitError;
    let msg = err.message;
    for (const prefix of [`lineage ${cmd}: `, `${cmd}: `]) if (msg.startsWith(prefix)) msg = msg.slice(prefix.length);
    console.error(`lineage ${cmd}: ${visible(msg)}`);
    if (process.env.LINEAGE_DEBUG) console.error(err.stack);
    process.exitCode = err.exitCode ?? 1;
  } finally {
    const { shutdownBackend } = await import('./backend-node.js');
    await shutdownBackend();
  }
}
