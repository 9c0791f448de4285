// `lineage logits`: one forward pass on given token ids (batch 1) and the logits of every position —
// a debugging aid for comparing against transformers.
import { noGrad, tidy } from '../../tensor/engine.js';
import { tensor } from '../../ops/index.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ModelInputs } from '../../models/model.js';
import { loadModelDir } from '../../infer/model-dir-node.js';
import { flagString, parseFlags } from '../flags.js';
import { requireModelDir } from '../files.js';
import { headlessNote } from '../model-hints.js';

const HELP = `usage: lineage logits --model DIR --ids 1,2,3 [--decoder-ids 0,4,5] [--json]

  --ids            comma-separated input ids (the encoder side of encoder-decoders)
  --decoder-ids    decoder input ids (encoder-decoder models)
  --json           {"logits": [[...V floats...] per position]}; a model without a head (BertModel) has no
                   logits: it prints {"last_hidden_state": [[...hidden floats...] per position]}`;

/** (1, T, X) → T rows; a sequence-level output (1, X) → one row */
function rows(t: Tensor): number[][] {
  return (
    t.shape.length === 3 ? t.reshape(t.shape[1]!, t.shape[2]!) : t.reshape(1, t.shape.at(-1)!)
  ).toArray() as number[][];
}

function parseIds(name: string, s: string | undefined, vocab: number): number[] | null {
  if (s === undefined) return null;
  const ids = s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== '')
    .map(Number);
  const bad = ids.find((v) => !Number.isInteger(v) || v < 0 || v >= vocab);
  if (ids.length === 0 || bad !== undefined)
    throw new Error(`--${name}: expected comma-separated integers in [0, ${vocab}), got ${JSON.stringify(s)}`);
  return ids;
}

export async function logitsCommand(argv: string[]): Promise<void> {
  const f = parseFlags('logits', argv, ['model', 'ids', 'decoder-ids'], ['json']);
  if (f.help) return void console.log(HELP);
  const dir = flagString(f, 'model');
  if (!dir) throw new Error('--model DIR is required');
  requireModelDir('--model', dir);
  const { model, config } = await loadModelDir(dir);
  model.eval();
  const ids = parseIds('ids', flagString(f, 'ids'), config.vocabSize);
  if (!ids) throw new Error('--ids is required (e.g. --ids 1,2,3)');
  const dec = parseIds('decoder-ids', flagString(f, 'decoder-ids'), config.vocabSize);
  if (config.arch === 'encoder-decoder' && !dec)
    throw new Error(`--decoder-ids is required for the encoder-decoder family ${config.family}`);
  const row = (xs: number[]) => tensor(Int32Array.from(xs), { shape: [1, xs.length], dtype: 'int32' });
  const note = headlessNote(config);
  const key = note ? 'last_hidden_state' : 'logits';
  const values = noGrad(() =>
    tidy(() => {
      const inputs: ModelInputs = { inputIds: row(ids) };
      if (dec) inputs.decoderInputIds = row(dec);
      const out = model.forward(inputs);
      return rows(note ? out.lastHiddenState! : out.logits); // (T, V) or (T, hidden)
    }),
  );
  model.dispose();
  if (note) console.error(`note: ${note}; printing last_hidden_state`);
  if (f.bools.has('json')) console.log(JSON.stringify({ [key]: values }));
  else
    values.forEach((r, t) => {
      const top = r
        .map((v, i) => [v, i] as const)
        .sort((a, b) => b[0] - a[0])
        .slice(0, 5);
      console.log(
        `position ${t}: ${note ? 'largest hidden values' : 'top'} ${top.map(([v, i]) => `${i}:${v.toFixed(3)}`).join(' ')}`,
      );
    });
}
