// `lineage init --preset NAME [--set field=value ...] [--tokenizer bytes|FILE] [--seed S] --out DIR`
// Creates a randomly initialised model directory in the Hugging Face layout.
import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { getPreset, presetNames } from '../../models/presets.js';
import { applyOverrides, fromHFConfig, toHFConfig } from '../../models/hf-config.js';
import { createModel } from '../../models/registry.js';
import { saveModel } from '../../models/load-node.js';
import { loadTokenizer } from '../../tokenizers/load-node.js';
import { bytesTokenizer } from '../../tokenizers/simple.js';
import { inspectConfig } from '../../models/inspect.js';
import { flagNumber, flagRequired, flagString, parseFlags } from '../flags.js';
import { tokenizerVocabOverrides } from '../config-overrides.js';

const HELP = `usage: lineage init --preset NAME [--set field=value ...] [--tokenizer bytes|FILE] [--seed S] --out DIR

  --preset     a preset name (${presetNames().slice(0, 6).join(', ')}, ...; 'lineage inspect --help' lists them)
  --set        override a config.json field by its Hugging Face name, e.g. --set num_hidden_layers=2;
               fields derived from it follow (head_dim, Mamba's intermediate_size) unless also set
  --tokenizer  'bytes' (id = UTF-8 byte: vocabulary 256, special-token ids cleared unless --set)
               or a tokenizer.json / model dir to copy
  --seed       initialisation seed (default 0)
  --out        output directory (a non-empty one only with --overwrite, which removes the files of what it held)
  --overwrite  replace the model (or training run) in --out`;

export async function initCommand(argv: string[]): Promise<void> {
  const f = parseFlags('init', argv, ['preset', 'set', 'tokenizer', 'seed', 'out'], ['overwrite']);
  if (f.help) return void console.log(HELP);
  const preset = flagRequired(f, 'preset', 'NAME', HELP);
  const out = flagRequired(f, 'out', 'DIR', HELP);
  const seed = flagNumber(f, 'seed', { int: true }) ?? 0;
  const sets = f.values.get('set') ?? [];
  const tokSpec = flagString(f, 'tokenizer');
  const base = toHFConfig(getPreset(preset));
  // the bytes tokenizer defines the vocabulary: 256 ids and no special tokens
  const implied = tokSpec === 'bytes' ? tokenizerVocabOverrides(base, 256, sets) : [];
  const hf = applyOverrides(base, [...implied, ...sets]);
  const tokenizer = tokSpec === 'bytes' ? bytesTokenizer() : tokSpec ? loadTokenizer(tokSpec) : undefined;
  if (tokenizer && typeof hf.vocab_size === 'number' && tokenizer.vocabSize > hf.vocab_size) {
    throw new Error(
      `--tokenizer ${tokSpec} has ${tokenizer.vocabSize} tokens but vocab_size is ${hf.vocab_size}; add --set vocab_size=${tokenizer.vocabSize}`,
    );
  }
  const config = fromHFConfig(hf);
  const { params } = inspectConfig(config);
  if (params > 2e9)
    throw new Error(
      `${preset} has ${(params / 1e9).toFixed(1)}B parameters: too large to initialise in memory here; use --set to shrink it`,
    );
  prepareOut(out, f.bools.has('overwrite'));
  const model = createModel(config, { seed });
  await saveModel(model, out, { tokenizer });
  console.log(
    `wrote ${out} (${config.family}, ${model.numParameters().toLocaleString('en-US')} parameters, vocabulary ${config.vocabSize}, seed ${seed})`,
  );
}

/** what a model directory or a training / align run leaves: stale beside a new random model */
const MODEL_DIR_FILES = [
  'config.json',
  'model.safetensors',
  'model.safetensors.index.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'metrics.jsonl',
  'checkpoint',
  'adapter_config.json',
  'adapter_model.safetensors',
  'reward_head.safetensors',
];
const RUN_FILE = /^(train|align)_[\w-]*\.json$|\.svg$|^model-\d+-of-\d+\.safetensors$/;

/** refuses a non-empty --out without --overwrite; with it, removes the old model's and run's files */
function prepareOut(out: string, overwrite: boolean): void {
  if (!existsSync(out)) return;
  if (!statSync(out).isDirectory()) throw new Error(`--out ${out}: exists and is not a directory`);
  const entries = readdirSync(out);
  if (entries.length === 0) return;
  if (!overwrite)
    throw new Error(
      `--out ${out} is not empty (${entries.slice(0, 5).join(', ')}${entries.length > 5 ? ', ...' : ''}): ` +
        'pass --overwrite to replace what it holds, or choose another --out',
    );
  // a tokenizer.json or checkpoint/ left from the old model would be read with the new one
  for (const name of entries)
    if (MODEL_DIR_FILES.includes(name) || RUN_FILE.test(name))
      rmSync(join(out, name), { recursive: true, force: true });
}
