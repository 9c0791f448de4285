// Compiled constraints cost memory and time in proportion to their automaton: the engine refuses a
// constraint over its node budget at add() (instead of compiling for seconds on the decode thread), and
// the compiled-constraint cache keeps to a byte budget, not only a count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModelDir } from '../../../src/infer/model-dir-node.js';
import { Engine, CONSTRAINT_MAX_STATES } from '../../../src/infer/engine/engine.js';
import { cachedConstraintBytes, compileConstraint } from '../../../src/infer/constrain/index.js';
import { CACHE_BYTES } from '../../../src/infer/constrain/constraint.js';

const listOf = (maxLength: number, maxItems: number) => ({
  kind: 'json-schema' as const,
  schema: { type: 'array', items: { type: 'string', maxLength }, maxItems },
});

test('a constraint over the engine budget is refused at add(), quickly, naming the limit', async () => {
  const { model, tokenizer } = await loadModelDir('models/calculator-chat');
  const engine = new Engine(model, { tokenizer, kvMemoryBytes: 4 << 20 });
  const t0 = performance.now();
  assert.throws(
    () => engine.add({ prompt: [1, 2, 3], maxTokens: 10, constraint: listOf(200, 5000) }),
    new RegExp(`^Error: request: constraint: the automaton exceeds ${CONSTRAINT_MAX_STATES} states`),
  );
  // the library default (2M nodes) compiled this for ~0.8 s; the budget stops at 100k nodes (~0.3 s)
  assert.ok(performance.now() - t0 < 5000);
  const small = engine.add({ prompt: [1, 2, 3], maxTokens: 10, constraint: listOf(5, 3) });
  for await (const _e of small);
});

test('the compiled-constraint cache keeps to its byte budget', async () => {
  const { tokenizer } = await loadModelDir('models/calculator-chat');
  let largest = 0;
  for (let k = 0; k < 10; k++) {
    const c = compileConstraint(listOf(60 - k, 1500), tokenizer!); // ~100k nodes, ~40 MB each
    largest = Math.max(largest, c.approxBytes);
    assert.ok(cachedConstraintBytes(tokenizer!) <= CACHE_BYTES + largest, `${cachedConstraintBytes(tokenizer!)}`);
  }
  assert.ok(largest * 10 > CACHE_BYTES, 'the test compiles more than the budget holds');
});
