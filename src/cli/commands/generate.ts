// `lineage generate`: sample text from a model directory (default: the bundled Shakespeare model, found
// relative to this package, not the working directory). Greedy at --temperature 0; KV-cached decoding.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { generate } from '../../infer/generate.js';
import { loadModelDir } from '../../infer/model-dir-node.js';
import { flagNumber, flagString, parseFlags } from './train.js';
import { loadAdapterDir } from '../../align/lora-node.js';

/** models/shakespeare-char beside dist/ (this file is dist/src/cli/commands/generate.js) */
export function bundledModelDir(): string {
  return fileURLToPath(new URL('../../../../models/shakespeare-char', import.meta.url));
}

const HELP = `usage: lineage generate [--model DIR] --prompt TEXT [options]

  --model DIR        model directory with tokenizer.json (default: the bundled shakespeare-char model)
  --prompt TEXT      text to continue (default: a newline)
  --max-tokens N     tokens to generate (default 200)
  --temperature T    0 = greedy (default 0.8)
  --top-k K          keep the K most likely tokens (default 0 = off)
  --top-p P          nucleus sampling (default 1 = off)
  --seed S           sampling seed (default 0)
  --lora DIR         apply a PEFT LoRA adapter directory (adapter_config.json) on top of --model
  --json             print {"text","ids"} instead of streaming the text`;

export async function generateCommand(argv: string[]): Promise<void> {
  const f = parseFlags('generate', argv, ['model', 'prompt', 'max-tokens', 'temperature', 'top-k', 'top-p', 'seed', 'lora'], ['json', 'help']);
  if (f.bools.has('help')) return void console.log(HELP);
  const dir = flagString(f, 'model') ?? bundledModelDir();
  if (!existsSync(dir)) throw new Error(`--model ${dir}: no such directory${flagString(f, 'model') ? '' : ' (the bundled model is missing from this install)'}`);
  const { model, tokenizer } = await loadModelDir(dir);
  if (!tokenizer) throw new Error(`${dir}: no tokenizer.json (generate needs one to encode the prompt)`);
  const lora = flagString(f, 'lora');
  if (lora) loadAdapterDir(model, lora);
  const prompt = flagString(f, 'prompt') ?? '\n';
  const promptIds = tokenizer.encode(prompt, { addSpecialTokens: false });
  if (promptIds.length === 0) throw new Error('--prompt: encodes to no tokens');
  const json = f.bools.has('json');
  const eos = model.config.tokens.eos;
  let shown = '';
  const ids: number[] = [];
  if (!json) process.stdout.write(prompt);
  const out = generate(model, promptIds, {
    maxTokens: flagNumber(f, 'max-tokens', { int: true, min: 0 }) ?? 200,
    temperature: flagNumber(f, 'temperature', { min: 0 }) ?? 0.8,
    topK: flagNumber(f, 'top-k', { int: true, min: 0 }) ?? 0,
    topP: flagNumber(f, 'top-p', { min: 0 }) ?? 1,
    seed: flagNumber(f, 'seed', { int: true }) ?? 0,
    stopIds: eos !== null ? [eos] : [],
    onToken: (id) => {
      ids.push(id);
      if (json) return;
      const text = tokenizer.decode(ids);
      if (text.endsWith('\uFFFD')) return; // an incomplete UTF-8 sequence: wait for its next byte
      process.stdout.write(text.slice(shown.length));
      shown = text;
    },
  });
  model.dispose();
  const text = tokenizer.decode(out);
  if (json) console.log(JSON.stringify({ text, ids: out }));
  else process.stdout.write(text.slice(shown.length) + '\n');
}
