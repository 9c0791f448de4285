// Constrained decoding end to end: the existing generate loop with a constraint masks each step, with
// the bundled shakespeare-char model (regex: its vocabulary cannot write JSON) and a random tiny GPT-2
// over bytes (JSON schema). Whatever the model prefers, the output matches / parses and validates.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { generate } from '../../src/infer/generate.js';
import { loadModelDir } from '../../src/infer/model-dir-node.js';
import { createModel } from '../../src/models/registry.js';
import { getPreset } from '../../src/models/presets.js';
import { createConstraint } from '../../src/infer/constrain/index.js';
import { ajv, bytesTokenizer, decodeBytes } from './constrain-helpers.js';

const BUNDLED = fileURLToPath(new URL('../../../models/shakespeare-char', import.meta.url));

test('shakespeare-char generates text matching a regex, within max tokens', async () => {
  const { model, tokenizer } = await loadModelDir(BUNDLED);
  const pattern = '(ROMEO|JULIET|NURSE): [A-Za-z ,]{4,30}[.!?]\n';
  const prompt = tokenizer!.encode('\n', { addSpecialTokens: false });
  try {
    for (const [seed, temperature] of [
      [0, 0],
      [1, 1],
      [2, 1.5],
      [3, 0.8],
    ]) {
      const c = createConstraint({ kind: 'regex', pattern }, tokenizer!);
      const maxTokens = 20;
      assert.ok(c.tokensToComplete() <= maxTokens);
      const out = generate(model, prompt, { maxTokens, temperature, seed, constraint: c });
      const text = tokenizer!.decode(out);
      assert.ok(c.isComplete(), `incomplete: ${JSON.stringify(text)}`);
      assert.match(text, new RegExp(`^(?:${pattern})$`));
    }
  } finally {
    model.dispose();
  }
});

test('a random tiny GPT-2 over bytes writes JSON that validates against the schema', () => {
  const model = createModel(getPreset('tiny-gpt2'), { seed: 4 });
  const tok = bytesTokenizer();
  const schema = {
    type: 'object',
    additionalProperties: false,
    required: ['name', 'scores', 'ok'],
    properties: {
      name: { type: 'string', maxLength: 10 },
      scores: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 99 }, maxItems: 4 },
      ok: { type: 'boolean' },
      note: { type: ['string', 'null'] },
    },
  };
  const validate = ajv().compile(schema);
  for (const [seed, temperature] of [
    [0, 0],
    [1, 1],
    [2, 2],
  ]) {
    const c = createConstraint({ kind: 'json-schema', schema }, tok);
    const prompt = [...new TextEncoder().encode('{')];
    const out = generate(model, prompt, { maxTokens: 90, temperature, seed, constraint: c });
    const text = decodeBytes(tok, out);
    assert.ok(c.isComplete(), `incomplete: ${JSON.stringify(text)}`);
    const value = JSON.parse(text);
    assert.ok(validate(value), `${text}: ${JSON.stringify(validate.errors)}`);
  }
});
