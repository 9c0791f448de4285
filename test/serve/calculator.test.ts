// The calculator tool: the safe evaluator (precedence, parentheses, unary minus, clear errors, no code
// execution), its result format, the parsing of replies into tool calls, the tool-rendering chat template,
// the generator's data (deterministic, held-out questions disjoint from training) and SFT's assistant mask
// over tool-call turns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CALCULATOR_TOOL,
  TOOL_CHAT_TEMPLATE,
  evaluateArithmetic,
  formatNumber,
  parseToolCallText,
  runCalculator,
} from '../../src/serve/calculator.js';
import { bytesTokenizer } from '../../src/tokenizers/simple.js';
import { Encoder, parseAlignData } from '../../src/align/data.js';

test('calculator: precedence, associativity, parentheses, unary minus, decimals', () => {
  assert.equal(evaluateArithmetic('1 + 2 * 3'), 7);
  assert.equal(evaluateArithmetic('(1 + 2) * 3'), 9);
  assert.equal(evaluateArithmetic('10 - 4 - 3'), 3);
  assert.equal(evaluateArithmetic('100 / 10 / 5'), 2);
  assert.equal(evaluateArithmetic('-3 * -(2 + 1)'), 9);
  assert.equal(evaluateArithmetic('2.5*4'), 10);
  assert.equal(evaluateArithmetic(' 7 '), 7);
  assert.equal(evaluateArithmetic('1234*5678'), 7006652);
  assert.equal(evaluateArithmetic('((((1))))+.5'), 1.5);
});

test('calculator: bad input is a clear error naming the problem, never code', () => {
  assert.throws(() => evaluateArithmetic('1 / 0'), /division by zero/);
  assert.throws(() => evaluateArithmetic('2 * (3 + 4'), /missing '\)' for the '\(' at 4/);
  assert.throws(() => evaluateArithmetic('2 +'), /ends early/);
  assert.throws(() => evaluateArithmetic(''), /empty/);
  assert.throws(() => evaluateArithmetic('1 2'), /unexpected number 2 at 2/);
  assert.throws(() => evaluateArithmetic('process.exit(1)'), /unexpected character "p" at 0/);
  assert.throws(() => evaluateArithmetic('1e3'), /unexpected character "e"/);
  assert.throws(() => evaluateArithmetic('2 ** 3'), /unexpected '\*'/);
  assert.throws(() => evaluateArithmetic('1+'.repeat(200) + '1'), /longer than 256/);
  assert.throws(() => evaluateArithmetic('('.repeat(100) + '1' + ')'.repeat(100)), /nested too deeply/);
  // errors reach the model as the tool's result text
  assert.equal(runCalculator('{"expression": "1/0"}'), 'error: division by zero');
  assert.equal(runCalculator('{"expr": "1"}'), 'error: arguments need {"expression": "..."}');
  assert.match(runCalculator('not json'), /^error: /);
});

test('calculator: results are exact integers or 6 decimals', () => {
  assert.equal(formatNumber(42), '42');
  assert.equal(formatNumber(-7), '-7');
  assert.equal(formatNumber(1 / 3), '0.333333');
  assert.equal(formatNumber(2.5), '2.5');
  assert.equal(formatNumber(-1e-9), '0');
  assert.equal(runCalculator({ expression: '7 / 277' }), '0.025271');
});

test('tool calls: a whole-JSON reply naming an offered tool parses; anything else is text', () => {
  const one = parseToolCallText(' {"name":"calculator","arguments":{"expression":"1 + 2"}} ', ['calculator']);
  assert.deepEqual(one, [{ name: 'calculator', arguments: '{"expression":"1 + 2"}' }]);
  const two = parseToolCallText(
    '[{"name":"calculator","arguments":{"expression":"1"}},{"name":"calculator","arguments":{}}]',
    ['calculator'],
  );
  assert.equal(two?.length, 2);
  assert.equal(parseToolCallText('{"name":"search","arguments":{}}', ['calculator']), null);
  assert.equal(parseToolCallText('{"name":"calculator","arguments":"1+2"}', ['calculator']), null);
  assert.equal(parseToolCallText('The answer is 3.', ['calculator']), null);
  assert.equal(parseToolCallText('[]', ['calculator']), null);
});

function chatTokenizer() {
  return bytesTokenizer()
    .withAddedTokens(['<|im_start|>', '<|im_end|>'], { roles: { eos: '<|im_end|>' } })
    .withChatTemplate(TOOL_CHAT_TEMPLATE);
}

const CONVERSATION = [
  { role: 'user', content: 'What is 12 + 7?' },
  {
    role: 'assistant',
    content: '',
    tool_calls: [{ type: 'function', function: { name: 'calculator', arguments: '{"expression":"12 + 7"}' } }],
  },
  { role: 'tool', content: '19' },
  { role: 'assistant', content: 'The answer is 19.' },
];

test('chat template: tools as a system turn, tool calls as the JSON the server parses back', () => {
  const tok = chatTokenizer();
  const text = tok.applyChatTemplate(CONVERSATION, { tools: [CALCULATOR_TOOL] });
  assert.equal(
    text,
    '<|im_start|>system\ntools: calculator<|im_end|>\n' +
      '<|im_start|>user\nWhat is 12 + 7?<|im_end|>\n' +
      '<|im_start|>assistant\n{"name":"calculator","arguments":{"expression":"12 + 7"}}<|im_end|>\n' +
      '<|im_start|>tool\n19<|im_end|>\n' +
      '<|im_start|>assistant\nThe answer is 19.<|im_end|>\n',
  );
  // the rendered call is exactly what parseToolCallText reads back
  const call = /assistant\n(\{.*\})<\|im_end\|>/.exec(text)![1]!;
  assert.deepEqual(parseToolCallText(call, ['calculator']), [
    { name: 'calculator', arguments: '{"expression":"12 + 7"}' },
  ]);
  // TRL rows give arguments as an object; several calls become a list
  const obj = tok.applyChatTemplate([
    {
      role: 'assistant',
      content: null,
      tool_calls: [
        { type: 'function', function: { name: 'calculator', arguments: { expression: '1' } } },
        { type: 'function', function: { name: 'calculator', arguments: { expression: '2' } } },
      ],
    },
  ]);
  assert.equal(
    parseToolCallText(/assistant\n(.*)<\|im_end\|>/.exec(obj)![1]!, ['calculator'])
      ?.map((c) => c.arguments)
      .join(),
    '{"expression":"1"},{"expression":"2"}',
  );
  // without tools: no system turn; the generation prompt opens the assistant turn
  assert.equal(
    tok.applyChatTemplate(CONVERSATION.slice(0, 1), { addGenerationPrompt: true }),
    '<|im_start|>user\nWhat is 12 + 7?<|im_end|>\n<|im_start|>assistant\n',
  );
});

test('SFT rows with tools: the tool call and the answer are learned, the tool result and prompt are not', () => {
  const tok = chatTokenizer();
  const [r] = parseAlignData(JSON.stringify({ messages: CONVERSATION, tools: [CALCULATOR_TOOL] }), 'sft', 't.jsonl');
  const seq = new Encoder(tok).sft(r as never);
  const learned = tok.decode(seq.completion.filter((_, i) => seq.mask![i] === 1));
  assert.equal(
    learned,
    '{"name":"calculator","arguments":{"expression":"12 + 7"}}<|im_end|>\nThe answer is 19.<|im_end|>\n',
  );
  assert.match(tok.decode(seq.prompt), /^<\|im_start\|>system\ntools: calculator/);
  // an assistant turn with neither text nor calls is still refused; a bad tools column is named
  assert.throws(
    () =>
      parseAlignData(
        '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""}]}',
        'sft',
        'x.jsonl',
      ),
    /x.jsonl:1: messages\[1\].content is an empty response/,
  );
  assert.throws(
    () => parseAlignData('{"messages": [{"role": "assistant", "content": "a"}], "tools": {}}', 'sft', 'x.jsonl'),
    /x.jsonl:1: field 'tools' must be a list/,
  );
});

test('scripts/calculator-data.mjs: deterministic, held-out expressions never in training', () => {
  const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'calc-data-')));
  try {
    for (const d of dirs)
      execFileSync(process.execPath, ['scripts/calculator-data.mjs', 'data', d, '--train', '400'], { stdio: 'ignore' });
    const read = (d: string, f: string) => readFileSync(join(d, f), 'utf8');
    assert.equal(read(dirs[0]!, 'train.jsonl'), read(dirs[1]!, 'train.jsonl'));
    const rows = read(dirs[0]!, 'train.jsonl')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const held = read(dirs[0]!, 'heldout.jsonl')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(rows.length, 400);
    assert.equal(held.length, 200);
    const key = (e: string) => e.replace(/\s+/g, '');
    const heldKeys = new Set(held.map((q: { expression: string }) => key(q.expression)));
    assert.equal(heldKeys.size, 200);
    let calls = 0;
    for (const r of rows) {
      for (const m of r.messages) {
        if (!m.tool_calls) continue;
        calls++;
        const e = JSON.parse(m.tool_calls[0].function.arguments).expression;
        assert.ok(!heldKeys.has(key(e)), `held-out expression ${e} is in train.jsonl`);
        assert.equal(r.messages[2].content, runCalculator({ expression: e }));
      }
    }
    assert.ok(calls > 200 && calls < 400, `${calls} tool conversations of 400`);
    for (const q of held) assert.equal(q.answer, formatNumber(evaluateArithmetic(q.expression)));
  } finally {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  }
});

test('scripts/calculator-data.mjs copy: "Repeat: X" → X rows, deterministic, no held-out expression', () => {
  const d = mkdtempSync(join(tmpdir(), 'calc-copy-'));
  try {
    execFileSync(process.execPath, ['scripts/calculator-data.mjs', 'data', d, '--train', '1'], { stdio: 'ignore' });
    // 3000 rows of seed 8 include draws that divide by zero (a / (b - c), b = c): those are drawn again
    for (const f of ['a', 'b'])
      execFileSync(process.execPath, ['scripts/calculator-data.mjs', 'copy', join(d, f), '--rows', '3000'], {
        stdio: 'ignore',
      });
    const read = (f: string) => readFileSync(join(d, f), 'utf8');
    assert.equal(read('a/copy.jsonl'), read('b/copy.jsonl'));
    const key = (e: string) => e.replace(/\s+/g, '');
    const held = new Set(
      read('heldout.jsonl')
        .trim()
        .split('\n')
        .map((l) => key(JSON.parse(l).expression)),
    );
    const rows = read('a/copy.jsonl')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(rows.length, 3000);
    const arithmetic = rows.filter((r) => /^[-\d(][\d() +\-*/.]*$/.test(r.messages[1].content)).length;
    assert.ok(arithmetic > 1000 && arithmetic < 2000, `about half the rows are arithmetic: ${arithmetic}`);
    for (const r of rows) {
      const [u, a] = r.messages;
      assert.equal(u.content, `Repeat: ${a.content}`);
      assert.match(a.content, /^[A-Za-z\d() +\-*/.]+$/);
      assert.ok(!held.has(key(a.content)), `held-out expression ${a.content} in copy.jsonl`);
    }
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});
