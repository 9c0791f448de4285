// Synthetic sequence-to-sequence tasks for the 2017 Transformer demo: small, deterministic, and learnable
// in minutes, with a train/val split that never shares a source string.
import { Rng } from '../rng.js';

export type SyntheticTask = 'copy' | 'reverse' | 'sort' | 'add' | 'translate';

/** Fixed vocabulary: 0 pad, 1 bos, 2 eos, then the task's symbols. */
export const SYNTH_PAD = 0;
export const SYNTH_BOS = 1;
export const SYNTH_EOS = 2;
const DIGITS = '0123456789+';
const LETTERS = 'abcdefghijklmnopqrstuvwxyz ';

export interface SyntheticOptions {
  task: SyntheticTask;
  /** Number of examples (train + val). */
  count: number;
  seed: number;
  /** Source length range in symbols (for 'add': digits per operand). Default 3..10. */
  minLength?: number;
  maxLength?: number;
  /** Default 0.1. */
  valFraction?: number;
}

export interface SyntheticPair {
  source: number[];
  target: number[];
  sourceText: string;
  targetText: string;
}

export interface SyntheticDataset {
  train: SyntheticPair[];
  val: SyntheticPair[];
  vocabSize: number;
  /** Symbol of each id (ids 0..2 are '<pad>', '<bos>', '<eos>'). */
  itos: string[];
  encode: (text: string) => number[];
  decode: (ids: ArrayLike<number>) => string;
}

function alphabetFor(task: SyntheticTask): string {
  return task === 'translate' ? LETTERS : DIGITS;
}

/**
 * 'translate' rule: a toy language where each consonant shifts 3 places along the consonants, vowels
 * map to the next vowel, and every word is reversed — deterministic, character-level, needs attention
 * over the whole word.
 */
export function toyTranslate(text: string): string {
  const vowels = 'aeiou';
  const consonants = 'bcdfghjklmnpqrstvwxyz';
  const mapChar = (c: string) => {
    const v = vowels.indexOf(c);
    if (v >= 0) return vowels[(v + 1) % vowels.length];
    const k = consonants.indexOf(c);
    return k >= 0 ? consonants[(k + 3) % consonants.length] : c;
  };
  return text
    .split(' ')
    .map((w) => [...w].reverse().map(mapChar).join(''))
    .join(' ');
}

function randomString(rng: Rng, task: SyntheticTask, minLen: number, maxLen: number): string {
  const len = rng.range(minLen, maxLen + 1);
  if (task === 'translate') {
    const words: string[] = [];
    for (let n = 0; n < len;) {
      const w = Array.from({ length: Math.min(rng.range(2, 6), len - n) }, () => LETTERS[rng.int(26)]).join('');
      words.push(w);
      n += w.length + 1;
    }
    return words.join(' ');
  }
  if (task === 'add') {
    const num = () => String(rng.int(10 ** len));
    return `${num()}+${num()}`;
  }
  return Array.from({ length: len }, () => DIGITS[rng.int(10)]).join('');
}

/** The target string for a source under a task's rule. */
export function syntheticTarget(task: SyntheticTask, source: string): string {
  switch (task) {
    case 'copy':
      return source;
    case 'reverse':
      return [...source].reverse().join('');
    case 'sort':
      return [...source].sort().join('');
    case 'add': {
      const [a, b] = source.split('+');
      return String(BigInt(a) + BigInt(b));
    }
    case 'translate':
      return toyTranslate(source);
  }
}

/** Generates distinct examples and splits them into train/val (no source appears in both). */
export function syntheticSeq2Seq(opts: SyntheticOptions): SyntheticDataset {
  const minLen = opts.minLength ?? 3;
  const maxLen = opts.maxLength ?? 10;
  if (!(minLen >= 1 && maxLen >= minLen)) throw new Error(`syntheticSeq2Seq: bad length range [${minLen}, ${maxLen}]`);
  const itos = ['<pad>', '<bos>', '<eos>', ...alphabetFor(opts.task)];
  const stoi = new Map(itos.map((s, i) => [s, i]));
  const encode = (text: string) =>
    [...text].map((c) => {
      const id = stoi.get(c);
      if (id === undefined)
        throw new Error(`syntheticSeq2Seq(${opts.task}).encode: symbol ${JSON.stringify(c)} not in vocabulary`);
      return id;
    });
  const decode = (ids: ArrayLike<number>) => Array.from(ids, (i) => (i > SYNTH_EOS ? itos[i] : '')).join('');
  const rng = new Rng(opts.seed);
  const seen = new Set<string>();
  const pairs: SyntheticPair[] = [];
  for (let tries = 0; pairs.length < opts.count && tries < opts.count * 20; tries++) {
    const src = randomString(rng, opts.task, minLen, maxLen);
    if (seen.has(src)) continue; // distinct sources keep val honest
    seen.add(src);
    const tgt = syntheticTarget(opts.task, src);
    pairs.push({ source: encode(src), target: encode(tgt), sourceText: src, targetText: tgt });
  }
  const nVal = Math.round(pairs.length * (opts.valFraction ?? 0.1));
  return { train: pairs.slice(nVal), val: pairs.slice(0, nVal), vocabSize: itos.length, itos, encode, decode };
}
