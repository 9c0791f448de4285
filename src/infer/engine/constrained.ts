// Constrained decoding inside the engine: a request's constraint spec (JSON Schema, any JSON object, a
// regular expression — plain data, so it also crosses to a worker-thread engine) becomes the sequence's
// logits processor. The processor derives the automaton state from the sequence's own output each step
// (a DFA step per byte: cheap next to a forward pass), so the n samples of a request, which share one
// processor, each follow their own path.
import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { compileConstraint, type ConstraintSpec } from '../constrain/index.js';
import type { LogitsProcessor } from './sequence.js';

export function constraintProcessor(
  spec: ConstraintSpec,
  tokenizer: Tokenizer | null,
  eos: number | null,
  maxTokens: number,
  maxStates?: number,
): LogitsProcessor {
  if (!tokenizer) throw new Error('request: constraint needs an engine tokenizer');
  let compiled;
  try {
    compiled = compileConstraint(spec, tokenizer, { eosIds: eos === null ? [] : [eos], maxStates });
  } catch (e) {
    throw new Error(`request: constraint: ${(e as Error).message.replace(/^constrain( \([^)]*\))?: /, '')}`);
  }
  const start = compiled.start();
  const need = start.tokensToComplete();
  if (need > maxTokens)
    throw new Error(`request: maxTokens is ${maxTokens}, but the constraint needs at least ${need} tokens to complete`);
  return (ids) => {
    const c = start.clone();
    for (const id of ids) c.advance(id);
    return c.isFinished() ? 'finished' : c.mask(maxTokens - ids.length);
  };
}
