// The `calculator` tool of docs/TOOLS.md: a safe arithmetic evaluator (a recursive-descent parser over
// numbers, + - * /, unary minus and parentheses — never eval or Function, so a model's tool call cannot
// run code), its OpenAI tool definition, and the parsing of a model reply into a tool call, with the
// server's convention: the whole reply is JSON {"name": ..., "arguments": {...}} (see parseToolCalls in
// app.ts), rendered by the model's chat template.

/** the OpenAI `tools` entry clients send to offer the calculator */
export const CALCULATOR_TOOL = {
  type: 'function',
  function: {
    name: 'calculator',
    description: 'Evaluates an arithmetic expression: integers and decimals, + - * /, parentheses.',
    parameters: {
      type: 'object',
      properties: { expression: { type: 'string', description: 'e.g. "(12 + 7) * 3"' } },
      required: ['expression'],
      additionalProperties: false,
    },
  },
} as const;

/** longest expression accepted: the evaluator is recursive, a bound keeps its depth and time small */
const MAX_EXPRESSION = 256;

type Tok = { kind: 'num'; value: number; at: number } | { kind: 'op'; op: string; at: number };

function lex(src: string): Tok[] {
  const out: Tok[] = [];
  const re = /\s*(?:(\d+(?:\.\d+)?|\.\d+)|([-+*/()]))/y;
  let i = 0;
  while (i < src.length) {
    if (/^\s*$/.test(src.slice(i))) break;
    re.lastIndex = i;
    const m = re.exec(src);
    if (!m) throw new Error(`calculator: unexpected character ${JSON.stringify(src.slice(i).trim()[0])} at ${i}`);
    const at = m.index + m[0].length - (m[1] ?? m[2])!.length;
    out.push(m[1] !== undefined ? { kind: 'num', value: Number(m[1]), at } : { kind: 'op', op: m[2]!, at });
    i = re.lastIndex;
  }
  return out;
}

/** expr := term (('+'|'-') term)*; term := factor (('*'|'/') factor)*; factor := '-' factor | num | '(' expr ')' */
class Parser {
  private i = 0;
  constructor(
    private readonly toks: Tok[],
    private readonly src: string,
  ) {}

  parse(): number {
    if (!this.toks.length) throw new Error('calculator: the expression is empty');
    const v = this.expr(0);
    const t = this.toks[this.i];
    if (t) throw new Error(`calculator: unexpected ${this.show(t)} at ${t.at}`);
    return v;
  }

  private expr(depth: number): number {
    let v = this.term(depth);
    for (let t = this.peekOp('+-'); t; t = this.peekOp('+-')) {
      this.i++;
      v = t === '+' ? v + this.term(depth) : v - this.term(depth);
    }
    return v;
  }

  private term(depth: number): number {
    let v = this.factor(depth);
    for (let t = this.peekOp('*/'); t; t = this.peekOp('*/')) {
      this.i++;
      const r = this.factor(depth);
      if (t === '/' && r === 0) throw new Error('calculator: division by zero');
      v = t === '*' ? v * r : v / r;
    }
    return v;
  }

  private factor(depth: number): number {
    if (depth > 64) throw new Error('calculator: parentheses nested too deeply');
    const t = this.toks[this.i++];
    if (!t) throw new Error(`calculator: the expression ends early (${JSON.stringify(this.src)})`);
    if (t.kind === 'num') return t.value;
    if (t.op === '-') return -this.factor(depth + 1);
    if (t.op === '+') return this.factor(depth + 1);
    if (t.op !== '(') throw new Error(`calculator: unexpected ${this.show(t)} at ${t.at}`);
    const v = this.expr(depth + 1);
    const close = this.toks[this.i++];
    if (!close || close.kind !== 'op' || close.op !== ')')
      throw new Error(`calculator: missing ')' for the '(' at ${t.at}`);
    return v;
  }

  private peekOp(ops: string): string | null {
    const t = this.toks[this.i];
    return t && t.kind === 'op' && ops.includes(t.op) ? t.op : null;
  }

  private show(t: Tok): string {
    return t.kind === 'num' ? `number ${t.value}` : `'${t.op}'`;
  }
}

/** the value of an arithmetic expression; throws a message naming the problem and its position */
export function evaluateArithmetic(expression: string): number {
  if (typeof expression !== 'string') throw new Error('calculator: expression must be a string');
  if (expression.length > MAX_EXPRESSION)
    throw new Error(`calculator: the expression is longer than ${MAX_EXPRESSION} characters`);
  const v = new Parser(lex(expression), expression).parse();
  if (!Number.isFinite(v)) throw new Error('calculator: the result is not a finite number');
  return v;
}

/** the result as the tool reports it: integers exactly, other values rounded to 6 decimals */
export function formatNumber(v: number): string {
  if (Number.isInteger(v)) return String(v);
  const r = Number(v.toFixed(6));
  return String(r === 0 ? 0 : r);
}

/** runs the tool on a call's JSON arguments; errors come back as text for the model, as real tools do */
export function runCalculator(args: string | Record<string, unknown>): string {
  try {
    const o = typeof args === 'string' ? (JSON.parse(args) as Record<string, unknown>) : args;
    if (!o || typeof o.expression !== 'string') return 'error: arguments need {"expression": "..."}';
    return formatNumber(evaluateArithmetic(o.expression));
  } catch (e) {
    return `error: ${(e as Error).message.replace(/^calculator: /, '')}`;
  }
}

export interface ParsedToolCall {
  name: string;
  /** the arguments as a JSON string, as OpenAI's `tool_calls[].function.arguments` */
  arguments: string;
}

/** a reply that is a call of one of `names` ({"name", "arguments": {...}} or a list of them), else null */
export function parseToolCallText(text: string, names: readonly string[]): ParsedToolCall[] | null {
  let v: unknown;
  try {
    v = JSON.parse(text.trim());
  } catch {
    return null;
  }
  const calls = Array.isArray(v) ? v : [v];
  const ok = (c: unknown): c is { name: string; arguments: object } =>
    typeof c === 'object' &&
    c !== null &&
    names.includes((c as { name: string }).name) &&
    typeof (c as { arguments: unknown }).arguments === 'object' &&
    (c as { arguments: unknown }).arguments !== null &&
    !Array.isArray((c as { arguments: unknown }).arguments); // arguments are a JSON object, never a list
  if (!calls.length || !calls.every(ok)) return null;
  return calls.map((c) => ({ name: c.name, arguments: JSON.stringify(c.arguments) }));
}

/**
 * A ChatML-style chat template that renders tools and tool calls with the server's convention, for
 * byte-level (or any) vocabularies with the special tokens <|im_start|> and <|im_end|> (the eos).
 * Offered tools become one short system turn listing their names (the bundled calculator-chat model has
 * a 256-token context, so schemas are not spelled out); an assistant turn with `tool_calls` is the JSON
 * {"name":...,"arguments":{...}} (a list for several calls), exactly what parseToolCalls reads back;
 * `arguments` may be a JSON string (OpenAI's messages) or an object (TRL's rows).
 */
export const TOOL_CHAT_TEMPLATE =
  '{%- if tools -%}<|im_start|>system\ntools: ' +
  '{%- for t in tools %} {{ t.function.name if t.function is defined else t.name }}{% if not loop.last %},{% endif %}{% endfor %}' +
  '<|im_end|>\n{% endif -%}' +
  '{%- for m in messages -%}<|im_start|>{{ m.role }}\n' +
  '{% if m.tool_calls -%}{% if m.tool_calls | length > 1 %}[{% endif %}' +
  '{%- for tc in m.tool_calls -%}{%- set f = tc.function if tc.function is defined else tc -%}' +
  '{"name":"{{ f.name }}","arguments":{% if f.arguments is string %}{{ f.arguments }}{% else %}{{ f.arguments | tojson }}{% endif %}}' +
  '{%- if not loop.last %},{% endif %}{%- endfor -%}{% if m.tool_calls | length > 1 %}]{% endif %}' +
  '{%- else %}{{ m.content }}{% endif %}<|im_end|>\n{% endfor -%}' +
  '{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif -%}';
