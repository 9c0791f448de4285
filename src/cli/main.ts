// `lineage` command-line entry: dispatches to one handler per command. Handlers are loaded
// lazily so `lineage inspect` stays instant and never starts worker threads.
type Handler = (argv: string[]) => Promise<void>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Handler> }> = {
  init: { summary: 'create a randomly initialised model directory from a preset', load: async () => (await import('./commands/init.js')).initCommand },
  inspect: { summary: 'parameters, FLOPs and KV-cache size of a preset or model dir', load: async () => (await import('./commands/inspect.js')).inspectCommand },
  logits: { summary: 'one forward pass, print logits (debugging aid)', load: async () => (await import('./commands/logits.js')).logitsCommand },
  eval: { summary: 'loss / perplexity of a model on a text file', load: async () => (await import('./commands/eval.js')).evalCommand },
  train: { summary: 'train a model (recipes, presets, model dirs)', load: async () => (await import('./commands/train.js')).trainCommand },
  generate: { summary: 'sample text from a model (default: the bundled Shakespeare model)', load: async () => (await import('./commands/generate.js')).generateCommand },
  quantize: { summary: 'weight-only int8 / int4 quantization (GGUF q8_0 / q4_0 blocks)', load: async () => (await import('./commands/quantize.js')).quantizeCommand },
  tokenize: { summary: 'encode text with a tokenizer', load: async () => (await import('./commands/tokenize.js')).tokenizeCommand },
  tokenizer: { summary: 'tokenizer train --type bpe|wordpiece|unigram ...', load: async () => tokenizerSub },
  bench: { summary: 'benchmarks: gemm, attention, elementwise, all', load: async () => (await import('./bench.js')).benchCommand },
};

/** commands that run models: they get the WebAssembly backend (bench picks its own threads) */
const COMPUTE = new Set(['init', 'logits', 'eval', 'train', 'generate']);

async function tokenizerSub(argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub !== 'train') throw new Error(`lineage tokenizer: unknown subcommand '${sub ?? ''}' (expected: train)`);
  await (await import('./commands/tokenize.js')).tokenizerTrainCommand(rest);
}

function usage(): string {
  const lines = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return `usage: lineage <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'lineage <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    console.error(`lineage: unknown command '${cmd}'\n\n${usage()}`);
    process.exitCode = 2;
    return;
  }
  try {
    if (COMPUTE.has(cmd)) await (await import('./backend-node.js')).useFastBackend();
    await (await entry.load())(rest);
  } catch (e) {
    const err = e as Error;
    const msg = err.message.startsWith(`${cmd}: `) ? err.message.slice(cmd.length + 2) : err.message;
    console.error(`lineage ${cmd}: ${msg}`);
    if (process.env.LINEAGE_DEBUG) console.error(err.stack);
    process.exitCode = 1;
  } finally {
    const { shutdownBackend } = await import('./backend-node.js');
    await shutdownBackend();
  }
}
