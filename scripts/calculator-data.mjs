#!/usr/bin/env node
// The synthetic conversation set behind models/calculator-chat (docs/TOOLS.md), in TRL's `messages` format
// with a `tools` column, generated with a seeded generator (same seed, same files):
//
//   node scripts/calculator-data.mjs data OUT [--seed 7] [--train 6000]
//       OUT/train.jsonl    SFT rows: arithmetic with the calculator offered (user → tool call → tool result →
//                          answer sentence), arithmetic without tools (the answer stated directly), and
//                          small talk with and without tools (no call)
//       OUT/heldout.jsonl  200 arithmetic questions {question, expression, answer}, none of whose
//                          expressions occurs in train.jsonl
//   node scripts/calculator-data.mjs tokenizer OUT
//       OUT/tokenizer.json + tokenizer_config.json: byte-level (id = UTF-8 byte) plus <|im_start|> (256) and
//       <|im_end|> (257, the eos), with the tool-rendering chat template of src/serve/calculator.ts
// Needs `npm run build` (it uses the calculator and tokenizer from dist/).
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CALCULATOR_TOOL, TOOL_CHAT_TEMPLATE, evaluateArithmetic, formatNumber } from '../dist/src/serve/calculator.js';
import { bytesTokenizer } from '../dist/src/tokenizers/simple.js';

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

const PHRASINGS = [
  'What is {e}?',
  'what is {e}',
  "What's {e}?",
  'Compute {e}.',
  'Calculate {e}',
  'How much is {e}?',
  'Please work out {e}.',
  'Can you tell me what {e} is?',
  '{e} = ?',
  'Solve {e}',
  'Evaluate {e}, please.',
  'I need the value of {e}.',
];
const WORD_OPS = { '+': ['plus', 'added to'], '-': ['minus'], '*': ['times', 'multiplied by'], '/': ['divided by'] };
const WORD_PHRASINGS = ['What is {e}?', 'How much is {e}?', 'Tell me {e}.', 'what is {e}'];
const ANSWERS = ['The answer is {r}.', 'It comes to {r}.', 'That equals {r}.', 'The result is {r}.'];
const SMALL_TALK = [
  ['Hello!', 'Hello! Ask me an arithmetic question.'],
  ['hi', 'Hi! What would you like to calculate?'],
  ['Hey there', 'Hey! Give me a sum to work out.'],
  ['Good morning', 'Good morning! How can I help?'],
  ['How are you?', "I'm fine, thanks. What shall we compute?"],
  ['Who are you?', 'I am a small assistant that is good at arithmetic.'],
  ["What's your name?", 'I am calculator-chat, a tiny model trained by Lineage.'],
  ['What can you do?', 'I can answer arithmetic questions with a calculator.'],
  ['Thanks!', "You're welcome."],
  ['thank you', 'Glad to help.'],
  ['Bye', 'Goodbye!'],
  ['Tell me a joke.', 'I only know numbers, and they never laugh.'],
  ['What is the capital of France?', 'Paris.'],
  ['What color is the sky?', 'Blue, on a clear day.'],
  ['Do you like math?', 'Yes, arithmetic is my favourite.'],
  ['Can you help me?', 'Sure. What do you need?'],
  ['What is a calculator?', 'A tool that evaluates arithmetic expressions.'],
  ['Are you a robot?', 'I am a language model.'],
  ['ok', 'Ok.'],
  ['Nice.', 'Thanks!'],
];

/** a positive integer of 1 to 4 digits, each length equally likely */
const operand = (rand) => {
  const d = 1 + Math.floor(rand() * 4);
  const lo = d === 1 ? 1 : 10 ** (d - 1);
  return lo + Math.floor(rand() * (10 ** d - lo));
};
const OPS = ['+', '-', '*', '/'];
const op = (rand) => OPS[Math.floor(rand() * 4)];
const pick = (rand, list) => list[Math.floor(rand() * list.length)];

/** an arithmetic question: {question, expression (what the tool gets), answer}; a draw that divides by zero
 * (`a / (b - c)` with b = c) is drawn again */
function question(rand) {
  for (;;) {
    try {
      return draw(rand);
    } catch (e) {
      if (!/division by zero/.test(e.message)) throw e;
    }
  }
}

function draw(rand) {
  const a = operand(rand),
    b = operand(rand),
    c = operand(rand);
  const sp = rand() < 0.7 ? ' ' : '';
  const r = rand();
  const o1 = op(rand),
    o2 = op(rand);
  if (r < 0.2) {
    // in words: the tool call has to translate "times" into "*"
    const e = `${a} ${pick(rand, WORD_OPS[o1])} ${b}`;
    return finish(pick(rand, WORD_PHRASINGS).replace('{e}', e), `${a} ${o1} ${b}`);
  }
  let e;
  if (r < 0.65) e = `${a}${sp}${o1}${sp}${b}`;
  else if (r < 0.85) e = `${a}${sp}${o1}${sp}${b}${sp}${o2}${sp}${c}`;
  else if (r < 0.93) e = `(${a}${sp}${o1}${sp}${b})${sp}${o2}${sp}${c}`;
  else e = `${a}${sp}${o1}${sp}(${b}${sp}${o2}${sp}${c})`;
  return finish(pick(rand, PHRASINGS).replace('{e}', e), e);
}

function finish(q, expression) {
  return { question: q, expression, answer: formatNumber(evaluateArithmetic(expression)) };
}

const key = (q) => q.expression.replace(/\s+/g, '');

function toolRow(rand, q) {
  const call = {
    type: 'function',
    function: { name: 'calculator', arguments: JSON.stringify({ expression: q.expression }) },
  };
  return {
    messages: [
      { role: 'user', content: q.question },
      { role: 'assistant', content: '', tool_calls: [call] },
      { role: 'tool', content: q.answer },
      { role: 'assistant', content: pick(rand, ANSWERS).replace('{r}', q.answer) },
    ],
    tools: [CALCULATOR_TOOL],
  };
}

function directRow(rand, q) {
  return {
    messages: [
      { role: 'user', content: q.question },
      { role: 'assistant', content: pick(rand, ANSWERS).replace('{r}', q.answer) },
    ],
  };
}

function talkRow(rand, withTools) {
  const [u, a] = pick(rand, SMALL_TALK);
  return {
    messages: [
      { role: 'user', content: u },
      { role: 'assistant', content: a },
    ],
    ...(withTools ? { tools: [CALCULATOR_TOOL] } : {}),
  };
}

function writeAtomic(path, text) {
  writeFileSync(`${path}.tmp-${process.pid}`, text);
  renameSync(`${path}.tmp-${process.pid}`, path);
}
const jsonl = (rows) => rows.map((r) => JSON.stringify(r)).join('\n') + '\n';

/** the expressions (spaces removed) of the 200 held-out questions of `data` with this seed */
function heldOutKeys(seed) {
  const rand = rng(seed);
  const keys = new Set();
  while (keys.size < 200) keys.add(key(question(rand)));
  return keys;
}

function data(out, seed, nTrain) {
  const rand = rng(seed);
  const held = [];
  const heldKeys = new Set();
  while (held.length < 200) {
    const q = question(rand);
    if (!heldKeys.has(key(q))) (held.push(q), heldKeys.add(key(q)));
  }
  // 70% tool conversations, 15% direct answers (tools absent), 15% small talk (half with tools offered)
  const rows = [];
  while (rows.length < nTrain) {
    const r = rand();
    if (r < 0.85) {
      const q = question(rand);
      if (heldKeys.has(key(q))) continue;
      rows.push(r < 0.7 ? toolRow(rand, q) : directRow(rand, q));
    } else rows.push(talkRow(rand, r < 0.925));
  }
  mkdirSync(out, { recursive: true });
  writeAtomic(join(out, 'train.jsonl'), jsonl(rows));
  writeAtomic(join(out, 'heldout.jsonl'), jsonl(held));
  console.log(`wrote ${out}/train.jsonl (${rows.length} conversations) and heldout.jsonl (${held.length} questions)`);
}

// A copying warm-up: "Repeat: X" → "X". A tiny model learns the calculator conversations' fixed parts in a few
// hundred steps, but copying the question's expression into the call (and the tool's result into the answer)
// needs an induction-style attention circuit (find the earlier copy of the current character, emit the one after
// it), which forms only after a plateau. Rows dense in copying make it form: half are random strings of 6-24
// characters (letters make the "find the earlier copy" step unambiguous, so the circuit forms within a few
// hundred steps at lr 1e-3), half are expressions and results like the calculator rows'. Held-out expressions
// are skipped.
const COPY_ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 +-*/().';
function copyRows(out, seed, n) {
  const heldKeys = heldOutKeys(seed);
  const rand = rng(seed + 1);
  const rows = [];
  while (rows.length < n) {
    let text;
    if (rand() < 0.5) {
      const len = 6 + Math.floor(rand() * 19);
      text = Array.from({ length: len }, () => pick(rand, COPY_ALPHABET)).join('');
    } else {
      const q = question(rand);
      text = rand() < 0.75 ? q.expression : q.answer;
    }
    if (heldKeys.has(key({ expression: text })) || text.trim() !== text) continue;
    rows.push({
      messages: [
        { role: 'user', content: `Repeat: ${text}` },
        { role: 'assistant', content: text },
      ],
    });
  }
  mkdirSync(out, { recursive: true });
  writeAtomic(join(out, 'copy.jsonl'), jsonl(rows));
  console.log(`wrote ${out}/copy.jsonl (${rows.length} copying rows)`);
}

function tokenizer(out) {
  const tok = bytesTokenizer()
    .withAddedTokens(['<|im_start|>', '<|im_end|>'], { roles: { eos: '<|im_end|>' } })
    .withChatTemplate(TOOL_CHAT_TEMPLATE);
  mkdirSync(out, { recursive: true });
  writeAtomic(join(out, 'tokenizer.json'), JSON.stringify(tok.toJSON(), null, 2) + '\n');
  writeAtomic(join(out, 'tokenizer_config.json'), JSON.stringify(tok.toConfigJSON(), null, 2) + '\n');
  console.log(
    `wrote ${out}/tokenizer.json (vocabulary ${tok.vocabSize}, eos ${tok.specialTokens.eos.id}) and tokenizer_config.json`,
  );
}

const [cmd, out, ...rest] = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = rest.indexOf(`--${name}`);
  if (i < 0) return dflt;
  const v = Number(rest[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name}: expected a positive integer, got ${rest[i + 1]}`);
  return v;
};
if (cmd === 'data' && out) data(out, flag('seed', 7), flag('train', 6000));
else if (cmd === 'copy' && out) copyRows(out, flag('seed', 7), flag('rows', 20000));
else if (cmd === 'tokenizer' && out) tokenizer(out);
else {
  console.error(
    'usage: node scripts/calculator-data.mjs data OUT [--seed S] [--train N] | copy OUT [--seed S] [--rows N] | tokenizer OUT',
  );
  process.exit(2);
}
