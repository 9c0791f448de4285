// `--json-schema FILE` / `--regex PATTERN` for `lineage generate`: the constrained-decoding spec and the
// checks that belong to the command line (readable file, valid JSON, one constraint at a time).
import { readFileSync } from 'node:fs';
import { createConstraint, type Constraint, type ConstraintSpec } from '../../infer/constrain/index.js';
import type { LogitsProcessor } from '../../infer/engine/sequence.js';
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { flagString, type ParsedFlags } from '../flags.js';

export const CONSTRAIN_FLAGS = ['json-schema', 'regex'] as const;
export const CONSTRAIN_HELP = `  --json-schema FILE output must be JSON valid against this JSON Schema (a schema,
                     or OpenAI's {"name", "schema", "strict"} wrapper); subset: docs/CONSTRAINED.md
  --regex PATTERN    output must fully match this regular expression`;

function schemaFromFile(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`--json-schema ${file}: cannot read: ${(e as Error).message}`);
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new Error(`--json-schema ${file}: not valid JSON: ${(e as Error).message}`);
  }
  // response_format.json_schema form: {"name": ..., "schema": {...}, "strict": true}
  if (j && typeof j === 'object' && 'schema' in j && 'name' in j) return (j as { schema: unknown }).schema;
  return j;
}

/** The constraint the flags ask for (null when none), checked against the token budget. */
export function constraintFromFlags(
  f: ParsedFlags,
  tok: Tokenizer,
  eos: number | null,
  maxTokens: number,
): Constraint | null {
  const file = flagString(f, 'json-schema'),
    pattern = flagString(f, 'regex');
  if (file !== undefined && pattern !== undefined) throw new Error('--json-schema and --regex cannot be combined');
  let spec: ConstraintSpec;
  if (file !== undefined) spec = { kind: 'json-schema', schema: schemaFromFile(file) };
  else if (pattern !== undefined) spec = { kind: 'regex', pattern };
  else return null;
  const c = createConstraint(spec, tok, { eosIds: eos !== null ? [eos] : [] });
  if (c.tokensToComplete() > maxTokens) {
    throw new Error(`--max-tokens ${maxTokens}: the shortest valid output needs up to ${c.tokensToComplete()} tokens`);
  }
  return c;
}

/**
 * The engine's per-request form of a compiled constraint: each step replays the sequence's own output from
 * the start state (so the n samples of a request, which share the processor, each follow their own path).
 */
export function constraintProcessor(start: Constraint, maxTokens: number): LogitsProcessor {
  return (ids) => {
    const c = start.clone();
    for (const id of ids) c.advance(id);
    return c.isFinished() ? 'finished' : c.mask(maxTokens - ids.length);
  };
}
