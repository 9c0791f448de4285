#!/usr/bin/env node
// A tool-using agent through the official `openai` client against `lineage serve` (docs/TOOLS.md):
// the model asks for the calculator, this script runs it and sends the result back, the model answers.
//
//   npx lineage serve --model models/calculator-chat --port 8000 &
//   node examples/calculator-agent.mjs "What is 1234 * 56?"
//
// LINEAGE_URL (default http://127.0.0.1:8000/v1) and LINEAGE_API_KEY point it elsewhere. The calculator is
// Lineage's safe arithmetic evaluator (a parser, never eval); needs `npm run build`.
import { pathToFileURL } from 'node:url';
import OpenAI from 'openai';
import { CALCULATOR_TOOL, runCalculator } from '../dist/src/serve/calculator.js';

/** runs the loop for one question; `log` sees each step; returns the final answer and the calls made */
export async function runAgent({ baseURL, apiKey = 'unused', model = 'calculator-chat', question, log = () => {} }) {
  const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
  const messages = [{ role: 'user', content: question }];
  const calls = [];
  for (let round = 0; round < 4; round++) {
    const r = await client.chat.completions.create({
      model,
      messages,
      tools: [CALCULATOR_TOOL],
      // after a few calls, insist on words
      tool_choice: round < 3 ? 'auto' : 'none',
      temperature: 0,
      max_tokens: 96,
    });
    const msg = r.choices[0].message;
    messages.push(msg);
    if (!msg.tool_calls?.length) {
      log(`assistant: ${msg.content}`);
      return { answer: msg.content, calls, messages };
    }
    for (const tc of msg.tool_calls) {
      const result = tc.function.name === 'calculator' ? runCalculator(tc.function.arguments) : 'error: unknown tool';
      log(`tool call: ${tc.function.name}(${tc.function.arguments}) -> ${result}`);
      calls.push({ name: tc.function.name, arguments: tc.function.arguments, result });
      messages.push({ role: 'tool', tool_call_id: tc.id, content: result });
    }
  }
  throw new Error('the model kept calling tools');
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const question = process.argv.slice(2).join(' ') || 'What is 1234 * 56?';
  console.log(`user: ${question}`);
  await runAgent({
    baseURL: process.env.LINEAGE_URL ?? 'http://127.0.0.1:8000/v1',
    apiKey: process.env.LINEAGE_API_KEY ?? 'unused',
    question,
    log: console.log,
  });
}
