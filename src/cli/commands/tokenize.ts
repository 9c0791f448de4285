// `lineage tokenize` and `lineage tokenizer train` handlers. Errors are thrown without the
// "lineage <command>:" prefix: main adds it when it prints them.
import { loadTokenizer, saveTokenizer } from '../../tokenizers/load-node.js';
import { trainBPE, trainUnigram, trainWordPiece, type Tokenizer } from '../../tokenizers/index.js';
import { ProgressBar } from '../progress.js';
import { readTextFile } from '../files.js';
import { flagChoice, flagNumber, flagRequired, flagString, parseFlags } from '../flags.js';

const TOKENIZE_HELP = `usage: lineage tokenize --tokenizer FILE|MODEL_DIR|bytes --text "..." [--json] [--no-special]

  --tokenizer   a tokenizer.json, a model directory holding one, or 'bytes' (id = UTF-8 byte)
  --text        the text to encode
  --no-special  do not add the tokenizer's special tokens (BOS, [CLS] ...)
  --json        print {"ids": [...]}`;

/**
 * `lineage tokenize --tokenizer X --text "..." [--json]`: prints `{"ids":[...]}` with --json, else the
 * ids, then each token with its id.
 */
export async function tokenizeCommand(argv: string[]): Promise<void> {
  const f = parseFlags('tokenize', argv, ['tokenizer', 'text'], ['json', 'no-special']);
  if (f.help) return void console.log(TOKENIZE_HELP);
  const path = flagRequired(f, 'tokenizer', 'FILE|MODEL_DIR|bytes', TOKENIZE_HELP);
  const text = flagString(f, 'text');
  if (text === undefined) throw new Error(`--text TEXT is required\n${TOKENIZE_HELP}`);
  const tok = loadTokenizer(path);
  const ids = tok.encode(text, { addSpecialTokens: !f.bools.has('no-special') });
  if (f.bools.has('json')) {
    process.stdout.write(JSON.stringify({ ids }) + '\n');
    return;
  }
  const lines = [`${ids.length} tokens: ${JSON.stringify(ids)}`];
  for (const id of ids) lines.push(`${String(id).padStart(8)}  ${JSON.stringify(tok.idToToken(id))}`);
  process.stdout.write(lines.join('\n') + '\n');
}

const UNITS: Record<string, string> = { count: 'char', seed: 'word', merges: 'merge', em: 'round' };

const TRAIN_HELP = `usage: lineage tokenizer train --type bpe|wordpiece|unigram --vocab-size N --data FILE --out tokenizer.json [options]

  --type             bpe | wordpiece | unigram
  --vocab-size N     target vocabulary size
  --data FILE        training text (UTF-8)
  --out FILE         where to write tokenizer.json
  --min-frequency N  drop pairs / words seen fewer than N times
  --special-tokens   comma-separated special tokens, e.g. "<pad>,<eos>"`;

/** `lineage tokenizer train --type bpe|wordpiece|unigram --vocab-size N --data FILE --out tokenizer.json`. */
export async function tokenizerTrainCommand(argv: string[]): Promise<void> {
  const f = parseFlags(
    'tokenizer train',
    argv,
    ['type', 'vocab-size', 'data', 'out', 'min-frequency', 'special-tokens'],
    [],
  );
  if (f.help) return void console.log(TRAIN_HELP);
  const type = flagChoice(f, 'type', ['bpe', 'wordpiece', 'unigram'] as const);
  if (!type) throw new Error(`--type bpe|wordpiece|unigram is required\n${TRAIN_HELP}`);
  const vocabSize = flagNumber(f, 'vocab-size', { int: true, min: 1 });
  if (vocabSize === undefined) throw new Error(`--vocab-size N is required\n${TRAIN_HELP}`);
  const data = flagRequired(f, 'data', 'FILE', TRAIN_HELP);
  const out = flagRequired(f, 'out', 'FILE', TRAIN_HELP);
  const minFrequency = flagNumber(f, 'min-frequency', { int: true, min: 1 });
  const special = flagString(f, 'special-tokens');
  const specialTokens = special !== undefined ? specialTokenList(special) : undefined;
  const text = readTextFile('--data', data);
  if (text.length === 0) throw new Error(`--data ${data}: the file is empty`);

  let bar: ProgressBar | null = null;
  let phase = '';
  const onProgress = (done: number, total: number, p?: string) => {
    const label = `${type} ${p ?? ''}`.trim();
    if (p !== phase || !bar) {
      bar?.done();
      bar = new ProgressBar({ total, label, unit: UNITS[p ?? ''] ?? 'it' });
      phase = p ?? '';
    }
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
  process.stderr.write(
    `wrote ${out}: ${type} tokenizer, vocab ${tok.vocabSize}, trained on ${text.length} chars in ${secs}s\n`,
  );
}

/** --special-tokens: comma-separated, each once (a repeat would give one token two ids, the first unreachable) */
export function specialTokenList(spec: string): string[] {
  const list = spec.split(',').filter(Boolean);
  const seen = new Set<string>();
  for (const t of list) {
    if (seen.has(t)) throw new Error(`--special-tokens: ${JSON.stringify(t)} is given twice`);
    seen.add(t);
  }
  return list;
}
