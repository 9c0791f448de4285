// `lineage chat`: an interactive terminal chat. The conversation is rendered with the model's chat
// template (or the documented default), replies stream token by token from the inference engine, and
// each reply ends with its speed. Lines read from stdin, so it also runs piped (`echo hi | lineage chat`).
// `--tools calculator` runs the agent loop: a reply that is a tool call runs the tool (shown with its result),
// the result joins the conversation as a `tool` turn and the model replies again (docs/TOOLS.md).
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Engine } from '../../infer/engine/engine.js';
import { loadModelDir } from '../../infer/model-dir-node.js';
import type { ChatMessage, Tokenizer } from '../../tokenizers/tokenizer.js';
import { DEFAULT_CHAT_TEMPLATE } from '../../serve/models.js';
import { CALCULATOR_TOOL, parseToolCallText, runCalculator, type ParsedToolCall } from '../../serve/calculator.js';
import { loadAdapterDir } from '../../align/lora-node.js';
import { flagNumber, parseFlags } from '../flags.js';

const HELP = `usage: lineage chat [--model DIR] [--system TEXT] [--max-tokens N] [--temperature T] [--top-p P] [--seed S]
                   [--tools calculator] [--lora DIR]

Interactive chat in the terminal (default model: the bundled models/shakespeare-char). Type a message
and press Enter; /reset starts a new conversation, /exit (or Ctrl-D) quits.

  --tools calculator   offer the model tools (rendered by its chat template): a reply that is a tool call
                       runs the tool, its result is added to the conversation and the model answers again
                       (try: lineage chat --model models/calculator-chat --tools calculator --temperature 0)
  --lora DIR           apply a PEFT LoRA adapter directory (lineage align --lora-r ...) on top of --model`;

/** the tools `--tools` can offer: the OpenAI definition the template renders, and the code that runs a call */
const TOOLS: Record<string, { definition: { function: { name: string } }; run: (args: string) => string }> = {
  calculator: { definition: CALCULATOR_TOOL, run: runCalculator },
};
/** tool calls answered in one turn before the model must reply in words (a model looping on calls stops) */
const MAX_TOOL_ROUNDS = 4;

export async function chatCommand(argv: string[]): Promise<void> {
  if (argv.includes('--help') || argv.includes('-h')) return void console.log(HELP);
  const f = parseFlags(
    'chat',
    argv,
    ['model', 'system', 'max-tokens', 'temperature', 'top-p', 'seed', 'tools', 'lora'],
    [],
  );
  const tools = toolList(f.values.get('tools') ?? []);
  // sampling flags are checked before the model loads, not on the first message
  const maxTokens = flagNumber(f, 'max-tokens', { int: true, min: 1 }) ?? 200;
  const temperature = flagNumber(f, 'temperature', { min: 0 }) ?? 0.8;
  const topP = flagNumber(f, 'top-p', { min: 0, max: 1 }) ?? 1;
  if (topP === 0) throw new Error('--top-p: expected a number in (0, 1], got 0');
  let seed = flagNumber(f, 'seed', { int: true }) ?? 0;
  const dir =
    f.values.get('model')?.at(-1) ?? fileURLToPath(new URL('../../../../models/shakespeare-char', import.meta.url));
  const { model, tokenizer: loaded, config } = await loadModelDir(dir);
  if (!loaded) throw new Error(`--model ${dir}: no tokenizer.json in the directory`);
  if (config.arch !== 'decoder') throw new Error(`--model ${dir}: ${config.family} is not a decoder-only model`);
  const lora = f.values.get('lora')?.at(-1);
  if (lora) loadAdapterDir(model, lora);
  const tokenizer: Tokenizer = loaded.chatTemplate ? loaded : loaded.withChatTemplate(DEFAULT_CHAT_TEMPLATE);
  const engine = new Engine(model, { tokenizer, kvMemoryBytes: 64 << 20, maxRunningSeqs: 1 });
  const system = f.values.get('system')?.at(-1);
  const fresh = (): ChatMessage[] => (system ? [{ role: 'system', content: system }] : []);
  let history = fresh();
  const tty = process.stdin.isTTY;
  if (tty)
    console.log(
      `lineage chat: ${dir} (${config.family})${tools.length ? `, tools: ${tools.join(', ')}` : ''}; /reset, /exit`,
    );
  const rl = createInterface({
    input: process.stdin,
    output: tty ? process.stdout : undefined,
    prompt: tty ? 'you> ' : '',
  });
  rl.prompt();
  for await (const line of rl) {
    const text = line.trim();
    if (text === '/exit') break;
    if (text === '/reset') history = fresh();
    else if (text) {
      const before = history;
      history = [...history, { role: 'user', content: text }];
      // model → tool call → tool result → model, until a reply in words (or the round limit)
      for (let round = 0; ; round++) {
        const o = { maxTokens, temperature, topP, seed: seed++, tools: round < MAX_TOOL_ROUNDS ? tools : [] };
        const r = await reply(engine, tokenizer, history, o, config.maxContext).catch((e: Error) => {
          // e.g. a character outside the vocabulary: this message fails, the session does not
          console.error(`lineage chat: ${e.message}`);
          return null;
        });
        if (!r) {
          // the message cannot be answered; the session goes on without it
          if (round === 0) history = before;
          break;
        }
        history = r.history;
        if (!r.calls) break;
        history = [...history, ...runTools(r.calls, round)];
      }
    }
    rl.prompt();
  }
  rl.close();
}

/** streams one assistant reply to stdout and returns the conversation with it appended */
async function reply(
  engine: Engine,
  tok: Tokenizer,
  history: ChatMessage[],
  o: { maxTokens: number; temperature: number; topP: number; seed: number; tools: string[] },
  context: number,
): Promise<{ history: ChatMessage[]; calls: ParsedToolCall[] | null } | null> {
  const render = (h: ChatMessage[]) =>
    tok.encodeChat(h, {
      addGenerationPrompt: true,
      ...(o.tools.length ? { tools: o.tools.map((t) => TOOLS[t]!.definition) } : {}),
    });
  const fit = fitHistory(history, render, context, (m) => console.error(`lineage chat: ${m}`));
  if (!fit) return null;
  // the conversation kept for the next turn: the system prompt stays even when this prompt had no room for it
  history = fit.kept;
  const prompt = render(fit.sent);
  const room = Math.max(1, Math.min(o.maxTokens, context - prompt.length - 1));
  const t0 = performance.now();
  let first = 0;
  let n = 0;
  let text = '';
  process.stdout.write('assistant>');
  for await (const e of engine.add({
    prompt,
    maxTokens: room,
    temperature: o.temperature,
    topP: o.topP,
    seed: o.seed,
    stop: ['\n\n'],
  })) {
    if (e.token >= 0) n++;
    if (n === 1 && !first) first = performance.now();
    text += e.text;
    process.stdout.write(e.text);
  }
  const secs = (performance.now() - (first || t0)) / 1000;
  process.stdout.write(
    `\n  [${n} tokens, ${(n > 1 ? (n - 1) / secs : 0).toFixed(1)} tokens/s, first token ${((first || t0) - t0).toFixed(0)} ms]\n`,
  );
  const calls = o.tools.length ? parseToolCallText(text, o.tools) : null;
  if (!calls) return { history: [...history, { role: 'assistant', content: text.trim() }], calls: null };
  const toolCalls = calls.map((c, i) => ({ id: `call_${i}`, type: 'function', function: c }));
  return { history: [...history, { role: 'assistant', content: '', tool_calls: toolCalls }], calls };
}

/**
 * The conversation cut to fit the context with room for one new token. The current user turn (the last
 * user message and the tool turns after it) is never dropped; whole earlier exchanges go first, oldest
 * first, then the system prompt. Each drop is reported through `say`. null when the current turn alone
 * does not fit (reported too). `sent` is what to render now, `kept` the history to carry on with.
 */
export function fitHistory(
  history: ChatMessage[],
  render: (h: ChatMessage[]) => number[],
  context: number,
  say: (message: string) => void,
): { sent: ChatMessage[]; kept: ChatMessage[] } | null {
  const fits = (h: ChatMessage[]) => render(h).length + 1 < context;
  if (fits(history)) return { sent: history, kept: history };
  const sys = history[0]?.role === 'system' ? [history[0]] : [];
  const lastUser = history.map((m) => m.role).lastIndexOf('user');
  const current = history.slice(Math.max(lastUser, sys.length));
  let earlier = history.slice(sys.length, Math.max(lastUser, sys.length));
  const total = earlier.length;
  while (earlier.length && !fits([...sys, ...earlier, ...current])) {
    // drop the oldest exchange: up to the next user message, so no tool result loses its call
    const next = earlier.findIndex((m, i) => i > 0 && m.role === 'user');
    earlier = next < 0 ? [] : earlier.slice(next);
  }
  if (earlier.length < total)
    say(`dropped the ${total - earlier.length} oldest message(s) to fit the model's context of ${context} tokens`);
  if (fits([...sys, ...earlier, ...current]))
    return { sent: [...sys, ...earlier, ...current], kept: [...sys, ...earlier, ...current] };
  if (sys.length && fits(current)) {
    say(
      `the system prompt does not fit beside this message in the context of ${context} tokens; left out of this reply`,
    );
    return { sent: current, kept: [...sys, ...current] };
  }
  const n = render(current).length;
  say(
    `this message does not fit: with the chat template it is ${n} tokens, and the model's context is ${context}; ` +
      'send a shorter one',
  );
  return null;
}

/** runs each call, shows it and its result, and returns the `tool` messages that answer them */
function runTools(calls: ParsedToolCall[], round: number): ChatMessage[] {
  return calls.map((c, i) => {
    const result = TOOLS[c.name]!.run(c.arguments);
    process.stdout.write(`  [tool call ${round + 1}] ${c.name}(${c.arguments})\n  [tool result] ${result}\n`);
    return { role: 'tool', tool_call_id: `call_${i}`, name: c.name, content: result };
  });
}

/** the names given to --tools (repeatable, or comma-separated), each one Lineage knows */
function toolList(values: string[]): string[] {
  const names = values
    .flatMap((v) => v.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  for (const n of names)
    if (!(n in TOOLS)) throw new Error(`--tools: unknown tool '${n}' (known: ${Object.keys(TOOLS).join(', ')})`);
  return [...new Set(names)];
}
