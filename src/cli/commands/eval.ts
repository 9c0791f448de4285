// `lineage eval`: loss and perplexity of a model on a text file. Causal models (decoders, Mamba, RNNs):
// mean next-token cross-entropy over consecutive non-overlapping windows of the context length (or
// --seq-len), each token predicted once from its window. Other families: the family's objective on
// fixed batches drawn from the whole file.
import { noGrad, tidy } from '../../tensor/engine.js';
import { crossEntropy, tensor } from '../../ops/index.js';
import type { LanguageModel } from '../../models/model.js';
import type { ModelConfig } from '../../models/config.js';
import { MemoryTokenFile, sequentialBatches, type TokenSource } from '../../train/data/index.js';
import { sequentialWindowCount } from '../../train/data/batches.js';
import { createTask, defaultObjective } from '../../train/family-objectives.js';
import { loadModelDir } from '../../infer/model-dir-node.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { loadTokenizer } from '../../tokenizers/load-node.js';
import { vocabularyDifference } from '../../tokenizers/compare.js';
import { checkTokenizer } from '../../models/load.js';
import { flagNumber, flagRequired, flagString, parseFlags } from '../flags.js';
import { readTextFile, requireModelDir } from '../files.js';
import { ProgressBar } from '../progress.js';
import { requireHead } from '../model-hints.js';
import { loadAdapterDir } from '../../align/lora-node.js';

const HELP = `usage: lineage eval --model DIR --data FILE [--seq-len N] [--batch-size B] [--tokenizer T] [--lora DIR] [--json] [--quiet]

  prints {"loss","tokens","perplexity"}: mean next-token loss over non-overlapping windows of the
  model's context length (or N). A progress bar goes to stderr unless --quiet. A model whose loss is
  not finite (NaN / Inf weights, or activations that overflow float32) is an error (exit status 1).`;

/** called after each batch with the batches done and the total */
export type EvalProgress = (done: number, total: number) => void;

export interface EvalResult {
  loss: number;
  tokens: number;
  perplexity: number;
}

/** default window: the learned-position context, else the config's maxContext capped at 1024, RNNs 256 */
export function evalWindow(cfg: ModelConfig): number {
  if (!('maxContext' in cfg)) return 256;
  return cfg.positions.kind === 'learned' ? cfg.maxContext : Math.min(cfg.maxContext, 1024);
}

/** Σ CE / #targets over sequential windows (the last partial window is dropped, as in sequentialBatches) */
export function causalEval(
  model: LanguageModel,
  src: TokenSource,
  seqLen: number,
  batchSize: number,
  onProgress?: EvalProgress,
): EvalResult {
  let total = 0;
  let count = 0;
  let done = 0;
  const batches = Math.ceil(sequentialWindowCount(src.length, seqLen) / batchSize);
  model.eval();
  for (const b of sequentialBatches(src, batchSize, seqLen)) {
    total += noGrad(() =>
      tidy(() => {
        const shape = [b.rows, b.blockSize];
        const out = model.forward({ inputIds: tensor(b.x, { shape, dtype: 'int32' }) });
        return crossEntropy(out.logits, tensor(b.y, { shape, dtype: 'int32' }), { reduction: 'sum' }).item();
      }),
    );
    count += b.x.length;
    onProgress?.(++done, batches);
  }
  if (count === 0)
    throw new Error(`eval: the data has fewer than ${seqLen + 1} tokens (one window of --seq-len ${seqLen})`);
  const loss = total / count;
  return { loss, tokens: count, perplexity: Math.exp(loss) };
}

function objectiveEval(
  model: LanguageModel,
  cfg: ModelConfig,
  text: string,
  tok: Tokenizer,
  seqLen: number,
  batchSize: number,
  onProgress?: EvalProgress,
): EvalResult {
  const ids = new MemoryTokenFile(Int32Array.from(tok.encode(text, { addSpecialTokens: false })));
  const encode = (s: string) => tok.encode(s, { addSpecialTokens: false });
  const task = createTask(
    defaultObjective(cfg),
    cfg,
    { train: ids, val: ids, trainText: text, valText: text, encode },
    { batchSize, blockSize: seqLen, seed: 0 },
    tok,
  );
  model.eval();
  let total = 0;
  let count = 0;
  const batches = task.evalBatches('val', 0, 20);
  for (const [i, b] of batches.entries()) {
    total += noGrad(() => tidy(() => task.loss(model, b).loss.item())) * b.tokens;
    count += b.tokens;
    onProgress?.(i + 1, batches.length);
  }
  task.dispose?.();
  if (count === 0)
    throw new Error(
      `eval: the ${batches.length} ${task.objective} batches of ${text.length} characters hold no target token ` +
        '(nothing was masked); use more text, a larger --batch-size or --seq-len',
    );
  return { loss: total / count, tokens: count, perplexity: Math.exp(total / count) };
}

/**
 * --tokenizer must read text into the ids the model was trained on: ids within its vocabulary, and the same
 * tokens as the model's own tokenizer.json when it has one (otherwise the loss is of other text).
 */
export function pairedTokenizer(spec: string, cfg: ModelConfig, own: Tokenizer | null, dir: string): Tokenizer {
  const tok = loadTokenizer(spec);
  checkTokenizer(tok, cfg, `--tokenizer ${spec}`);
  const diff = own ? vocabularyDifference(own, tok) : null;
  if (diff)
    throw new Error(
      `--tokenizer ${spec}: its vocabulary differs from ${dir}'s tokenizer.json (${diff}, the model's first), ` +
        "so the model would read other tokens; leave out --tokenizer to use the model's own",
    );
  return tok;
}

export async function evalCommand(argv: string[]): Promise<void> {
  const f = parseFlags(
    'eval',
    argv,
    ['model', 'data', 'seq-len', 'batch-size', 'tokenizer', 'lora'],
    ['json', 'quiet'],
  );
  if (f.help) return void console.log(HELP);
  const dir = flagRequired(f, 'model', 'DIR');
  const data = flagRequired(f, 'data', 'FILE');
  requireModelDir('--model', dir);
  const seqLenFlag = flagNumber(f, 'seq-len', { int: true, min: 1 });
  const batchSize = flagNumber(f, 'batch-size', { int: true, min: 1 }) ?? 8;
  const text = readTextFile('--data', data);
  const { model, config, tokenizer } = await loadModelDir(dir);
  requireHead(config, 'eval');
  const lora = flagString(f, 'lora');
  if (lora) loadAdapterDir(model, lora); // a PEFT adapter on top of --model
  const tokSpec = flagString(f, 'tokenizer');
  const tok = tokSpec ? pairedTokenizer(tokSpec, config, tokenizer, dir) : tokenizer;
  if (!tok) throw new Error(`${dir}: no tokenizer.json; pass --tokenizer`);
  const seqLen = seqLenFlag ?? evalWindow(config);
  if ('maxContext' in config && config.positions.kind === 'learned' && seqLen > config.maxContext)
    throw new Error(`--seq-len ${seqLen} exceeds the model's ${config.maxContext} learned positions`);
  const causal = config.arch === 'decoder' || config.arch === 'mamba' || config.arch === 'rnn';
  const bar = f.bools.has('quiet') ? null : new ProgressBar({ total: 0, label: 'eval', unit: 'batch' });
  const progress: EvalProgress = (done, total) => {
    bar!.total = total;
    bar!.update(done);
  };
  let r: EvalResult;
  try {
    r = causal
      ? causalEval(
          model,
          new MemoryTokenFile(Int32Array.from(tok.encode(text, { addSpecialTokens: false }))),
          seqLen,
          batchSize,
          bar ? progress : undefined,
        )
      : objectiveEval(model, config, text, tok, seqLen, batchSize, bar ? progress : undefined);
  } finally {
    bar?.done();
    model.dispose();
  }
  if (!Number.isFinite(r.loss)) {
    throw new Error(
      `the model in ${dir} gives a non-finite loss (${r.loss}) on ${data}: its weights hold NaN or Inf, or its ` +
        'activations overflow float32; the model is broken (retrain it, or resume from an earlier checkpoint)',
    );
  }
  if (f.bools.has('json')) console.log(JSON.stringify(r));
  else
    console.log(
      `loss ${r.loss.toFixed(4)}  perplexity ${r.perplexity.toFixed(3)}  over ${r.tokens} tokens (windows of ${seqLen})`,
    );
}
