// Constrained decoding: JSON Schema / JSON object / regex -> per-step token masks (see constraint.ts).
export {
  cachedConstraintBytes,
  compileConstraint,
  createConstraint,
  CompiledConstraint,
  Constraint,
} from './constraint.js';
export type { ConstraintOptions, ConstraintSpec } from './constraint.js';
export { parseRegex } from './regex.js';
export type { RegexNode, RegexMode } from './regex.js';
export { tokenVocab } from './vocab.js';
export type { TokenVocab, ByteTrie } from './vocab.js';
export { toolCallSchema } from './tools.js';
export type { ToolDefinition, ToolChoice } from './tools.js';
