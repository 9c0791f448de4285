// The two vocabulary-free tokenizers: character level (nanoGPT shakespeare-char) and raw UTF-8 bytes.
import { BPE, WordLevel } from './models.js';
import { ByteLevelPre, Split } from './pre-tokenizers.js';
import { decoderFromJSON } from './processors.js';
import { Tokenizer } from './tokenizer.js';
import { byteToChar } from './unicode.js';
import type { AddedToken } from './added-tokens.js';

export interface CharTokenizerOptions {
  /** Adds this token (id = number of chars) and maps unseen characters to it; without it they throw. */
  unkToken?: string;
}

/**
 * Character-level tokenizer: vocabulary = sorted set of the corpus's characters (Unicode code points,
 * sorted by code point like Python's sorted(set(data))), id = rank in that order.
 *
 * tokenizer.json representation (loadable by the Python `tokenizers` library): a WordLevel model over the
 * characters, a Split pre-tokenizer with Regex "[\s\S]" and behavior Isolated (one word per character,
 * newlines included — Rust's "." would skip "\n"), and a Fuse decoder (concatenate, no spaces). WordLevel's
 * unk_token is a required string in the Rust crate: without opts.unkToken it names "<unk>", which is not
 * in the vocabulary (a corpus character "<unk>" cannot exist: tokens are single characters), so unseen
 * characters are an error in both libraries.
 */
export function charTokenizer(corpus: string | Iterable<string>, opts: CharTokenizerOptions = {}): Tokenizer {
  const set = new Set<number>();
  const texts = typeof corpus === 'string' ? [corpus] : corpus;
  for (const t of texts) for (const c of t) set.add(c.codePointAt(0)!);
  const chars = [...set].sort((a, b) => a - b).map((cp) => String.fromCodePoint(cp));
  if (chars.length === 0) throw new Error('charTokenizer: the corpus is empty');
  const vocab = new Map(chars.map((c, i) => [c, i]));
  const added: AddedToken[] = [];
  if (opts.unkToken !== undefined) {
    if (vocab.has(opts.unkToken))
      throw new Error(`charTokenizer: unkToken ${JSON.stringify(opts.unkToken)} is also a corpus character`);
    vocab.set(opts.unkToken, chars.length);
    added.push({
      id: chars.length,
      content: opts.unkToken,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    });
  }
  return new Tokenizer({
    model: new WordLevel(vocab, opts.unkToken ?? '<unk>'),
    preTokenizer: new Split({ Regex: '[\\s\\S]' }, 'Isolated'),
    decoder: decoderFromJSON({ type: 'Fuse' }),
    addedTokens: added,
  });
}

/**
 * Byte-level tokenizer: id = UTF-8 byte value, vocabulary 256, no special tokens.
 *
 * tokenizer.json representation: the GPT-2 byte-level pipeline without regex split or merges — a ByteLevel
 * pre-tokenizer (use_regex false, no prefix space) maps each byte to GPT-2's visible character, a BPE
 * model whose vocab lists those 256 characters in byte order (so id = byte) with no merges, and a
 * ByteLevel decoder. The Python library loads and runs it unchanged.
 */
export function bytesTokenizer(): Tokenizer {
  const table = byteToChar();
  const vocab = new Map(table.map((c, b) => [c, b]));
  return new Tokenizer({
    model: new BPE(vocab, []),
    preTokenizer: new ByteLevelPre(false, true, false),
    decoder: decoderFromJSON({ type: 'ByteLevel' }),
  });
}
