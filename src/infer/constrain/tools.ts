// JSON Schemas for OpenAI-style tool calls, for a server enforcing tool_choice "required" or a named
// function: the model must write {"name": <one of the tools>, "arguments": <that tool's parameters>}
// (or a JSON array of such calls when parallel calls are allowed). Each tool's `parameters` schema moves
// under $defs, with its local $refs rewritten, so its own $defs keep resolving.

export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: unknown; strict?: boolean };
}
export type ToolChoice = 'required' | { type: 'function'; function: { name: string } };

/** Rewrites local references of a schema that moves to `base` (a JSON pointer such as #/$defs/tool_0). */
function rebase(schema: unknown, base: string): unknown {
  if (Array.isArray(schema)) return schema.map((s) => rebase(s, base));
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    out[k] = k === '$ref' && typeof v === 'string' && v.startsWith('#') ? base + v.slice(1) : rebase(v, base);
  }
  return out;
}

/** The schema of one call (or of a non-empty array of calls when `parallel`). */
export function toolCallSchema(
  tools: readonly ToolDefinition[],
  choice: ToolChoice,
  opts: { parallel?: boolean } = {},
): Record<string, unknown> {
  if (!Array.isArray(tools) || !tools.length) throw new Error('toolCallSchema: tools must be a non-empty array');
  tools.forEach((t, i) => {
    if (t?.type !== 'function' || typeof t.function?.name !== 'string') {
      throw new Error(`toolCallSchema: tools[${i}] must be {type: "function", function: {name, parameters}}`);
    }
  });
  const named = choice === 'required' ? null : choice?.function?.name;
  if (named !== null && typeof named !== 'string') {
    throw new Error('toolCallSchema: tool_choice must be "required" or {type: "function", function: {name}}');
  }
  const chosen = tools.map((t, i) => [t, i] as const).filter(([t]) => named === null || t.function.name === named);
  if (!chosen.length) {
    throw new Error(`toolCallSchema: tool_choice names ${JSON.stringify(named)}, which is not among the tools`);
  }
  const defs: Record<string, unknown> = {};
  const calls = chosen.map(([t, i]) => {
    const params = t.function.parameters ?? { type: 'object', properties: {}, additionalProperties: false };
    defs[`tool_${i}`] = rebase(params, `#/$defs/tool_${i}`);
    return {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'arguments'],
      properties: { name: { const: t.function.name }, arguments: { $ref: `#/$defs/tool_${i}` } },
    };
  });
  const one = calls.length === 1 ? calls[0] : { anyOf: calls };
  return opts.parallel ? { $defs: defs, type: 'array', minItems: 1, items: one } : { $defs: defs, ...one };
}
