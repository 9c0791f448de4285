#!/usr/bin/env node
// Accuracy of a tool-using chat model on held-out arithmetic, with the calculator vs without it
// (docs/TOOLS.md). Each question runs twice, greedily, through the inference engine:
//   with the tool     the calculator is offered; model → tool call → calculator → model answers
//   without the tool  no tools rendered (the model was trained to answer directly then)
// A reply is correct when the last number in it equals the true value (to 1e-6, relative).
//
//   node scripts/eval-calculator.mjs [--model models/calculator-chat] [--data FILE] [--limit N] [--json]
// --data defaults to the 200 held-out questions of `scripts/calculator-data.mjs data` (regenerated into a
// temporary folder when not given). Needs `npm run build`.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { useFastBackend } from '../dist/src/cli/backend-node.js';
import { Engine } from '../dist/src/infer/engine/engine.js';
import { loadModelDir } from '../dist/src/infer/model-dir-node.js';
import { CALCULATOR_TOOL, runCalculator } from '../dist/src/serve/calculator.js';
import { runToolLoop } from '../dist/src/serve/tool-loop.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i < 0 ? dflt : args[i + 1];
};
const modelDir = opt('model', join(ROOT, 'models', 'calculator-chat'));
const limit = Number(opt('limit', Infinity));

/** the held-out questions: --data, or the generator's heldout.jsonl (same seed as the shipped model) */
function questions() {
  const given = opt('data', null);
  if (given) return readJsonl(given);
  const dir = mkdtempSync(join(tmpdir(), 'calc-eval-'));
  try {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'calculator-data.mjs'), 'data', dir], { stdio: 'ignore' });
    return readJsonl(join(dir, 'heldout.jsonl'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
const readJsonl = (f) =>
  readFileSync(f, 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));

/** the last number in a reply equals the answer */
export function correct(reply, answer) {
  const nums = reply.replace(/(\d),(\d{3})/g, '$1$2').match(/-?\d+(?:\.\d+)?/g);
  if (!nums) return false;
  const got = Number(nums.at(-1)),
    want = Number(answer);
  return Math.abs(got - want) <= 1e-6 * Math.max(1, Math.abs(want));
}

async function main() {
  await useFastBackend();
  const { model, tokenizer, config } = await loadModelDir(modelDir);
  const engine = new Engine(model, { tokenizer, kvMemoryBytes: 64 << 20, maxRunningSeqs: 64 });
  const qs = questions().slice(0, limit);
  const calculator = { definition: CALCULATOR_TOOL, run: runCalculator };
  const loop = (q, tools) =>
    runToolLoop(engine, tokenizer, [{ role: 'user', content: q.question }], {
      tools,
      maxRounds: 2,
      contextLength: config.maxContext,
    });
  const t0 = performance.now();
  const withTool = await Promise.all(qs.map((q) => loop(q, [calculator])));
  const without = await Promise.all(qs.map((q) => loop(q, [])));
  const score = (rs) => rs.filter((r, i) => correct(r.answer, qs[i].answer)).length / qs.length;
  const called = withTool.filter((r) => r.calls.length > 0).length / qs.length;
  const rightCall = withTool.filter((r, i) => r.calls.some((c) => c.result === qs[i].answer)).length / qs.length;
  const result = {
    model: modelDir,
    questions: qs.length,
    accuracyWithTool: score(withTool),
    accuracyWithoutTool: score(without),
    toolCallRate: called,
    correctToolResultRate: rightCall,
    seconds: (performance.now() - t0) / 1000,
    examples: qs.slice(0, 3).map((q, i) => ({
      question: q.question,
      answer: q.answer,
      withTool: { calls: withTool[i].calls, reply: withTool[i].answer },
      withoutTool: without[i].answer,
    })),
  };
  if (args.includes('--json')) return console.log(JSON.stringify(result));
  const pct = (x) => `${(100 * x).toFixed(1)}%`;
  console.log(`${qs.length} held-out questions, ${modelDir}`);
  console.log(`  accuracy with the calculator tool:  ${pct(result.accuracyWithTool)}`);
  console.log(`  accuracy without it (direct answer): ${pct(result.accuracyWithoutTool)}`);
  console.log(
    `  replies that called the tool: ${pct(called)}; calls whose result is the true value: ${pct(rightCall)}`,
  );
  for (const e of result.examples)
    console.log(
      `  e.g. ${JSON.stringify(e.question)} → ${e.withTool.calls.map((c) => `calculator(${c.arguments}) = ${c.result}`).join(', ')} → ${JSON.stringify(e.withTool.reply)}; without: ${JSON.stringify(e.withoutTool)} (true ${e.answer})`,
    );
}

await main();
process.exit(0);
