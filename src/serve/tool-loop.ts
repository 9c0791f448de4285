// The agent loop in-process: model → tool call → tool result → model, until the model answers in words.
// `lineage chat --tools` streams the same loop to the terminal; scripts/eval-calculator.mjs runs it over
// the held-out questions (many conversations at once: the engine batches them).
import type { EngineRequest, RequestHandle } from '../infer/engine/engine.js';
import type { ChatMessage, Tokenizer } from '../tokenizers/tokenizer.js';
import { parseToolCallText } from './calculator.js';

/** a tool the loop may call: its OpenAI definition (rendered by the chat template) and its code */
export interface LoopTool {
  definition: { type: string; function: { name: string } };
  run(args: string): string;
}

export interface ToolLoopOptions {
  /** the tools offered; none: the model answers directly */
  tools: readonly LoopTool[];
  maxTokens?: number;
  temperature?: number;
  seed?: number;
  /** tool calls before the model is asked without tools (default 4) */
  maxRounds?: number;
  /** the model's context length: replies are cut to fit it */
  contextLength?: number;
}

export interface ToolLoopResult {
  /** the conversation with every assistant, tool-call and tool turn appended */
  messages: ChatMessage[];
  calls: { name: string; arguments: string; result: string }[];
  /** the final reply in words */
  answer: string;
}

/** runs one conversation's loop on an engine (anything with Engine's add) */
export async function runToolLoop(
  engine: { add(req: EngineRequest): RequestHandle },
  tok: Tokenizer,
  messages: ChatMessage[],
  o: ToolLoopOptions,
): Promise<ToolLoopResult> {
  const byName = new Map(o.tools.map((t) => [t.definition.function.name, t]));
  const calls: ToolLoopResult['calls'] = [];
  let history = [...messages];
  for (let round = 0; ; round++) {
    const offered = round < (o.maxRounds ?? 4) ? o.tools : [];
    const text = await complete(engine, tok, history, offered, o, round);
    const parsed = offered.length ? parseToolCallText(text, [...byName.keys()]) : null;
    if (!parsed)
      return { messages: [...history, { role: 'assistant', content: text.trim() }], calls, answer: text.trim() };
    const toolCalls = parsed.map((c, i) => ({ id: `call_${round}_${i}`, type: 'function', function: c }));
    history = [...history, { role: 'assistant', content: '', tool_calls: toolCalls }];
    for (const [i, c] of parsed.entries()) {
      const result = byName.get(c.name)!.run(c.arguments);
      calls.push({ ...c, result });
      history.push({ role: 'tool', tool_call_id: toolCalls[i]!.id, name: c.name, content: result });
    }
  }
}

/** one assistant reply (greedy unless a temperature is given) */
async function complete(
  engine: { add(req: EngineRequest): RequestHandle },
  tok: Tokenizer,
  history: ChatMessage[],
  tools: readonly LoopTool[],
  o: ToolLoopOptions,
  round: number,
): Promise<string> {
  const prompt = tok.encodeChat(history, {
    addGenerationPrompt: true,
    ...(tools.length ? { tools: tools.map((t) => t.definition) } : {}),
  });
  const room = (o.contextLength ?? Infinity) - prompt.length - 1;
  if (room < 1) throw new Error(`runToolLoop: the conversation (${prompt.length} tokens) fills the context`);
  let text = '';
  const req = {
    prompt,
    maxTokens: Math.min(o.maxTokens ?? 96, room),
    temperature: o.temperature ?? 0,
    seed: (o.seed ?? 0) + round,
  };
  for await (const e of engine.add(req)) text += e.text;
  return text;
}
