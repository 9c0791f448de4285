// `lineage init --preset NAME [--set field=value ...] [--tokenizer bytes|FILE] [--seed S] --out DIR`
// Creates a randomly initialised model directory in the Hugging Face layout.
import { parseArgs } from 'node:util';
import { getPreset, presetNames } from '../../models/presets.js';
import { applyOverrides, fromHFConfig, toHFConfig } from '../../models/hf-config.js';
import { createModel } from '../../models/registry.js';
import { saveModel } from '../../models/load-node.js';
import { loadTokenizer } from '../../tokenizers/load-node.js';
import { inspectConfig } from '../../models/inspect.js';

const HELP = `usage: lineage init --preset NAME [--set field=value ...] [--tokenizer bytes|FILE] [--seed S] --out DIR

  --preset     a preset name (${presetNames().slice(0, 6).join(', ')}, ...; 'lineage inspect --help' lists them)
  --set        override a config.json field by its Hugging Face name, e.g. --set num_hidden_layers=2
  --tokenizer  'bytes' (id = UTF-8 byte, vocabulary 256) or a tokenizer.json / model dir to copy
  --seed       initialisation seed (default 0)
  --out        output directory`;

export async function initCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      preset: { type: 'string' },
      set: { type: 'string', multiple: true },
      tokenizer: { type: 'string' },
      seed: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return void console.log(HELP);
  if (!values.preset) throw new Error(`--preset is required\n${HELP}`);
  if (!values.out) throw new Error(`--out is required\n${HELP}`);
  const seed = values.seed === undefined ? 0 : Number(values.seed);
  if (!Number.isInteger(seed)) throw new Error(`--seed must be an integer, got '${values.seed}'`);
  const hf = applyOverrides(toHFConfig(getPreset(values.preset)), values.set ?? []);
  const tokenizer = values.tokenizer ? loadTokenizer(values.tokenizer) : undefined;
  if (tokenizer && typeof hf.vocab_size === 'number' && tokenizer.vocabSize > hf.vocab_size) {
    throw new Error(`tokenizer has ${tokenizer.vocabSize} tokens but vocab_size is ${hf.vocab_size}; add --set vocab_size=${tokenizer.vocabSize}`);
  }
  const config = fromHFConfig(hf);
  const { params } = inspectConfig(config);
  if (params > 2e9) throw new Error(`${values.preset} has ${(params / 1e9).toFixed(1)}B parameters: too large to initialise in memory here; use --set to shrink it`);
  const model = createModel(config, { seed });
  await saveModel(model, values.out, { tokenizer });
  console.log(`wrote ${values.out} (${config.family}, ${model.numParameters().toLocaleString('en-US')} parameters, seed ${seed})`);
}
