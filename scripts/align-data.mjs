#!/usr/bin/env node
// Synthetic post-training data sets for docs/ALIGNMENT.md, built from the bundled corpus
// (data/tinyshakespeare.txt) with a seeded generator, in TRL's JSONL formats. Every character is in
// the bundled shakespeare-char model's 65-symbol vocabulary (no digits: numbers are spelled out).
//
//   node scripts/align-data.mjs chat  OUT   SFT chat format: {"messages"} train + 200 held-out prompts
//   node scripts/align-data.mjs epref OUT   preference on a measurable property: fewer letter 'e' per char
//   node scripts/align-data.mjs add   OUT   verifiable 1-digit addition in words: SFT warm-up, prompts, test
//   node scripts/align-data.mjs first OUT   verifiable 'first letter of <word>': SFT warm-up, prompts, 200-word test
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const corpus = readFileSync(join(ROOT, 'data', 'tinyshakespeare.txt'), 'utf8');

/** mulberry32: a tiny seeded generator (the data must not change between runs) */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = rng(1234);
const int = (n) => Math.floor(rand() * n);
const write = (dir, name, rows) => writeFileSync(join(dir, name), rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
const words = corpus
  .toLowerCase()
  .split(/[^a-z']+/)
  .filter((w) => w.length >= 2 && w.length <= 8);

/** SFT: the user says a few words, the assistant answers in one fixed-format line: "I hear <words>." */
function chat(dir) {
  const fragment = () => Array.from({ length: 2 + int(2) }, () => words[int(words.length)]).join(' ');
  const row = () => {
    const f = fragment();
    return {
      messages: [
        { role: 'user', content: f },
        { role: 'assistant', content: `I hear ${f}.` },
      ],
    };
  };
  write(dir, 'train.jsonl', Array.from({ length: 2000 }, row));
  write(
    dir,
    'heldout.jsonl',
    Array.from({ length: 200 }, () => {
      const f = fragment();
      return { prompt: [{ role: 'user', content: f }], answer: `I hear ${f}.` };
    }),
  );
}

/** the measured property: occurrences of 'e'/'E' per character (lower is preferred) */
export const eRate = (s) => (s.match(/[eE]/g)?.length ?? 0) / Math.max(1, s.length);

/** preference pairs: one corpus prompt, two corpus continuations of 24 characters; chosen has fewer 'e' */
function epref(dir) {
  const snippet = (n) => {
    const i = int(corpus.length - n - 1);
    return corpus.slice(i, i + n);
  };
  const pair = () => {
    for (;;) {
      const [a, b] = [snippet(24), snippet(24)];
      if (Math.abs(eRate(a) - eRate(b)) < 0.08) continue; // a clear preference, as a labeller would give
      const [chosen, rejected] = eRate(a) < eRate(b) ? [a, b] : [b, a];
      return { prompt: snippet(16), chosen, rejected };
    }
  };
  write(dir, 'train.jsonl', Array.from({ length: 1500 }, pair));
  write(dir, 'heldout.jsonl', Array.from({ length: 200 }, pair));
  write(
    dir,
    'prompts.jsonl',
    Array.from({ length: 100 }, () => ({ prompt: snippet(16) })),
  );
}

const NUM =
  'zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen'.split(
    ' ',
  );

/** "two plus three is " → "five" (answers checked exactly); 20 of the 100 operand pairs held out */
function add(dir) {
  const pairs = [];
  for (let a = 0; a < 10; a++) for (let b = 0; b < 10; b++) pairs.push([a, b]);
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [pairs[i], pairs[j]] = [pairs[j], pairs[i]];
  }
  const [test, train] = [pairs.slice(0, 20), pairs.slice(20)];
  const prompt = ([a, b]) => `${NUM[a]} plus ${NUM[b]} is `;
  write(
    dir,
    'sft.jsonl',
    train.flatMap((p) => Array.from({ length: 4 }, () => ({ prompt: prompt(p), completion: `${NUM[p[0] + p[1]]}\n` }))),
  );
  write(
    dir,
    'prompts.jsonl',
    train.map((p) => ({ prompt: prompt(p), answer: NUM[p[0] + p[1]] })),
  );
  write(
    dir,
    'test.jsonl',
    test.map((p) => ({ prompt: prompt(p), answer: NUM[p[0] + p[1]] })),
  );
}

/**
 * "first letter of castle: " → "c". Every prompt has its own word and the 200 test words appear in no
 * training row, so held-out pass@1 measures the skill (attend to the word's first character), not recall.
 */
function first(dir) {
  const uniq = [...new Set(words.filter((w) => /^[a-z]{4,8}$/.test(w)))];
  for (let i = uniq.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [uniq[i], uniq[j]] = [uniq[j], uniq[i]];
  }
  const [test, train] = [uniq.slice(0, 200), uniq.slice(200, 2200)];
  const row = (w) => ({ prompt: `first letter of ${w}: `, answer: w[0] });
  write(
    dir,
    'sft.jsonl',
    train.map((w) => ({ prompt: row(w).prompt, completion: `${w[0]}\n` })),
  );
  write(dir, 'prompts.jsonl', train.map(row));
  write(dir, 'test.jsonl', test.map(row));
}

const SETS = { chat, epref, add, first };
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [set, out] = process.argv.slice(2);
  if (!SETS[set] || !out) {
    console.error(`usage: node scripts/align-data.mjs ${Object.keys(SETS).join('|')} OUTDIR`);
    process.exit(2);
  }
  mkdirSync(out, { recursive: true });
  SETS[set](out);
  console.error(`wrote ${set} data to ${out}`);
}
