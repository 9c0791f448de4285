// `lineage tokenize` and `lineage tokenizer train` handlers. Errors are thrown without the
// "lineage <command>:" prefix: main adds it when it prints them.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadTokenizer, saveTokenizer } from '../../tokenizers/load-node.js';
import { trainBPE, trainUnigram, trainWordPiece, type Tokenizer } from '../../tokenizers/index.js';
import { ProgressBar } from '../progress.js';

type OptionSpec = Record<string, { type: 'string' | 'boolean'; short?: string }>;

function parse(cmd: string, argv: string[], options: OptionSpec) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new Error((e as Error).message);
  }
}

function required(cmd: string, values: Record<string, unknown>, name: string, usage: string): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new Error(`missing --${name} (usage: ${usage})`);
  return v;
}

const TOKENIZE_USAGE = 'lineage tokenize --tokenizer FILE_OR_MODEL_DIR_OR_bytes --text "..." [--json] [--no-special]';

/**
 * `lineage tokenize --tokenizer X --text "..." [--json]`: prints `{"ids":[...]}` with --json, else the
 * ids, then each token with its id.
 */
export async function tokenizeCommand(argv: string[]): Promise<void> {
  const v = parse('tokenize', argv, {
    tokenizer: { type: 'string' }, text: { type: 'string' }, json: { type: 'boolean' }, 'no-special': { type: 'boolean' },
  });
  const path = required('tokenize', v, 'tokenizer', TOKENIZE_USAGE);
  if (typeof v.text !== 'string') throw new Error(`missing --text (usage: ${TOKENIZE_USAGE})`);
  const tok = loadTokenizer(path);
  const ids = tok.encode(v.text, { addSpecialTokens: !v['no-special'] });
  if (v.json) {
    process.stdout.write(JSON.stringify({ ids }) + '\n');
    return;
  }
  const lines = [`${ids.length} tokens: ${JSON.stringify(ids)}`];
  for (const id of ids) lines.push(`${String(id).padStart(8)}  ${JSON.stringify(tok.idToToken(id))}`);
  process.stdout.write(lines.join('\n') + '\n');
}

const UNITS: Record<string, string> = { count: 'char', seed: 'word', merges: 'merge', em: 'round' };

const TRAIN_USAGE = 'lineage tokenizer train --type bpe|wordpiece|unigram --vocab-size N --data FILE --out tokenizer.json [--min-frequency N] [--special-tokens A,B,...]';

/** `lineage tokenizer train --type bpe|wordpiece|unigram --vocab-size N --data FILE --out tokenizer.json`. */
export async function tokenizerTrainCommand(argv: string[]): Promise<void> {
  const v = parse('tokenizer train', argv, {
    type: { type: 'string' }, 'vocab-size': { type: 'string' }, data: { type: 'string' }, out: { type: 'string' },
    'min-frequency': { type: 'string' }, 'special-tokens': { type: 'string' },
  });
  const type = required('tokenizer train', v, 'type', TRAIN_USAGE);
  if (!['bpe', 'wordpiece', 'unigram'].includes(type)) throw new Error(`--type must be bpe, wordpiece or unigram, got ${JSON.stringify(type)}`);
  const vsRaw = required('tokenizer train', v, 'vocab-size', TRAIN_USAGE);
  const vocabSize = Number(vsRaw);
  if (!Number.isInteger(vocabSize) || vocabSize <= 0) throw new Error(`--vocab-size must be a positive integer, got ${JSON.stringify(vsRaw)}`);
  const data = required('tokenizer train', v, 'data', TRAIN_USAGE);
  const out = required('tokenizer train', v, 'out', TRAIN_USAGE);
  let minFrequency: number | undefined;
  if (v['min-frequency'] !== undefined) {
    minFrequency = Number(v['min-frequency']);
    if (!Number.isInteger(minFrequency) || minFrequency < 1) throw new Error(`--min-frequency must be a positive integer, got ${JSON.stringify(v['min-frequency'])}`);
  }
  const specialTokens = typeof v['special-tokens'] === 'string' ? v['special-tokens'].split(',').filter(Boolean) : undefined;
  let text: string;
  try { text = readFileSync(data, 'utf8'); } catch (e) { throw new Error(`cannot read --data ${data}: ${(e as Error).message}`); }
  if (text.length === 0) throw new Error(`--data ${data} is empty`);

  let bar: ProgressBar | null = null;
  let phase = '';
  const onProgress = (done: number, total: number, p?: string) => {
    const label = `${type} ${p ?? ''}`.trim();
    if (p !== phase || !bar) { bar?.done(); bar = new ProgressBar({ total, label, unit: UNITS[p ?? ''] ?? 'it' }); phase = p ?? ''; }
    bar.total = total;
    bar.update(done);
  };
  const t0 = performance.now();
  const opts = { vocabSize, minFrequency, specialTokens, onProgress };
  let tok: Tokenizer;
  if (type === 'bpe') tok = trainBPE(text, opts);
  else if (type === 'wordpiece') tok = trainWordPiece(text, opts);
  else tok = trainUnigram(text, opts);
  (bar as ProgressBar | null)?.done();
  saveTokenizer(tok, out);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  process.stderr.write(`wrote ${out}: ${type} tokenizer, vocab ${tok.vocabSize}, trained on ${text.length} chars in ${secs}s\n`);
}
